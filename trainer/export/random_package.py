"""Randomly initialised packages (seeded): `tiny` for tests, `small` for benchmarks.

With `vision="nsfwjs"` the vision tower is nsfwjs's pretrained MobileNetV2 instead of a random
CLIP ViT (from a `convert-nsfwjs` output directory, or converted here from nsfwjs's TF.js files);
everything else is seeded random as for the other packages.

With a query encoder (`query_encoder="random"` or a BERT checkpoint directory) the safety head's
query is that encoder's projected token states (trainer/io/query_encoder.py); a pretrained one keeps
its weights (rounded to float16 for storage), a random one is tiny with its own WordPiece vocabulary.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import torch

from ..io import query_encoder as qe
from ..modeling.config import default_config, mobilenet_variant, small_config, tiny_config
from ..modeling.llava import PsaLlava, init_weights
from ..modeling.mobilenet import NsfwMobileNetV2
from ..taxonomy import hint_sentences
from ..tokenizer.bpe_training import default_corpus, save_tokenizer, tokenizer_config, train_bpe
from ..tokenizer.hf_tokenizer import HfTokenizer
from ..tokenizer.word_vectors import PIECE_WORDS, init_embeddings, read_word_vectors
from .package import CHAT_TEMPLATE, write_package

SIZES = {"tiny": (tiny_config, 640, 0.15), "small": (small_config, 2048, 0.05), "default": (default_config, 2048, 0.02)}
VISIONS = ("clip", "nsfwjs")


def pretrained_mobilenet(
    nsfwjs_dir: str | None, nsfwjs_model_dir: str | None
) -> tuple[NsfwMobileNetV2, dict[str, Any]]:
    """The converted tower and its source record (package, version, licence, file hashes)."""
    from ..convert.nsfwjs import convert, load_converted

    if (nsfwjs_dir is None) == (nsfwjs_model_dir is None):
        raise ValueError(
            "the nsfwjs vision tower needs exactly one of nsfwjs_dir (a convert-nsfwjs output) "
            "and nsfwjs_model_dir (nsfwjs's TF.js files)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        directory = nsfwjs_dir
        if directory is None:
            directory = tmp
            convert(nsfwjs_model_dir, tmp)
        tower = load_converted(directory)
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            source = json.load(f).get("source") or {}
    return tower, source


def build_random(
    out_dir: str,
    size: str = "tiny",
    seed: int = 0,
    name: str = "psa-tiny",
    corpus: list[str] | None = None,
    vision: str = "clip",
    nsfwjs_dir: str | None = None,
    nsfwjs_model_dir: str | None = None,
    query_ocr: bool = False,
    vocab_size: int | None = None,
    word_vectors: str | None = None,
    lexicon_words: int = 0,
    word_vectors_source: str | None = None,
    query_encoder: str | None = None,
) -> str:
    """`word_vectors`: a GloVe text file; its `lexicon_words` most frequent words join the tokenizer's
    training text and its vectors start the token embeddings (trainer/tokenizer/word_vectors.py)."""
    if vision not in VISIONS:
        raise ValueError(f"vision must be one of {', '.join(VISIONS)}, got {vision!r}")
    if lexicon_words and not word_vectors:
        raise ValueError("lexicon_words needs word_vectors")
    make_config, vocab, std = SIZES[size]
    vocab = vocab_size or vocab
    wv = read_word_vectors(word_vectors, limit=PIECE_WORDS) if word_vectors else None
    tower, source = pretrained_mobilenet(nsfwjs_dir, nsfwjs_model_dir) if vision == "nsfwjs" else (None, None)
    texts = default_corpus() + hint_sentences() + ["USER: ASSISTANT: <image>"] + (corpus or [])
    tok = train_bpe(texts, vocab, lexicon=wv.lexicon(lexicon_words) if wv and lexicon_words else None)
    cfg = make_config(len(tok["model"]["vocab"]))
    provenance: dict[str, Any] = {
        "status": "untrained",
        "size": size,
        "seed": seed,
        "note": "random weights for tests and benchmarks; its concepts mean nothing",
    }
    if tower is not None:
        cfg = mobilenet_variant(cfg, tower.config)
        provenance["vision_tower"] = {
            "model_type": tower.config.model_type,
            "weights": "pretrained, frozen (the rest is random)",
            "notice": "derived from nsfwjs, Copyright (c) 2019 Infinite Red, Inc., MIT licence: keep this "
            "notice and the MIT permission notice when redistributing model.safetensors",
            "source": source,
        }
    if query_ocr:
        cfg.psa.query_image_text = "ocr"
    encoder_state, encoder_tokenizer = None, None
    if query_encoder == "random":
        encoder_tokenizer = qe.wordpiece_tokenizer(texts, 512)
        cfg.psa.query_encoder = qe.random_config(len(encoder_tokenizer["model"]["vocab"]))
        provenance["query_encoder"] = {"weights": "random (tests)", "tokenizer": "WordPiece built from the corpus"}
    elif query_encoder is not None:
        cfg.psa.query_encoder, encoder_state, encoder_tokenizer, enc_source = qe.load_pretrained(query_encoder)
        provenance["query_encoder"] = {
            "weights": "pretrained BERT encoder, frozen in stage 1 unless a job trains its top layers; projection random",
            "storage_dtype": cfg.psa.query_encoder.storage_dtype,
            "source": enc_source,
        }
    model = PsaLlava(cfg)
    init_weights(model, std=std, seed=seed)
    if model.psa.query_encoder is not None:
        with torch.no_grad():
            if encoder_state is not None:
                qe.load_into(model.psa.query_encoder, encoder_state, query_encoder)
            elif cfg.psa.query_encoder.storage_dtype == "float16":
                for p in model.psa.query_encoder.parameters():
                    p.copy_(p.half().float())  # the values the package stores
    if tower is not None:
        model.vision_tower.load_state_dict(tower.state_dict())
    if wv is not None:
        counts = init_embeddings(model.language_model.model.embed_tokens.weight, HfTokenizer.from_dict(tok), wv, seed)
        provenance["token_embeddings"] = {
            "init": "pretrained word vectors (the rest of the decoder is random)",
            "source": word_vectors_source or os.path.basename(word_vectors),
            "lexicon_words": lexicon_words,
            **counts,
        }
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(
            tmp,
            tok,
            tokenizer_config(
                model_max_length=model.config.text_config.max_position_embeddings, chat_template=CHAT_TEMPLATE
            ),
        )
        if encoder_tokenizer is not None:
            os.makedirs(os.path.join(tmp, os.path.dirname(qe.TOKENIZER_FILE)))
            with open(os.path.join(tmp, qe.TOKENIZER_FILE), "w", encoding="utf-8") as f:
                json.dump(encoder_tokenizer, f, ensure_ascii=False)
        return write_package(model.eval(), tmp, os.path.abspath(out_dir), name=name, provenance=provenance)
