"""Fetched bytes -> what the store writes: parse, normalise, tag, encode (and hash for clustering).

The work of the parse workers (`_parallel.DocPool`), kept apart from the pipeline so that the
forkserver and every worker import only these stages: not the fetcher, publisher, mailer and
their libraries (httpx, Jinja2, feedgen...), which a worker never uses. Nor the config: workers
are handed `ParseConfig` and `ParseSource`, what parsing reads of it as plain data, so that
neither they nor the forkserver import pydantic and yaml (~11 MB RSS) to unpickle it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .dedupe import compute_signatures
from .errors import ParseError
from .normalize import normalize
from .parse import parse_document
from .store._codec import Encoded, encode
from .topics import Rule, assign_topics
from .types import Entry, Fetched

if TYPE_CHECKING:
    from .config import Config, SourceConfig

# entry id -> (basis, body, title): what the store keeps of a dedupe signature
SignatureRows = dict[str, tuple[str, bytes, bytes]]
Parsed = tuple[list[Encoded], list[str], list[str], SignatureRows]


@dataclass(frozen=True)
class PlainRule:
    """A `config.TopicRule` as plain data (what `topics` reads of it)."""

    terms: Mapping[str, float]
    regexes: Mapping[str, float]
    exclude: Mapping[str, float | str]
    require: Mapping[str, tuple[str, ...]]
    title_weight: float
    min_score: float

    @classmethod
    def of(cls, rule: Rule) -> PlainRule:
        return cls(
            dict(rule.terms),
            dict(rule.regexes),
            dict(rule.exclude),
            dict(rule.require),
            rule.title_weight,
            rule.min_score,
        )


@dataclass(frozen=True)
class ParseConfig:
    """What parsing reads of the `Config`.

    In this process it holds the config's own topic rules (compiled once per rule object and
    cached by `topics`, for as long as the config lives); pickled for a worker, plain copies.
    """

    timezone: str
    topics: Mapping[str, Rule]

    @classmethod
    def of(cls, config: Config) -> ParseConfig:
        return cls(config.timezone, config.topics)

    def __reduce__(self) -> tuple[Any, ...]:
        return ParseConfig, (self.timezone, {k: PlainRule.of(r) for k, r in self.topics.items()})


@dataclass(frozen=True)
class ParseSource:
    """What parsing reads of a `SourceConfig`."""

    timezone: str | None
    site_name: str | None
    boilerplate: tuple[str, ...]

    @classmethod
    def of(cls, source: SourceConfig) -> ParseSource:
        return cls(source.timezone, source.site_name, source.boilerplate)


def entries_from_docs(
    config: Config | ParseConfig, source: SourceConfig | ParseSource, docs: Sequence[Fetched], now: datetime
) -> tuple[list[Entry], list[str], list[str]]:
    """Parse and normalise documents. Returns entries, warnings and per-document skip reasons."""
    tz = ZoneInfo(source.timezone or config.timezone)
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    skipped: list[str] = []
    for doc in docs:
        try:
            items, warns = parse_document(
                doc, tz=tz, fetched_at=now, site_name=source.site_name, extra_boilerplate=source.boilerplate
            )
        except ParseError as exc:
            skipped.append(f"{doc.location}: {exc}")
            continue
        warnings.extend(warns)
        for item in items:
            entry = normalize(item, fetched_at=now)
            entry = dataclasses.replace(entry, topics=assign_topics(entry, config.topics))
            entries[entry.id] = entry  # the same id twice in one source: the last copy wins
    return list(entries.values()), warnings, skipped


def parse_fetched(
    config: Config | ParseConfig,
    source: SourceConfig | ParseSource,
    doc: Fetched,
    now: datetime,
    signatures: bool = False,
) -> Parsed:
    """Parse, normalise, tag and encode one fetched document (in a worker process when a refresh is big).

    Returns the entries encoded for the store (`Encoded`: a payload string pickles back from a
    worker for a fraction of what an Entry costs), warnings and skip reasons. `signatures`: also
    compute the entries' dedupe signatures (for a source fetched for the first time, whose entries
    are all new), so clustering after the fetches need not hash them.
    """
    entries, warnings, skipped = entries_from_docs(config, source, [doc], now)
    sigs: SignatureRows = {}
    if signatures:  # hashed together: one numpy pass for the feed's entries
        sigs = {k: (s.basis, s.body, s.title) for k, s in compute_signatures(entries).items()}
    return [encode(e) for e in entries], warnings, skipped, sigs
