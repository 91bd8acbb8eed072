"""The benchmark runner (`make bench`): every figure from one run, on the same corpus.

    python -m bench.run                   # 200 feeds (~10k entries) + 2,000-feed re-poll
    python -m bench.run --feeds 20 --repoll-feeds 0 --cluster 2000   # a quick look

Each stage runs in its own process (bench/stages.py), so peak RSS is per stage; the corpus is
served by bench/server.py in another process, so its work does not count against either client.
Prints a table and writes bench/results/latest.json (+ latest.md, the table as Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .corpus import load_manifest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable

_ENSURE = (
    "import json, sys; from pathlib import Path; from bench.corpus import ensure; "
    "ensure(Path(sys.argv[1]), int(sys.argv[2]), "
    "**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[3]).items()})"
)


def ensure(out: Path, feeds: int, **kwargs: Any) -> dict[str, object]:
    """The corpus (generated if missing) in a child process: generating 100k entries here would
    grow this runner to ~450 MB, and Linux carries a parent's peak RSS into every stage it starts
    (ru_maxrss survives fork + exec), which then reports the runner's peak as its own."""
    args = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})
    subprocess.run([PY, "-c", _ENSURE, str(out), str(feeds), args], cwd=ROOT, check=True)
    return load_manifest(out)


@contextmanager
def serve(corpus: Path, latency_ms: float, timeout: float = 1800, faults: tuple[str, ...] = ()) -> Iterator[int]:
    """Start bench.server in a subprocess; yield its port; stop it afterwards."""
    proc = subprocess.Popen(
        [PY, "-m", "bench.server", str(corpus), "--latency-ms", str(latency_ms), "--timeout", str(timeout), *faults],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("bench server did not start")
        yield int(json.loads(line)["port"])
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def stage(name: str, **args: Any) -> dict[str, Any]:
    """Run one stage in a fresh interpreter and return its JSON result."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [PY, "-m", "bench.stages", name, json.dumps(args)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise RuntimeError(f"stage {name} failed (exit {out.returncode})")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - t0, 2)
    return result


def _fmt_row(label: str, r: dict[str, Any], extra: str = "") -> list[str]:
    wall = r["wall"]
    n = r.get("entries", 0)
    rate = f"{n / wall:,.0f}" if wall and n else "-"
    rss = f"{r['rss_mb']:.0f}"
    if r.get("total_rss_mb", 0) > r["rss_mb"] + 5:
        # With pool workers: the sampled peak of the whole process tree as well.
        rss += f" (all processes {r['total_rss_mb']:.0f} PSS)"
    cpu = r.get("cpu_s", 0) + r.get("children_cpu_s", 0)
    load = f"{r['load']:.1f}" if "load" in r else "-"
    return [label, f"{wall:.2f}", f"{cpu:.1f}" if cpu else "-", f"{n:,}", rate, rss, load, extra]


def table(rows: list[list[str]]) -> str:
    head = ["stage", "wall s", "CPU s", "entries", "entries/s", "peak RSS MB", "load", "notes"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200, help="feeds in the main corpus (~50 entries each)")
    ap.add_argument("--repoll-feeds", type=int, default=2000, help="feeds for the unchanged re-poll (0: skip)")
    ap.add_argument(
        "--repoll-entries",
        default="40,60",
        help="entries per feed in the re-poll corpus (min,max); 2,000 x ~50 is also the 100k-entry memory check",
    )
    ap.add_argument("--cluster", default="10000,100000", help="entry counts for clustering alone")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--skip-reader", action="store_true")
    ap.add_argument(
        "--faults", default="0.03,0.02,0.01", help="shares of feeds answering 500, cut short, stalled ('' to skip)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="baseline / first-refresh pairs (median kept)")
    ap.add_argument("--work", type=Path, default=HERE / "results" / "work")
    a = ap.parse_args()

    corpus_root = HERE / "corpus"
    main_corpus = corpus_root / f"c{a.feeds}"
    m = ensure(main_corpus, a.feeds)
    print(f"corpus: {len(m['feeds'])} feeds, {m['entries']:,} entries, {m['bytes'] / 1e6:.1f} MB", flush=True)  # type: ignore[arg-type]
    shutil.rmtree(a.work, ignore_errors=True)
    w = a.work
    conc = a.concurrency
    res: dict[str, dict[str, Any]] = {}

    def run(key: str, name: str, **args: Any) -> dict[str, Any]:
        print(f"  {key} ...", end=" ", flush=True)
        r = stage(name, **args)
        print(f"{r['wall']:.2f} s", flush=True)
        res[key] = r
        return r

    c = str(main_corpus)
    with serve(main_corpus, 0) as port:
        # The headline ratio: baseline and our first refresh alternate `repeat` times; medians kept.
        pairs: dict[str, list[dict[str, Any]]] = {"baseline": [], "ours_first_0ms": []}
        for _ in range(a.repeat):
            pairs["baseline"].append(run("baseline", "baseline", corpus=c))
            shutil.rmtree(w / "ours0", ignore_errors=True)
            pairs["ours_first_0ms"].append(
                run("ours_first_0ms", "ours", corpus=c, work=str(w / "ours0"), port=port, concurrency=conc)
            )
        for key, runs in pairs.items():
            runs.sort(key=lambda r: r["wall"])
            res[key] = {**runs[len(runs) // 2], "runs": [r["wall"] for r in runs]}
        run("ours_rerun_0ms", "ours", corpus=c, work=str(w / "ours0"), port=port, concurrency=conc)
        if not a.skip_reader:
            run("reader_first_0ms", "reader", corpus=c, work=str(w / "reader0"), port=port, concurrency=conc)
    with serve(main_corpus, a.latency_ms) as port:
        run("ours_first_lat", "ours", corpus=c, work=str(w / "ours50"), port=port, concurrency=conc)
        run("ours_rerun_lat", "ours", corpus=c, work=str(w / "ours50"), port=port, concurrency=conc)
        if not a.skip_reader:
            run("reader_first_lat", "reader", corpus=c, work=str(w / "reader50"), port=port, concurrency=conc)
            run("reader_rerun_lat", "reader", corpus=c, work=str(w / "reader50"), port=port, concurrency=conc)
    if a.faults:
        e500, trunc, stall = (float(x) for x in a.faults.split(","))
        faults = ("--error500", str(e500), "--truncate", str(trunc), "--stall", str(stall))
        with serve(main_corpus, a.latency_ms, faults=faults) as port:
            run("ours_faults", "ours", corpus=c, work=str(w / "faults"), port=port, concurrency=conc)
    run("publish", "publish", work=str(w / "ours0"), atom_entries=10_000)
    for n in [int(x) for x in a.cluster.split(",") if x]:
        run(f"cluster_{n}", "cluster", feeds=max(1, round(n / 50)))
    if a.repoll_feeds:
        lo, hi = (int(x) for x in a.repoll_entries.split(","))
        rp_corpus = corpus_root / f"r{a.repoll_feeds}-{lo}-{hi}"
        ensure(rp_corpus, a.repoll_feeds, entries=(lo, hi))
        with serve(rp_corpus, a.latency_ms) as port:
            rc = str(rp_corpus)
            run("repoll_first", "ours", corpus=rc, work=str(w / "repoll"), port=port, concurrency=conc)
            run("repoll_rerun", "ours", corpus=rc, work=str(w / "repoll"), port=port, concurrency=conc)

    report = summarize(res, a, m)
    print()
    print(report)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    meta = {
        "commit": commit.stdout.strip(),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "corpus": {"feeds": len(m["feeds"]), "entries": m["entries"], "bytes": m["bytes"]},  # type: ignore[arg-type]
    }
    (out / "latest.json").write_text(json.dumps({"meta": meta, "results": res}, indent=1), encoding="utf-8")
    head = f"Commit {meta['commit']}, {meta['finished']}, {meta['cpus']} CPUs, Python {meta['python']}.\n\n"
    (out / "latest.md").write_text(head + report + "\n", encoding="utf-8")


def summarize(res: dict[str, dict[str, Any]], a: argparse.Namespace, m: dict[str, Any]) -> str:
    lat = f"{a.latency_ms:g} ms"
    rows: list[list[str]] = []
    labels = {
        "baseline": "1. bare feedparser.parse, 1 process",
        "ours_first_0ms": "2. ours: first refresh, 0 ms",
        "ours_rerun_0ms": "2. ours: unchanged re-run, 0 ms",
        "reader_first_0ms": "3. reader: first update, 0 ms",
        "ours_first_lat": f"2. ours: first refresh, {lat}",
        "ours_rerun_lat": f"2. ours: unchanged re-run, {lat}",
        "reader_first_lat": f"3. reader: first update, {lat}",
        "reader_rerun_lat": f"3. reader: unchanged update, {lat}",
        "publish": "5. Atom (10k) + digest (1k items)",
        "ours_faults": f"ours: first refresh with faults, {lat}",
        "repoll_first": f"ours: first refresh, {a.repoll_feeds} feeds, {lat}",
        "repoll_rerun": f"ours: unchanged re-poll, {a.repoll_feeds} feeds, {lat}",
    }
    for key, r in res.items():
        if key.startswith("cluster_"):
            label = f"4. clustering alone, {r['entries']:,} entries"
            extra = f"{r.get('ms_per_entry', 0):.3f} ms/entry, P={r.get('precision')}, R={r.get('recall')}"
        else:
            label = labels.get(key, key)
            extra = ""
            if key.startswith("ours"):
                extra = f"{r.get('not_modified', 0)} not modified, {r.get('parsed_sources', 0)} parsed"
                if r.get("failed"):
                    extra += f", {r['failed']} failed"
            if key == "publish":
                extra = f"Atom {r['atom_s']:.2f} s, digest {r['digest_s']:.2f} s ({r['digest_items']} items)"
            if key == "repoll_rerun":
                ideal = a.repoll_feeds * a.latency_ms / 1000 / a.concurrency
                extra += f"; ideal {ideal:.2f} s -> {r['wall'] / ideal:.2f} x ideal"
        if len(r.get("runs", [])) > 1:
            extra = (extra + "; " if extra else "") + "median of " + ", ".join(f"{x:.2f}" for x in r["runs"])
        rows.append(_fmt_row(label, r, extra))
    out = [table(rows), ""]

    def ratio(num: str, den: str, target: str) -> None:
        if num in res and den in res:
            v = res[num]["wall"] / res[den]["wall"]
            out.append(f"- {labels.get(num, num)} ÷ {labels.get(den, den)}: **{v:.2f}** (target {target})")

    out.append("Ratios (wall time):")
    ratio("ours_first_0ms", "baseline", "≤ 0.7")
    ratio("ours_first_lat", "reader_first_lat", "≤ 0.6")
    ratio("ours_rerun_lat", "reader_rerun_lat", "≤ 1.0")
    ratio("ours_first_0ms", "reader_first_0ms", "-")
    if "publish" in res and "ours_first_0ms" in res:
        share = res["publish"]["wall"] / res["ours_first_0ms"]["wall"]
        out.append(f"- Atom + digest ÷ first refresh (0 ms): **{share:.1%}** (target ≤ 5 %)")
    for key in ("ours_first_0ms", "repoll_first"):
        if key in res:
            r = res[key]
            out.append(
                f"- peak RSS, first refresh of {r['entries']:,} entries: main process **{r['rss_mb']:.0f} MB**,"
                f" all processes {r.get('total_rss_mb', 0):.0f} MB PSS (target ≤ 150 MB at 10k, ≤ 300 MB at 100k)"
            )
    cl = sorted((r["entries"], r["wall"]) for k, r in res.items() if k.startswith("cluster_"))
    if len(cl) >= 2:
        (n1, t1), (n2, t2) = cl[0], cl[-1]
        out.append(
            f"- clustering growth {n1:,} -> {n2:,} entries: time x{t2 / t1:.1f} for x{n2 / n1:.0f} entries"
            f" ({t2 * 1000 / n2:.3f} ms/entry at {n2:,}; target ≤ 0.3, linear)"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
