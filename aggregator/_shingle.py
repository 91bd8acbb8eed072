"""Text features for near-duplicate detection: tokens, shingles, numbers, title words, MinHash.

English and Chinese in one scheme: a token is a run of letters/digits, except that every CJK
character is a token of its own (Chinese has no spaces between words). A shingle is three
consecutive tokens, so English gets word trigrams and Chinese character trigrams.

Shingles are hashed to 32 bits with CRC-32 (stable across processes and machines, unlike
Python's `hash`), because MinHash signatures are stored and compared across runs. Anything that
changes the hashes must change `SCHEME`, which invalidates the stored signatures.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache
from typing import Any

import numpy as np
from datasketch import MinHash

SHINGLE = 3  # tokens per shingle: word trigrams for English, character trigrams for Chinese
BODY_PERM = 64  # candidate generation only; every candidate is verified on exact shingle sets
TITLE_PERM = 64
MAX_TOKENS = 3000  # a very long page is judged on its first 3,000 tokens (cost stays bounded)
SCHEME = f"crc32-k{SHINGLE}-affine32-b{BODY_PERM}-t{TITLE_PERM}-max{MAX_TOKENS}-v1"

_WORD = re.compile(r"\w+")
_CJK_CHAR = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_SPLIT = re.compile(f"([{_CJK_CHAR}])")
_IS_CJK = re.compile(f"^[{_CJK_CHAR}]$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|[〇零一二三四五六七八九十百]{2,}")
_MASK32 = np.uint64(0xFFFFFFFF)
_MIX1 = np.uint64(0x9E3779B1)  # odd multipliers: order matters inside a shingle ("a b c" != "c b a")
_MIX2 = np.uint64(0x85EBCA77)

# Function words carry no evidence that two titles tell the same news.
_STOPWORDS = frozenset(
    (
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into", "is", "it",
        "its", "of", "on", "or", "over", "that", "the", "their", "this", "to", "was", "were", "will", "with",
        "after", "new", "news",
    )
)  # fmt: skip


class _TokenHashes(dict[str, int]):
    """token -> CRC-32, memoised: news vocabulary repeats, and a dict hit is cheaper than a CRC."""

    def __missing__(self, token: str) -> int:
        if len(self) > 1_000_000:  # bound the memory of a long-running daemon
            self.clear()
        value = zlib.crc32(token.encode("utf-8"))
        self[token] = value
        return value


_HASHES = _TokenHashes()


def fold(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII) and lower case."""
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).lower()


def tokens(text: str) -> list[str]:
    """Words, and single CJK characters, of folded text."""
    folded = fold(text)
    words = _WORD.findall(folded)
    if folded.isascii():
        return words
    out: list[str] = []
    for w in words:
        if w.isascii():
            out.append(w)
        else:
            out.extend(p for p in _CJK_SPLIT.split(w) if p)
    return out


def shingle_hashes(text: str) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """32-bit hashes of the text's token trigrams (may repeat; texts under 3 tokens: the tokens)."""
    toks = tokens(text)[:MAX_TOKENS]
    h = np.fromiter(map(_HASHES.__getitem__, toks), dtype=np.uint64, count=len(toks))
    if len(h) < SHINGLE:
        return h
    return ((h[:-2] * _MIX1 + h[1:-1]) * _MIX2 + h[2:]) & _MASK32


def shingle_set(text: str) -> frozenset[int]:
    """The distinct shingles of a text, for exact containment and Jaccard."""
    return frozenset(shingle_hashes(text).tolist())


def numbers(text: str) -> frozenset[str]:
    """Numbers of two or more characters (dates, amounts, counts); '1,000' and '1000' are one.

    Chinese numerals of two or more characters count too (第十五届 vs 第十四届 is another year's forum).
    """
    found = (n.replace(",", "") for n in _NUMBER.findall(fold(text)))
    return frozenset(n for n in found if len(n) >= 2)


def title_words(title: str) -> frozenset[str]:
    """Content words of a title; Chinese as character bigrams (single characters say too little)."""
    toks = tokens(title)
    out: set[str] = set()
    prev_cjk: str | None = None
    for t in toks:
        if _IS_CJK.match(t):
            if prev_cjk is not None:
                out.add(prev_cjk + t)
            prev_cjk = t
        else:
            prev_cjk = None
            if t not in _STOPWORDS:
                out.add(t)
    if not out and toks:  # a one-character title: keep what there is
        out.update(toks)
    return frozenset(out)


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> Any:
    # Generating permutations costs more than hashing a whole article: do it once per size.
    return MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations


def _identity(x: int) -> int:
    return x


def minhash(values: Any, num_perm: int) -> MinHash:
    """MinHash of already-hashed 32-bit values (datasketch, affine32 scheme, seed 1)."""
    m = MinHash(num_perm=num_perm, seed=1, hashfunc=_identity, scheme="affine32", permutations=_permutations(num_perm))
    if len(values):
        # A list of Python ints: datasketch calls hashfunc per value, and numpy scalars are slow there.
        m.update_batch(values.tolist() if isinstance(values, np.ndarray) else values)
    return m


def minhash_from(values: bytes, num_perm: int) -> MinHash:
    """Rebuild a stored MinHash from its bytes (uint32, little-endian)."""
    hv = np.frombuffer(values, dtype="<u4").astype(np.uint32)
    return MinHash(num_perm=num_perm, seed=1, scheme="affine32", hashvalues=hv, permutations=_permutations(num_perm))


def minhash_bytes(m: MinHash) -> bytes:
    return np.asarray(m.hashvalues, dtype="<u4").tobytes()


def title_hashes(words: frozenset[str]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    return np.fromiter((_HASHES[w] for w in sorted(words)), dtype=np.uint64, count=len(words))
