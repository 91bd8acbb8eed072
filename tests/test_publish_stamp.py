"""An unchanged refresh keeps the published feeds; any change to what they show republishes them."""

from __future__ import annotations

from pathlib import Path

from aggregator.config import Config
from aggregator.pipeline import make_deps, refresh

from .conftest import SEEDS, Clock


def run(config: Config, clock: Clock) -> tuple[str, ...]:
    deps = make_deps(config, clock=clock)
    try:
        return refresh(config, deps).outputs
    finally:
        deps.close()


def test_unchanged_refresh_keeps_outputs_and_changes_republish(project: Path, write_config, clock: Clock) -> None:
    config = write_config()
    first = run(config, clock)
    feed = config.output_path / "feed.atom"
    before = feed.read_bytes()
    stat = feed.stat()
    assert run(config, clock) == first
    assert feed.stat().st_mtime_ns == stat.st_mtime_ns

    # A deleted or edited output is written again.
    feed.unlink()
    assert run(config, clock) == first and feed.read_bytes() == before
    feed.write_bytes(before + b"\n")
    run(config, clock)
    assert feed.read_bytes() == before

    # A config change shows up in the feed.
    config = write_config(title="Renamed Aggregator")
    run(config, clock)
    assert b"Renamed Aggregator" in feed.read_bytes()

    # So does a new entry (here a second copy of a seed article: its story gains a member).
    renamed = feed.read_bytes()
    seed = sorted(SEEDS.glob("*.txt"))[0]
    (project / "seeds" / "zz-copy.txt").write_text(seed.read_text(encoding="utf-8") + "\n补充。\n", encoding="utf-8")
    run(config, clock)
    assert feed.read_bytes() != renamed

    # An entry changed in place is republished too, even at the same clock time.
    grown = feed.read_bytes()
    copy = project / "seeds" / "zz-copy.txt"
    copy.write_text(copy.read_text(encoding="utf-8").replace("Baotou", "Baotou City"), encoding="utf-8")
    run(config, clock)
    assert feed.read_bytes() != grown
