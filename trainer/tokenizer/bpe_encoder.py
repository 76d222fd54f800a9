"""Pure-Python encoder/decoder for byte-level BPE tokenizer.json files (GPT-2 family).

Follows the Hugging Face pipeline: split out added tokens (longest match), ByteLevel
pre-tokenization, BPE by merge rank, then the post-processor template. Anything
outside that family (normalizers, other pre-tokenizers, byte fallback, ...) is
rejected at load time rather than silently producing different ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .bytelevel import pre_tokenize, symbols_to_text

# tokenizer_config.json keys -> names used when the config is absent.
_DEFAULT_NAMES = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                  "unk_token": "<unk>", "image_token": "<image>"}
_CACHE_LIMIT = 100_000


def _check_supported(data: dict) -> None:
    def fail(what):
        raise ValueError(f"unsupported tokenizer.json: {what}")

    if data.get("normalizer") is not None:
        fail(f"normalizer {data['normalizer'].get('type')}")
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel":
        fail(f"pre_tokenizer {pre.get('type')}")
    model = data.get("model") or {}
    if model.get("type", "BPE") != "BPE" or "merges" not in model:
        fail(f"model {model.get('type')}")
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "dropout"):
        if model.get(key):
            fail(f"model.{key}={model[key]!r}")
    decoder = data.get("decoder")
    if decoder is not None and decoder.get("type") != "ByteLevel":
        fail(f"decoder {decoder.get('type')}")
    _check_post(data.get("post_processor"))


def _check_post(pp: dict | None) -> None:
    kind = pp and pp.get("type")
    if kind == "Sequence":
        for sub in pp["processors"]:
            _check_post(sub)
    elif kind not in (None, "ByteLevel", "TemplateProcessing"):
        raise ValueError(f"unsupported tokenizer.json: post_processor {kind}")


def _apply_post(pp: dict | None, ids: list[int]) -> list[int]:
    kind = pp and pp.get("type")
    if kind == "Sequence":
        for sub in pp["processors"]:
            ids = _apply_post(sub, ids)
        return ids
    if kind != "TemplateProcessing":
        return ids  # ByteLevel post-processing only adjusts offsets
    out: list[int] = []
    for item in pp["single"]:
        if "SpecialToken" in item:
            out.extend(pp["special_tokens"][item["SpecialToken"]["id"]]["ids"])
        else:
            out.extend(ids)
    return out


def _parse_merge(m) -> tuple[str, str]:
    # Older files store "a b"; byte-level symbols never contain a real space.
    parts = m.split(" ") if isinstance(m, str) else list(m)
    if len(parts) != 2:
        raise ValueError(f"bad merge entry {m!r}")
    return parts[0], parts[1]


class BpeTokenizer:
    def __init__(self, data: dict, config: dict | None = None):
        _check_supported(data)
        model = data["model"]
        self._model_vocab: dict[str, int] = dict(model["vocab"])
        self._ranks = {_parse_merge(m): r for r, m in enumerate(model["merges"])}
        self._ignore_merges = bool(model.get("ignore_merges"))
        unk = model.get("unk_token")
        self._unk_id = self._model_vocab.get(unk) if unk is not None else None
        pre = data["pre_tokenizer"]
        self._prefix_space = bool(pre.get("add_prefix_space", False))
        self._use_regex = bool(pre.get("use_regex", True))
        self._post = data.get("post_processor")
        self._added = {t["content"]: t for t in data.get("added_tokens") or []}
        self._vocab = dict(self._model_vocab)
        self._vocab.update({c: t["id"] for c, t in self._added.items()})
        self._id_to_token = {i: t for t, i in self._vocab.items()}
        self._split = re.compile("|".join(map(re.escape, sorted(self._added, key=len, reverse=True)))) \
            if self._added else None
        self._config = config or {}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_dict(cls, data: dict, config: dict | None = None) -> "BpeTokenizer":
        return cls(data, config)

    @classmethod
    def from_file(cls, path) -> "BpeTokenizer":
        """Load tokenizer.json (or a directory holding it) plus a sibling tokenizer_config.json."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        cfg_path = path.with_name("tokenizer_config.json")
        config = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else None
        return cls(json.loads(path.read_text(encoding="utf-8")), config)

    # -- vocabulary ---------------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._id_to_token.get(token_id)

    def _named_id(self, key: str) -> int | None:
        name = self._config.get(key, _DEFAULT_NAMES[key])
        if isinstance(name, dict):  # older transformers store AddedToken dicts
            name = name.get("content")
        return self._vocab.get(name) if name is not None else None

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
        return max(self._id_to_token) + 1

    # -- encoding -------------------------------------------------------------------
    def _sections(self, text: str) -> list[tuple[str, bool]]:
        if self._split is None:
            return [(text, False)] if text else []
        parts: list[list] = []
        pos = 0
        for m in self._split.finditer(text):
            parts += [[text[pos:m.start()], False], [m.group(), True]]
            pos = m.end()
        parts.append([text[pos:], False])
        # Added tokens alternate with (possibly empty) plain sections, so i±1 exist.
        for i, (content, is_added) in enumerate(parts):
            if is_added and self._added[content].get("lstrip"):
                parts[i - 1][0] = parts[i - 1][0].rstrip()
            if is_added and self._added[content].get("rstrip"):
                parts[i + 1][0] = parts[i + 1][0].lstrip()
        return [(s, a) for s, a in parts if s]

    def _bpe(self, piece: str) -> list[int]:
        if self._ignore_merges and piece in self._model_vocab:
            return [self._model_vocab[piece]]
        word = list(piece)
        ranks = self._ranks
        while len(word) > 1:
            # One merge at a time, lowest rank then leftmost: the order the Rust and
            # JS implementations use, which also handles overlaps like "aaa".
            best, at = None, -1
            for i in range(len(word) - 1):
                r = ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            word[at:at + 2] = [word[at] + word[at + 1]]
        ids = []
        for sym in word:
            tid = self._model_vocab.get(sym, self._unk_id)
            if tid is not None:  # without unk_token HF drops unknown symbols
                ids.append(tid)
        return ids

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids for `text`; add_bos applies the post-processor template (BOS)."""
        ids: list[int] = []
        for section, is_added in self._sections(text):
            if is_added:
                ids.append(self._vocab[section])
                continue
            for piece in pre_tokenize(section, self._prefix_space, self._use_regex):
                cached = self._cache.get(piece)
                if cached is None:
                    if len(self._cache) >= _CACHE_LIMIT:
                        self._cache.clear()
                    cached = self._cache[piece] = self._bpe(piece)
                ids.extend(cached)
        return _apply_post(self._post, ids) if add_bos else ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        out: list[str] = []
        run: list[str] = []
        for tid in ids:
            tok = self._id_to_token.get(int(tid))
            added = self._added.get(tok) if tok is not None else None
            if tok is None or (added and skip_special_tokens and added.get("special")):
                continue
            if added is None:
                run.append(tok)
                continue
            # Added tokens are literal text, not byte-level symbols.
            if run:
                out.append(symbols_to_text("".join(run)))
                run = []
            out.append(tok)
        if run:
            out.append(symbols_to_text("".join(run)))
        return "".join(out)
