"""Byte-level BPE tokenizer training and encoding, the built-in English corpus, word vectors."""
