"""Frozen records that flow between pipeline stages.

Every datetime here is timezone-aware UTC; the stages convert at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DatePrecision(StrEnum):
    """How much of a published date the source actually gave us."""

    MINUTE = "minute"  # date and clock time
    DAY = "day"  # a calendar date, no time
    INFERRED_YEAR = "inferred-year"  # month/day in the page, year from other evidence
    NONE = "none"  # no date: published stays unknown


@dataclass(frozen=True)
class FeedMeta:
    """The original feed an item came from (for atom:source)."""

    id: str | None = None
    title: str | None = None
    link: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class Fetched:
    """Raw bytes of one source document, from HTTP or the local disk."""

    source: str  # source name from feeds.yaml
    location: str  # URL, or path relative to the config directory
    content: bytes | None  # None for a 304 Not Modified
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    kind: str = "feed"  # "feed" | "article-text" | "article-html"
    redirects: tuple[tuple[int, str], ...] = ()  # (status, target) per redirect hop, in order


@dataclass(frozen=True)
class RawItem:
    """One item as a parser saw it, before normalisation."""

    source: str
    guid: str | None
    link: str | None
    title: str | None
    content_html: str | None = None  # sanitized HTML body, if the source has markup
    content_base: str | None = None  # what relative URLs in content_html resolve against (xml:base aware)
    content_text: str | None = None  # plain-text body (paragraphs split by blank lines)
    summary: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    date_precision: DatePrecision = DatePrecision.NONE
    date_provenance: str | None = None  # where the date was found, for `show`
    authors: tuple[str, ...] = ()
    site_name: str | None = None
    site_domain: str | None = None
    language: str | None = None
    location: str | None = None  # feed URL or local path the item came from
    feed: FeedMeta = field(default_factory=FeedMeta)


@dataclass(frozen=True)
class Entry:
    """One normalised item. `id` is stable across runs and machines."""

    id: str
    source: str
    title: str
    link: str | None
    canonical_url: str | None
    content_html: str
    content_text: str
    summary: str
    content_hash: str
    published: datetime | None
    updated: datetime | None
    date_precision: DatePrecision = DatePrecision.NONE
    date_provenance: str | None = None
    authors: tuple[str, ...] = ()
    site_name: str | None = None
    site_domain: str | None = None
    language: str | None = None
    location: str | None = None
    feed: FeedMeta = field(default_factory=FeedMeta)
    topics: tuple[str, ...] = ()
    first_seen: datetime | None = None  # set by the store


@dataclass(frozen=True, slots=True)  # slots: a first refresh of 100k entries makes ~85k
class Story:
    """A cluster of entries reporting the same news; published as one item."""

    id: str
    primary: Entry
    others: tuple[Entry, ...] = ()

    @property
    def members(self) -> tuple[Entry, ...]:
        return (self.primary, *self.others)

    @property
    def topics(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for e in self.members:
            for t in e.topics:
                seen[t] = None
        return tuple(sorted(seen))

    @property
    def first_seen(self) -> datetime | None:
        times = [e.first_seen for e in self.members if e.first_seen]
        return min(times) if times else None


@dataclass(frozen=True)
class SourceResult:
    """What one source did in one refresh run."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: bool = False
    error: str | None = None
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # per-file skip reasons for local sources
    not_modified: bool = False
    # Remote health: failure counts and whether it has lasted long enough to warn about.
    consecutive_failures: int = 0
    lasting: bool = False  # failed warn_after_failures runs in a row, or disabled
    deferred_until: datetime | None = None  # not fetched: backing off / Retry-After / max-age
    moved_to: str | None = None  # permanent redirect target: update feeds.yaml


@dataclass(frozen=True)
class RunReport:
    results: tuple[SourceResult, ...]
    outputs: tuple[str, ...] = ()

    @property
    def failed(self) -> tuple[SourceResult, ...]:
        return tuple(r for r in self.results if r.failed)


@dataclass(frozen=True)
class Digest:
    subject: str
    html: str
    text: str
    item_count: int = 0
