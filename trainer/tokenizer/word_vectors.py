"""Pretrained word vectors as the starting point of the LLM's token embeddings.

A package trained from a random decoder only knows the words of its training set: a held-out
request that says "mortgages" or "ridicule" reaches the safety head as sub-word pieces with random
embeddings. Starting the embedding table from pretrained word vectors (GloVe) gives words that
never appear in training a position near the words that do.

Input: GloVe's text format, one `word v1 ... vD` per line, most frequent word first.

- A token that spells a word (its byte-level space marker dropped, lower-cased) gets that word's
  vector.
- Any other token gets the frequency-weighted mean of the vectors of the lexicon words whose
  tokenisation contains it ("Ġmortg" sits near "mortgage", "mortgages"). Tokens no lexicon word
  uses (special tokens, rare bytes) keep their random initialisation.
- The D-dimensional vectors enter the hidden size H through a seeded random orthonormal H x D
  map; the random initialisation is kept in the orthogonal complement, so tokens stay distinct,
  and each row keeps its initial norm: row = |r| (0.8 Q v + 0.6 unit(r - Q Q^T r)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .hf_tokenizer import HfTokenizer

WORD = re.compile(r"[a-z]+")
# Share of each initialised row's norm that carries the word vector; the rest is the random init.
WORD_SHARE = 0.8
# Words whose vectors can reach a sub-word piece (and all a package build reads of the file).
PIECE_WORDS = 50_000


class WordVectorsError(ValueError):
    pass


@dataclass
class WordVectors:
    words: list[str]  # most frequent first
    vectors: torch.Tensor  # (len(words), D), unit length

    def lexicon(self, n: int) -> list[str]:
        """The n most frequent plain lower-case words (what the tokenizer should keep whole)."""
        return [w for w in self.words if WORD.fullmatch(w)][:n]


def read_word_vectors(path: str, limit: int | None = None) -> WordVectors:
    words: list[str] = []
    rows: list[list[float]] = []
    dim = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 2:
                continue
            try:
                values = [float(x) for x in parts[1:]]
            except ValueError:
                raise WordVectorsError(f"{path}:{n}: expected `word v1 ... vD` (GloVe text format)") from None
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise WordVectorsError(f"{path}:{n}: {len(values)} values, the first line had {dim}")
            words.append(parts[0])
            rows.append(values)
            if limit is not None and len(words) >= limit:
                break
    if not words:
        raise WordVectorsError(f"{path}: no word vectors")
    vectors = torch.tensor(rows, dtype=torch.float32)
    return WordVectors(words, vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-8))


def token_vectors(
    tok: HfTokenizer, wv: WordVectors, piece_words: int = PIECE_WORDS
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Per token id: a unit word-space vector and whether it has one; plus counts for provenance."""
    index = {w: i for i, w in enumerate(wv.words)}
    size, dim = tok.vocab_size, wv.vectors.shape[1]
    out = torch.zeros(size, dim)
    whole = torch.zeros(size, dtype=torch.bool)
    specials = {t for t in (tok.bos_id, tok.eos_id, tok.pad_id, tok.image_id) if t is not None}
    for i in range(size):
        word = (tok.id_to_token(i) or "").replace("Ġ", "").lower()
        if i not in specials and WORD.fullmatch(word) and word in index:
            out[i] = wv.vectors[index[word]]
            whole[i] = True
    acc = torch.zeros(size, dim, dtype=torch.float64)
    used = torch.zeros(size, dtype=torch.bool)
    for rank, word in enumerate(wv.words[:piece_words]):
        if not WORD.fullmatch(word):
            continue
        weight = 1.0 / (rank + 100)
        for i in tok.encode(" " + word, add_bos=False):
            if not whole[i] and i not in specials:
                acc[i] += weight * wv.vectors[rank].double()
                used[i] = True
    pieces = acc[used]
    out[used] = (pieces / pieces.norm(dim=1, keepdim=True).clamp(min=1e-12)).float()
    has = whole | used
    return out, has, {"whole_words": int(whole.sum()), "pieces": int(used.sum()), "random": int(size - has.sum())}


@torch.no_grad()
def init_embeddings(weight: torch.Tensor, tok: HfTokenizer, wv: WordVectors, seed: int) -> dict:
    """Rewrite the rows of an (already randomly initialised) embedding table in place."""
    size, hidden = weight.shape
    if size != tok.vocab_size:
        raise WordVectorsError(f"embedding table has {size} rows, the tokenizer {tok.vocab_size} tokens")
    dim = wv.vectors.shape[1]
    if dim > hidden:
        raise WordVectorsError(f"word vectors have {dim} dimensions, more than the hidden size {hidden}")
    vectors, has, counts = token_vectors(tok, wv)
    g = torch.Generator().manual_seed(seed + 7919)
    q, _ = torch.linalg.qr(torch.randn(hidden, dim, generator=g, dtype=torch.float64))
    q = q.float()
    rows = weight[has].float()
    norms = rows.norm(dim=1, keepdim=True)
    rest = rows - (rows @ q) @ q.T
    rest = rest / rest.norm(dim=1, keepdim=True).clamp(min=1e-12)
    share = (1 - WORD_SHARE**2) ** 0.5
    weight[has] = (norms * (WORD_SHARE * vectors[has] @ q.T + share * rest)).to(weight.dtype)
    return {**counts, "dimensions": dim, "word_share_of_norm": WORD_SHARE}
