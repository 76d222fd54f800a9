"""PyTorch LLaVA-1.5 model with PSA-VLM safety modules, using transformers' parameter names."""
