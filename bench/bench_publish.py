"""CPU cost of publishing and of the digest on a refreshed store, in one process, against lxml
serialising the same feed and (optionally) against the code of another git revision.

    .venv/bin/python -m bench.bench_publish --work DIR [--repeat 5] [--against main]

DIR is a work directory of `python -m bench.stages ours` (feeds.yaml and a refreshed state.db).
The stories are loaded once (`dedupe.build_stories`, not timed); then each row runs --repeat
interleaved rounds in CPU time (`time.process_time`), best and median, so that a busy machine
disturbs the ratios least:

  lxml tostring           `etree.tostring` of the finished feed.atom tree of every story: the baseline
  build_atom              every story as refresh renders them (`clean_html=True`, bench stage 5)
  build_atom, nh3 again   the same with the second nh3 pass on every body (`clean_html=False`)
  render_all              what refresh publishes (feed.atom, feed.json, topic feeds, index.html)
  digest                  `build_context` + `render_digest`, at most 500 items per topic

--against REV adds the same rows for aggregator/publish.py and digest.py as they are at REV (read
with `git show`; the rest of the package is this tree's) and checks that they give the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from lxml import etree

from aggregator import digest, publish
from aggregator.config import load_config
from aggregator.dedupe import build_stories
from aggregator.pipeline import make_deps

ROOT = Path(__file__).resolve().parent.parent


def _module_at(rev: str, name: str, tmp: Path) -> ModuleType:
    """aggregator/<name>.py as it is at `rev`, loaded as a sibling module of this tree's package."""
    source = subprocess.run(
        ["git", "show", f"{rev}:aggregator/{name}.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = tmp / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"aggregator._bench_{name}_at_rev", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    if hasattr(module, "TEMPLATE_DIR"):
        module.TEMPLATE_DIR = digest.TEMPLATE_DIR
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--against", help="git revision whose publish.py and digest.py to time as well")
    a = ap.parse_args()

    config = load_config(a.work / "feeds.yaml")
    deps = make_deps(config)
    try:
        stories, _ = build_stories(deps.store.iter_entries())
    finally:
        deps.close()
    tagged = [s for s in stories if s.topics]
    seen = [s.first_seen for s in stories if s.first_seen]
    start, end = min(seen), max(seen)

    def digest_with(m: Any) -> Callable[[], Any]:
        def run() -> Any:
            ctx = m.build_context(config, tagged, start=start, end=end, topics=sorted(config.topics), max_per_topic=500)
            d = m.render_digest(ctx, "{title}: {count} stories")
            return (d.subject, d.html, d.text)

        return run

    tree = etree.fromstring(publish.build_atom(config, stories, clean_html=True))
    rows: dict[str, Callable[[], Any]] = {
        "lxml tostring": lambda: etree.tostring(tree, pretty_print=True, xml_declaration=True, encoding="UTF-8"),
        "build_atom": lambda: publish.build_atom(config, stories, clean_html=True),
        "build_atom, nh3 again": lambda: publish.build_atom(config, stories),
        "render_all": lambda: publish.render_all(config, stories, clean_html=True),
        "digest": digest_with(digest),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if a.against:
            old_publish, old_digest = (
                _module_at(a.against, "publish", Path(tmp)),
                _module_at(a.against, "digest", Path(tmp)),
            )
            rows[f"build_atom @ {a.against}"] = lambda: old_publish.build_atom(config, stories)
            rows[f"render_all @ {a.against}"] = lambda: old_publish.render_all(config, stories)
            rows[f"digest @ {a.against}"] = digest_with(old_digest)
            for mine, theirs in (("build_atom", "build_atom"), ("render_all", "render_all"), ("digest", "digest")):
                assert rows[mine]() == rows[f"{theirs} @ {a.against}"](), f"{mine} differs from {a.against}"
        caches = [m._sanitise for m in (publish, *([old_publish] if a.against else [])) if hasattr(m, "_sanitise")]
        times: dict[str, list[float]] = {k: [] for k in rows}
        for _ in range(a.repeat):
            for name, fn in rows.items():
                for cache in caches:
                    cache.cache_clear()  # every round renders from scratch, as a fresh process would
                t0 = time.process_time()
                fn()
                times[name].append(time.process_time() - t0)
    base = min(times["lxml tostring"])
    print(f"{len(stories):,} stories, {a.repeat} rounds, CPU seconds (best, median) and best / lxml tostring")
    for name, ts in times.items():
        print(f"  {name:<28} {min(ts):7.3f} {statistics.median(ts):7.3f}  x{min(ts) / base:5.1f}")


if __name__ == "__main__":
    main()
