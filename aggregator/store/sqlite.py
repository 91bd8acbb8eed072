"""SQLite store: entries, per-source state, story membership, the digest ledger.

WAL mode so a reader (serve, digest) never blocks the refresh writer; every write is one
transaction, so a killed process leaves either the old or the new state, never half.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..types import Entry
from ._codec import Encoded, encode, entry_from_json, keep_source_updated
from .base import SourceState, StoryLink, UpsertResult

# Append-only: each script moves the schema one version forward (PRAGMA user_version).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE entries (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        payload TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        canonical_url TEXT,
        first_seen TEXT NOT NULL,
        last_changed TEXT NOT NULL
    );
    CREATE INDEX entries_first_seen ON entries(first_seen);
    CREATE INDEX entries_hash ON entries(content_hash);
    CREATE INDEX entries_url ON entries(canonical_url);
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        last_attempt TEXT,
        last_success TEXT,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        redirected_to TEXT
    );
    CREATE TABLE story_links (
        entry_id TEXT PRIMARY KEY,
        story_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        score REAL NOT NULL,
        matched_with TEXT
    );
    CREATE INDEX story_links_story ON story_links(story_id);
    CREATE TABLE digest_ledger (
        subscription TEXT NOT NULL,
        period_start TEXT NOT NULL,
        period_end TEXT NOT NULL,
        recipient TEXT NOT NULL,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,          -- pending | sent | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt TEXT,
        message BLOB,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (subscription, period_start, recipient)
    );
    """,
    # Dedupe: MinHash signatures (so a refresh hashes only new or changed entries) and the
    # fingerprint of the settings the story links were made with.
    """
    CREATE TABLE dedupe_signatures (
        entry_id TEXT PRIMARY KEY,
        basis TEXT NOT NULL,
        body BLOB NOT NULL,
        title BLOB NOT NULL
    );
    CREATE TABLE dedupe_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # Per-source entry counts are read for every source on every refresh: without this index each
    # count scans the whole table (2,000 sources x 100k entries).
    """
    CREATE INDEX IF NOT EXISTS entries_source ON entries(source);
    """,
    # A counter bumped by every write to entries or story_links (see change_marker).
    """
    CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO store_meta(key, value) VALUES ('generation', 0);
    """,
    # Nothing looks entries up by content hash or canonical URL (clustering compares them in
    # memory), and each index cost about a fifth of an insert's time on a first refresh.
    """
    DROP INDEX IF EXISTS entries_hash;
    DROP INDEX IF EXISTS entries_url;
    """,
]

# For a new database only (an existing one keeps its page size). Entry payloads are 5-10 KB of
# JSON: with 4 KB pages each spills into a chain of overflow pages; 8 KB pages store them with a
# third less work per insert and cost a few percent more file.
PAGE_SIZE = 8192

# States written with put_source_state(soon=True) are held back and written together, this many
# at a time: an unchanged re-poll records 304 after 304, and a transaction each cost more than
# the write. A killed run loses at most one group's bookkeeping (those feeds are polled again).
STATE_GROUP = 16

_STATE_COLUMNS = (
    "name, etag, last_modified, last_attempt, last_success, last_error, consecutive_failures,"
    " next_attempt, disabled, redirected_to"
)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _seen(entry: Entry, first_seen: datetime | None) -> Entry:
    """`entry` with the store's first_seen: a shallow copy, not dataclasses.replace (which runs
    __init__ over all 21 fields and cost as much as the SQL per stored entry)."""
    copy = object.__new__(Entry)
    object.__setattr__(copy, "__dict__", {**entry.__dict__, "first_seen": first_seen})
    return copy


class SQLiteStore:
    """The embedded default store. One file; safe against a killed process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held: list[SourceState] = []  # see put_source_state(soon=True)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before WAL mode fixes it
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for stmt in script.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={i}")

    def transaction(self) -> _Tx:
        if self._held:  # held states first: writes land in the order they were made
            self.flush_source_states()
        return _Tx(self.db)

    def close(self) -> None:
        try:
            self.flush_source_states()
        finally:
            self.db.close()

    # -- entries ----------------------------------------------------------------------------
    def upsert_entries(self, entries: Iterable[Entry], now: datetime) -> list[tuple[Entry, UpsertResult]]:
        """Insert new entries, update changed ones (same id), keep first_seen. One transaction.

        Returns each entry as stored (with its first_seen) and what happened to it.
        """
        items = list(entries)
        rows = [encode(e) for e in items]
        out: list[tuple[Entry, UpsertResult]] = []
        for e, row, (status, first_seen, payload) in zip(items, rows, self._upsert(rows, now), strict=True):
            if payload != row.payload:  # the stored feed `updated` was kept
                kept = _dt((json.loads(payload).get("feed") or {}).get("updated"))
                e = dataclasses.replace(e, feed=dataclasses.replace(e.feed, updated=kept))
            out.append((_seen(e, _dt(first_seen)), status))
        return out

    def upsert_encoded(self, rows: Iterable[Encoded], now: datetime) -> list[UpsertResult]:
        """`upsert_entries` for entries already encoded (by the parse workers)."""
        return [status for status, _, _ in self._upsert(list(rows), now)]

    def _upsert(self, rows: list[Encoded], now: datetime) -> list[tuple[UpsertResult, str, str]]:
        """(status, first_seen, payload written or kept) per row.

        Batched (one SELECT per 500 ids, executemany for the writes): a feed's 50 entries cost
        three statements, not a hundred round trips.
        """
        stamp = now.isoformat()
        out: list[tuple[UpsertResult, str, str]] = []
        inserts: list[tuple[str, str, str, str, str | None, str, str]] = []
        updates: list[tuple[str, str, str | None, str, str]] = []
        with self.transaction():
            stored: dict[str, tuple[str, str]] = {}
            ids = list(dict.fromkeys(r.id for r in rows))
            for chunk in _chunks(ids):
                sql = f"SELECT id, payload, first_seen FROM entries WHERE id IN ({_marks(chunk)})"
                stored.update((r[0], (r[1], r[2])) for r in self.db.execute(sql, chunk))
            for r in rows:
                before = stored.get(r.id)
                payload = r.payload
                if before is not None and r.dated_feed:
                    payload = keep_source_updated(payload, before[0])
                first_seen = before[1] if before else stamp
                stored[r.id] = (payload, first_seen)  # the same id again compares to this copy
                if before is None:
                    inserts.append((r.id, r.source, payload, r.content_hash, r.canonical_url, stamp, stamp))
                    out.append(("new", first_seen, payload))
                elif before[0] == payload:
                    out.append(("unchanged", first_seen, payload))
                else:
                    updates.append((payload, r.content_hash, r.canonical_url, stamp, r.id))
                    out.append(("updated", first_seen, payload))
            self.db.executemany(
                "INSERT INTO entries(id, source, payload, content_hash, canonical_url, first_seen, last_changed)"
                " VALUES (?,?,?,?,?,?,?)",
                inserts,
            )
            self.db.executemany(
                "UPDATE entries SET payload=?, content_hash=?, canonical_url=?, last_changed=? WHERE id=?", updates
            )
            if inserts or updates:
                self._bump_generation()
        return out

    def _bump_generation(self) -> None:
        self.db.execute("UPDATE store_meta SET value = value + 1 WHERE key = 'generation'")

    def get_entry(self, entry_id: str) -> Entry | None:
        row = self.db.execute("SELECT payload, first_seen FROM entries WHERE id=?", (entry_id,)).fetchone()
        return entry_from_json(row[0], row[1]) if row else None

    def find_entries(self, prefix: str) -> list[Entry]:
        """Entries whose id starts with `prefix` (users type short ids)."""
        rows = self.db.execute(
            "SELECT payload, first_seen FROM entries WHERE id >= ? AND id < ? ORDER BY id", (prefix, prefix + "\uffff")
        ).fetchall()
        return [entry_from_json(p, f) for p, f in rows]

    def iter_entries(self, *, since: datetime | None = None, until: datetime | None = None) -> Iterator[Entry]:
        """Entries by first-seen time, oldest first (ties by id, for determinism)."""
        sql, args = "SELECT payload, first_seen FROM entries WHERE 1=1", []
        if since:
            sql += " AND first_seen >= ?"
            args.append(since.isoformat())
        if until:
            sql += " AND first_seen < ?"
            args.append(until.isoformat())
        for payload, first_seen in self.db.execute(sql + " ORDER BY first_seen, id", args):
            yield entry_from_json(payload, first_seen)

    def count_entries(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def change_marker(self) -> str:
        """A string that changes whenever an entry or a story link is added, changed or removed.

        The write counter covers inserts and updates (whatever the clock says), the counts cover
        deletions; all three are index or single-row reads, so this stays cheap at 100k entries.
        """
        generation = self.db.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
        entries = self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        links = self.db.execute("SELECT COUNT(*) FROM story_links").fetchone()[0]
        return f"{generation[0] if generation else 0}|{entries}|{links}"

    # -- sources ----------------------------------------------------------------------------
    def get_source_state(self, name: str) -> SourceState:
        return self.get_source_states([name])[name]

    def get_source_states(self, names: Iterable[str]) -> dict[str, SourceState]:
        """Each named source's state (a default one for a source never seen), in a few queries."""
        self.flush_source_states()
        wanted = list(dict.fromkeys(names))
        rows: dict[str, tuple[Any, ...]] = {}
        counts: dict[str, int] = {}
        for chunk in _chunks(wanted):
            marks = _marks(chunk)
            sql = f"SELECT {_STATE_COLUMNS} FROM sources WHERE name IN ({marks})"
            rows.update((r[0], r) for r in self.db.execute(sql, chunk))
            sql = f"SELECT source, COUNT(*) FROM entries WHERE source IN ({marks}) GROUP BY source"
            counts.update(self.db.execute(sql, chunk).fetchall())
        return {name: _state(name, rows.get(name), counts.get(name, 0)) for name in wanted}

    def put_source_state(self, state: SourceState, *, soon: bool = False) -> None:
        """Write a source's state. `soon`: it may be held back and written with the next ones,
        STATE_GROUP at a time in one transaction; the next read of a state, transaction, flush or
        close writes the held ones first."""
        self._held.append(state)
        if not soon or len(self._held) >= STATE_GROUP:
            self.flush_source_states()

    def flush_source_states(self) -> None:
        """Write the states held back by put_source_state(soon=True)."""
        if not self._held:
            return
        held, self._held = self._held, []
        rows = [
            (
                st.name,
                st.etag,
                st.last_modified,
                _iso(st.last_attempt),
                _iso(st.last_success),
                st.last_error,
                st.consecutive_failures,
                _iso(st.next_attempt),
                int(st.disabled),
                st.redirected_to,
            )
            for st in held
        ]
        with _Tx(self.db):
            self.db.executemany(f"INSERT OR REPLACE INTO sources({_STATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def all_source_states(self) -> list[SourceState]:
        self.flush_source_states()
        names = [r[0] for r in self.db.execute("SELECT name FROM sources ORDER BY name")]
        states = self.get_source_states(names)
        return [states[n] for n in names]

    # -- stories ----------------------------------------------------------------------------
    def story_links(self) -> dict[str, StoryLink]:
        rows = self.db.execute("SELECT entry_id, story_id, rule, score, matched_with FROM story_links")
        return {r[0]: StoryLink(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    def put_story_links(self, links: Iterable[StoryLink]) -> None:
        rows = [(link.entry_id, link.story_id, link.rule, link.score, link.matched_with) for link in links]
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO story_links(entry_id, story_id, rule, score, matched_with) VALUES (?,?,?,?,?)",
                rows,
            )
            if rows:
                self._bump_generation()

    def dedupe_signatures(self, *, since: datetime | None = None) -> dict[str, tuple[str, bytes, bytes]]:
        """Stored signatures, entry id -> (basis, body, title); `since`: of entries first seen then or later."""
        return {k: (basis, body, title) for k, basis, body, title in self.iter_dedupe_signatures(since=since)}

    def iter_dedupe_signatures(self, *, since: datetime | None = None) -> Iterator[tuple[str, str, bytes, bytes]]:
        """`dedupe_signatures` as (entry id, basis, body, title) rows, one at a time."""
        sql = "SELECT s.entry_id, s.basis, s.body, s.title FROM dedupe_signatures s"
        args: list[str] = []
        if since is not None:
            sql += " JOIN entries e ON e.id = s.entry_id WHERE e.first_seen >= ?"
            args.append(since.isoformat())
        yield from self.db.execute(sql, args)

    def put_dedupe_signatures(self, rows: Mapping[str, tuple[str, bytes, bytes]]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO dedupe_signatures(entry_id, basis, body, title) VALUES (?,?,?,?)",
                [(k, basis, body, title) for k, (basis, body, title) in rows.items()],
            )

    def get_dedupe_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM dedupe_state WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_dedupe_state(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO dedupe_state(key, value) VALUES (?,?)", (key, value))

    # -- light reads for clustering ---------------------------------------------------------
    # Clustering needs every stored entry's keys and dates but the text of only a few (those it
    # compares or must hash); the bodies are most of a payload, so they stay in SQLite until asked.
    def iter_entry_heads(self, *, until: datetime | None = None) -> Iterator[tuple[Entry, int]]:
        """Entries without their bodies (content_html, content_text and summary empty), each with
        the length of its content_text; in `iter_entries` order. SQLite's JSON functions drop the
        bodies, so Python never decodes them."""
        sql = (
            "SELECT json_set(payload, '$.content_html', '', '$.content_text', '', '$.summary', ''),"
            " length(json_extract(payload, '$.content_text')), first_seen FROM entries"
        )
        args: list[str] = []
        if until:
            sql += " WHERE first_seen < ?"
            args.append(until.isoformat())
        shared: dict[object, object] = {}  # one copy of the values a source repeats on every entry

        def same(value: Any) -> Any:
            return shared.setdefault(value, value)

        for payload, length, first_seen in self.db.execute(sql + " ORDER BY first_seen, id", args):
            e = entry_from_json(payload, first_seen)
            updated = e.updated
            if updated is not None and updated == e.published and updated.utcoffset() == e.published.utcoffset():
                updated = e.published  # most feeds give one date for both: one object, not two equal ones
            yield (
                dataclasses.replace(
                    e,
                    updated=updated,
                    source=same(e.source),
                    feed=same(e.feed),
                    location=same(e.location),
                    site_name=same(e.site_name),
                    site_domain=same(e.site_domain),
                    language=same(e.language),
                    date_provenance=same(e.date_provenance),
                    authors=same(e.authors),
                    topics=same(e.topics),
                    first_seen=same(e.first_seen),
                ),
                length or 0,
            )

    def entry_texts(self, ids: Iterable[str]) -> dict[str, str]:
        """content_text of the given entries (those that exist), by id."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(ids)):
            sql = f"SELECT id, json_extract(payload, '$.content_text') FROM entries WHERE id IN ({_marks(chunk)})"
            out.update((r[0], r[1] or "") for r in self.db.execute(sql, chunk))
        return out

    def get_entries(self, ids: Iterable[str]) -> dict[str, Entry]:
        """Whole entries (those that exist), by id."""
        out: dict[str, Entry] = {}
        for chunk in _chunks(list(ids)):
            sql = f"SELECT id, payload, first_seen FROM entries WHERE id IN ({_marks(chunk)})"
            out.update((r[0], entry_from_json(r[1], r[2])) for r in self.db.execute(sql, chunk))
        return out


def _state(name: str, row: tuple[Any, ...] | None, count: int) -> SourceState:
    if row is None:
        return SourceState(name=name, entry_count=count)
    return SourceState(
        name=row[0],
        etag=row[1],
        last_modified=row[2],
        last_attempt=_dt(row[3]),
        last_success=_dt(row[4]),
        last_error=row[5],
        consecutive_failures=row[6],
        next_attempt=_dt(row[7]),
        disabled=bool(row[8]),
        redirected_to=row[9],
        entry_count=count,
    )


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK; nested use joins the outer transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
