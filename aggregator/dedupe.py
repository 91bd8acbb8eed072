"""Entries -> stories: exact keys, near duplicates across sources, stable story ids, and why.

Pure: values in, values out. The pipeline loads the stored story links and MinHash signatures,
calls `cluster`, and writes back what changed. It passes the stored entries without their texts,
with a loader (`Bodies`) that `cluster` calls for the few it compares or must hash.

How two entries become one story (`compare`, first rule that applies wins):

====================  ===========================================================================
always-merge          pinned in feeds.yaml (`dedupe.always_merge`); never-merge pins win over all
canonical-url         same canonical URL (tracking parameters gone, scheme/host normalised); any
                      two sources, and the only text-free rule inside one source (besides the id)
content-hash          same normalised body, different sources (short bodies also need equal titles)
near-duplicate        different sources; most of the shorter text's shingles are in the other
similar-text+title    different sources; a good share of the text and most title words agree
short-text+title      below MIN_SHINGLES text alone never merges: title, text and dates must agree
====================  ===========================================================================

The text rules also need: publication dates within `window_days` when both are known, and the
numbers of the shorter text (dates, amounts) mostly found in the other — two visits to the same
university share names and phrases, but not their dates and figures.

Candidates come from MinHash LSH over the body shingles and over the title words, plus the
exact-key dictionaries; no all-pairs comparison. Every candidate is then verified on exact shingle
sets, so the MinHash only needs to be good enough to find it.

datasketch defines the MinHash: its permutations (`_shingle._permutations` draws them as it does), and its
`MinHashLSH(params=(bands, rows))` banding is what `_Bands` and `_inner_hits` implement. It is
also their test oracle: tests pin our MinHash values to its `MinHash.digest()` and our candidate
sets to its `MinHashLSH.query` (tests/test_dedupe_lsh.py). The hot path does the same arithmetic
vectorised, because per entry datasketch cost 0.18 ms for a 40-value MinHash (a Python call per
shingle) and 0.065 ms for a MinHashLSH query + insert (band byte-swaps through its storage
layer), against 0.023 and 0.008 ms here: together more than half the 0.3 ms budget per entry.

Stable ids: entries are processed in first-seen order, a run's new entries as one batch. A story
is born with the id of its founder (its first entry; in a batch, the smallest id) and keeps it:
members already assigned are never moved, and two published stories are never merged by a
newcomer (it joins the one it matches best). So re-running refresh changes nothing, and a late
copy joins the existing story. A change of the dedupe settings (`fingerprint`) re-clusters
everything the same way, from the oldest batch on, which keeps the ids of unaffected stories.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby, islice
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import _shingle
from ._url import canonical_url
from .store.base import StoryLink
from .types import Entry, Story

if TYPE_CHECKING:  # the parse workers compute signatures and do not import the config (pydantic)
    from .config import DedupeConfig

_EPOCH = datetime.min.replace(tzinfo=UTC)
_FAR = datetime.max.replace(tzinfo=UTC)

ALWAYS, URL, HASH = "always-merge", "canonical-url", "content-hash"
NEAR, TEXT_TITLE, SHORT = "near-duplicate", "similar-text+title", "short-text+title"
FOUNDER = "founder"
_RANK = {ALWAYS: 0, URL: 1, HASH: 2, NEAR: 3, TEXT_TITLE: 4, SHORT: 5}

# -- thresholds (sizes are distinct shingles of the SHORTER text: about one per Chinese character,
#    one per two English words, function words being left out). Chosen on tests/data/dedupe.
MIN_SHINGLES = 40  # ~3 sentences: under this, shared text is too likely to be a stock phrase
# (from size, containment for near-duplicate, containment with title support)
BANDS: tuple[tuple[int, float, float], ...] = (
    (300, 0.55, 0.25),  # long: a reprint keeps most shingles even with a new header and footer
    (120, 0.65, 0.35),  # medium
    (MIN_SHINGLES, 0.80, 0.50),  # short: one shared paragraph must not be enough
)
TITLE_SUPPORT = 0.5  # share of title words in common for similar-text+title
SHORT_NEAR_TITLE = 0.3  # short texts: near-duplicate needs at least some title agreement too
SHORT_TITLE = 0.75  # below MIN_SHINGLES: near-identical titles, and...
SHORT_TEXT = 0.8  # ... near-identical text, and both dates known within the window
NUMBERS_MIN = 1  # even one number votes: a summary keeps its article's date and figures
NUMBERS_AGREE = 0.5  # share of the shorter text's numbers found in the other
# LSH bands x rows. Each band costs a hash-table insert and lookup per entry, so few bands; their
# S-curves: body (20 x 2) finds a pair with probability 0.56 at Jaccard 0.2, 0.85 at 0.3, 0.96 at
# 0.4 and 0.01 at 0.02 (unrelated texts); a summary is a small part of its article, so its body
# Jaccard is low: titles (9 x 4) find it, 0.78 at title-word Jaccard 0.64, 0.98 at 0.8, 0.001 at
# 0.1. Three rows let titles sharing two common words collide: hits then grow with the pool.
LSH_BODY = (20, 2)
LSH_TITLE = (9, 4)
# Estimated Jaccard (share of equal MinHash values) below which an LSH hit is not verified exactly:
# 0.1 of the body (40 values: sd 0.05 at 0.2, so a real rewrite passes) or 0.25 of the title words.
PLAUSIBLE_BODY = 0.1
PLAUSIBLE_TITLE = 0.25
MAX_CANDIDATES = 64  # per LSH query; a template title shared by hundreds of pages stays cheap
# Up to this many batches of new entries (a refresh has one), stored entries are not inserted into
# the LSH index but query a small index of each batch (`_Run._pool_hits`): the same candidates,
# several times cheaper per stored entry. A re-clustering (thousands of batches) inserts them.
REVERSE_BATCHES = 4
# A batch this big (the first refresh of many feeds) finds the collisions among its own entries by
# sorting their bands (`_inner_hits`) rather than through the LSH dictionaries, whose keys cost
# ~2 KB per entry; it enters them only if another batch follows.
BIG_BATCH = 2048
VERSION = "3"  # bump when a rule or threshold changes: stored clusters are then recomputed


def _before(t: datetime, delta: timedelta) -> datetime:
    """t - delta, or the earliest time when that would fall off the calendar (unknown first-seen)."""
    return t - delta if t - _EPOCH > delta else _EPOCH


def founder_key(e: Entry) -> tuple[datetime, str]:
    """Order of arrival: first seen, then id (entries of one run arrive together)."""
    return (e.first_seen or _EPOCH, e.id)


def primary_key(
    priority: Sequence[str], lengths: Mapping[str, int] | None = None
) -> Callable[[Entry], tuple[int, datetime, int, str]]:
    """Source priority list first, then earliest published, then the richest content.

    `lengths`: text lengths of entries passed without their text (see `Bodies`).
    """
    rank = {name: i for i, name in enumerate(priority)}
    sizes = lengths or {}

    def key(e: Entry) -> tuple[int, datetime, int, str]:
        return (rank.get(e.source, len(rank)), e.published or _FAR, -sizes.get(e.id, len(e.content_text)), e.id)

    return key


def story_sort_key(s: Story) -> tuple[datetime, str]:
    """Newest first for feeds: by the primary's updated (or first-seen) time, then id."""
    p = s.primary
    return (p.updated or p.first_seen or _EPOCH, s.id)


def fingerprint(cfg: DedupeConfig) -> str:
    """Everything that decides membership. When it changes, stored clusters are recomputed."""
    data = {
        "v": VERSION,
        "scheme": _shingle.SCHEME,
        "window": cfg.window_days,
        "lookback": cfg.lookback_days,
        "always": sorted(sorted(p) for p in cfg.always_merge),
        "never": sorted(sorted(p) for p in cfg.never_merge),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# -- per-entry features --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)  # slots: one per stored entry, 100 B less each
class Signature:
    """Stored MinHash signatures of one entry; valid while `basis` matches the entry."""

    basis: str
    body: bytes
    title: bytes


_NO_TEXT = 0xFFFFFFFF  # every MinHash value of an empty set


class SignatureRows(Mapping[str, Signature]):
    """Signatures as rows of two uint32 arrays (and their bases), by entry id.

    The stored signatures of a first refresh of 100k entries held 66 MB as Signature objects
    (two bytes objects and a str each), ~31 MB as rows. `cluster` reads the rows in place, adds
    or replaces those of the signatures it computes, and clears the table once its last batch
    no longer needs it. `keys`: ids given a row up front (the dictionary keeps these strings,
    not copies read from the store).
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.row: dict[str, int] = {k: i for i, k in enumerate(keys)}
        self.size = len(self.row)
        n = max(self.size, 16)
        # An empty basis: no signature yet. Pages of a big zeroed array stay unmapped until written.
        self.basis = np.zeros(n, "S20")
        self.body = np.zeros((n, _shingle.BODY_PERM), "<u4")
        self.title = np.zeros((n, _shingle.TITLE_PERM), "<u4")

    @classmethod
    def of(cls, sigs: Mapping[str, Signature], keys: Iterable[str]) -> SignatureRows:
        """Rows for `keys`, filled from those of `sigs`."""
        table = cls(keys)
        table.load((k, s.basis, s.body, s.title) for k, s in sigs.items())
        return table

    def load(self, rows: Iterable[tuple[str, str, bytes, bytes]], chunk: int = 4096) -> None:
        """Fill the rows of known ids from (id, basis, body, title), as the store keeps them. Other
        ids, and signatures of another size (an older scheme: recomputed when needed), are skipped."""
        sizes = (20, 4 * _shingle.BODY_PERM, 4 * _shingle.TITLE_PERM)
        it = iter(rows)
        while block := list(islice(it, chunk)):
            got = [
                (i, basis.encode(), body, title)
                for key, basis, body, title in block
                if (i := self.row.get(key)) is not None and (len(basis), len(body), len(title)) == sizes
            ]
            if got:
                idx = np.fromiter((g[0] for g in got), np.intp, len(got))
                self.basis[idx] = [g[1] for g in got]
                self.body[idx] = np.frombuffer(b"".join(g[2] for g in got), "<u4").reshape(len(got), -1)
                self.title[idx] = np.frombuffer(b"".join(g[3] for g in got), "<u4").reshape(len(got), -1)

    def put(self, key: str, sig: Signature) -> int:
        """Add or replace the signature of `key`; its row."""
        i = self.row.get(key)
        if i is None:
            if self.size == len(self.basis):
                self._grow(2 * self.size)
            i = self.row[key] = self.size
            self.size += 1
        self.basis[i] = sig.basis.encode()
        self.body[i] = np.frombuffer(sig.body, "<u4")
        self.title[i] = np.frombuffer(sig.title, "<u4")
        return i

    def clear(self) -> None:
        """Drop every row, and the arrays' memory."""
        empty = SignatureRows()
        self.row, self.size, self.basis, self.body, self.title = ({}, 0, empty.basis, empty.body, empty.title)

    def _grow(self, n: int) -> None:
        for name in ("basis", "body", "title"):
            old = getattr(self, name)
            new = np.zeros((n, *old.shape[1:]), old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def valid(self, e: Entry) -> int | None:
        """The row of `e` if it holds a signature of the entry as it is now (see `signature_basis`)."""
        i = self.row.get(e.id)
        if i is None or not (stored := self.basis[i]):
            return None
        return i if stored == signature_basis(e).encode() else None

    def body_bytes(self, i: int) -> bytes:
        return self.body[i].tobytes()

    def title_bytes(self, i: int) -> bytes:
        return self.title[i].tobytes()

    def __getitem__(self, key: str) -> Signature:
        i = self.row[key]
        if not self.basis[i]:
            raise KeyError(key)
        return Signature(self.basis[i].decode(), self.body_bytes(i), self.title_bytes(i))

    def __iter__(self) -> Iterator[str]:
        return (k for k, i in self.row.items() if self.basis[i])

    def __len__(self) -> int:
        return int(np.count_nonzero(self.basis[: self.size]))


@dataclass(frozen=True)
class Features:
    shingles: np.ndarray[Any, np.dtype[np.uint32]]  # sorted, distinct
    title: frozenset[str]
    numbers: frozenset[str]


def signature_basis(e: Entry) -> str:
    """What a signature was computed from: the scheme, the title and the body."""
    return hashlib.sha256(f"{_shingle.SCHEME}\x1f{e.title}\x1f{e.content_hash}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class _Prepared:
    """What hashing an entry gives: enough for its signature, and for its features when needed."""

    hashes: np.ndarray[Any, np.dtype[np.uint64]]  # shingle hashes, may repeat
    title: frozenset[str]


def _prepare(e: Entry) -> _Prepared:
    return _Prepared(_shingle.shingle_hashes(e.content_text), _shingle.title_words(e.title))


def _distinct(h: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """Sorted distinct values: a sort and a mask, 6x cheaper than np.unique (hash table, then a sort)."""
    s = h.astype(np.uint32)
    s.sort()
    keep = np.empty(len(s), dtype=bool)
    keep[:1] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _features_from(e: Entry, p: _Prepared) -> Features:
    return Features(_distinct(p.hashes), p.title, _shingle.numbers(e.content_text))


def _signatures_from(entries: Sequence[Entry], prepared: Sequence[_Prepared]) -> list[Signature]:
    body = _shingle.minhash_many([p.hashes for p in prepared], _shingle.BODY_PERM).astype("<u4", copy=False)
    title = _shingle.minhash_many([_shingle.title_hashes(p.title) for p in prepared], _shingle.TITLE_PERM)
    title = title.astype("<u4", copy=False)
    return [
        Signature(signature_basis(e), b.tobytes(), t.tobytes()) for e, b, t in zip(entries, body, title, strict=True)
    ]


def features(e: Entry) -> Features:
    """Exact shingle set, title words and numbers of an entry."""
    return _features_from(e, _prepare(e))


def compute_signature(e: Entry) -> Signature:
    """MinHash signatures (body, title) of an entry, for the LSH index and the store."""
    return _signatures_from([e], [_prepare(e)])[0]


def compute_signatures(entries: Sequence[Entry]) -> dict[str, Signature]:
    """`compute_signature` of each entry, their MinHashes computed together (cheaper per entry)."""
    return {
        e.id: sig for e, sig in zip(entries, _signatures_from(entries, [_prepare(e) for e in entries]), strict=True)
    }


# -- pins ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pins:
    """never-merge / always-merge pairs of feeds.yaml, resolved to entry ids."""

    always: frozenset[frozenset[str]] = frozenset()
    never: frozenset[frozenset[str]] = frozenset()

    @property
    def always_ids(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for pair in self.always:
            a, b = tuple(pair)
            out.setdefault(a, set()).add(b)
            out.setdefault(b, set()).add(a)
        return out

    @property
    def never_ids(self) -> frozenset[str]:
        return frozenset(x for pair in self.never for x in pair)


def _resolve(ref: str, by_url: Mapping[str, list[str]], ids: Sequence[str]) -> list[str]:
    """A pin names an entry by id, by id prefix (as `show` accepts) or by its URL."""
    ref = ref.strip()
    if "/" in ref:
        return list(by_url.get(canonical_url(ref) or "", ()))
    i = bisect.bisect_left(ids, ref)
    out = []
    while i < len(ids) and ids[i].startswith(ref):
        out.append(ids[i])
        i += 1
    return out


def resolve_pins(cfg: DedupeConfig, entries: Iterable[Entry]) -> Pins:
    """Turn the configured pairs into entry-id pairs (a ref matching nothing yet pins nothing)."""
    if not cfg.always_merge and not cfg.never_merge:
        return Pins()
    items = list(entries)
    by_url: dict[str, list[str]] = {}
    for e in items:
        if e.canonical_url:
            by_url.setdefault(e.canonical_url, []).append(e.id)
    ids = sorted(e.id for e in items)

    def pairs(conf: Sequence[tuple[str, str]]) -> frozenset[frozenset[str]]:
        out = set()
        for x, y in conf:
            for a in _resolve(x, by_url, ids):
                for b in _resolve(y, by_url, ids):
                    if a != b:
                        out.add(frozenset((a, b)))
        return frozenset(out)

    return Pins(always=pairs(cfg.always_merge), never=pairs(cfg.never_merge))


# -- one pair ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Everything `compare` measured for a pair, and its verdict (`rule` None: not merged)."""

    rule: str | None
    score: float
    reason: str
    containment: float = 0.0  # share of the shorter text's shingles found in the other
    jaccard: float = 0.0
    title: float = 0.0  # title words in common / words of the longer title
    size: int = 0  # distinct shingles of the shorter text
    days_apart: float | None = None
    numbers: float | None = None  # share of the shorter text's numbers found in the other


def _site_root(url: str | None) -> bool:
    # Some feeds link every item to their home page; a shared home page is not a shared article.
    return not url or (url.endswith("/") and url.count("/") <= 3)


def _common(a: np.ndarray[Any, np.dtype[np.uint32]], b: np.ndarray[Any, np.dtype[np.uint32]]) -> int:
    """Size of the intersection of two sorted distinct arrays (binary search: no sort, no concat)."""
    if len(a) > len(b):
        a, b = b, a
    idx = np.searchsorted(b, a)
    idx[idx == len(b)] = 0
    return int(np.count_nonzero(b[idx] == a))


def compare(a: Entry, b: Entry, fa: Features, fb: Features, cfg: DedupeConfig, pins: Pins = Pins()) -> Evidence:
    """Decide whether two entries tell the same news. Pure; explains itself."""
    pair = frozenset((a.id, b.id))
    if pair in pins.never:
        return Evidence(None, 0.0, "pinned as never-merge in feeds.yaml")
    if pair in pins.always:
        return Evidence(ALWAYS, 1.0, "pinned as always-merge in feeds.yaml")
    if a.canonical_url and a.canonical_url == b.canonical_url and not _site_root(a.canonical_url):
        return Evidence(URL, 1.0, f"same canonical URL {a.canonical_url}")
    if a.source == b.source:
        return Evidence(None, 0.0, "same source: only the same id or canonical URL merge")

    na, nb = len(fa.shingles), len(fb.shingles)
    size = min(na, nb)
    inter = _common(fa.shingles, fb.shingles) if size else 0
    containment = inter / size if size else 0.0
    jaccard = inter / (na + nb - inter) if na + nb else 0.0
    longest = max(len(fa.title), len(fb.title))
    title = len(fa.title & fb.title) / longest if longest else 0.0
    days = None
    if a.published and b.published:
        days = abs((a.published - b.published).total_seconds()) / 86400
    small, large = sorted((fa.numbers, fb.numbers), key=len)
    nums = len(small & large) / len(small) if len(small) >= NUMBERS_MIN else None
    base = Evidence(
        None,
        0.0,
        "",
        containment=round(containment, 3),
        jaccard=round(jaccard, 3),
        title=round(title, 3),
        size=size,
        days_apart=None if days is None else round(days, 2),
        numbers=None if nums is None else round(nums, 3),
    )

    def verdict(rule: str | None, score: float, reason: str) -> Evidence:
        return dataclasses.replace(base, rule=rule, score=score, reason=reason)

    if a.content_hash == b.content_hash and (size >= MIN_SHINGLES or fa.title == fb.title):
        return verdict(HASH, 1.0, "same normalised body")
    if days is not None and days > cfg.window_days:
        return verdict(None, 0.0, f"published {days:.0f} days apart (window {cfg.window_days:g})")
    if nums is not None and nums < NUMBERS_AGREE:
        return verdict(None, 0.0, f"numbers disagree ({nums:.0%} of the shorter text's found)")
    if size < MIN_SHINGLES:
        if title >= SHORT_TITLE and containment >= SHORT_TEXT and days is not None:
            return verdict(SHORT, round(min(title, containment), 3), "short text: title, text and dates agree")
        return verdict(None, 0.0, f"text too short ({size} < {MIN_SHINGLES} shingles) to merge on text")
    floor, alone, with_title = next(band for band in BANDS if size >= band[0])
    near_ok = floor > MIN_SHINGLES or title >= SHORT_NEAR_TITLE
    if containment >= alone and near_ok:
        return verdict(NEAR, round(containment, 3), f"{containment:.0%} of the shorter text shared")
    if containment >= with_title and title >= TITLE_SUPPORT:
        score = round((containment + title) / 2, 3)
        return verdict(TEXT_TITLE, score, f"{containment:.0%} of the text and {title:.0%} of the title shared")
    return verdict(None, 0.0, f"not similar enough ({containment:.0%} text, {title:.0%} title)")


# -- clustering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bodies:
    """Texts kept out of memory: the entries whose id is in `lengths` are passed to `cluster`
    without their content_text (a stored corpus is mostly bodies, and clustering reads few of
    them); `load(ids)` returns the texts of such entries when a comparison or a signature needs
    them, `lengths` their sizes for the choice of a story's primary."""

    lengths: Mapping[str, int]
    load: Callable[[Sequence[str]], Mapping[str, str]]


_PREFETCH = 512  # entries whose texts are loaded together


@dataclass
class Clustering:
    """The stories, every entry's link, and what changed (to write back to the store)."""

    stories: list[Story]
    links: dict[str, StoryLink]
    changed: list[StoryLink] = field(default_factory=list)
    signatures: dict[str, Signature] = field(default_factory=dict)  # new or recomputed
    recomputed: bool = False  # True: the settings changed and every entry was re-clustered
    compared: int = 0  # candidate pairs verified (the benchmark reports it)


class _FeatureCache:
    """Features of recently seen entries (a duplicate usually arrives close to its original).

    A new entry is put in prepared (hashed) form; most never meet a candidate, so the exact
    shingle set and the numbers are only worked out when a comparison needs them.
    """

    def __init__(self, size: int = 8192, bodies: Bodies | None = None) -> None:
        self.size = size
        self.bodies = bodies
        self.data: OrderedDict[str, Features | _Prepared] = OrderedDict()

    def put(self, key: str, value: Features | _Prepared) -> None:
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)

    def get(self, e: Entry) -> Features:
        f = self.data.get(e.id)
        if not isinstance(f, Features):
            self.prefetch([e])
            f = self.data[e.id]
        assert isinstance(f, Features)
        return f

    def prefetch(self, entries: Iterable[Entry]) -> None:
        """Work out the features of these entries, loading the texts kept out of memory at once."""
        todo = list({e.id: e for e in entries if not isinstance(self.data.get(e.id), Features)}.values())
        for e in with_texts(todo, self.bodies):
            prepared = self.data.get(e.id)
            self.put(e.id, _features_from(e, prepared if isinstance(prepared, _Prepared) else _prepare(e)))


def with_texts(entries: list[Entry], bodies: Bodies | None) -> list[Entry]:
    """The entries with their content_text, loaded for those passed without it."""
    if bodies is None:
        return entries
    missing = [e.id for e in entries if e.id in bodies.lengths and not e.content_text]
    if not missing:
        return entries
    texts = bodies.load(list(dict.fromkeys(missing)))
    return [dataclasses.replace(e, content_text=texts[e.id]) if e.id in texts else e for e in entries]


class _Bands:
    """MinHash LSH: entries whose values agree on every row of at least one band collide.

    The same bands as datasketch's MinHashLSH(params=(bands, rows)), so the same collisions, but
    keyed by slices of the stored signature bytes: MinHashLSH byte-swaps and copies every band
    of every insert and query through its storage layer, which cost more than the rest of
    clustering. A band key seen once maps to its entry id, later ones to a list (most keys are
    never shared, and a list per key would double the index's memory).
    """

    def __init__(self, bands: int, rows: int, num_perm: int) -> None:
        self.width = 4 * rows  # bytes per band (little-endian uint32 values)
        self.bands = bands
        self.tables: list[dict[bytes, str | list[str]]] = [{} for _ in range(bands)]
        self.empty = b"\xff" * (4 * num_perm)  # no text: every empty set would collide

    def is_empty(self, raw: bytes) -> bool:
        return raw == self.empty

    def insert(self, key: str, raw: bytes) -> None:
        if raw == self.empty:
            return
        w = self.width
        for i, table in enumerate(self.tables):
            _add_key(table, raw[i * w : (i + 1) * w], key)

    def query(self, raw: bytes) -> set[str]:
        out: set[str] = set()
        if raw == self.empty:
            return out
        w = self.width
        for i, table in enumerate(self.tables):
            out.update(_ids(table, raw[i * w : (i + 1) * w]))
        return out


class _Hits:
    """Collisions of each entry of a batch with earlier ones: positions in the batch, grouped by
    entry (CSR: the hits of entry k are `earlier[start[k]:start[k + 1]]`). Two int arrays, not a
    set per entry (those cost 28 MB at 100k entries)."""

    def __init__(self, n: int, later: np.ndarray[Any, Any], earlier: np.ndarray[Any, Any]) -> None:
        key = np.unique(later.astype(np.int64) * n + earlier)  # sorted by entry, then by hit; no repeats
        self.earlier = (key % n).astype(np.int32)
        self.start = np.searchsorted(key // n, np.arange(n + 1))

    def at(self, k: int) -> list[int]:
        a, b = self.start[k], self.start[k + 1]
        return self.earlier[a:b].tolist() if b > a else []


def _inner_hits(table: SignatureRows, rows: np.ndarray[Any, Any]) -> tuple[_Hits, _Hits]:
    """For each entry of a batch (its signature at `rows` of `table`), the earlier ones colliding
    with it in a body band and in a title band: what querying the LSH index before inserting each
    entry in turn would find. Band by band, from a sort of the band values, not a dictionary."""
    n = len(rows)
    out = []
    for values, (bands, width) in ((table.body, LSH_BODY), (table.title, LSH_TITLE)):
        texts = np.empty(n, dtype=bool)  # no text: collides with nothing
        for i in range(0, n, 8192):  # a block of rows at a time: no copy of the batch's rows
            texts[i : i + 8192] = (values[rows[i : i + 8192]] != _NO_TEXT).any(axis=1)
        positions = np.flatnonzero(texts)
        at = rows[positions]
        later, earlier = [], []
        for band in range(bands):
            block = values[at, band * width : (band + 1) * width]
            group = np.unique(block, axis=0, return_inverse=True)[1].ravel()
            order = np.lexsort((positions, group))  # by band value, then by arrival
            group, pos = group[order], positions[order]
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            sizes = np.diff(np.r_[starts, len(group)])
            # the k-th member of a group (in arrival order) collides with the k before it
            rank = np.arange(len(group)) - np.repeat(starts, sizes)
            first = np.repeat(np.repeat(starts, sizes), rank)
            offset = np.arange(len(first)) - np.repeat(np.cumsum(rank) - rank, rank)
            later.append(np.repeat(pos, rank))
            earlier.append(pos[first + offset])
        out.append(_Hits(n, np.concatenate(later), np.concatenate(earlier)))
    return out[0], out[1]


def _bands_body() -> _Bands:
    return _Bands(*LSH_BODY, _shingle.BODY_PERM)


def _bands_title() -> _Bands:
    return _Bands(*LSH_TITLE, _shingle.TITLE_PERM)


K = TypeVar("K", str, bytes)  # index keys: URLs and hashes (str), LSH band values (bytes)


def _add_key(index: dict[K, str | list[str]], key: K, entry_id: str) -> None:
    """Index an entry under a key: the id itself while the key is its alone, a list once shared
    (most keys are never shared: a list each cost 10 MB at 100k entries)."""
    old = index.get(key)
    if old is None:
        index[key] = entry_id
    elif isinstance(old, str):
        index[key] = [old, entry_id]
    else:
        old.append(entry_id)


def _ids(index: Mapping[K, str | list[str]], key: K) -> Sequence[str]:
    hit = index.get(key)
    return () if hit is None else (hit,) if isinstance(hit, str) else hit


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root


def cluster(
    entries: Iterable[Entry],
    cfg: DedupeConfig,
    *,
    links: Mapping[str, StoryLink] | None = None,
    signatures: Mapping[str, Signature] | None = None,
    state: str | None = None,
    bodies: Bodies | None = None,
) -> Clustering:
    """Assign every entry to a story, keeping stored assignments.

    `links` and `signatures` come from the store; `state` is the `fingerprint` the stored links
    were made with (a different one, or None with links present, means re-cluster everything).
    `bodies`: where the texts of entries passed without them come from; the stories then hold
    those entries as passed. `signatures` given as `SignatureRows` is the run's working table:
    filled with the signatures computed (also returned in `Clustering.signatures`), then cleared
    before the stories are built, so its memory is not held at their peak.
    """
    with _paused_gc():
        return _cluster(entries, cfg, links or {}, signatures or {}, state, bodies)


@contextmanager
def _paused_gc() -> Iterator[None]:
    # Clustering makes millions of small acyclic objects; the collections they trigger rescan every
    # entry held in memory, which cost 10% at 30k entries. Nothing here forms cycles.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _cluster(
    entries: Iterable[Entry],
    cfg: DedupeConfig,
    links: Mapping[str, StoryLink],
    signatures: Mapping[str, Signature],
    state: str | None,
    bodies: Bodies | None,
) -> Clustering:
    items = sorted(entries, key=founder_key)
    by_id = {e.id: e for e in items}
    fp = fingerprint(cfg)
    recompute = bool(links) and state != fp
    known = {} if recompute else {k: v for k, v in links.items() if k in by_id and v.story_id in by_id}
    # A stored member whose story founder vanished would dangle: it is re-clustered instead.
    pins = resolve_pins(cfg, items)
    run = _Run(cfg, pins, by_id, signatures, bodies)
    for e in items:
        if e.id in known:
            run.adopt(e, known[e.id].story_id)
    pending = [e for e in items if e.id not in known]
    batches = [list(b) for _, b in groupby(pending, key=lambda e: e.first_seen or _EPOCH)]
    if pending:
        run.index_pool(min(founder_key(e)[0] for e in pending), reverse=len(batches) <= REVERSE_BATCHES)
    computed = done = 0  # pending entries whose signatures exist / that are clustered
    for i, batch in enumerate(batches):
        if done + len(batch) > computed and len(batch) < _PREFETCH:
            # Re-clustering is thousands of small batches: hash the next entries as one block
            # (numpy MinHash over a block costs a fraction per entry of one entry at a time).
            computed = done + max(_PREFETCH, len(batch))
            run.signatures_ahead(pending[done:computed])
        run.add_batch(batch, last=i == len(batches) - 1)
        done += len(batch)
    del batches, pending
    new_signatures, compared = run.new_signatures, run.compared
    all_links = known
    all_links.update(run.new_links)
    del run, known  # the indexes and cached features: not needed for the stories, which peak next
    changed = [all_links[e.id] for e in items if all_links[e.id] != links.get(e.id)]
    pkey = primary_key(cfg.priority, bodies.lengths if bodies else None)
    groups: dict[str, list[Entry]] = {}
    for e in items:
        groups.setdefault(all_links[e.id].story_id, []).append(e)
    stories = []
    for sid, members in groups.items():
        ordered = sorted(members, key=pkey)
        stories.append(Story(id=sid, primary=ordered[0], others=tuple(ordered[1:])))
    stories.sort(key=story_sort_key, reverse=True)
    return Clustering(stories, all_links, changed, new_signatures, recompute, compared)


class _Run:
    """The state of one clustering pass: indexes over processed entries and their stories."""

    def __init__(
        self,
        cfg: DedupeConfig,
        pins: Pins,
        by_id: dict[str, Entry],
        sigs: Mapping[str, Signature],
        bodies: Bodies | None = None,
    ):
        self.cfg, self.pins, self.by_id, self.bodies = cfg, pins, by_id, bodies
        # every signature the run uses, stored or computed; a caller's table is filled in place
        self.rows = sigs if isinstance(sigs, SignatureRows) else SignatureRows.of(sigs, by_id if sigs else ())
        self.lookback = timedelta(days=cfg.lookback_days)
        self.story_of: dict[str, str] = {}
        self.pinned_members: dict[str, set[str]] = {}  # story -> members with never-merge pins
        self.never_ids = pins.never_ids
        self.always = pins.always_ids
        self.by_url: dict[str, str | list[str]] = {}  # see _add_key
        self.by_hash: dict[str, str | list[str]] = {}
        self.body, self.title = _bands_body(), _bands_title()
        self.processed: list[Entry] = []
        self.cache = _FeatureCache(bodies=bodies)
        self.new_links: dict[str, StoryLink] = {}
        self.new_signatures: dict[str, Signature] = {}
        self.pool: list[tuple[Entry, int]] = []  # stored entries (and rows) to query with (reverse mode)
        self.compared = 0

    # -- indexes ---------------------------------------------------------------------------
    def adopt(self, e: Entry, story_id: str) -> None:
        """An entry already assigned in an earlier run: index its keys, keep its story."""
        self.story_of[e.id] = story_id
        if e.id in self.never_ids:
            self.pinned_members.setdefault(story_id, set()).add(e.id)
        self._index_keys(e)
        self.processed.append(e)

    def _index_keys(self, e: Entry) -> None:
        if e.canonical_url:
            _add_key(self.by_url, e.canonical_url, e.id)
        _add_key(self.by_hash, e.content_hash, e.id)

    def _signatures(self, entries: list[Entry]) -> np.ndarray[Any, np.dtype[np.intp]]:
        """The rows of the entries' signatures: stored ones where still valid, the others computed
        (texts loaded in chunks) and put in the table."""
        rows = np.empty(len(entries), dtype=np.intp)
        stale: list[int] = []
        for k, e in enumerate(entries):
            i = self.rows.valid(e)
            if i is None:
                stale.append(k)
            else:
                rows[k] = i
        for start in range(0, len(stale), _PREFETCH):
            ks = stale[start : start + _PREFETCH]
            chunk = with_texts([entries[k] for k in ks], self.bodies)
            prepared = [_prepare(e) for e in chunk]
            for k, e, p, sig in zip(ks, chunk, prepared, _signatures_from(chunk, prepared), strict=True):
                rows[k] = self.rows.put(e.id, sig)
                self.new_signatures[e.id] = sig
                self.cache.put(e.id, p)
        return rows

    def signatures_ahead(self, entries: list[Entry]) -> None:
        """Compute, as one block, the signatures that `add_batch` will need for these entries."""
        self._signatures(entries)

    def _lsh_insert(self, e: Entry, row: int) -> None:
        self.body.insert(e.id, self.rows.body_bytes(row))
        self.title.insert(e.id, self.rows.title_bytes(row))

    def _plausible(self, row: int, other: int) -> bool:
        """MinHash estimates, before the exact check: LSH also returns pairs that merely share a few
        frequent phrases. A copy shares either much of its text or most of its title words."""
        t = self.rows
        if np.count_nonzero(t.body[row] == t.body[other]) >= PLAUSIBLE_BODY * _shingle.BODY_PERM:
            return True
        return bool(np.count_nonzero(t.title[row] == t.title[other]) >= PLAUSIBLE_TITLE * _shingle.TITLE_PERM)

    def index_pool(self, since: datetime, *, reverse: bool) -> None:
        """Make already-assigned entries seen within the lookback window findable.

        `reverse` (a refresh: one or a few new batches): keep them aside and, per batch, index the
        batch and query it with each of them (see `_pool_hits`). Otherwise insert them all.
        """
        horizon = _before(since, self.lookback)
        recent = [e for e in self.processed if (e.first_seen or _EPOCH) >= horizon]
        for e, row in zip(recent, self._signatures(recent).tolist(), strict=True):
            if reverse:
                self.pool.append((e, row))
            else:
                self._lsh_insert(e, row)

    def _pool_hits(
        self, batch: list[Entry], rows: np.ndarray[Any, np.dtype[np.intp]], horizon: datetime
    ) -> dict[str, tuple[list[str], list[str]]]:
        """Pool entries colliding with each batch entry, (body hits, title hits).

        LSH collisions are symmetric, so querying a small index of the batch with every pool entry
        finds exactly what querying a big index of the pool with every batch entry would; a query
        into a near-empty index costs a fraction of an insert into a big one.
        """
        body, title = _bands_body(), _bands_title()
        hits: dict[str, tuple[list[str], list[str]]] = {}
        for e, row in zip(batch, rows.tolist(), strict=True):
            hits[e.id] = ([], [])
            body.insert(e.id, self.rows.body_bytes(row))
            title.insert(e.id, self.rows.title_bytes(row))
        for p, row in self.pool:
            if (p.first_seen or _EPOCH) < horizon:
                continue
            for i, (lsh, raw) in enumerate(((body, self.rows.body_bytes(row)), (title, self.rows.title_bytes(row)))):
                for k in lsh.query(raw):
                    hits[k][i].append(p.id)
        return hits

    # -- one batch (the entries first seen at one moment) ----------------------------------
    def _candidates(
        self,
        e: Entry,
        row: int,
        horizon: datetime,
        pool_hits: tuple[list[str], list[str]] = ([], []),
    ) -> set[str]:
        """Exact-key, pinned and plausible LSH candidates. LSH hits first seen before `horizon` (out
        of the lookback window) are dropped here: cheaper than removing them from the index."""
        cands: set[str] = set()
        raws = (self.rows.body_bytes(row), self.rows.title_bytes(row))
        for lsh, raw, extra in zip((self.body, self.title), raws, pool_hits, strict=True):
            if lsh.is_empty(raw):
                continue
            found = [k for k in lsh.query(raw) if founder_key(self.by_id[k])[0] >= horizon] + extra
            if len(found) > MAX_CANDIDATES:  # keep the most recent: they are the likely copies
                found = sorted(found, key=lambda k: founder_key(self.by_id[k]), reverse=True)[:MAX_CANDIDATES]
            cands.update(found)
        cands = {k for k in cands if self._plausible(row, self.rows.row[k])}
        if e.canonical_url:
            cands.update(_ids(self.by_url, e.canonical_url))
        cands.update(_ids(self.by_hash, e.content_hash))
        cands.update(self.always.get(e.id, ()))
        cands.discard(e.id)
        return cands

    def add_batch(self, batch: list[Entry], *, last: bool = True) -> None:
        horizon = _before(batch[0].first_seen or _EPOCH, self.lookback)
        seen: set[str] = set()  # batch members already indexed
        rows = self._signatures(batch)  # an array: a list of ints cost 4 MB more at 100k entries
        pool_hits = self._pool_hits(batch, rows, horizon) if self.pool else {}
        big = len(batch) >= BIG_BATCH
        inner = _inner_hits(self.rows, rows) if big else None
        pairs: list[tuple[Entry, Entry]] = []  # candidates are found first, so texts load together
        for k, e in enumerate(batch):
            row = int(rows[k])
            body, title = pool_hits.get(e.id, ([], []))
            if inner is not None:
                body = body + [batch[j].id for j in inner[0].at(k)]
                title = title + [batch[j].id for j in inner[1].at(k)]
            for c in sorted(self._candidates(e, row, horizon, (body, title))):
                if c in self.story_of or c in seen:  # else later in this batch: judged when c arrives
                    pairs.append((e, self.by_id[c]))
            self._index_keys(e)
            if not big:
                self._lsh_insert(e, row)
            seen.add(e.id)
        del inner, seen
        if big and not last:
            for e, row in zip(batch, rows.tolist(), strict=True):
                self._lsh_insert(e, row)
        del rows
        if last:  # nothing reads a signature any more
            self.rows.clear()
        edges: list[tuple[int, float, str, str, Evidence]] = []
        for i in range(0, len(pairs), _PREFETCH):
            chunk = pairs[i : i + _PREFETCH]
            self.cache.prefetch(x for pair in chunk for x in pair)
            for e, other in chunk:
                ev = compare(e, other, self.cache.get(e), self.cache.get(other), self.cfg, self.pins)
                self.compared += 1
                if ev.rule:
                    edges.append((_RANK[ev.rule], -ev.score, e.id, other.id, ev))
        del pairs
        if last:  # the cached features are not needed any more: free them before _join's peak
            self.cache = _FeatureCache(bodies=self.bodies)
        self._join(batch, edges)

    def _join(self, batch: list[Entry], edges: list[tuple[int, float, str, str, Evidence]]) -> None:
        """Kruskal over the batch's matches, strongest first, under two constraints: a component
        holds at most one existing story (published ids never merge) and no never-merge pair."""
        uf = _UnionFind()

        def node(x: str) -> str:
            return x if x not in self.story_of else "story:" + self.story_of[x]

        story: dict[str, str] = {}  # component root -> existing story id
        # component root -> its members with never-merge pins; only non-empty sets (a set per
        # entry of a first refresh's 100k-entry batch held 20 MB)
        pinned: dict[str, set[str]] = {e.id: {e.id} for e in batch if e.id in self.never_ids}
        edges.sort(key=lambda t: t[:4])
        for _rank, _score, a, b, _ev in edges:
            na, nb = node(a), node(b)
            for n in (na, nb):
                if n.startswith("story:") and n not in story:
                    story[n] = n[6:]
                    if n[6:] in self.pinned_members:
                        pinned[n] = set(self.pinned_members[n[6:]])
            ra, rb = uf.find(na), uf.find(nb)
            if ra == rb or (ra in story and rb in story):
                continue
            if any(frozenset((x, y)) in self.pins.never for x in pinned.get(ra, ()) for y in pinned.get(rb, ())):
                continue
            keep, drop = (ra, rb) if (ra in story or rb not in story) else (rb, ra)
            uf.parent[drop] = keep
            if drop in pinned:
                pinned.setdefault(keep, set()).update(pinned.pop(drop))
            if drop in story:
                story[keep] = story.pop(drop)
        founder: dict[str, str] = {}  # root -> its first member: the batch is in founder_key order
        for e in batch:
            root = uf.find(e.id) if e.id in uf.parent else e.id  # most joined nothing: no node each
            sid = story.get(root) or (founder.setdefault(root, e.id) if root in uf.parent else root)
            self.story_of[e.id] = sid
            if e.id in self.never_ids:
                self.pinned_members.setdefault(sid, set()).add(e.id)
        matched = {x for edge in edges for x in edge[2:4]}
        batch_ids = {e.id for e in batch if e.id in matched}  # those in an edge: not a set of all
        best: dict[str, tuple[int, float, str, Evidence]] = {}
        for rank, score, a, b, ev in edges:  # sorted strongest first
            if self.story_of[a] == self.story_of[b]:
                for x, y in ((a, b), (b, a)):
                    if x in batch_ids:
                        best.setdefault(x, (rank, score, y, ev))
        for e in batch:
            sid = self.story_of[e.id]
            if e.id == sid or e.id not in best:
                self.new_links[e.id] = StoryLink(e.id, sid, FOUNDER, 1.0, None)
            else:
                _r, _s, other, ev = best[e.id]
                self.new_links[e.id] = StoryLink(e.id, sid, ev.rule or "", ev.score, other)
        self.processed.extend(batch)


DEDUPE_STATE_KEY = "fingerprint"


@dataclass(frozen=True)
class MemberWhy:
    """One member of a story: its stored link, and the evidence recomputed against its match."""

    entry: Entry
    link: StoryLink
    evidence: Evidence | None  # None for the founder (it joined nothing)


def explain_story(
    story_id: str, entries: Mapping[str, Entry], links: Mapping[str, StoryLink], cfg: DedupeConfig
) -> list[MemberWhy]:
    """The members of a story in arrival order, with the stored rule/score and today's evidence."""
    members = sorted((entries[k] for k, v in links.items() if v.story_id == story_id and k in entries), key=founder_key)
    pins = resolve_pins(cfg, entries.values())
    out = []
    for e in members:
        link = links[e.id]
        other = entries.get(link.matched_with or "")
        ev = compare(e, other, features(e), features(other), cfg, pins) if other else None
        out.append(MemberWhy(e, link, ev))
    return out


def signature_horizon(
    entries: Sequence[Entry], links: Mapping[str, StoryLink], state: str | None, cfg: DedupeConfig
) -> tuple[bool, datetime | None]:
    """Which stored signatures `cluster` will need: (any at all, of entries first seen since).

    Nothing when every entry already has its story; all when everything is re-clustered.
    """
    if links and state != fingerprint(cfg):
        return True, None
    pending = [e.first_seen or _EPOCH for e in entries if e.id not in links]
    if not pending:
        return False, None
    oldest = min(pending)
    return True, (None if oldest == _EPOCH else _before(oldest, timedelta(days=cfg.lookback_days)))


def build_stories(
    entries: Iterable[Entry], priority: Sequence[str] = (), cfg: DedupeConfig | None = None
) -> tuple[list[Story], list[StoryLink]]:
    """Cluster from scratch (no stored state): the stories, newest first, and every entry's link."""
    from .config import DedupeConfig

    conf = cfg or DedupeConfig(priority=tuple(priority))
    result = cluster(entries, conf)
    return result.stories, list(result.links.values())
