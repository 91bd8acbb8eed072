"""End to end over the seeds: refresh -> store -> feeds -> digest, with a fixed clock."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import feedparser
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config, load_config
from aggregator.pipeline import Deps, make_deps, refresh

from .conftest import Clock


def test_refresh_writes_feed_with_seed_articles(config: Config, deps: Deps) -> None:
    report = refresh(config, deps)
    assert [r.new for r in report.results] == [5]
    raw = (config.output_path / "feed.atom").read_bytes()
    parsed = feedparser.parse(raw)
    assert parsed.bozo == 0
    titles = {e.title for e in parsed.entries}
    assert "JXUST Establishes Three Excellence Innovation Centers in Rare Earth and Critical Minerals" in titles
    assert any(link.rel == "self" for link in parsed.feed.links)
    assert parsed.feed.author
    for e in parsed.entries:
        assert e.id and e.title and e.updated and e.content[0].value
        assert e.tags, f"{e.title} has no topic category"
        body = e.content[0].value
        for junk in ("上一条", "下一条", "Copyright", "关闭", "Reprint Statement", "Link to this article"):
            assert junk not in body, f"{junk!r} left in {e.title}"


def test_refresh_twice_is_idempotent_and_byte_identical(config: Config, deps: Deps, clock: Clock) -> None:
    refresh(config, deps)
    first = (config.output_path / "feed.atom").read_bytes()
    clock.now = clock.now.replace(hour=clock.now.hour + 1)
    report = refresh(config, deps)
    assert [(r.new, r.updated, r.unchanged) for r in report.results] == [(0, 0, 5)]
    assert (config.output_path / "feed.atom").read_bytes() == first
    assert deps.store.count_entries() == 5


def test_ids_stable_across_machines(config: Config, deps: Deps, tmp_path_factory, project: Path) -> None:
    """The same files in another directory give the same entry and Atom ids."""
    import shutil

    refresh(config, deps)
    other = tmp_path_factory.mktemp("other")
    shutil.copytree(project / "seeds", other / "seeds")
    shutil.copy(project / "feeds.yaml", other / "feeds.yaml")
    cfg2 = load_config(other / "feeds.yaml")
    d2 = make_deps(cfg2, clock=Clock())
    try:
        refresh(cfg2, d2)
    finally:
        d2.close()
    ids1 = {e.id for e in feedparser.parse((config.output_path / "feed.atom").read_bytes()).entries}
    ids2 = {e.id for e in feedparser.parse((cfg2.output_path / "feed.atom").read_bytes()).entries}
    assert ids1 == ids2 and len(ids1) == 5


def test_edited_file_updates_same_entry(config: Config, deps: Deps, project: Path) -> None:
    refresh(config, deps)
    seed = sorted((project / "seeds").glob("*.txt"))[1]
    seed.write_text(seed.read_text(encoding="utf-8").replace("three Excellence", "3 Excellence"), encoding="utf-8")
    report = refresh(config, deps)
    assert (report.results[0].new, report.results[0].updated) == (0, 1)
    assert deps.store.count_entries() == 5


def test_failing_remote_source_is_reported_and_others_processed(write_config, clock: Clock, httpserver) -> None:
    httpserver.expect_request("/broken.xml").respond_with_data("oops", status=500)
    cfg = write_config(
        sources=[
            {"name": "seeds", "path": "seeds/*.txt"},
            {"name": "broken", "url": httpserver.url_for("/broken.xml")},
        ]
    )
    d = make_deps(cfg, clock=clock)
    try:
        report = refresh(cfg, d)
    finally:
        d.close()
    by = {r.source: r for r in report.results}
    assert by["seeds"].new == 5 and not by["seeds"].failed
    assert by["broken"].failed and "500" in (by["broken"].error or "")
    assert (cfg.output_path / "feed.atom").exists()


def test_cli_refresh_and_digest(project: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = str(project / "feeds.yaml")
    r = runner.invoke(main, ["-c", cfg, "refresh"])
    assert r.exit_code == 0, r.output
    assert "seeds" in r.output and "5" in r.output
    out = tmp_path / "digest-out"
    r = runner.invoke(main, ["-c", cfg, "digest", "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = (out / "digest.html").read_text(encoding="utf-8")
    text = (out / "digest.txt").read_text(encoding="utf-8")
    assert "Rare earths" in html and "University–industry cooperation" in text
    msg = email.message_from_bytes((out / "digest.eml").read_bytes(), policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg["Message-ID"] and msg["Subject"] and msg["Date"]
    assert "JXUST Establishes Three Excellence" in msg.get_body(("plain",)).get_content()
