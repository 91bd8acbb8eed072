"""Text features for near-duplicate detection: tokens, shingles, numbers, title words, MinHash.

English and Chinese in one scheme: a token is a run of letters/digits, except that every CJK
character is a token of its own (Chinese has no spaces between words). A shingle is three
consecutive tokens, so English gets word trigrams and Chinese character trigrams.

Shingles are hashed to 32 bits with CRC-32 (stable across processes and machines, unlike
Python's `hash`), because MinHash signatures are stored and compared across runs. Anything that
changes the hashes must change `SCHEME`, which invalidates the stored signatures.

The MinHash is datasketch's (affine32, seed 1: its permutations, drawn with the same numpy calls
datasketch makes, so hashing never imports datasketch and scipy), applied here with numpy to all
of an entry's shingles at once; tests pin the permutations and the values to datasketch's
`MinHash` and its `digest()`.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

SHINGLE = 3  # tokens per shingle: word trigrams for English, character trigrams for Chinese
BODY_PERM = 40  # candidate generation only (20 bands x 2 rows); every candidate is verified exactly
TITLE_PERM = 36  # 9 bands x 4 rows
MAX_TOKENS = 3000  # a very long page is judged on its first 3,000 tokens (cost stays bounded)
SCHEME = f"crc32-k{SHINGLE}-nostop-affine32-b{BODY_PERM}-t{TITLE_PERM}-max{MAX_TOKENS}-v2"

_WORD = re.compile(r"\w+")
_CJK_CHAR = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_SPLIT = re.compile(f"([{_CJK_CHAR}])")
_IS_CJK = re.compile(f"^[{_CJK_CHAR}]$")
_ALL_CJK = re.compile(f"[{_CJK_CHAR}]+$")
_NON_CJK_WORD = re.compile(f"[^\\W{_CJK_CHAR}]+")
# One leading character class: the regex engine scans for it fast (an alternation is twice as slow).
_NUMBER = re.compile(r"[\d〇零一二三四五六七八九十百][\d.,〇零一二三四五六七八九十百]*")
_MASK32 = np.uint64(0xFFFFFFFF)
_MIX1 = np.uint64(0x9E3779B1)  # odd multipliers: order matters inside a shingle ("a b c" != "c b a")
_MIX2 = np.uint64(0x85EBCA77)

# English function words: left out of shingles and title words. They make up half of any English
# text, so trigrams of them ("one of the") are shared by unrelated articles and only add candidates.
STOPWORDS = frozenset(
    (
        "a", "about", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at",
        "be", "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "did", "do",
        "does", "doing", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he",
        "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
        "me", "more", "most", "my", "new", "news", "no", "nor", "not", "now", "of", "off", "on", "once", "only",
        "or", "other", "our", "ours", "out", "over", "own", "s", "said", "same", "she", "should", "so", "some",
        "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this",
        "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when",
        "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
    )
)  # fmt: skip
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})


_STOP = 1 << 32  # the "hash" of a function word: outside the 32-bit range, filtered out by numpy


_T = TypeVar("_T", str, bytes)


class _TokenHashes(dict[_T, int]):
    """token -> CRC-32, memoised: news vocabulary repeats, and a dict hit is cheaper than a CRC.
    Function words map to _STOP, so one vectorised comparison drops them."""

    def __init__(self, stopwords: Iterable[_T]) -> None:
        self.stopwords: dict[_T, int] = dict.fromkeys(stopwords, _STOP)
        super().__init__()
        self.update(self.stopwords)

    def __missing__(self, token: _T) -> int:
        if len(self) > 1_000_000:  # bound the memory of a long-running daemon
            self.clear()
            self.update(self.stopwords)
        value = zlib.crc32(token if isinstance(token, bytes) else token.encode("utf-8"))
        self[token] = value
        return value


_HASHES = _TokenHashes(STOPWORDS)
# ASCII text is tokenised as bytes: one C pass lower-cases and blanks punctuation, and splitting
# bytes costs half of splitting a str (the CRC of an ASCII word is the same either way).
_ASCII_HASHES = _TokenHashes(w.encode("ascii") for w in STOPWORDS)
_ASCII_WORDS = bytes(
    c + 32 if 65 <= c <= 90 else c if c >= 128 or chr(c).isalnum() or c == 95 else 32 for c in range(256)
)


def fold(text: str) -> str:
    """NFKC (full-width digits and letters become ASCII) and lower case."""
    return text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).lower()


def tokens(text: str) -> list[str]:
    """Words, and single CJK characters, of folded text."""
    folded = fold(text)
    if folded.isascii():  # the common English case, without a regex: several times faster
        return folded.translate(_PUNCT_TO_SPACE).split()
    out: list[str] = []
    for w in _WORD.findall(folded):
        if w.isascii():
            out.append(w)
        elif _ALL_CJK.match(w):
            out.extend(w)  # a run of Chinese characters: one token each
        else:
            out.extend(p for p in _CJK_SPLIT.split(w) if p)
    return out


_NOT_CJK = 1 << 33  # in _cjk_table: not a CJK word character


@lru_cache(maxsize=1)
def _cjk_table() -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Code point (BMP) -> CRC-32 of the character if it is a CJK word character, else _NOT_CJK."""
    table = np.full(0x10000, _NOT_CJK, dtype=np.uint64)
    for first, last in re.findall(r"(.)-(.)", _CJK_CHAR):
        for cp in range(ord(first), ord(last) + 1):
            if chr(cp).isalnum():  # what \w matches: a CJK punctuation mark is no token
                table[cp] = zlib.crc32(chr(cp).encode("utf-8"))
    return table


def _token_hashes(text: str) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """`_HASHES` of each of `tokens(text)`, without making a string of every Chinese character."""
    if text.isascii():
        raw = text.encode("ascii").translate(_ASCII_WORDS).split()
        return np.fromiter(map(_ASCII_HASHES.__getitem__, raw), dtype=np.uint64, count=len(raw))
    folded = fold(text)
    points = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    chars = _cjk_table()[np.minimum(points, 0xFFFF)]  # 0xFFFF is no character: not CJK
    at = np.flatnonzero(chars != _NOT_CJK)
    if not len(at):
        toks = _WORD.findall(folded)
        return np.fromiter(map(_HASHES.__getitem__, toks), dtype=np.uint64, count=len(toks))
    starts: list[int] = []
    words: list[int] = []
    for m in _NON_CJK_WORD.finditer(folded):  # the words between: digits, Latin, ...
        starts.append(m.start())
        words.append(_HASHES[m.group()])
    if not starts:
        return chars[at]
    order = np.argsort(np.concatenate((at, np.array(starts, dtype=np.intp))), kind="stable")
    return np.concatenate((chars[at], np.array(words, dtype=np.uint64)))[order]


def shingle_hashes(text: str) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """32-bit hashes of the text's token trigrams, English function words left out (may repeat;
    texts under 3 tokens: the tokens)."""
    h = _token_hashes(text)
    h = h[h != _STOP][:MAX_TOKENS]
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
    out = set()
    for raw in _NUMBER.findall(text if text.isascii() else fold(text)):  # case does not change digits
        n = raw.rstrip(".,").replace(",", "")
        if len(n) >= 2 and (n[0].isdigit() == n[-1].isdigit()):  # not "2026十" glued runs
            out.add(n)
    return frozenset(out)


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
            if t not in STOPWORDS:
                out.add(t)
    if not out and toks:  # a one-character title: keep what there is
        out.update(toks)
    return frozenset(out)


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray[Any, np.dtype[np.uint32]], np.ndarray[Any, np.dtype[np.uint32]]]:
    """datasketch's affine32 permutations (a, b) for seed 1, drawn as its MinHash draws them.

    Drawn here, not taken from a MinHash: importing datasketch imports scipy (~40 MB, ~0.5 s of
    CPU) into every process that hashes, the parse workers among them. A test pins the equality.
    """
    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_EMPTY = np.uint32(0xFFFFFFFF)


def minhash_values(values: Any, num_perm: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """MinHash values of already-hashed 32-bit values: the same as datasketch's
    `MinHash(num_perm, seed=1, hashfunc=int, scheme="affine32").update_batch(values)`."""
    return minhash_many([np.asarray(values, dtype=np.uint64)], num_perm)[0]


_BLOCK = 1 << 14  # values hashed at once: the (num_perm x block) products stay in the CPU cache


def minhash_many(
    values: Sequence[np.ndarray[Any, np.dtype[np.uint64]]], num_perm: int
) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """`minhash_values` of each array, one row each, several entries per numpy pass.

    Computed here over all values at once: datasketch calls its hashfunc once per value in
    Python, which cost more than the rest of an entry's signature; and a block of entries per
    pass, because a dozen numpy calls per entry cost 14 µs for a body, 4 µs in blocks. A test
    pins the equality, so signatures stored by either stay comparable.
    """
    a, b = _permutations(num_perm)
    if len(values) == 1:  # a batch of one entry (the usual refresh): a dozen numpy calls fewer
        return _minhash_one(values[0], a, b)[None, :]
    out = np.full((len(values), num_perm), _EMPTY, dtype=np.uint32)
    ends = np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)))
    first = 0
    while first < len(values):
        base = int(ends[first - 1]) if first else 0
        last = max(int(np.searchsorted(ends, base + _BLOCK, side="right")), first + 1)
        sizes = np.diff(ends[first:last], prepend=base)
        rows = np.flatnonzero(sizes)
        if len(rows):
            h = _fmix(np.concatenate(values[first:last]).astype(np.uint32))
            products = a[:, None] * h  # uint32: wraps as datasketch's affine32 does
            products += b[:, None]
            starts = (ends[first:last] - sizes - base)[rows]
            out[first + rows] = np.minimum.reduceat(products, starts, axis=1).T
        first = last
    return out


def _fmix(h: np.ndarray[Any, np.dtype[np.uint32]]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """MurmurHash3's finalizer, in place: datasketch pre-mixes each value with it."""
    s1, m1, s2, m2, s3 = _FMIX
    h ^= h >> s1
    h *= m1
    h ^= h >> s2
    h *= m2
    h ^= h >> s3
    return h


def _minhash_one(
    values: np.ndarray[Any, np.dtype[np.uint64]],
    a: np.ndarray[Any, np.dtype[np.uint32]],
    b: np.ndarray[Any, np.dtype[np.uint32]],
) -> np.ndarray[Any, np.dtype[np.uint32]]:
    if not len(values):
        return np.full(len(a), _EMPTY, dtype=np.uint32)
    products = a[:, None] * _fmix(values.astype(np.uint32))
    products += b[:, None]
    return products.min(axis=1)  # type: ignore[no-any-return]


def title_hashes(words: frozenset[str]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    h = np.fromiter(map(_HASHES.__getitem__, words), dtype=np.uint64, count=len(words))  # any order: a min
    return h[h != _STOP]
