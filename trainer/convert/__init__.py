"""Conversions of third-party models into the trainer's modules."""
