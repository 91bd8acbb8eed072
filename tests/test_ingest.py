"""The parse workers' side of a refresh: what they import, and what they send back for the store.

Kept free of imports of the pipeline and the config: the pool's workers import this module to
find `in_worker`, and what they import is what one test checks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aggregator import _parallel
from aggregator.ingest import ParseConfig, Parsed, ParseSource, PlainRule, parse_fetched
from aggregator.store import SQLiteStore
from aggregator.store._codec import encode, entry_to_json
from aggregator.types import DatePrecision, Entry, FeedMeta, Fetched

if TYPE_CHECKING:
    from aggregator.config import Config

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Modules a parse worker never uses: the fetcher, publisher and mailer, scipy behind datasketch,
# the config and its pydantic and yaml (workers get ParseConfig), and what only pages need.
UNUSED = (
    "aggregator.pipeline",
    "aggregator.fetch",
    "aggregator.publish",
    "aggregator.deliver",
    "httpx",
    "scipy",
    "aggregator.config",
    "pydantic",
    "yaml",
    "aggregator.article",
    "charset_normalizer",
)


def atom(n: int) -> bytes:
    items = "".join(
        f"<entry><id>urn:e:{i}</id><title>Rare earth item {i}</title><link href='https://ex.example/{i}'/>"
        f"<updated>2026-11-0{i + 1}T00:00:00Z</updated>"
        f"<content type='html'>&lt;p&gt;Body {i} about neodymium &lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;</content>"
        "</entry>"
        for i in range(n)
    )
    return (
        "<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:feed</id><title>F</title>"
        f"<updated>2026-11-05T00:00:00Z</updated><link href='https://ex.example/'/>{items}</feed>"
    ).encode()


def in_worker(
    config: ParseConfig, source: ParseSource, doc: Fetched, now: datetime
) -> tuple[int, Parsed, list[str], list[str]]:
    rules = [type(r).__name__ for r in config.topics.values()]
    return os.getpid(), parse_fetched(config, source, doc, now, True), [m for m in UNUSED if m in sys.modules], rules


@pytest.mark.skipif(_parallel.cpu_count() < 2, reason="the pool is used only with two or more CPUs")
def test_parse_workers_import_only_the_parse_stages_and_send_back_what_the_store_writes(config: Config) -> None:
    """As the pipeline hands them over: the config and the source as plain data."""
    src = config.sources[0].model_copy(update={"url": "http://127.0.0.1/feed.xml", "path": None})
    doc = Fetched("s", "http://127.0.0.1/feed.xml", atom(3), headers={"content-type": "application/atom+xml"})
    with _parallel.DocPool(ParseConfig.of(config), in_worker, jobs=_parallel.MIN_JOBS, workers=2) as pool:
        pool.submit(0, ParseSource.of(src), doc, NOW)
        (_, (pid, (rows, warnings, skipped, sigs), imported, rules)), *_ = pool.drain(block=True)
    assert pid != os.getpid()
    assert imported == []  # each would cost every worker memory (and the forkserver CPU) for nothing
    assert rules and set(rules) == {"PlainRule"}
    # The same rows as parsing here, with the config itself (its pydantic topic rules).
    here, _, _, here_sigs = parse_fetched(config, src, doc, NOW, True)
    assert rows == here and sigs == here_sigs and not warnings and not skipped
    assert len(rows) == 3 and all("script" not in r.payload for r in rows)
    assert all(json.loads(r.payload)["topics"] for r in rows)  # the topic rules were applied there
    assert set(sigs) == {r.id for r in rows}


def test_a_worker_gets_plain_copies_of_the_topic_rules(config: Config) -> None:
    """What a worker unpickles: the config's rules as plain data (this process keeps its own)."""
    here = ParseConfig.of(config)
    assert all(here.topics[k] is rule for k, rule in config.topics.items())  # compiled once per config
    parsed, source = pickle.loads(pickle.dumps((here, ParseSource.of(config.sources[0]))))
    assert parsed.timezone == config.timezone and source.timezone == config.sources[0].timezone
    for key, rule in config.topics.items():
        plain = parsed.topics[key]
        assert isinstance(plain, PlainRule)
        assert dataclasses.asdict(plain) == {f: getattr(rule, f) for f in dataclasses.asdict(plain)}


def stored_entry(**over: object) -> Entry:
    base = Entry(
        id="e1",
        source="wire",
        title="Neodymium magnets – 稀土",
        link="https://news.example.com/1",
        canonical_url="https://news.example.com/1",
        content_html="<p>Body</p>",
        content_text="Body",
        summary="Body",
        content_hash="0" * 64,
        published=datetime(2026, 11, 19, 8, 30, tzinfo=UTC),
        updated=None,
        date_precision=DatePrecision.MINUTE,
        feed=FeedMeta(id="urn:feed", title="Wire", updated=datetime(2026, 11, 19, tzinfo=UTC)),
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def test_encoded_entries_keep_the_feed_updated_they_were_first_stored_with(tmp_path: Path) -> None:
    """A feed's <updated> moves with every new item: an entry that did not change stays unchanged,
    byte for byte, whether stored from an Entry or from a worker's encoded row."""
    store = SQLiteStore(tmp_path / "state.db")
    first = stored_entry()
    assert store.upsert_encoded([encode(first)], NOW) == ["new"]
    payload = store.db.execute("SELECT payload FROM entries").fetchone()[0]
    assert payload == entry_to_json(first)
    later = dataclasses.replace(
        first, feed=dataclasses.replace(first.feed, updated=first.feed.updated + timedelta(days=1))
    )  # type: ignore[operator]
    assert store.upsert_encoded([encode(later)], NOW + timedelta(hours=1)) == ["unchanged"]
    [(returned, status)] = store.upsert_entries([later], NOW + timedelta(hours=2))
    assert status == "unchanged" and returned.feed.updated == first.feed.updated and returned.first_seen == NOW
    assert store.db.execute("SELECT payload FROM entries").fetchone()[0] == payload
    # A changed entry carries the feed's current state.
    changed = dataclasses.replace(later, title="A new title")
    assert store.upsert_encoded([encode(changed)], NOW + timedelta(hours=3)) == ["updated"]
    got = store.get_entry("e1")
    assert got is not None and got.title == "A new title" and got.feed.updated == later.feed.updated
    store.close()


def test_the_command_script_imports_nothing_a_parse_worker_would_load_again() -> None:
    """Workers re-run the script that started their parent (multiprocessing's main-module fix-up):
    the `aggregator` command's script must import only the thin entry module, not the CLI."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    scripts = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, _, func = scripts["aggregator"].partition(":")
    heavy = (*UNUSED, "click", "aggregator.cli")
    code = f"import sys; from {module} import {func}; print(sorted(m for m in sys.modules if m in {heavy!r}))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env, cwd=root, text=True)
    assert out.stdout.split() == ["[]"]
