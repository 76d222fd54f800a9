"""The safety head's query encoder: a pretrained BERT checkpoint directory (sentence-transformers'
all-MiniLM-L6-v2 layout: config.json, model.safetensors, tokenizer.json), or a tiny seeded random
one with a WordPiece tokenizer built from a corpus, for tests.

In a package the encoder's weights are `psa.query_encoder.*` (BertModel names), its projection to
the head width `psa.query_proj.*`, its tokenizer `query_encoder/tokenizer.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import replace
from typing import Any

import torch

from ..modeling.config import ConfigError, QueryEncoderConfig
from . import safetensors_files

TOKENIZER_FILE = "query_encoder/tokenizer.json"
PREFIX = "psa.query_encoder."
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Checkpoint tensors the query encoder does not use: the pooler (the head reads every token state)
# and the position-id buffer older transformers versions saved.
IGNORED = re.compile(r"^(pooler\.|embeddings\.position_ids$)")


class QueryEncoderError(ValueError):
    """A query encoder directory that cannot be used; the message names the file and tensor."""


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise QueryEncoderError(f"{path}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise QueryEncoderError(f"{path}: not valid JSON ({e})") from None


def package_tokenizer(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer as the runtime uses it: no fixed padding or truncation (the runtime composes
    [CLS] text [SEP] itself and masks padding), everything else as the checkpoint has it."""
    if (tokenizer.get("model") or {}).get("type") != "WordPiece":
        raise QueryEncoderError(
            f"tokenizer.json model type {(tokenizer.get('model') or {}).get('type')!r}: "
            "a BERT query encoder needs a WordPiece tokenizer"
        )
    return {**tokenizer, "padding": None, "truncation": None}


def load_pretrained(
    directory: str, storage_dtype: str = "float16"
) -> tuple[QueryEncoderConfig, dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(config, BertModel state dict, package tokenizer, source record) of a checkpoint directory.
    Weights are rounded to `storage_dtype` here, so the model trains and exports the values the
    package stores."""
    try:
        cfg = replace(
            QueryEncoderConfig.from_dict(_read_json(os.path.join(directory, "config.json"))),
            storage_dtype=storage_dtype,
        )
    except ConfigError as e:
        raise QueryEncoderError(f"{directory}/config.json: {e}") from None
    weights = os.path.join(directory, "model.safetensors")
    try:
        raw = safetensors_files.load(weights)
    except (OSError, safetensors_files.SafetensorsError) as e:
        raise QueryEncoderError(f"{weights}: {e}") from None
    state = {}
    for name, tensor in raw.items():
        name = name[len("bert.") :] if name.startswith("bert.") else name
        if not IGNORED.match(name):
            state[name] = tensor.float()
    if storage_dtype == "float16":
        state = {k: v.half().float() for k, v in state.items()}
    tok_path = os.path.join(directory, "tokenizer.json")
    tokenizer = package_tokenizer(_read_json(tok_path))
    vocab = tokenizer["model"].get("vocab") or {}
    if len(vocab) != cfg.vocab_size:
        raise QueryEncoderError(f"{tok_path}: {len(vocab)} tokens, config.json vocab_size is {cfg.vocab_size}")
    missing = [t for t in ("[CLS]", "[SEP]", "[PAD]") if t not in vocab]
    if missing:
        raise QueryEncoderError(f"{tok_path}: no {missing[0]} token")
    source = {
        "directory": os.path.basename(os.path.normpath(directory)),
        "files": {
            n: _sha256(os.path.join(directory, n)) for n in ("config.json", "model.safetensors", "tokenizer.json")
        },
    }
    return cfg, state, tokenizer, source


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Copies a checkpoint's BertModel tensors into the query encoder: every tensor, right shapes."""
    expected = module.state_dict()
    for name, tensor in state.items():
        if name not in expected:
            raise QueryEncoderError(f"{where}: unexpected tensor {name!r} (not a BertModel tensor)")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise QueryEncoderError(
                f"{where}: tensor {name!r} has shape {list(tensor.shape)}, config.json implies "
                f"{list(expected[name].shape)}"
            )
    absent = sorted(set(expected) - set(state))
    if absent:
        raise QueryEncoderError(
            f"{where}: missing tensor {absent[0]!r}" + (f" and {len(absent) - 1} more" if len(absent) > 1 else "")
        )
    module.load_state_dict(state)


def random_config(vocab_size: int) -> QueryEncoderConfig:
    """A tiny BERT for tests: 3 layers, so training its top layers leaves lower ones to compare."""
    return QueryEncoderConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        storage_dtype="float16",
    )


def wordpiece_tokenizer(texts: list[str], vocab_size: int) -> dict[str, Any]:
    """A lowercasing BERT WordPiece tokenizer.json: specials, every character seen (alone and as a
    `##` continuation), then the corpus's most frequent words, up to vocab_size tokens."""
    words = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    chars = sorted({c for w in words for c in w})
    vocab: list[str] = list(SPECIALS) + chars + [f"##{c}" for c in chars]
    for w, _ in words.most_common():
        if len(vocab) >= vocab_size:
            break
        if w not in vocab:
            vocab.append(w)
    ids = {t: i for i, t in enumerate(vocab)}

    def special(t: str) -> dict[str, Any]:
        return {
            "id": ids[t],
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(t) for t in SPECIALS],
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": None,
            "lowercase": True,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
            ],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": ids,
        },
    }


def stored_state(state: dict[str, torch.Tensor], cfg: QueryEncoderConfig | None) -> dict[str, torch.Tensor]:
    """A model state dict as a package stores it: the query encoder in its storage dtype."""
    if cfg is None or cfg.storage_dtype == "float32":
        return state
    return {k: (v.half() if k.startswith(PREFIX) and v.is_floating_point() else v) for k, v in state.items()}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
