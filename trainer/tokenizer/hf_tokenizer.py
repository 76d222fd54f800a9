"""A package's tokenizer.json (+ tokenizer_config.json) encoded by Hugging Face `tokenizers`.

The same Rust implementation the Node runtime's @huggingface/tokenizers mirrors, so the trainer
and the service give the same ids. tokenizer_config.json names the special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

# tokenizer_config.json keys -> names used when the config is absent.
_DEFAULT_NAMES = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "image_token": "<image>",
}


class HfTokenizer:
    def __init__(self, data: dict, config: dict | None = None):
        self._tok = Tokenizer.from_str(json.dumps(data))
        self._config = config or {}

    @classmethod
    def from_dict(cls, data: dict, config: dict | None = None) -> HfTokenizer:
        return cls(data, config)

    @classmethod
    def from_file(cls, path) -> HfTokenizer:
        """Load tokenizer.json (or a directory holding it) plus a sibling tokenizer_config.json."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        cfg_path = path.with_name("tokenizer_config.json")
        config = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else None
        return cls(json.loads(path.read_text(encoding="utf-8")), config)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def _named_id(self, key: str) -> int | None:
        name = self._config.get(key, _DEFAULT_NAMES[key])
        if isinstance(name, dict):  # older transformers store AddedToken dicts
            name = name.get("content")
        return self._tok.token_to_id(name) if name is not None else None

    @property
    def bos_id(self) -> int | None:
        return self._named_id("bos_token")

    @property
    def eos_id(self) -> int | None:
        return self._named_id("eos_token")

    @property
    def pad_id(self) -> int | None:
        return self._named_id("pad_token")

    @property
    def image_id(self) -> int | None:
        return self._named_id("image_token")

    @property
    def vocab_size(self) -> int:
        # Highest id + 1: two merges that spell the same string share one id.
        return max(self._tok.get_vocab(with_added_tokens=True).values()) + 1

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids for `text`; add_bos applies the post-processor template (BOS)."""
        return self._tok.encode(text, add_special_tokens=add_bos).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
