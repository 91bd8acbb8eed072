"""Local sources end to end: confinement, symlinks, file kinds, caps, bad files, escaping, ids."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import Config
from aggregator.errors import ConfigError, ParseError
from aggregator.local import MAX_FILE_BYTES, read_local
from aggregator.normalize import normalize
from aggregator.parse import parse_document
from aggregator.pipeline import make_deps, make_digest, refresh
from aggregator.types import Fetched, RunReport, SourceResult

from .conftest import FIXED_NOW, Clock

ZH_TZ = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")

HOSTILE = (
    "<script>alert('title')</script> Rare Earth Magnet Summit Opens\n\n"
    "Date: 2026-10-20\n\n"
    "The rare earth magnet summit opened with talks on neodymium supply. <img src=x onerror=alert(1)> "
    "Rare earth producers and universities signed three cooperation agreements.\n\n"
    'A link reading <a href="javascript:alert(document.cookie)">click</a> pointed at the rare earth programme.\n'
)


def _tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag of an HTML document with its attributes: what a browser would execute."""
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def run(cfg: Config, clock: Clock) -> RunReport:
    deps = make_deps(cfg, clock=clock)
    try:
        return refresh(cfg, deps)
    finally:
        deps.close()


def only(report: RunReport) -> SourceResult:
    assert len(report.results) == 1
    return report.results[0]


def test_glob_reads_every_kind_and_reports_unsupported(project: Path, write_config: Callable[..., Config]) -> None:
    pages = project / "pages"
    pages.mkdir()
    (pages / "a.txt").write_text(HOSTILE, encoding="utf-8")
    (pages / "b.html").write_text(
        "<html><head><title>Magnet Lab Opens</title></head><body><article><h1>Magnet Lab Opens</h1>"
        + "<p>The rare earth magnet laboratory opened its doors to industry partners this week. </p>" * 3
        + "</article></body></html>",
        encoding="utf-8",
    )
    (pages / "c.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title><link>https://example.org/</link>'
        "<item><title>One</title><link>https://example.org/1</link><description>First</description></item>"
        "<item><title>Two</title><link>https://example.org/2</link><description>Second</description></item>"
        "</channel></rss>",
        encoding="utf-8",
    )
    (pages / "d.pdf").write_bytes(b"%PDF-1.4")
    cfg = write_config(sources=[{"name": "pages", "path": "pages/*"}])
    docs, skipped = read_local(cfg, cfg.sources[0])
    assert [(d.location, d.kind) for d in docs] == [
        ("pages/a.txt", "article-text"),
        ("pages/b.html", "article-html"),
        ("pages/c.rss", "feed"),
    ]
    assert skipped == ["pages/d.pdf: unsupported file type '.pdf'"]
    result = only(run(cfg, Clock()))
    assert (result.new, result.failed) == (4, False)


def test_directory_path_reads_supported_files(project: Path, write_config: Callable[..., Config]) -> None:
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds"}])
    docs, skipped = read_local(cfg, cfg.sources[0])
    assert len(docs) == 5 and not skipped


def test_pattern_outside_the_config_dir_is_a_config_error(
    project: Path, write_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "x.txt").write_text(HOSTILE, encoding="utf-8")
    rel = os.path.relpath(outside, project)
    with pytest.raises(ConfigError, match=r"outside the config directory.*local_roots") as err:
        write_config(sources=[{"name": "out", "path": f"{rel}/*.txt"}])
    assert "sources[0].path" in str(err.value)
    with pytest.raises(ConfigError, match="outside the config directory"):
        write_config(sources=[{"name": "out", "path": str(outside / "x.txt")}])
    # Explicitly allowed: readable.
    cfg = write_config(sources=[{"name": "out", "path": f"{rel}/*.txt"}], local_roots=[str(outside)])
    docs, _ = read_local(cfg, cfg.sources[0])
    assert len(docs) == 1


def test_symlink_leading_out_is_refused(
    project: Path, write_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = tmp_path_factory.mktemp("secret") / "passwd.txt"
    secret.write_text("root:x:0:0:secret line that must never be published\n" * 3, encoding="utf-8")
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds/*.txt"}])
    # A link that appears after validation (a long-running daemon) is refused per file.
    (project / "seeds" / "zz_link.txt").symlink_to(secret)
    report = run(cfg, Clock())
    result = only(report)
    assert result.new == 5
    assert any("zz_link.txt" in s and "symlink leads outside" in s for s in result.skipped)
    atom = (cfg.output_path / "feed.atom").read_text(encoding="utf-8")
    assert "secret line" not in atom
    # At validation the link is an error, whether a glob matches it or the path names it.
    for path in ("seeds/*.txt", "seeds/zz_link.txt"):
        with pytest.raises(ConfigError, match=r"zz_link\.txt: symlink leads outside"):
            write_config(sources=[{"name": "seeds", "path": path}])


def test_symlink_inside_the_tree_is_fine_and_keeps_its_own_path(
    project: Path, write_config: Callable[..., Config]
) -> None:
    seed = sorted((project / "seeds").glob("*.txt"))[0]
    (project / "linked").mkdir()
    (project / "linked" / "copy.txt").symlink_to(seed)
    cfg = write_config(sources=[{"name": "linked", "path": "linked/*.txt"}])
    docs, skipped = read_local(cfg, cfg.sources[0])
    assert [d.location for d in docs] == ["linked/copy.txt"] and not skipped


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_read(
    project: Path, write_config: Callable[..., Config]
) -> None:
    seeds = project / "seeds"
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "blank.txt").write_text("\n  \n\t\n", encoding="utf-8")
    (seeds / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (seeds / "junk.txt").write_bytes(b"\x01\x02\x03\x04\x05\x06" * 300)
    with (seeds / "huge.txt").open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: no 5 MB write
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds/*.txt"}])
    started = time.monotonic()
    result = only(run(cfg, Clock()))
    assert time.monotonic() - started < 10
    assert result.new == 5 and not result.failed
    reasons = "\n".join(result.skipped)
    assert "seeds/empty.txt: empty file" in reasons
    assert "seeds/blank.txt: empty file" in reasons
    assert "seeds/binary.txt: binary file" in reasons
    assert "seeds/junk.txt: binary or undecodable" in reasons
    assert f"seeds/huge.txt: {MAX_FILE_BYTES + 1} bytes is over the {MAX_FILE_BYTES}-byte cap" in reasons


def test_gbk_page_is_decoded(project: Path, write_config: Callable[..., Config]) -> None:
    page = (
        "稀土产业学院揭牌成立\n\n发布时间：2026-05-20 09:00\n\n"
        + "学院由学校与稀土企业共建，重点培养稀土冶金人才。" * 4
    )
    (project / "seeds" / "gbk.txt").write_bytes(page.encode("gbk"))
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds/gbk.txt"}])
    deps = make_deps(cfg, clock=Clock())
    try:
        refresh(cfg, deps)
        (entry,) = list(deps.store.iter_entries())
    finally:
        deps.close()
    assert entry.title == "稀土产业学院揭牌成立" and entry.language == "zh"
    assert "重点培养稀土冶金人才" in entry.content_text


def test_text_that_looks_like_html_stays_text_in_feed_and_digest(
    project: Path, write_config: Callable[..., Config], tmp_path: Path
) -> None:
    (project / "seeds" / "hostile.txt").write_text(HOSTILE, encoding="utf-8")
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds/hostile.txt"}])
    clock = Clock()
    deps = make_deps(cfg, clock=clock)
    try:
        refresh(cfg, deps)
        digest = make_digest(cfg, deps, start=FIXED_NOW - timedelta(days=1), end=FIXED_NOW + timedelta(hours=1))
    finally:
        deps.close()
    raw = (cfg.output_path / "feed.atom").read_text(encoding="utf-8")
    for tag in ("<script", "<img", "<a href"):  # as XML markup: the text is there only escaped
        assert tag not in raw, tag
    parsed = feedparser.parse(raw.encode("utf-8"))
    (entry,) = parsed.entries
    assert entry.title == "<script>alert('title')</script> Rare Earth Magnet Summit Opens"
    body = entry.content[0].value
    assert "&lt;img src=x onerror=alert(1)&gt;" in body and "<img" not in body
    assert "&lt;script&gt;" in digest.html and "<script" not in digest.html
    tags = _tags(digest.html)
    assert not [t for t in tags if t[0] in ("script", "iframe", "svg")]
    assert not [t for t in tags if any(k.startswith("on") or "javascript:" in (v or "") for k, v in t[1])]
    assert "&lt;img src=x onerror=alert(1)&gt;" in digest.html
    assert "<script>alert('title')</script> Rare Earth Magnet Summit Opens" in digest.text


def test_same_files_same_ids_and_an_edit_updates_the_entry(project: Path, write_config: Callable[..., Config]) -> None:
    (project / "seeds" / "hostile.txt").write_text(HOSTILE, encoding="utf-8")
    cfg = write_config(sources=[{"name": "seeds", "path": "seeds/*.txt"}])
    clock = Clock()
    deps = make_deps(cfg, clock=clock)
    try:
        refresh(cfg, deps)
        first = {e.location: e.id for e in deps.store.iter_entries()}
        clock.now += timedelta(hours=1)
        assert only(refresh(cfg, deps)).unchanged == 6
        page = project / "seeds" / "hostile.txt"
        page.write_text(HOSTILE.replace("three cooperation", "four cooperation"), encoding="utf-8")
        clock.now += timedelta(hours=1)
        result = only(refresh(cfg, deps))
        after = {e.location: e for e in deps.store.iter_entries()}
    finally:
        deps.close()
    assert (result.new, result.updated) == (0, 1)
    assert {loc: e.id for loc, e in after.items()} == first
    assert "four cooperation" in after["seeds/hostile.txt"].content_text


# -- properties: any bytes give an entry or a per-file skip reason, quickly -------------------------

_PIECES = [
    "Rare Earth Lab Opens",
    "稀土永磁产业博览会开幕",
    "Date: 2025-11-04",
    "2026年03月10日 15:38  点击:[]",
    "On August 16, the forum opened.",
    "上一条: x 下一条: y",
    "Copyright © 2025 Site",
    "<script>alert(1)</script>",
    "1.jpgCaption here",
    "• Date",
    "March 18,2024",
    "Editor: Sun Lirong",
    "Home > News",
    "",
    "a" * 300,
    "| | | |",
    "：：：",
]


def _parse_or_skip(data: bytes, kind: str) -> None:
    doc = Fetched(source="prop", location="p.txt", content=data, kind=kind)
    started = time.monotonic()
    try:
        items, _ = parse_document(doc, tz=ZH_TZ, fetched_at=FIXED_NOW)
    except ParseError as exc:
        assert str(exc)  # a reason the user can read
        return
    finally:
        assert time.monotonic() - started < 5
    for item in items:
        entry = normalize(item, fetched_at=FIXED_NOW)
        assert entry.title
        assert entry.published is None or entry.published <= FIXED_NOW
        assert "<script" not in entry.content_html


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _parse_or_skip(data, "article-text")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000), st.sampled_from(["utf-8", "gb18030", "utf-16"]))
def test_arbitrary_text_in_any_encoding_never_crashes(text: str, encoding: str) -> None:
    _parse_or_skip(text.encode(encoding, errors="replace"), "article-text")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.sampled_from(["\n", "\r\n", "\n\n", "  "]))
def test_page_shaped_text_never_crashes(pieces: list[str], sep: str) -> None:
    _parse_or_skip(sep.join(pieces).encode("utf-8"), "article-text")


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_html_or_feed_never_crash(data: bytes) -> None:
    _parse_or_skip(data, "article-html")
    with contextlib.suppress(ParseError):
        parse_document(Fetched(source="p", location="p.xml", content=data, kind="feed"), tz=ZH_TZ, fetched_at=FIXED_NOW)


@pytest.mark.parametrize(
    "text",
    [
        "a, " * 200_000,  # one enormous line of commas
        ("Home > News > " * 50 + "\n") * 500,
        "上一条:" + "下一条:" * 100_000,
        ("2026-05-20 " * 10_000 + "\n") * 10,
        "<" * 500_000,
        ("On August 16, " + "2023 " * 1000 + "\n") * 100,
    ],
    ids=["commas", "breadcrumbs", "prevnext", "dates", "brackets", "datelines"],
)
def test_pathological_pages_finish_quickly(text: str) -> None:
    _parse_or_skip(text.encode("utf-8"), "article-text")


def test_cli_show_prints_precision_and_provenance(project: Path) -> None:
    from click.testing import CliRunner

    from aggregator.cli import main
    from aggregator.config import load_config
    from aggregator.store import SQLiteStore

    cfg_path = str(project / "feeds.yaml")
    runner = CliRunner()
    assert runner.invoke(main, ["-c", cfg_path, "refresh"]).exit_code == 0
    store = SQLiteStore(load_config(cfg_path).database_path)
    try:
        by_loc = {e.location: e.id for e in store.iter_entries()}
    finally:
        store.close()
    r = runner.invoke(main, ["-c", cfg_path, "show", by_loc["seeds/002_875f3f18361b3df2.txt"][:10]])
    assert r.exit_code == 0, r.output
    assert "title:      Mr. ZHANG Enhui, Secretary of CPC Changchun Municipal Committee" in r.output
    assert "published:  2024-03-18 (Asia/Shanghai) [precision: day]" in r.output
    assert "date from:  labelled field 'Date' with value 'March 18,2024'" in r.output
    assert "authors:    Draft: DONG Xuanxi; Revision: CHENG Mingyuan" in r.output
    r = runner.invoke(main, ["-c", cfg_path, "show", by_loc["seeds/000_640e61b7f11d797e.txt"]])
    assert "published:  2026-03-10 15:38 Asia/Shanghai (2026-03-10T07:38:00+00:00) [precision: minute]" in r.output
    r = runner.invoke(main, ["-c", cfg_path, "show", "--json", by_loc["seeds/003_11ee882ffc5a69eb.txt"]])
    data = __import__("json").loads(r.output)
    assert data["precision"] == "inferred-year" and "2023" in data["date_provenance"]
    r = runner.invoke(main, ["-c", cfg_path, "show", "--file", str(project / "seeds" / "004_e804aa388569de02.txt")])
    assert r.exit_code == 0 and "published:  unknown [precision: none]" in r.output
    assert "no year" in r.output
    r = runner.invoke(main, ["-c", cfg_path, "show", "nope"])
    assert r.exit_code == 1 and "0 entries match" in r.output
    r = runner.invoke(main, ["-c", cfg_path, "show"])
    assert r.exit_code == 2


def test_per_source_overrides(project: Path, write_config: Callable[..., Config]) -> None:
    seed = "seeds/000_640e61b7f11d797e.txt"
    cfg = write_config(
        sources=[
            {
                "name": "jxust",
                "path": seed,
                "site_name": "JXUST English News",
                "timezone": "UTC",
                "boilerplate": ["^JXUST Party Secretary"],
            }
        ]
    )
    deps = make_deps(cfg, clock=Clock())
    try:
        refresh(cfg, deps)
        (entry,) = list(deps.store.iter_entries())
    finally:
        deps.close()
    assert entry.site_name == "JXUST English News"
    assert entry.published is not None and entry.published.isoformat() == "2026-03-10T15:38:00+00:00"
    assert "Liu Zuwen" not in entry.content_text and "Secretary Chen" in entry.content_text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("稀土永磁产业博览会在包头开幕，三百余家企业参展。", "gbk"),
        ("稀土永磁產業博覽會在包頭開幕", "big5"),
        ("Cafés and “magnet makers” in Zürich expand rare earth recycling.", "cp1252"),
        ("Magnet makers in Zürich say prices are stable, and the café is full.", "latin-1"),
    ],
)
def test_non_utf8_pages_decode(text: str, encoding: str) -> None:
    from aggregator.parse import decode_text

    data = (text + "\n") * 5
    decoded = decode_text(data.encode(encoding, errors="replace"))
    assert decoded == data


_TOKENS = [
    "back", "to", "top", "print", "close", "关闭", "打印", "|", "/", " ", "  ", "【", "】", "share", "facebook", "a",
    "font", "size", "大", "中", "小", "home", ">", "首页", "上一条", ":", "：", "2024", "-", "03", "18", "年", "月", "日",
    "By", "Editor", "编辑", "copyright", "©", "All rights reserved", "On", "August", "16", "th", ",", ".", "1.jpg",
    "Prof", "views", "点击", "(", "（", "）", "Date", "T", "12:00", "+08:00", "www.", ".com", "@", "related", "来源",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=150))
def test_line_patterns_stay_linear(tokens: list[str]) -> None:
    """Each line is matched by dozens of patterns: none may backtrack catastrophically."""
    line = "".join(tokens)
    _parse_or_skip(((line + "\n") * 3 + "Title Of The Page Here\n\n" + line).encode("utf-8"), "article-text")
