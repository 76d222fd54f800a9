"""Byte-level BPE (GPT-2 style) training to a Hugging Face tokenizer.json.

The file loads unchanged in `tokenizers` (Rust/Python), transformers' PreTrainedTokenizerFast and
@huggingface/tokenizers (JS); the trainer encodes with `tokenizers` (hf_tokenizer.py). Words are
split and byte-mapped by the library's ByteLevel pre-tokenizer, as at encode time.

The merges are learned here rather than by the library's BpeTrainer, which breaks ties between
pairs of equal count differently: it takes the pair with the lowest token ids, this the
lexicographically first pair. On the built-in corpus at 600 tokens the two part at merge 17, so
BpeTrainer would give every tokenizer the project builds (the default model's among them) other
ids for the same corpus.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from tokenizers import pre_tokenizers

from .corpus_en import default_corpus

__all__ = ["SPECIAL_TOKENS", "train_bpe", "tokenizer_config", "save_tokenizer", "default_corpus"]

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
UNK, BOS, EOS, IMAGE, PAD = SPECIAL_TOKENS
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_PRE_TOKENIZER = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
# BpeTrainer's initial alphabet is sorted by code point, so byte symbols get ids in this order.
BYTE_ALPHABET: list[str] = sorted(pre_tokenizers.ByteLevel.alphabet())


def pre_tokenize(text: str) -> list[str]:
    """The pieces (byte-level symbols) the ByteLevel pre-tokenizer splits `text` into."""
    return [piece for piece, _ in _PRE_TOKENIZER.pre_tokenize_str(text)]


def _token_flags(content: str) -> dict:
    return {
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def _splitter(tokens) -> re.Pattern | None:
    # Longest first: at a given position HF matches the longest added token.
    alts = sorted(tokens, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, alts))) if alts else None


def _pair_counts(word: list[str]) -> Counter:
    return Counter(zip(word, word[1:]))


def _merge_word(word: list[str], a: str, b: str) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _learn_merges(word_freq: dict[str, int], vocab: dict[str, int], vocab_size: int):
    words = [list(w) for w in word_freq]
    freqs = list(word_freq.values())
    counts: Counter = Counter()
    where: dict[tuple, set] = defaultdict(set)  # pair -> indices of words containing it
    for wi, word in enumerate(words):
        for pair, c in _pair_counts(word).items():
            counts[pair] += c * freqs[wi]
            where[pair].add(wi)
    # Lazy max-heap: stale entries are skipped when their count no longer matches.
    # (-count, a, b) orders by frequency, then lexicographically, for determinism.
    heap = [(-c, a, b) for (a, b), c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if counts.get((a, b), 0) != -neg:
            continue
        merges.append((a, b))
        # Two different merges can spell the same string; HF then reuses the id.
        vocab.setdefault(a + b, len(vocab))
        changed = set()
        for wi in where.pop((a, b)):
            before = _pair_counts(words[wi])
            if (a, b) not in before:
                continue
            words[wi] = _merge_word(words[wi], a, b)
            after = _pair_counts(words[wi])
            for pair in before.keys() | after.keys():
                delta = (after[pair] - before[pair]) * freqs[wi]
                if delta:
                    counts[pair] += delta
                    changed.add(pair)
                if pair in after:
                    where[pair].add(wi)
        for pair in changed:
            if counts[pair] > 0:
                heapq.heappush(heap, (-counts[pair], *pair))
            else:
                del counts[pair]
    return merges


def lexicon_counts(lexicon: list[str]) -> Counter:
    """Zipf-like counts for a word list in frequency order (rank r counts ~2000 / (r + 20), at
    least 1), each word with a leading space: common words win merges and end up whole tokens."""
    counts: Counter = Counter()
    for rank, word in enumerate(lexicon):
        for piece in pre_tokenize(" " + word):
            counts[piece] += max(1, 2000 // (rank + 20))
    return counts


def train_bpe(texts: list[str], vocab_size: int, lexicon: list[str] | None = None) -> dict:
    """Train a byte-level BPE and return a complete Hugging Face tokenizer.json dict.

    `lexicon`: general words in frequency order, counted beside the texts (see lexicon_counts).
    """
    split = _splitter(SPECIAL_TOKENS)
    word_freq: Counter = Counter()
    for text in texts:
        # Special tokens never reach the BPE model at encode time, so they must not
        # shape the merges either.
        for chunk in split.split(text):
            word_freq.update(pre_tokenize(chunk))
    if lexicon:
        word_freq.update(lexicon_counts(lexicon))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + BYTE_ALPHABET)}
    merges = _learn_merges(dict(sorted(word_freq.items())), vocab, vocab_size)
    bos_id = SPECIAL_TOKENS.index(BOS)
    bos_item = {"SpecialToken": {"id": BOS, "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, **_token_flags(t)} for i, t in enumerate(SPECIAL_TOKENS)],
        "normalizer": None,
        "pre_tokenizer": dict(_BYTE_LEVEL),
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos_item, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos_item, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
        },
        "decoder": {**_BYTE_LEVEL, "add_prefix_space": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] for a, b in merges],
        },
    }


def tokenizer_config(model_max_length: int = 2048, chat_template: str | None = None) -> dict:
    """tokenizer_config.json as transformers writes it for a PreTrainedTokenizerFast."""
    decoder = {}
    for i, tok in enumerate(SPECIAL_TOKENS):
        flags = _token_flags(tok)
        decoder[str(i)] = {k: flags[k] for k in sorted(flags)}
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "bos_token": BOS,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "image_token": IMAGE,
        "model_max_length": model_max_length,
        "pad_token": PAD,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": UNK,
    }
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    return cfg


def save_tokenizer(directory, tokenizer_json: dict, config: dict) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (("tokenizer.json", tokenizer_json), ("tokenizer_config.json", config)):
        (out / name).write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
