"""The write path of a refresh: stored payloads stay readable across versions, databases from
earlier versions migrate, and the fetcher runs no further ahead than its consumer takes results.

Real SQLite files and a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import FetchConfig, SourceConfig
from aggregator.fetch import HttpFetcher
from aggregator.store import SourceState, SQLiteStore
from aggregator.store.sqlite import MIGRATIONS
from aggregator.types import DatePrecision, Entry, FeedMeta, Fetched

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def entry(i: int = 1, **over: Any) -> Entry:
    base = Entry(
        id=f"e{i}",
        source="wire",
        title=f"Neodymium magnets, story {i} – 稀土",
        link=f"https://news.example.com/{i}",
        canonical_url=f"https://news.example.com/{i}",
        content_html=f'<p>Body {i} with "quotes" &amp; ünïcode 稀土</p>',
        content_text=f'Body {i} with "quotes" & ünïcode 稀土',
        summary=f"Body {i}",
        content_hash=f"{i:064x}",
        published=datetime(2026, 11, 19, 8, 30, tzinfo=UTC),
        updated=None,
        date_precision=DatePrecision.MINUTE,
        authors=("A. Writer",),
        feed=FeedMeta(id="https://news.example.com/", title="Wire", updated=datetime(2026, 11, 19, tzinfo=UTC)),
        topics=("rare-earth",),
    )
    return dataclasses.replace(base, **over)


def earlier_payload(e: Entry) -> str:
    """The payload as earlier versions wrote it (json.dumps of every field but first_seen)."""

    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, DatePrecision):
            return o.value
        raise TypeError(type(o))

    data = {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name != "first_seen"}
    data["feed"] = dataclasses.asdict(e.feed)
    return json.dumps(data, default=default, ensure_ascii=False, sort_keys=True)


def test_entries_stored_by_earlier_versions_stay_unchanged(tmp_path: Path) -> None:
    """A re-fetched entry that did not change must not count as updated after an upgrade."""
    store = SQLiteStore(tmp_path / "state.db")
    old = entry(1)
    with store.transaction():
        store.db.execute(
            "INSERT INTO entries(id, source, payload, content_hash, canonical_url, first_seen, last_changed)"
            " VALUES (?,?,?,?,?,?,?)",
            (old.id, old.source, earlier_payload(old), old.content_hash, old.canonical_url, "2026-11-01", "2026-11-01"),
        )
    results = store.upsert_entries([old, dataclasses.replace(entry(2), title="changed")], NOW)
    assert [status for _, status in results] == ["unchanged", "new"]
    assert results[0][0].first_seen == datetime(2026, 11, 1)
    assert results[1][0].first_seen == NOW
    assert store.upsert_entries([dataclasses.replace(old, title="A new title")], NOW)[0][1] == "updated"
    got = store.get_entry(old.id)
    assert got is not None and got.title == "A new title" and got.feed == old.feed
    store.close()


def test_database_of_an_earlier_schema_migrates_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # as earlier versions created it: default 4 KB pages
    for version, script in enumerate(MIGRATIONS[:4], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version={version}")
    e = entry(3)
    db.execute(
        "INSERT INTO entries VALUES (?,?,?,?,?,?,?)",
        (e.id, e.source, earlier_payload(e), e.content_hash, e.canonical_url, "2026-11-01T00:00:00+00:00", "x"),
    )
    db.close()

    store = SQLiteStore(path)
    indexes = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"entries_first_seen", "entries_source"} <= indexes
    assert not indexes & {"entries_hash", "entries_url"}
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA page_size").fetchone()[0] == 4096  # an existing file keeps its pages
    assert store.get_entry(e.id) == dataclasses.replace(e, first_seen=datetime(2026, 11, 1, tzinfo=UTC))
    assert store.upsert_entries([e], NOW)[0][1] == "unchanged"
    store.close()

    fresh = SQLiteStore(tmp_path / "new.db")
    assert fresh.db.execute("PRAGMA page_size").fetchone()[0] == 8192
    fresh.close()


# -- the fetcher's look-ahead ----------------------------------------------------------------
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


class Counting:
    """Answers every path with a small feed (or stalls on /stall*), counting requests."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown so stalled handlers return

    def answer(self, request: Request) -> Response:
        with self.lock:
            self.count += 1
        if request.path.startswith("/stall"):
            self.release.wait(10)
        return Response(RSS, headers={"Content-Type": "application/rss+xml"})


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)  # threaded: a stalled answer blocks no other
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def counting(server: HTTPServer) -> Iterator[Counting]:
    c = Counting()
    server.expect_request(re.compile(".*")).respond_with_handler(c.answer)
    yield c
    c.release.set()


def jobs(server: HTTPServer, paths: list[str]) -> list[tuple[SourceConfig, SourceState]]:
    return [(SourceConfig(name=p.strip("/"), url=server.url_for(p)), SourceState(p.strip("/"))) for p in paths]


def fetcher(concurrency: int, timeout: float = 10) -> HttpFetcher:
    return HttpFetcher(FetchConfig(allow_private_addresses=True, concurrency=concurrency, per_host=32, timeout=timeout))


@pytest.mark.parametrize("ahead", [1, None])
def test_fetching_waits_for_the_consumer_when_told_how_far_ahead(
    server: HTTPServer, counting: Counting, ahead: int | None
) -> None:
    """A consumer that stops taking results stops new requests: bodies are not piled up in memory."""
    paths = [f"/f{i}.xml" for i in range(20)]
    results = fetcher(concurrency=2).fetch_iter(jobs(server, paths), ahead=ahead)
    taken = [next(results)]
    time.sleep(0.5)  # a slow consumer (parsing): everything that may start has finished by now
    requested = counting.count
    taken.extend(results)
    assert sorted(i for i, _ in taken) == list(range(20))
    assert all(isinstance(got, Fetched) for _, got in taken)
    if ahead is None:  # every request starts at once
        assert requested == 20
    else:  # one taken + (concurrency 2 + ahead 1) running or waiting
        assert requested <= 4


def test_stalled_requests_do_not_hold_back_the_others(server: HTTPServer, counting: Counting) -> None:
    """Requests that run long stop counting against the look-ahead, as they give their slot back."""
    timeout = 1.5  # a request turns slow after a quarter of it
    paths = ["/stall0.xml", "/stall1.xml", *(f"/f{i}.xml" for i in range(4))]
    started = time.monotonic()
    got = dict(fetcher(concurrency=1, timeout=timeout).fetch_iter(jobs(server, paths), ahead=0))
    elapsed = time.monotonic() - started
    assert all(isinstance(got[i], Fetched) for i in range(2, 6))
    assert not isinstance(got[0], Fetched) and not isinstance(got[1], Fetched)
    assert elapsed < 2 * timeout, elapsed  # waiting for each stall in turn would take two deadlines
