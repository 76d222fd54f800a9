"""GPT-2 byte-level helpers: the byte<->unicode table and the ByteLevel pre-tokenizer.

Python's `re` has no \\p{L}/\\p{N}, so the GPT-2 split regex

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

is reproduced by a hand-written scanner. Every character falls in exactly one of
the classes space / letter / number / other, so the alternation never leaves gaps
and a single left-to-right pass gives the same pieces as the regex.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache


def bytes_to_unicode() -> dict[int, str]:
    # Printable Latin-1 bytes map to themselves; the rest are shifted above U+00FF
    # so that every byte becomes a visible, non-whitespace character.
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER: dict[int, str] = bytes_to_unicode()
BYTE_DECODER: dict[str, int] = {c: b for b, c in BYTE_ENCODER.items()}
# HF's BpeTrainer sorts its initial alphabet by code point, so byte symbols get
# ids in this order (not in byte order).
BYTE_ALPHABET: list[str] = sorted(BYTE_ENCODER.values())

# Unicode White_Space, which is what the Rust `tokenizers` regex means by \s.
# str.isspace() is not usable: it also accepts U+001C..U+001F.
_WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)

_SPACE, _LETTER, _NUMBER, _OTHER = 0, 1, 2, 3
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


@lru_cache(maxsize=65536)
def _kind(ch: str) -> int:
    if ch in _WHITE_SPACE:
        return _SPACE
    major = unicodedata.category(ch)[0]
    if major == "L":
        return _LETTER
    if major == "N":
        return _NUMBER
    return _OTHER


def split_pieces(text: str) -> list[str]:
    """Split `text` exactly like the GPT-2 regex above (use_regex=true)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            hit = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
            if hit:
                out.append(hit)
                i += len(hit)
                continue
        start = i
        # " ?X+" only takes the space when a non-space character follows it;
        # otherwise the space belongs to the whitespace rules below.
        if ch == " " and i + 1 < n and _kind(text[i + 1]) != _SPACE:
            i += 1
            ch = text[i]
        kind = _kind(ch)
        if kind == _SPACE:
            j = i
            while j < n and _kind(text[j]) == _SPACE:
                j += 1
            # \s+(?!\S): a run followed by a non-space gives up its last character
            # (so " word" keeps its space); a lone one is then taken by plain \s+.
            if j < n and j - i > 1:
                j -= 1
            out.append(text[i:j])
            i = j
            continue
        j = i + 1
        while j < n and _kind(text[j]) == kind:
            j += 1
        out.append(text[start:j])
        i = j
    return out


def to_symbols(piece: str) -> str:
    """UTF-8 bytes of `piece` as byte-level characters."""
    return "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))


def pre_tokenize(text: str, add_prefix_space: bool = False, use_regex: bool = True) -> list[str]:
    """ByteLevel pre-tokenizer: split, then map each piece to byte-level characters."""
    if add_prefix_space and not text.startswith(" "):
        text = " " + text
    pieces = split_pieces(text) if use_regex else [text]
    return [to_symbols(p) for p in pieces if p]


def symbols_to_text(symbols: str) -> str:
    """Inverse of to_symbols; invalid UTF-8 becomes U+FFFD like from_utf8_lossy."""
    buf = bytearray()
    for c in symbols:
        b = BYTE_DECODER.get(c)
        # Characters outside the table (e.g. from an added token) stand for themselves.
        if b is None:
            buf += c.encode("utf-8")
        else:
            buf.append(b)
    return buf.decode("utf-8", errors="replace")
