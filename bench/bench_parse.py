"""CPU cost per entry of the parse worker's stages, against bare feedparser measured in the same run.

    .venv/bin/python -m bench.bench_parse [--feeds 80] [--repeat 3] [--corpus bench/corpus/c200]

Loads the first N feeds of a `bench.corpus` directory (bytes read before timing) and runs, one
process, in CPU time (`time.process_time`), best of --repeat interleaved rounds so that a busy
machine disturbs the ratios least:

  feedparser.parse (bare)     `feedparser.parse(bytes)` with its defaults: the baseline
  parse_document              our parse stage (feedparser with its sanitiser, charset checks, RawItems)
  normalize                   RawItem -> Entry (nh3 pass, HTML to text, canonical URL, hash, id)
  assign_topics               the shipped topic rules of feeds.yaml, compiled beforehand
  compute_signature           dedupe's per-entry signature (information: not this stage's code)

Each row prints ms per entry and its ratio to the bare feedparser row. "worker total" is what a
parse worker spends per entry before storing (parse + normalize + topics + signature).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import feedparser.api

from aggregator.config import load_config
from aggregator.normalize import normalize
from aggregator.parse import parse_document
from aggregator.topics import assign_topics
from aggregator.types import Entry, Fetched, RawItem

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def load(corpus: Path, n: int) -> list[Fetched]:
    files = sorted((corpus / "feeds").iterdir())[:n]
    return [
        Fetched(
            source=p.stem,
            location=f"http://127.0.0.1:8000/{p.name}",
            content=p.read_bytes(),
            headers={"content-type": "application/xml"},
        )
        for p in files
    ]


def _cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "corpus" / "c200")
    args = ap.parse_args(argv)

    docs = load(args.corpus, args.feeds)
    rules = load_config(ROOT / "feeds.yaml").topics
    utc = ZoneInfo("UTC")
    try:
        from aggregator.dedupe import compute_signature
    except ImportError:  # another branch may rename it; the row is information only
        compute_signature = None

    stock = [p for p in feedparser.api.PREFERRED_XML_PARSERS if not p.startswith("aggregator.")]

    def bare() -> int:
        # feedparser as installed: the SAX driver aggregator.parse puts first is ours, not bare.
        ours_first = feedparser.api.PREFERRED_XML_PARSERS[:]
        feedparser.api.PREFERRED_XML_PARSERS[:] = stock
        try:
            return sum(len(feedparser.parse(d.content).entries) for d in docs)
        finally:
            feedparser.api.PREFERRED_XML_PARSERS[:] = ours_first

    def ours() -> list[RawItem]:
        return [i for d in docs for i in parse_document(d, tz=utc, fetched_at=NOW)[0]]

    # Warm up (imports, compiled topic rules, lazy dedupe imports), and the inputs of later stages.
    items = ours()
    entries: list[Entry] = [normalize(i, fetched_at=NOW) for i in items]
    for e in entries[:5]:
        assign_topics(e, rules)
        if compute_signature is not None:
            compute_signature(e)

    stages: dict[str, Callable[[], Any]] = {
        "feedparser.parse (bare)": bare,
        "parse_document": ours,
        "normalize": lambda: [normalize(i, fetched_at=NOW) for i in items],
        "assign_topics": lambda: [assign_topics(e, rules) for e in entries],
    }
    if compute_signature is not None:
        sig = compute_signature
        stages["compute_signature (dedupe)"] = lambda: [sig(e) for e in entries]
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, fn in stages.items():
            _, dt = _cpu(fn)
            best[name] = min(dt, best.get(name, dt))

    n = len(entries)
    base = best["feedparser.parse (bare)"]
    print(f"{len(docs)} feeds, {n} entries, best of {args.repeat} rounds, CPU time")
    print(f"{'stage':32s} {'CPU s':>7s} {'ms/entry':>9s} {'x bare':>7s}")
    for name, dt in best.items():
        print(f"{name:32s} {dt:7.3f} {dt / n * 1000:9.3f} {dt / base:7.2f}")
    worker = sum(dt for name, dt in best.items() if name != "feedparser.parse (bare)")
    print(f"{'worker total':32s} {worker:7.3f} {worker / n * 1000:9.3f} {worker / base:7.2f}")
    around = worker - base  # everything the worker adds to feedparser
    print(f"{'worker total - bare feedparser':32s} {around:7.3f} {around / n * 1000:9.3f} {around / base:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
