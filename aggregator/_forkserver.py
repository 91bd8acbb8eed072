"""Imported in the parse pool's forkserver after `aggregator.ingest` (`_parallel.PRELOAD`), nowhere else.

Whatever the parse stages build on first use (numpy's MinHash permutations, the CJK hash table,
feedparser's and nh3's lazily made state) is built here once, by parsing one small document, and
is then shared by every worker instead of being built in each. The import-time garbage is
collected, what is left frozen (a worker's collections never walk it, so never copy its pages),
and the freed heap handed back to the system before the first fork.
"""

from __future__ import annotations

import contextlib
import gc
from datetime import UTC, datetime

from ._parallel import malloc_trim
from .ingest import ParseConfig, ParseSource, parse_fetched
from .types import Fetched

_SAMPLE = (
    "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Warm-up</title>"
    "<item><title>Rare earth magnets 稀土永磁</title><link>https://example.com/1</link><guid>urn:warm:1</guid>"
    "<pubDate>Sat, 21 Nov 2026 00:00:00 +0000</pubDate><description>&lt;p&gt;Neodymium output rose 12% in 2026,"
    " 中国稀土产量增长。&lt;a href='/more'&gt;More&lt;/a&gt;&lt;/p&gt;</description></item></channel></rss>"
)


def _warm_up() -> None:
    doc = Fetched(
        "warm-up", "https://example.com/feed.xml", _SAMPLE.encode(), headers={"content-type": "application/rss+xml"}
    )
    now = datetime(2026, 11, 21, tzinfo=UTC)
    parse_fetched(ParseConfig("UTC", {}), ParseSource(None, None, ()), doc, now, True)


with contextlib.suppress(Exception):  # only an optimisation: it must never keep the pool from starting
    _warm_up()
gc.collect()
gc.freeze()
if (trim := malloc_trim()) is not None:
    trim(0)
