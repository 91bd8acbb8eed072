"""Big refreshes parse in worker processes; the stored result is the same as parsing in-process."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator import _parallel
from aggregator.config import Config, SourceConfig
from aggregator.pipeline import make_deps, refresh
from aggregator.types import Fetched

from .conftest import Clock

FEEDS = _parallel.MIN_JOBS  # the smallest refresh that uses the pool


def rss(i: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {i} story {j} on rare earth magnets</title>"
        f"<link>https://site{i}.example.com/{j}</link><guid>g{i}-{j}</guid>"
        f"<pubDate>Fri, 20 Nov 2026 0{j}:00:00 +0000</pubDate>"
        f"<description>&lt;p&gt;Body {i}-{j} about neodymium &lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;</description></item>"
        for j in range(3)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>F{i}</title>{items}</channel></rss>'.encode()


def stored(project: Path, write_config, httpserver: HTTPServer, clock: Clock, db: str) -> dict[str, str]:
    for i in range(FEEDS):
        httpserver.expect_request(f"/f{i}.rss").respond_with_data(rss(i), content_type="application/rss+xml")
    sources = [{"name": f"f{i}", "url": httpserver.url_for(f"/f{i}.rss")} for i in range(FEEDS)]
    config: Config = write_config(sources=sources, database=db)
    deps = make_deps(config, clock=clock)
    try:
        report = refresh(config, deps)
        assert not report.failed
        rows = deps.store.db.execute("SELECT id, payload FROM entries").fetchall()
    finally:
        deps.close()
    return dict(rows)


@pytest.mark.skipif(_parallel.cpu_count() < 2, reason="the pool is used only with two or more CPUs")
def test_refresh_with_worker_processes_stores_what_in_process_parsing_stores(
    project: Path, write_config, httpserver: HTTPServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pooled = stored(project, write_config, httpserver, clock, "pooled.db")
    monkeypatch.setattr(_parallel, "MIN_JOBS", 10**9)  # the pool never pays: everything in-process
    inline = stored(project, write_config, httpserver, clock, "inline.db")
    assert len(pooled) == FEEDS * 3
    assert pooled == inline
    assert not any("script" in payload for payload in pooled.values())


def where(config: Config, source: SourceConfig, doc: Fetched, now: datetime) -> tuple[int, str]:
    if doc.content == b"boom":
        raise ValueError("bad document")
    return os.getpid(), source.name


@pytest.mark.skipif(_parallel.cpu_count() < 2, reason="the pool is used only with two or more CPUs")
def test_pool_runs_documents_in_other_processes_and_reraises_their_errors(config: Config, clock: Clock) -> None:
    src = SourceConfig(name="s", url="http://127.0.0.1/x")
    docs = [Fetched("s", "http://127.0.0.1/x", b"<rss/>") for _ in range(4)]
    with _parallel.DocPool(config, where, jobs=_parallel.MIN_JOBS, workers=2) as pool:
        for i, doc in enumerate(docs):
            pool.submit(i, src, doc, clock())
        results = dict(pool.drain(block=True))
        assert sorted(results) == [0, 1, 2, 3]
        assert all(pid != os.getpid() and name == "s" for pid, name in results.values())
        pool.submit("bad", src, Fetched("s", "http://127.0.0.1/x", b"boom"), clock())
        with pytest.raises(ValueError, match="bad document"):
            list(pool.drain(block=True))
    # Below MIN_JOBS nothing leaves the process.
    with _parallel.DocPool(config, where, jobs=1, workers=2) as pool:
        pool.submit(0, src, docs[0], clock())
        assert dict(pool.drain(block=True))[0][0] == os.getpid()


@pytest.mark.skipif(_parallel.cpu_count() < 2, reason="the pool is used only with two or more CPUs")
def test_closing_the_pool_stops_the_forkserver_and_a_new_pool_starts_another(config: Config, clock: Clock) -> None:
    """The forkserver holds the preloaded pipeline; left running it would keep that memory for the
    rest of the process (clustering, publishing, a scheduler's days)."""
    psutil = pytest.importorskip("psutil")

    def forkservers() -> list[int]:
        kids = psutil.Process().children(recursive=True)
        return [p.pid for p in kids if any("forkserver" in part for part in p.cmdline())]

    src = SourceConfig(name="s", url="http://127.0.0.1/x")
    doc = Fetched("s", "http://127.0.0.1/x", b"<rss/>")
    for _ in range(2):
        with _parallel.DocPool(config, where, jobs=_parallel.MIN_JOBS, workers=2) as pool:
            pool.submit(0, src, doc, clock())
            assert dict(pool.drain(block=True))[0][0] != os.getpid()
            assert forkservers()
        assert forkservers() == []
