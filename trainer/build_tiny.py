"""The tiny random package that tests and benchmarks build (seeded, a few MB)."""
from __future__ import annotations

import os
import tempfile

from .modeling.config import tiny_config
from .modeling.llava import PsaLlava, init_weights
from .package import CHAT_TEMPLATE, write_package
from .taxonomy import hint_sentences
from .tokenizer_bpe import default_corpus, save_tokenizer, tokenizer_config, train_bpe

TINY_VOCAB = 640


def build_tiny(out_dir: str, seed: int = 0, name: str = "psa-tiny") -> str:
    corpus = default_corpus() + hint_sentences() + ["USER: ASSISTANT: <image>"]
    tok = train_bpe(corpus, TINY_VOCAB)
    model = PsaLlava(tiny_config(len(tok["model"]["vocab"])))
    init_weights(model, std=0.15, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(tmp, tok, tokenizer_config(model_max_length=512, chat_template=CHAT_TEMPLATE))
        return write_package(model.eval(), tmp, os.path.abspath(out_dir), name=name,
                             provenance={"status": "untrained", "seed": seed,
                                         "note": "random weights for tests; its concepts mean nothing"})
