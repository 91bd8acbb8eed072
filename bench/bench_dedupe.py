"""Clustering cost per entry at 10k and 100k generated entries with ground truth (not a unit test).

    .venv/bin/python -m bench.bench_dedupe [--sizes 10000 100000] [--seed 7] [--json]
    .venv/bin/python -m bench.bench_dedupe --store WORK_DIR [--fresh]

`--store`: peak RSS and CPU of `pipeline.rebuild_stories` in a fresh process, on a copy of a
refreshed project (a `bench.stages ours` work directory: feeds.yaml and state.db). `--fresh`
first drops the story links, as in the first refresh (signatures stored by the parse workers,
every entry to cluster); without it every entry already has its story (a refresh that stored
a little).

Each size runs in a fresh process, so its peak memory (ru_maxrss) is its own. The corpus is made
in memory (no parsing): stories in English (Zipf-distributed pseudo-words) and Chinese (Zipf over
2,500 common CJK characters), 120–500 tokens, from 300 sources over 60 days. About a third of
the stories are told more than once: exact copies, reprints with a new header and footer, light
rewrites (5% of the words changed, a paragraph dropped), lead-paragraph summaries and the same
URL in two feeds. Entries arrive hour by hour (first seen = published + up to 6 hours), as a
refresh every hour would store them.

Printed per size:
  full pass       `cluster` over every entry from scratch (every MinHash computed), ms per entry
  incremental     one more refresh adding 1% new entries (a third of them late copies of stored
                  stories) with the stored links and signatures, CPU time: its fixed part (a refresh
                  with one empty new entry: every stored entry of the lookback window queries a
                  small LSH index of the new batch, and the stories are rebuilt) and the cost per
                  new entry beyond that; and a refresh with nothing new
  peak memory     the process's peak RSS, and what the corpus alone held before clustering
  precision/recall  pairwise, against the generator's ground truth
  candidates      pairs verified per entry (LSH and exact-key candidates; no all-pairs comparison)

`run(n)` returns the same figures as a dict; `cluster_stage(entries, truth)` clusters a given
corpus (the overall bench harness passes its own) and scores it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from aggregator.config import DedupeConfig
from aggregator.dedupe import cluster, fingerprint
from aggregator.normalize import content_hash
from aggregator.types import DatePrecision, Entry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_DAYS = 60
SOURCES = 300
_SYLLABLES = (
    "ka lo mi ren tor sa vel dan qui po ler mon ta ri gel bu fen sto chi nar wel pi zor ex an tro ly ment ion al"
)


_EN_TOP = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "i",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "one",
    "all",
    "we",
    "their",
    "been",
    "has",
    "when",
    "who",
    "will",
    "more",
    "no",
    "if",
    "out",
    "so",
    "said",
    "what",
    "up",
    "its",
    "about",
    "into",
    "than",
    "them",
    "can",
    "only",
    "other",
    "new",
    "some",
    "could",
    "time",
    "these",
    "two",
    "may",
    "then",
    "do",
    "first",
    "any",
    "my",
    "now",
    "such",
    "like",
    "our",
    "over",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
]
_ZH_TOP = tuple(
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定"
    "行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其"
)


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Corpus:
    """Random stories and their copies; deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        syl = _SYLLABLES.split()
        words: set[str] = set()
        while len(words) < 20_000:
            words.add("".join(self.rng.choice(syl) for _ in range(self.rng.randint(1, 4))))
        # Real function words take the top ranks, as in English (about half of running text).
        self.en = [*_EN_TOP, *sorted(words - set(_EN_TOP))][:20_000]
        rest = [chr(c) for c in range(0x4E00, 0x9FA5, 7) if chr(c) not in _ZH_TOP]
        self.zh = [*_ZH_TOP, *rest][:2500]
        # Zipf–Mandelbrot rank frequencies (1 / (rank + 2.7)), the usual fit for word and character counts.
        zipf = [1 / (i + 2.7) for i in range(20_000)]
        self.en_cum = list(accumulate(zipf))
        self.zh_cum = list(accumulate(zipf[:2500]))
        self.count = 0
        self.stories = 0

    def _tokens(self, zh: bool, k: int) -> list[str]:
        if zh:
            return self.rng.choices(self.zh, cum_weights=self.zh_cum, k=k)
        return self.rng.choices(self.en, cum_weights=self.en_cum, k=k)

    def _text(self, zh: bool, toks: list[str]) -> str:
        sep = "" if zh else " "
        paras = [sep.join(toks[i : i + 60]) for i in range(0, len(toks), 60)]
        return "\n\n".join(paras)

    def _entry(self, story: str, source: str, title: str, body: str, published: datetime, url: str | None) -> Entry:
        self.count += 1
        eid = hashlib.sha256(f"{source}\x1f{self.count}".encode()).hexdigest()[:24]
        delay = timedelta(hours=self.rng.randint(0, 6))
        seen = (published + delay).replace(minute=0, second=0, microsecond=0)
        return Entry(
            id=eid,
            source=source,
            title=title,
            link=None,
            canonical_url=url,
            content_html="",
            content_text=body,
            summary="",
            content_hash=content_hash(title, body),
            published=published,
            updated=published,
            date_precision=DatePrecision.MINUTE,
            first_seen=seen,
        )

    def story(self, index: int) -> list[Entry]:
        """One story: the original and, for about a third of the stories, 1–3 copies."""
        rng = self.rng
        zh = rng.random() < 0.25
        toks = self._tokens(zh, rng.randint(120, 500))
        title_toks = self._tokens(zh, rng.randint(6, 12) * (2 if zh else 1))
        title = ("" if zh else " ").join(title_toks)
        body = self._text(zh, toks)
        published = T0 + timedelta(seconds=rng.randint(0, SPAN_DAYS * 86400))
        sid = f"s{index}"
        sources = rng.sample(range(SOURCES), 4)
        url = f"//site{sources[0]}.example/news/{index}"
        out = [self._entry(sid, f"src{sources[0]}", title, body, published, url)]
        roll = rng.random()
        copies = 0 if roll < 0.68 else 1 if roll < 0.9 else rng.randint(2, 3)
        for c in range(copies):
            src = f"src{sources[c + 1]}"
            when = published + timedelta(hours=rng.randint(0, 72))
            kind = rng.choice(("exact", "reprint", "rewrite", "summary", "url"))
            if kind == "exact":
                out.append(self._entry(sid, src, title, body, when, None))
            elif kind == "reprint":
                head = self._text(zh, self._tokens(zh, rng.randint(10, 25)))
                foot = self._text(zh, self._tokens(zh, rng.randint(15, 40)))
                out.append(self._entry(sid, src, title + " | " + src, f"{head}\n\n{body}\n\n{foot}", when, None))
            elif kind == "rewrite":
                changed = [t if rng.random() > 0.05 else self._tokens(zh, 1)[0] for t in toks]
                cut = len(changed) // 60 * 60
                if cut > 120:
                    start = rng.randrange(60, cut - 60, 60)
                    del changed[start : start + 60]  # one paragraph dropped
                out.append(self._entry(sid, src, title, self._text(zh, changed), when, None))
            elif kind == "summary":
                out.append(self._entry(sid, src, title, self._text(zh, toks[: rng.randint(50, 80)]), when, None))
            else:
                out.append(self._entry(sid, src, title, body, when, url))
        return out


def generate(n: int, seed: int = 7, corpus: Corpus | None = None) -> tuple[list[Entry], dict[str, str]]:
    """n entries (the last story may be cut short) and entry id -> true story id.

    Pass the same `corpus` again to get n more entries of new stories.
    """
    corpus = corpus or Corpus(seed)
    entries: list[Entry] = []
    truth: dict[str, str] = {}
    while len(entries) < n:
        i = corpus.stories
        corpus.stories += 1
        for e in corpus.story(i):
            entries.append(e)
            truth[e.id] = f"s{i}"
    return entries[:n], {e.id: truth[e.id] for e in entries[:n]}


def pair_scores(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against the true stories."""

    def pairs(k: int) -> int:
        return k * (k - 1) // 2

    tp = sum(pairs(k) for k in Counter((predicted[e], truth[e]) for e in truth).values())
    pred = sum(pairs(k) for k in Counter(predicted[e] for e in truth).values())
    true = sum(pairs(k) for k in Counter(truth.values()).values())
    return (tp / pred if pred else 1.0), (tp / true if true else 1.0)


def _score(result: Any, entries: list[Entry], truth: dict[str, str], wall: float, cpu: float) -> dict[str, Any]:
    predicted = {k: v.story_id for k, v in result.links.items()}
    precision, recall = pair_scores(predicted, truth)
    return {
        "wall": round(wall, 3),
        "stories": len(result.stories),
        "true_stories": len(set(truth.values())),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "ms_per_entry": round(wall * 1000 / max(len(entries), 1), 4),
        "cpu_ms_per_entry": round(cpu * 1000 / max(len(entries), 1), 4),
        "compared_per_entry": round(result.compared / max(len(entries), 1), 3),
    }


def cluster_stage(entries: list[Entry], truth: dict[str, str]) -> dict[str, Any]:
    """Cluster the given entries from scratch and score them (entry point for bench.stages)."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = cluster(entries, DedupeConfig())
    return _score(result, entries, truth, time.perf_counter() - t0, time.process_time() - c0)


def run(n: int, seed: int = 7) -> dict[str, Any]:
    """Full pass over n entries, then one incremental refresh with 1% new entries. Figures as a dict."""
    t0 = time.perf_counter()
    corpus = Corpus(seed)
    entries, truth = generate(n, seed, corpus)
    gen_s = time.perf_counter() - t0
    corpus_mb = _peak_mb()
    cfg = DedupeConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    stored = cluster(entries, cfg)
    full = _score(stored, entries, truth, time.perf_counter() - t0, time.process_time() - c0)
    # One more refresh: 1% new entries, first seen after everything stored; a third are copies.
    t0 = time.perf_counter()
    extra_n = max(n // 100, 1)
    more, _ = generate(extra_n, seed, corpus)
    later = max(e.first_seen for e in entries if e.first_seen) + timedelta(hours=1)
    new = [dataclasses.replace(e, first_seen=later) for e in more]
    copies = [
        dataclasses.replace(e, id=e.id[::-1], source="late-source", canonical_url=None, first_seen=later)
        for e in entries[-extra_n // 3 :]
    ]
    new += copies
    setup_s = time.perf_counter() - t0
    c0 = time.process_time()
    inc = cluster([*entries, *new], cfg, links=stored.links, signatures=stored.signatures, state=fingerprint(cfg))
    inc_s = time.process_time() - c0
    joined = sum(1 for c in copies if inc.links[c.id].story_id == stored.links[c.id[::-1]].story_id)
    # The fixed part of a refresh: the same call with nothing new (no pool to index, nothing to hash).
    c0 = time.process_time()
    cluster([*entries, *new], cfg, links=inc.links, signatures={}, state=fingerprint(cfg))
    idle_s = time.process_time() - c0
    # Cost with new entries minus the pool indexing: time an empty-batch pass with pool indexing.
    pool_s = _pool_index_time(entries, stored, cfg, later)
    return {
        "entries": n,
        "generate_s": round(gen_s, 2),
        "full_ms_per_entry": full["ms_per_entry"],
        "full_cpu_ms_per_entry": full["cpu_ms_per_entry"],
        "full_wall_s": full["wall"],
        "precision": full["precision"],
        "recall": full["recall"],
        "stories": full["stories"],
        "true_stories": full["true_stories"],
        "compared_per_entry": full["compared_per_entry"],
        "incremental_new_entries": len(new),
        "incremental_cpu_s": round(inc_s, 3),
        "incremental_fixed_cpu_s": round(pool_s, 3),
        "incremental_ms_per_new_entry": round(max(inc_s - pool_s, 0.0) * 1000 / len(new), 4),
        "incremental_late_copies_joined": f"{joined}/{len(copies)}",
        "rerun_nothing_new_s": round(idle_s, 3),
        "setup_s": round(setup_s, 2),
        "corpus_rss_mb": corpus_mb,
        "peak_rss_mb": _peak_mb(),
    }


def _pool_index_time(entries: list[Entry], stored: Any, cfg: DedupeConfig, later: datetime) -> float:
    """CPU time of a refresh whose only new entry is empty: the fixed part of any refresh."""
    probe = dataclasses.replace(entries[0], id="probe", source="probe", content_text="", title="", first_seen=later)
    probe = dataclasses.replace(probe, content_hash="probe", canonical_url=None)
    c0 = time.process_time()
    cluster([*entries, probe], cfg, links=stored.links, signatures=stored.signatures, state=fingerprint(cfg))
    return time.process_time() - c0


def store_stage(work: Path, fresh: bool) -> dict[str, Any]:
    """rebuild_stories on a copy of a refreshed project: CPU s and peak RSS (this process)."""
    from aggregator.config import load_config
    from aggregator.pipeline import make_deps, rebuild_stories

    with tempfile.TemporaryDirectory(prefix="bench-dedupe-") as tmp:
        copy = Path(tmp)
        shutil.copy(work / "feeds.yaml", copy)
        shutil.copy(work / "state.db", copy)
        if fresh:
            with sqlite3.connect(copy / "state.db") as db:
                db.execute("DELETE FROM story_links")
                db.execute("DELETE FROM dedupe_state WHERE key = 'fingerprint'")
            db.close()
        config = load_config(copy / "feeds.yaml")
        deps = make_deps(config)
        try:
            before = _peak_mb()
            c0 = time.process_time()
            stories = rebuild_stories(config, deps)
            cpu = time.process_time() - c0
            entries = deps.store.count_entries()
        finally:
            deps.close()
    return {
        "entries": entries,
        "stories": len(stories),
        "fresh": fresh,
        "cpu_s": round(cpu, 2),
        "rss_before_mb": before,
        "peak_rss_mb": _peak_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size, JSON out
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--store", type=Path, help="a refreshed project directory: time rebuild_stories on a copy")
    ap.add_argument("--fresh", action="store_true", help="with --store: drop the story links first")
    args = ap.parse_args()
    if args.store:
        print(json.dumps(store_stage(args.store, args.fresh)))
        return
    if args.one:
        print(json.dumps(run(args.one, args.seed)))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_dedupe", "--one", str(n), "--seed", str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(
            f"{r['entries']:>7} entries: full pass {r['full_ms_per_entry']:.3f} ms/entry wall, "
            f"{r['full_cpu_ms_per_entry']:.3f} ms/entry CPU ({r['full_wall_s']:.1f} s), "
            f"precision {r['precision']:.4f}, recall {r['recall']:.4f}, {r['compared_per_entry']} pairs verified/entry"
        )
        print(
            f"{'':>17}refresh +{r['incremental_new_entries']} new: {r['incremental_cpu_s']:.2f} s CPU "
            f"(fixed part {r['incremental_fixed_cpu_s']:.2f} s, then {r['incremental_ms_per_new_entry']:.3f} ms/new entry), "
            f"late copies joined {r['incremental_late_copies_joined']}; nothing new {r['rerun_nothing_new_s']:.2f} s CPU"
        )
        print(f"{'':>17}peak RSS {r['peak_rss_mb']:.0f} MB (corpus alone {r['corpus_rss_mb']:.0f} MB)")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        ratio = b["full_ms_per_entry"] / a["full_ms_per_entry"]
        cpu_ratio = b["full_cpu_ms_per_entry"] / a["full_cpu_ms_per_entry"]
        print(
            f"per-entry cost {a['entries']} -> {b['entries']}: x{ratio:.2f} wall, x{cpu_ratio:.2f} CPU "
            f"(total x{b['full_wall_s'] / a['full_wall_s']:.1f} for x{b['entries'] / a['entries']:.0f} entries)"
        )


if __name__ == "__main__":
    main()
