"""One benchmark stage per process, so peak RSS is per stage. The runner calls:

    python -m bench.stages <stage> '<json args>'

and reads one JSON line from stdout: {"stage", "wall", "entries", "rss_mb", "workers_rss_mb", ...}.
Only the work itself is timed; imports, corpus loading and config writing are not.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _rss() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child (pool workers), in MB."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(me, 1), round(kids, 1)


class TotalRss:
    """Samples the memory (PSS) of this process plus all its children every 100 ms; keeps the peak (MB).

    ru_maxrss is per process; with a pool of parser processes the total is what a machine needs.
    """

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0.0
        self.cpu: dict[int, float] = {}  # pid -> last seen user+system seconds (children come and go)
        self.own_cpu = 0.0  # CPU seconds the sampler thread itself used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        children: list[psutil.Process] = []
        tick = 0
        # The sampler shares the CPUs with the stage it measures: PSS (smaps_rollup) 4x a second,
        # the list of children (a scan of /proc) once a second; `own_cpu` says what it cost.
        while not self._stop.wait(0.25):
            if tick % 4 == 0:
                with contextlib.suppress(psutil.Error):
                    children = self.proc.children(recursive=True)
            tick += 1
            total = self._pss(self.proc)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    total += self._pss(child)
                    t = child.cpu_times()
                    self.cpu[child.pid] = t.user + t.system
            self.peak = max(self.peak, total / 2**20)
        self.own_cpu = time.thread_time()

    @staticmethod
    def _pss(p: Any) -> int:
        # PSS, not RSS: workers forked from one forkserver share their imported code and data;
        # summing RSS would count those pages once per process.
        try:
            return int(p.memory_full_info().pss)
        except (AttributeError, OSError):
            return int(p.memory_info().rss)

    def children_cpu(self) -> float:
        """CPU seconds used by child processes (pool workers, forkserver), as last sampled."""
        return round(sum(self.cpu.values()), 2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak, 1)


# -- config for our pipeline -------------------------------------------------------------------
def write_config(work: Path, corpus: Path, port: int, concurrency: int = 16) -> Path:
    """feeds.yaml for the corpus on the loopback server; topics copied from the shipped config."""
    shipped = yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    data = {
        "title": "Bench",
        "base_url": "https://bench.example.org/",
        "timezone": "UTC",
        "database": "state.db",
        "output_dir": "out",
        "sources": [
            {"name": f"feed{row['index']:05d}", "url": f"http://{row['host']}:{port}/{row['path']}"}
            for row in manifest["feeds"]
        ],
        "topics": shipped.get("topics", {}),
        "fetch": {"allow_private_addresses": True, "concurrency": concurrency, "timeout": 10, "connect_timeout": 5},
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / "feeds.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# -- stages ------------------------------------------------------------------------------------
def stage_baseline(a: dict[str, Any]) -> dict[str, Any]:
    """Bare feedparser.parse over every feed's bytes, one process, one after another."""
    import feedparser

    corpus = Path(a["corpus"])
    blobs = [p.read_bytes() for p in sorted((corpus / "feeds").iterdir())]
    t0 = time.perf_counter()
    n = 0
    for b in blobs:
        n += len(feedparser.parse(b).entries)
    return {"wall": time.perf_counter() - t0, "entries": n}


def stage_ours(a: dict[str, Any]) -> dict[str, Any]:
    """Our full refresh: fetch, parse, normalise, topics, store, dedupe, publish."""
    from aggregator.config import load_config
    from aggregator.pipeline import make_deps, refresh

    work = Path(a["work"])
    cfg_path = write_config(work, Path(a["corpus"]), a["port"], a.get("concurrency", 16))
    config = load_config(cfg_path)
    deps = make_deps(config)
    try:
        t0 = time.perf_counter()
        report = refresh(config, deps)
        wall = time.perf_counter() - t0
        stored = deps.store.count_entries()
    finally:
        deps.close()
    results = report.results
    return {
        "wall": wall,
        "entries": sum(r.new + r.updated + r.unchanged for r in results),
        "new": sum(r.new for r in results),
        "updated": sum(r.updated for r in results),
        "not_modified": sum(1 for r in results if r.not_modified),
        "parsed_sources": sum(1 for r in results if not r.not_modified and not r.failed),
        "failed": sum(1 for r in results if r.failed),
        "stored": stored,
    }


def stage_reader(a: dict[str, Any]) -> dict[str, Any]:
    """The peer: reader (lemon24/reader) updating the same feeds from the same server."""
    from reader import make_reader

    work = Path(a["work"])
    work.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(a["corpus"]) / "manifest.json").read_text(encoding="utf-8"))
    r = make_reader(str(work / "reader.sqlite"))
    try:
        for row in manifest["feeds"]:
            r.add_feed(f"http://{row['host']}:{a['port']}/{row['path']}", exist_ok=True)
        before = r.get_entry_counts().total
        t0 = time.perf_counter()
        # scheduled=False: poll every feed now (reader otherwise skips feeds updated < 1 h ago).
        r.update_feeds(workers=a.get("concurrency", 16), scheduled=False)
        wall = time.perf_counter() - t0
        total = r.get_entry_counts().total
        broken = sum(1 for f in r.get_feeds() if f.last_exception)
    finally:
        r.close()
    return {"wall": wall, "entries": total, "new": total - before, "failed": broken}


def _bench_entries(feeds: int, seed: int) -> tuple[list[Any], dict[str, str]]:
    """Entries as normalise would make them (ids, canonical URLs, hashes; no HTML, to save memory)
    for an in-memory corpus of `feeds` feeds, and entry id -> true story. First seen = published."""
    from aggregator._url import canonical_url
    from aggregator.normalize import content_hash, entry_id
    from aggregator.types import DatePrecision, Entry

    from .corpus import generate

    corpus = generate(feeds, seed=seed)
    entries = []
    truth: dict[str, str] = {}
    for spec in corpus.feeds:
        source = f"feed{spec.index:05d}"
        for rec in spec.records:
            text = rec.text()
            e = Entry(
                id=entry_id(source, "guid:" + rec.guid),
                source=source,
                title=rec.title,
                link=rec.link,
                canonical_url=canonical_url(rec.link),
                content_html="",
                content_text=text,
                summary=text[:200],
                content_hash=content_hash(rec.title, text),
                published=rec.published,
                updated=rec.published,
                date_precision=DatePrecision.MINUTE,
                first_seen=rec.published,
            )
            entries.append(e)
            truth[e.id] = rec.story
        spec.records.clear()  # drop the generator's copy as we go
    return entries, truth


def pair_scores(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against the ground-truth stories."""
    from collections import Counter

    def pairs(n: int) -> int:
        return n * (n - 1) // 2

    cells = Counter((predicted[k], truth[k]) for k in truth)
    tp = sum(pairs(n) for n in cells.values())
    pred = sum(pairs(n) for n in Counter(predicted[k] for k in truth).values())
    true = sum(pairs(n) for n in Counter(truth.values()).values())
    return (tp / pred if pred else 1.0), (tp / true if true else 1.0)


def stage_cluster(a: dict[str, Any]) -> dict[str, Any]:
    """Clustering alone over n entries, scored against the ground truth."""
    try:  # the dedupe helper's own benchmark entry point, when it exists
        from . import bench_dedupe  # type: ignore[attr-defined]

        own: Callable[..., dict[str, Any]] | None = getattr(bench_dedupe, "cluster_stage", None)
    except ImportError:
        own = None
    entries, truth = _bench_entries(a["feeds"], a.get("seed", 20261121))
    corpus_mb = _rss()[0]
    if own is not None:
        out = own(entries, truth)
        return {**out, "entries": len(entries), "corpus_rss_mb": corpus_mb, "via": "bench_dedupe.cluster_stage"}
    from aggregator.dedupe import build_stories

    t0 = time.perf_counter()
    stories, _links = build_stories(entries)
    wall = time.perf_counter() - t0
    predicted = {m.id: s.id for s in stories for m in s.members}
    precision, recall = pair_scores(predicted, truth)
    return {
        "wall": wall,
        "entries": len(entries),
        "stories": len(stories),
        "true_stories": len(set(truth.values())),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "ms_per_entry": round(wall * 1000 / len(entries), 4),
    }


def stage_publish(a: dict[str, Any]) -> dict[str, Any]:
    """Atom for n stories and a digest with 1,000 items, from the refreshed store."""
    from aggregator.config import load_config
    from aggregator.dedupe import build_stories
    from aggregator.digest import build_context, render_digest
    from aggregator.publish import build_atom

    work = Path(a["work"])
    config = load_config(work / "feeds.yaml")
    from aggregator.pipeline import make_deps

    deps = make_deps(config)
    try:
        stories, _ = build_stories(deps.store.iter_entries())
    finally:
        deps.close()
    stories = stories[: a.get("atom_entries", 10_000)]
    t0 = time.perf_counter()
    atom = build_atom(config, stories, clean_html=True)  # bodies from the store, as refresh publishes them
    t_atom = time.perf_counter() - t0
    # 1,000 digest items: every story is a candidate for one section, 1,000 per section at most.
    digest_topics = {k: v for k, v in config.topics.items()}
    tagged = [s for s in stories if s.topics]
    start = min(s.first_seen for s in stories if s.first_seen)
    end = max(s.first_seen for s in stories if s.first_seen)
    t1 = time.perf_counter()
    ctx = build_context(config, tagged, start=start, end=end, topics=sorted(digest_topics), max_per_topic=500)
    digest = render_digest(ctx, "{title}: {count} stories")
    t_digest = time.perf_counter() - t1
    return {
        "wall": t_atom + t_digest,
        "entries": len(stories),
        "atom_s": round(t_atom, 3),
        "atom_bytes": len(atom),
        "digest_s": round(t_digest, 3),
        "digest_items": sum(len(s.items) for s in ctx["sections"]),  # type: ignore[attr-defined]
        "digest_html_bytes": len(digest.html),
    }


STAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "baseline": stage_baseline,
    "ours": stage_ours,
    "reader": stage_reader,
    "cluster": stage_cluster,
    "publish": stage_publish,
}


def main() -> None:
    name, args = sys.argv[1], json.loads(sys.argv[2])
    sampler = TotalRss()
    cpu0 = time.process_time()
    out = STAGES[name](args)
    cpu = {"cpu_s": round(time.process_time() - cpu0, 2), "children_cpu_s": sampler.children_cpu()}
    # Other work on the machine skews parallel stages most: record the 1-minute load average.
    cpu["load"] = round(os.getloadavg()[0], 2)
    total = sampler.stop()
    # The sampler's own CPU is not the stage's: reported apart and taken out of cpu_s.
    cpu["sampler_cpu_s"] = round(sampler.own_cpu, 2)
    cpu["cpu_s"] = round(cpu["cpu_s"] - sampler.own_cpu, 2)
    rss, workers = _rss()
    print(
        json.dumps({"stage": name, **out, **cpu, "rss_mb": rss, "workers_rss_mb": workers, "total_rss_mb": total}),
        flush=True,
    )


if __name__ == "__main__":
    main()
