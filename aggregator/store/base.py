"""Store interface. SQLite implements it; PostgreSQL can follow behind the same protocol."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from ..types import Entry

UpsertResult = Literal["new", "updated", "unchanged"]


@dataclass(frozen=True)
class SourceState:
    """Per-source fetch state and health."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_attempt: datetime | None = None  # backoff / Retry-After / max-age
    disabled: bool = False  # e.g. after 410 Gone
    redirected_to: str | None = None  # permanent redirect target, reported to the user
    entry_count: int = 0


@dataclass(frozen=True, slots=True)  # slots: one per stored entry
class StoryLink:
    """Why an entry belongs to a story: the rule that fired and its score."""

    entry_id: str
    story_id: str
    rule: str  # "founder", "canonical-url", "content-hash", "minhash", "always-merge", ...
    score: float = 1.0
    matched_with: str | None = None


class Store(Protocol):
    def upsert_entries(self, entries: Iterable[Entry], now: datetime) -> list[tuple[Entry, UpsertResult]]: ...
    def get_entry(self, entry_id: str) -> Entry | None: ...
    def iter_entries(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[Entry]: ...
    def count_entries(self) -> int: ...
    def change_marker(self) -> str: ...
    def get_source_state(self, name: str) -> SourceState: ...
    def put_source_state(self, state: SourceState) -> None: ...
    def all_source_states(self) -> list[SourceState]: ...
    def story_links(self) -> dict[str, StoryLink]: ...
    def put_story_links(self, links: Iterable[StoryLink]) -> None: ...
    def dedupe_signatures(self, *, since: datetime | None = None) -> dict[str, tuple[str, bytes, bytes]]: ...
    def put_dedupe_signatures(self, rows: Mapping[str, tuple[str, bytes, bytes]]) -> None: ...
    def get_dedupe_state(self, key: str) -> str | None: ...
    def set_dedupe_state(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...
