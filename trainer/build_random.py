"""Randomly initialised packages (seeded): `tiny` for tests, `small` for benchmarks."""
from __future__ import annotations

import os
import tempfile

from .modeling.config import default_config, small_config, tiny_config
from .modeling.llava import PsaLlava, init_weights
from .package import CHAT_TEMPLATE, write_package
from .taxonomy import hint_sentences
from .tokenizer_bpe import default_corpus, save_tokenizer, tokenizer_config, train_bpe

SIZES = {"tiny": (tiny_config, 640, 0.15), "small": (small_config, 2048, 0.05), "default": (default_config, 2048, 0.02)}


def build_random(out_dir: str, size: str = "tiny", seed: int = 0, name: str = "psa-tiny", corpus: list[str] | None = None) -> str:
    make_config, vocab, std = SIZES[size]
    texts = default_corpus() + hint_sentences() + ["USER: ASSISTANT: <image>"] + (corpus or [])
    tok = train_bpe(texts, vocab)
    model = PsaLlava(make_config(len(tok["model"]["vocab"])))
    init_weights(model, std=std, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(tmp, tok, tokenizer_config(model_max_length=model.config.text_config.max_position_embeddings,
                                                  chat_template=CHAT_TEMPLATE))
        return write_package(model.eval(), tmp, os.path.abspath(out_dir), name=name,
                             provenance={"status": "untrained", "size": size, "seed": seed,
                                         "note": "random weights for tests and benchmarks; its concepts mean nothing"})
