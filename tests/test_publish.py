"""Atom and JSON Feed output: structure, safety, provenance, round-trip, determinism, window."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import subprocess
import sys
from calendar import timegm
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import lxml.html
from lxml import etree
from pytest_httpserver import HTTPServer

from aggregator.config import Config, FeedOutputConfig
from aggregator.dedupe import build_stories
from aggregator.jsonfeed import build_json_feed
from aggregator.pipeline import Deps, refresh
from aggregator.publish import (
    build_atom,
    entry_updated,
    publish_all,
    render_all,
    select_window,
    source_info,
    story_uri,
)
from aggregator.types import DatePrecision, Entry, FeedMeta, Story

from .conftest import Clock

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
URI = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$", re.I)
FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "frame", "frameset", "applet", "base", "form", "style", "svg"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "background", "poster", "srcset", "data"}


def make_entry(n: int, **changes: object) -> Entry:
    """A remote-feed entry `n` hours after T0; `changes` override any field."""
    when = T0 + timedelta(hours=n)
    base = Entry(
        id=f"entry{n:04d}",
        source="mining",
        title=f"Rare earth story {n}",
        link=f"https://mining.example.com/news/{n}",
        canonical_url=f"https://mining.example.com/news/{n}",
        content_html=f"<p>Body of story {n} about <strong>rare earths</strong>.</p>",
        content_text=f"Body of story {n} about rare earths.",
        summary=f"Summary {n}",
        content_hash=f"hash{n}",
        published=when,
        updated=when,
        date_precision=DatePrecision.MINUTE,
        authors=(f"Reporter {n}",),
        site_name="Mining Example",
        site_domain="mining.example.com",
        language="en",
        location="https://mining.example.com/feed/",
        feed=FeedMeta(
            id="https://mining.example.com/feed/",
            title="Mining Example: rare earths",
            link="https://mining.example.com/",
            updated=T0 + timedelta(days=30),
        ),
        topics=("rare-earth",),
        first_seen=when,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def local_entry(n: int, **changes: object) -> Entry:
    """A local article page: no feed, no URL, a site name and domain from the page."""
    fields: dict[str, object] = {
        "source": "seeds",
        "link": None,
        "canonical_url": None,
        "location": f"seeds/{n:03d}.txt",
        "feed": FeedMeta(),
        "site_name": "JiangXi University of Science and Technology",
        "site_domain": "en.jxust.edu.cn",
        "authors": (),
    }
    return make_entry(n, **{**fields, **changes})


HOSTILE_HTML = (
    '<p onclick="alert(1)">Click <a href="javascript:alert(2)">me</a> and '
    '<a href="JaVaScRiPt&#58;alert(3)">me too</a> <a href=" javascript:alert(4)">x</a></p>'
    "<script>alert(5)</script><iframe src='https://evil.example/'></iframe>"
    '<object data="evil.swf"></object><embed src="evil.swf">'
    '<img src="x" onerror="alert(6)"><img src="data:text/html;base64,PHNjcmlwdD4=">'
    '<svg onload="alert(7)"><circle/></svg><math><mi xlink:href="javascript:alert(8)">x</mi></math>'
    '<form action="javascript:alert(9)"><button formaction="javascript:1">b</button></form>'
    "<style>body{background:url(javascript:alert(10))}</style>"
    '<a href="vbscript:msgbox(1)">vb</a><p style="x:expression(alert(11))">css</p>'
    '<a href="/relative/path">relative</a> <img src="img/pic.png"> ]]> &lt;escaped&gt;'
)


def hostile_entry(n: int) -> Entry:
    return make_entry(
        n,
        title="Hostile <script>alert('t')</script> title \x00\x07 with control chars",
        content_html=HOSTILE_HTML,
        summary="<b>not markup</b> in a text summary",
        authors=("Eve <eve@evil.example>",),
        link="https://evil.example/articles/1",
        language="en US; DROP TABLE",
    )


def stories_of(entries: Iterable[Entry]) -> list[Story]:
    """One story per entry, so these tests do not depend on how dedupe clusters."""
    return [Story(id=e.id, primary=e) for e in entries]


def mixed_stories() -> list[Story]:
    """Remote, local, hostile, odd links, another language, and a story with also-reported-by."""
    entries = [make_entry(i) for i in range(5)]
    entries.append(
        local_entry(6, title="JXUST founds rare earth centres", topics=("rare-earth", "university-industry"))
    )
    entries.append(local_entry(7, site_domain=None, site_name=None, published=None, updated=None))
    entries.append(hostile_entry(8))
    entries.append(make_entry(9, link="javascript:alert(1)", canonical_url=None, title="Bad link"))
    entries.append(make_entry(10, link="file:///etc/passwd", canonical_url=None, title="File link"))
    entries.append(make_entry(11, language="zh", title="稀土新闻", feed=FeedMeta(title="RSS without id or link")))
    # The same news from two sources: one story, one "also reported by".
    twin = make_entry(
        12,
        id="twin-b",
        source="wire",
        site_name="Wire Service",
        link="https://wire.example.net/story/12",
        feed=FeedMeta(id="urn:wire:feed", title="Wire", link="https://wire.example.net/"),
    )
    return [*stories_of(entries), Story(id="entry0012", primary=make_entry(12), others=(twin,))]


# -- the structural validator ---------------------------------------------------------------


def _is_http(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _parse_date(text: str | None) -> datetime:
    assert text and RFC3339.match(text), f"not an RFC 3339 date: {text!r}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_safe_html(fragment: str, where: str) -> None:
    """Parse with an HTML parser; fail on anything that could run."""
    if not fragment.strip():
        return
    for el in lxml.html.fragment_fromstring(fragment, create_parent="div").iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower().split("}")[-1]
        assert tag not in FORBIDDEN_TAGS, f"{where}: <{tag}> in content"
        for name, value in el.attrib.items():
            lname = name.lower()
            assert not lname.startswith("on"), f"{where}: event handler {name}= in content"
            assert lname != "style", f"{where}: style attribute in content"
            if lname in URL_ATTRS:
                squashed = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                assert not squashed.startswith(("javascript:", "vbscript:", "data:")), f"{where}: {name}={value!r}"
                assert _is_http(value) or squashed.startswith("mailto:"), f"{where}: {name}={value!r} not absolute"


def validate_atom(data: bytes) -> etree._Element:
    """Check an Atom document against RFC 4287's rules that matter to readers. Returns the root."""
    root = etree.fromstring(data)
    assert root.tag == f"{ATOM}feed"
    assert root.get(XML_LANG), "feed has no xml:lang"

    def one(parent: etree._Element, name: str, where: str) -> etree._Element:
        found = parent.findall(f"{ATOM}{name}")
        assert len(found) == 1, f"{where}: {len(found)} <{name}> elements"
        return found[0]

    assert URI.match(one(root, "id", "feed").text or ""), "feed id is not a URI"
    assert (one(root, "title", "feed").text or "").strip()
    assert one(root, "subtitle", "feed").text
    assert one(root, "generator", "feed").text
    feed_updated = _parse_date(one(root, "updated", "feed").text)
    feed_authors = root.findall(f"{ATOM}author")
    assert feed_authors and all(a.findtext(f"{ATOM}name") for a in feed_authors)
    rels = [ln.get("rel", "alternate") for ln in root.findall(f"{ATOM}link")]
    assert "self" in rels and "alternate" in rels
    for link in root.iter(f"{ATOM}link"):
        assert _is_http(link.get("href")), f"link not absolute http(s): {link.get('href')!r}"
    seen: set[str] = set()
    newest = None
    for i, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {i}"
        eid = one(entry, "id", where).text or ""
        assert URI.match(eid), f"{where}: id {eid!r} is not a URI"
        assert eid not in seen, f"duplicate id {eid}"
        seen.add(eid)
        title = one(entry, "title", where)
        assert title.get("type") == "text" and (title.text or "").strip()
        updated = _parse_date(one(entry, "updated", where).text)
        newest = max(newest or updated, updated)
        for pub in entry.findall(f"{ATOM}published"):
            _parse_date(pub.text)
        alternates = [
            (ln.get("type"), ln.get("hreflang"))
            for ln in entry.findall(f"{ATOM}link")
            if ln.get("rel", "alternate") == "alternate"
        ]
        assert len(alternates) == len(set(alternates)), f"{where}: repeated alternate links"
        for ln in entry.findall(f"{ATOM}link"):
            assert ln.get("rel") in ("alternate", "related"), f"{where}: link without a proper rel"
        content = one(entry, "content", where)
        assert content.get("type") == "html"
        assert_safe_html(content.text or "", where)
        summary = entry.find(f"{ATOM}summary")
        assert summary is not None and summary.get("type", "text") == "text"
        source = one(entry, "source", where)
        assert URI.match(one(source, "id", f"{where} source").text or "")
        assert one(source, "title", f"{where} source").text
        for up in source.findall(f"{ATOM}updated"):
            _parse_date(up.text)
        has_author = entry.find(f"{ATOM}author") is not None or source.find(f"{ATOM}author") is not None
        assert has_author, f"{where}: would be credited to the feed's author"
        for cat in entry.findall(f"{ATOM}category"):
            assert cat.get("term")
    if newest is not None:
        assert feed_updated == newest, "feed updated is not the newest entry's updated"
    return root


# -- structure and safety -------------------------------------------------------------------


def test_atom_is_structurally_valid_with_hostile_entries(config: Config) -> None:
    stories = mixed_stories()
    root = validate_atom(build_atom(config, stories))
    assert len(root.findall(f"{ATOM}entry")) == len(stories)


def test_hostile_input_is_neutralised_but_text_survives(config: Config) -> None:
    data = build_atom(config, stories_of([hostile_entry(8)]))
    root = validate_atom(data)
    entry = root.find(f"{ATOM}entry")
    assert entry is not None
    content = entry.findtext(f"{ATOM}content") or ""
    assert "Click" in content and "relative" in content
    # Relative URLs resolve against the article, not against us.
    assert 'href="https://evil.example/relative/path"' in content
    assert 'src="https://evil.example/articles/img/pic.png"' in content
    # The title is text: the markup in it stays visible characters, the control characters go.
    assert entry.findtext(f"{ATOM}title") == "Hostile <script>alert('t')</script> title  with control chars"
    assert entry.get(XML_LANG) is None  # a junk language tag is dropped, not published
    assert b"javascript:" not in data.lower()


def test_an_empty_title_still_makes_a_valid_entry(config: Config) -> None:
    root = validate_atom(build_atom(config, stories_of([make_entry(1, title="\x07 ")])))
    assert root.findtext(f"{ATOM}entry/{ATOM}title") == "(untitled)"


def test_character_references_xml_forbids_do_not_break_the_feed(config: Config) -> None:
    """nh3 decodes &#1; and &#xFFFE; into characters XML forbids: they are dropped, the feed builds."""
    e = make_entry(1, content_html="<p>one&#1;two&#xFFFE;three</p>")
    for clean_html in (False, True):
        root = validate_atom(build_atom(config, stories_of([e]), clean_html=clean_html))
        assert root.findtext(f"{ATOM}entry/{ATOM}content") == "<p>onetwothree</p>"
    item = json.loads(build_json_feed(config, stories_of([e])))["items"][0]
    assert item["content_html"] == "<p>onetwothree</p>"


def test_relative_urls_are_dropped_without_an_article_url(config: Config) -> None:
    e = local_entry(1, content_html='<p><a href="/x">x</a><img src="y.png"></p>')
    content = validate_atom(build_atom(config, stories_of([e]))).findtext(f"{ATOM}entry/{ATOM}content") or ""
    assert "/x" not in content and "y.png" not in content and ">x</a>" in content


def test_feed_metadata(config: Config) -> None:
    root = validate_atom(build_atom(config, mixed_stories()))
    assert root.findtext(f"{ATOM}id") == config.base_url + "feed.atom"
    links = {ln.get("rel"): ln for ln in root.findall(f"{ATOM}link")}
    assert links["self"].get("href") == config.base_url + "feed.atom"
    assert links["self"].get("type") == "application/atom+xml"
    assert links["alternate"].get("href") == config.base_url
    assert root.findtext(f"{ATOM}title") == config.title
    assert root.findtext(f"{ATOM}author/{ATOM}name") == config.author


def test_empty_feed_is_valid_and_stable(config: Config) -> None:
    data = build_atom(config, [])
    validate_atom(data)
    assert b"<updated>1970-01-01T00:00:00+00:00</updated>" in data
    assert data == build_atom(config, [])


def test_entry_fields(config: Config) -> None:
    stories = mixed_stories()
    root = validate_atom(build_atom(config, stories))
    by_id = {e.findtext(f"{ATOM}id"): e for e in root.findall(f"{ATOM}entry")}
    for story in stories:
        p = story.primary
        el = by_id[story_uri(config, story.id)]
        assert el.findtext(f"{ATOM}updated") == entry_updated(p).isoformat()
        pub = el.findtext(f"{ATOM}published")
        assert pub == (p.published.isoformat() if p.published else None)  # published only when known
        alt = [ln.get("href") for ln in el.findall(f"{ATOM}link") if ln.get("rel") == "alternate"]
        assert alt == ([p.link] if p.link and p.link.startswith("https://") else [])
        assert [a.findtext(f"{ATOM}name") for a in el.findall(f"{ATOM}author")] == list(p.authors)
        assert sorted(c.get("term") for c in el.findall(f"{ATOM}category")) == sorted(story.topics)
        assert el.get(XML_LANG) == ({"en": "en", "zh": "zh"}.get(p.language or ""))


def test_also_reported_by_is_a_related_link(config: Config) -> None:
    stories = mixed_stories()
    twin = next(s for s in stories if s.others)
    root = validate_atom(build_atom(config, stories))
    el = next(e for e in root.findall(f"{ATOM}entry") if e.findtext(f"{ATOM}id") == story_uri(config, twin.id))
    related = [ln for ln in el.findall(f"{ATOM}link") if ln.get("rel") == "related"]
    assert [(ln.get("href"), ln.get("title")) for ln in related] == [
        ("https://wire.example.net/story/12", "Wire Service")
    ]
    assert "Also reported by" in (el.findtext(f"{ATOM}content") or "")


def test_source_for_remote_and_local_entries(config: Config) -> None:
    stories = {s.primary.id: s for s in mixed_stories()}
    root = validate_atom(build_atom(config, list(stories.values())))
    by_id = {e.findtext(f"{ATOM}id"): e for e in root.findall(f"{ATOM}entry")}

    def source_of(entry_id: str) -> etree._Element:
        el = by_id[story_uri(config, stories[entry_id].id)].find(f"{ATOM}source")
        assert el is not None
        return el

    remote = source_of("entry0001")
    assert remote.findtext(f"{ATOM}id") == "https://mining.example.com/feed/"
    assert remote.findtext(f"{ATOM}title") == "Mining Example: rare earths"
    assert remote.findtext(f"{ATOM}updated") == (T0 + timedelta(days=30)).isoformat()
    links = {ln.get("rel"): ln.get("href") for ln in remote.findall(f"{ATOM}link")}
    assert links == {"alternate": "https://mining.example.com/", "self": "https://mining.example.com/feed/"}
    assert remote.find(f"{ATOM}author") is None  # the entry has its own author

    local = source_of("entry0006")
    assert local.findtext(f"{ATOM}id") == "https://en.jxust.edu.cn/"
    assert local.findtext(f"{ATOM}title") == "JiangXi University of Science and Technology"
    assert local.find(f"{ATOM}updated") is None  # no feed: nothing honest to say
    assert local.findtext(f"{ATOM}author/{ATOM}name") == "JiangXi University of Science and Technology"

    bare = source_of("entry0007")  # no domain, no site name: our own stable URN and the source name
    assert (bare.findtext(f"{ATOM}id") or "").startswith("urn:uuid:")
    assert bare.findtext(f"{ATOM}title") == "seeds"
    assert bare.find(f"{ATOM}link") is None

    no_id = source_of("entry0011")  # an RSS feed without an id: the feed URL stands in
    assert no_id.findtext(f"{ATOM}id") == "https://mining.example.com/feed/"


# -- round trip through feedparser ------------------------------------------------------------


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def test_feedparser_round_trip(config: Config) -> None:
    stories = mixed_stories()
    parsed = feedparser.parse(build_atom(config, stories))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == config.base_url + "feed.atom"
    assert len(parsed.entries) == len(stories)
    by_id = {e.id: e for e in parsed.entries}
    for story in stories:
        p = story.primary
        got = by_id[story_uri(config, story.id)]
        assert got.title == source_text(p.title)
        assert timegm(got.updated_parsed) == _ts(entry_updated(p))
        if p.published:
            assert timegm(got.published_parsed) == _ts(p.published)
        else:
            assert "published" not in got
        assert sorted(t.term for t in got.get("tags", [])) == sorted(story.topics)
        src = source_info(config, p)
        assert got.source.id == src.id
        assert got.source.title == src.title
        if src.link:
            assert got.source.link == src.link
        if src.updated:
            assert timegm(got.source.updated_parsed) == _ts(src.updated)
        if p.link and p.link.startswith("https://"):
            assert got.link == p.link


def source_text(title: str) -> str:
    """What survives of a title: XML-illegal characters are removed, everything else is text."""
    return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "", title)


# -- determinism ------------------------------------------------------------------------------


def test_same_stories_give_identical_bytes_in_any_order(config: Config) -> None:
    stories = mixed_stories()
    first = render_all(config, stories)
    second = render_all(config, list(reversed(stories)))
    assert first == second


def test_two_builds_from_the_same_store_are_byte_identical(
    config: Config, deps: Deps, project: Path, tmp_path: Path
) -> None:
    """Store varied entries in a real SQLite store, then build from it twice: once here, once in a
    fresh interpreter with a different hash seed (set and dict order must not leak into the output)."""
    deps.store.upsert_entries([m for s in mixed_stories() for m in s.members], T0)
    stories, _ = build_stories(deps.store.iter_entries())
    assert stories
    here = render_all(config, stories)
    assert here == render_all(config, build_stories(deps.store.iter_entries())[0])
    script = (
        "import sys, hashlib\n"
        "from aggregator.config import load_config\n"
        "from aggregator.dedupe import build_stories\n"
        "from aggregator.publish import render_all\n"
        "from aggregator.store import SQLiteStore\n"
        "c = load_config(sys.argv[1]); s = SQLiteStore(c.database_path)\n"
        "out = render_all(c, build_stories(s.iter_entries())[0])\n"
        "for k in sorted(out): print(k, hashlib.sha256(out[k]).hexdigest())\n"
    )
    deps.store.close()
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run(
        [sys.executable, "-c", script, str(project / "feeds.yaml")], capture_output=True, text=True, env=env, check=True
    )
    import hashlib

    expected = "".join(f"{k} {hashlib.sha256(here[k]).hexdigest()}\n" for k in sorted(here))
    assert run.stdout == expected


def test_adding_one_entry_changes_only_that_entry_and_feed_updated(config: Config) -> None:
    entries = [make_entry(i) for i in range(6)] + [local_entry(7)]
    before = build_atom(config, stories_of(entries)).decode()
    newcomer = make_entry(20, id="newcomer", title="A brand new story")
    after = build_atom(config, stories_of([*entries, newcomer])).decode()
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    removed = [d for d in diff if d.startswith("-") and not d.startswith("---")]
    added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
    assert removed == [f"-  <updated>{(T0 + timedelta(hours=7)).isoformat()}</updated>"]
    assert added[0] == f"  <updated>{(T0 + timedelta(hours=20)).isoformat()}</updated>"
    new_block = "\n".join(added[1:])
    assert new_block.startswith("  <entry") and new_block.endswith("</entry>")
    assert new_block.count("<entry") == 1 and "A brand new story" in new_block


def _remote_feed(n: int, updated: str) -> str:
    items = "".join(
        f"<entry><id>urn:e:{i}</id><title>Rare earth item {i}</title><link href='https://ex.example/{i}'/>"
        f"<updated>2026-11-0{i + 1}T00:00:00Z</updated>"
        f"<content type='html'>&lt;p&gt;Body {i} about rare earths.&lt;/p&gt;</content></entry>"
        for i in range(n)
    )
    return (
        "<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><id>urn:feed</id><title>F</title>"
        f"<updated>{updated}</updated><link href='https://ex.example/'/>{items}</feed>"
    )


def test_adding_one_item_to_a_remote_feed_changes_only_that_entry_end_to_end(
    write_config: Callable[..., Config], deps: Deps, clock: Clock, httpserver: HTTPServer
) -> None:
    config = write_config(sources=[{"name": "remote", "url": httpserver.url_for("/feed.xml")}])
    httpserver.expect_request("/feed.xml").respond_with_data(
        _remote_feed(3, "2026-11-03T00:00:00Z"), content_type="application/atom+xml"
    )
    refresh(config, deps)
    before = (config.output_path / "feed.atom").read_text(encoding="utf-8")
    httpserver.clear()
    httpserver.expect_request("/feed.xml").respond_with_data(
        _remote_feed(4, "2026-11-04T00:00:00Z"), content_type="application/atom+xml"
    )
    clock.now += timedelta(hours=1)
    refresh(config, deps)
    after = (config.output_path / "feed.atom").read_text(encoding="utf-8")
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    removed = [d for d in diff if d.startswith("-") and not d.startswith("---")]
    assert removed == ["-  <updated>2026-11-03T00:00:00+00:00</updated>"]


def test_publish_writes_atomically_and_leaves_unchanged_files_alone(config: Config) -> None:
    stories = mixed_stories()
    paths = publish_all(config, stories)
    out = config.output_path
    names = sorted(p.relative_to(out).as_posix() for p in paths)
    assert names == [
        "feed.atom",
        "feed.json",
        "index.html",
        "topics/rare-earth.atom",
        "topics/university-industry.atom",
    ]
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    umask = os.umask(0o022)
    os.umask(umask)
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # like any file the user writes, not 0600
    os.utime(paths[0], ns=(1, 1))  # so a rewrite would be visible
    publish_all(config, stories)
    assert paths[0].stat().st_mtime_ns == 1  # same bytes: not rewritten, Last-Modified holds
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in paths[1:])
    assert not [p for p in out.rglob(".*")], "temp files left behind"
    for p in paths:
        if p.suffix == ".atom":
            validate_atom(p.read_bytes())


def test_index_page_lists_the_feeds_for_autodiscovery(config: Config) -> None:
    out = render_all(config, mixed_stories())
    page = lxml.html.fromstring(out["index.html"])
    found = {ln.get("href"): ln.get("type") for ln in page.iter("link") if ln.get("rel") == "alternate"}
    assert found == {
        "feed.atom": "application/atom+xml",
        "feed.json": "application/feed+json",
        "topics/rare-earth.atom": "application/atom+xml",
        "topics/university-industry.atom": "application/atom+xml",
    }


def test_topic_feeds_hold_only_their_topic(config: Config) -> None:
    out = render_all(config, mixed_stories())
    for key in config.topics:
        root = validate_atom(out[f"topics/{key}.atom"])
        assert root.findtext(f"{ATOM}id") == f"{config.base_url}topics/{key}.atom"
        for entry in root.findall(f"{ATOM}entry"):
            assert key in [c.get("term") for c in entry.findall(f"{ATOM}category")]


# -- golden output ----------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "data" / "publish"


def golden_config() -> Config:
    """A config fixed here, not read from the shipped feeds.yaml, so the golden bytes only move
    when publishing itself changes."""
    return Config.model_validate(
        {
            "title": "Golden",
            "subtitle": "Golden output",
            "base_url": "https://golden.example.org/feeds/",
            "author": "Golden editors",
            "language": "en",
            "sources": [{"name": "mining", "url": "https://mining.example.com/feed/"}],
            "topics": {"rare-earth": {"title": "Rare earths"}, "university-industry": {"title": "Universities"}},
            "config_path": str(GOLDEN / "feeds.yaml"),
        }
    )


def test_golden_files() -> None:
    """The exact bytes, ids included: a reader that sees an id change shows the item again.
    Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff."""
    out = render_all(golden_config(), mixed_stories())
    for name in ("feed.atom", "feed.json"):
        path = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(out[name])
        assert out[name] == path.read_bytes(), f"{name} differs from {path.name}; see the test's docstring"


# -- window and archives ----------------------------------------------------------------------


def with_feed(config: Config, **fields: object) -> Config:
    return config.model_copy(update={"feed": FeedOutputConfig(**{**config.feed.model_dump(), **fields})})


def test_window_newest_n(config: Config) -> None:
    stories = stories_of(make_entry(i) for i in range(10))
    window = select_window(with_feed(config, max_entries=3), stories)
    assert [s.primary.id for s in window] == ["entry0009", "entry0008", "entry0007"]


def test_window_w_weeks_from_the_newest_story(config: Config) -> None:
    entries = [make_entry(0), make_entry(24 * 7 * 3), make_entry(24 * 7 * 5), make_entry(24 * 7 * 6)]
    window = select_window(with_feed(config, max_weeks=2), stories_of(entries))
    assert [s.primary.id for s in window] == [f"entry{24 * 7 * 6:04d}", f"entry{24 * 7 * 5:04d}"]


def test_archive_pages_rfc5005(config: Config) -> None:
    cfg = with_feed(config, archive=True, max_entries=2)
    # September, October and November 2026 (T0 is 1 November).
    entries = [make_entry(-24 * 50), make_entry(-24 * 45), make_entry(-24 * 20), make_entry(0), make_entry(5)]
    out = render_all(cfg, stories_of(entries))
    assert sorted(k for k in out if k.startswith("archive/")) == ["archive/2026-09.atom", "archive/2026-10.atom"]
    sub = validate_atom(out["feed.atom"])
    assert sub.find(f"{FH}archive") is None
    sub_links = {ln.get("rel"): ln.get("href") for ln in sub.findall(f"{ATOM}link")}
    assert sub_links["prev-archive"] == cfg.base_url + "archive/2026-10.atom"
    sep = validate_atom(out["archive/2026-09.atom"])
    octo = validate_atom(out["archive/2026-10.atom"])
    for doc in (sep, octo):
        assert doc.find(f"{FH}archive") is not None
    sep_links = {ln.get("rel"): ln.get("href") for ln in sep.findall(f"{ATOM}link")}
    oct_links = {ln.get("rel"): ln.get("href") for ln in octo.findall(f"{ATOM}link")}
    assert sep_links["current"] == cfg.base_url + "feed.atom"
    assert sep_links["next-archive"] == cfg.base_url + "archive/2026-10.atom"
    assert "prev-archive" not in sep_links
    assert oct_links["prev-archive"] == cfg.base_url + "archive/2026-09.atom"
    assert len(sep.findall(f"{ATOM}entry")) == 2 and len(octo.findall(f"{ATOM}entry")) == 1
    assert len(sub.findall(f"{ATOM}entry")) == 2
    # A new entry this month leaves closed months' pages untouched.
    again = render_all(cfg, stories_of([*entries, make_entry(9)]))
    assert again["archive/2026-09.atom"] == out["archive/2026-09.atom"]
    assert again["archive/2026-10.atom"] == out["archive/2026-10.atom"]
    assert feedparser.parse(out["archive/2026-09.atom"]).bozo == 0


# -- JSON Feed --------------------------------------------------------------------------------


def test_json_feed_matches_atom(config: Config) -> None:
    stories = mixed_stories()
    doc = json.loads(build_json_feed(config, stories))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == config.base_url + "feed.json"
    atom_ids = [e.findtext(f"{ATOM}id") for e in validate_atom(build_atom(config, stories)).findall(f"{ATOM}entry")]
    assert [i["id"] for i in doc["items"]] == atom_ids
    for item in doc["items"]:
        assert item["title"] and item["_provenance"]["source"]["id"] and item["date_modified"]
        assert_safe_html(item["content_html"], item["id"])
        if "url" in item:
            assert _is_http(item["url"])
    twin = next(i for i in doc["items"] if "also_reported_by" in i["_provenance"])
    assert twin["_provenance"]["also_reported_by"] == [
        {"url": "https://wire.example.net/story/12", "title": "Wire Service"}
    ]
    assert build_json_feed(config, list(reversed(stories))) == build_json_feed(config, stories)


# -- publishing from the store without the second nh3 pass -----------------------------------


def _odd_bodies_feed(feed_title: str, prefix: str) -> str:
    """Entries whose bodies exercise what a second nh3 pass would still change or resolve."""
    bodies = {
        "hostile": html_escape(HOSTILE_HTML),
        "relative": html_escape('<p>See <a href="/rel/path?a=1&amp;b=2">this</a> <img src="img/p.png" alt="p"></p>'),
        "cr-nbsp-pre": html_escape("<p>one&#13;two&nbsp;three&#1;four</p><pre>\n\ncode\n</pre><p>\ufeffbom</p>"),
        "twin": html_escape("<p>The same rare earth news, told by two feeds word for word.</p>"),
        "control": html_escape("<p>A control character&#1; that XML forbids.</p>"),
    }
    items = "".join(
        f"<entry><id>urn:{prefix}:{key}</id><title>Rare earth {key}</title>"
        f"<link href='https://{prefix}.example/news/{key}'/><updated>2026-11-0{i + 1}T00:00:00Z</updated>"
        f"<content type='html'>{body}</content></entry>"
        for i, (key, body) in enumerate(bodies.items())
    )
    text_item = (
        f"<entry><id>urn:{prefix}:text</id><title>Rare earth text</title>"
        f"<link href='https://{prefix}.example/news/text'/><updated>2026-11-06T00:00:00Z</updated>"
        "<content type='text'>Plain\u00a0text with a no-break space\r\nand a CR.</content></entry>"
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<id>urn:{prefix}:feed</id><title>{html_escape(feed_title)}</title><updated>2026-11-06T00:00:00Z</updated>"
        f"<link href='https://{prefix}.example/'/>{items}{text_item}</feed>"
    )


def html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_refresh_publishes_store_bodies_as_a_full_second_nh3_pass_would(
    write_config: Callable[..., Config], deps: Deps, httpserver: HTTPServer
) -> None:
    """refresh publishes stored bodies without running nh3 on them again (they are normalize's
    nh3 output): the files must be byte-identical to a render that does run it, hostile input
    stays neutralised, and relative links are still made absolute."""
    from aggregator.pipeline import rebuild_stories

    config = write_config(
        sources=[
            {"name": "one", "url": httpserver.url_for("/one.xml")},
            {"name": "two", "url": httpserver.url_for("/two.xml")},
        ],
        fetch={"allow_private_addresses": True},
    )
    httpserver.expect_request("/one.xml").respond_with_data(
        _odd_bodies_feed("One", "one"), content_type="application/atom+xml"
    )
    httpserver.expect_request("/two.xml").respond_with_data(
        _odd_bodies_feed("O'Brien & <Co> \u00a0Wire", "two"), content_type="application/atom+xml"
    )
    report = refresh(config, deps)
    assert not any(r.failed for r in report.results), report.results
    stories = rebuild_stories(config, deps)
    assert any(s.others for s in stories), "the twin stories were not merged: no 'Also reported by'"
    expected = render_all(config, stories)  # every body through nh3 again
    written = {rel: (config.output_path / rel).read_bytes() for rel in expected}
    assert written == expected
    root = validate_atom(written["feed.atom"])
    contents = "".join(c.text or "" for c in root.iter(f"{ATOM}content"))
    assert "Also reported by" in contents and "O'Brien &amp; &lt;Co&gt;" in contents
    assert_safe_html(contents, "feed.atom")
    urls = re.findall(r'(?:href|src)="([^"]*)"', contents)
    assert urls and all(_is_http(u) for u in urls), urls


def test_stored_relative_links_are_still_resolved_without_the_second_pass(config: Config) -> None:
    """A body that normalize stored with relative URLs (nh3 keeps them) still gets them resolved
    against the article, or dropped without one, exactly as the full pass does."""
    from aggregator.normalize import normalize
    from aggregator.types import RawItem

    raw = '<p>See <a href="/rel/path?a=1&amp;b=2">this</a> <img src="img/p.png" alt="p"> <a href="//cdn.example/x">x</a></p>'
    entries = []
    for n, link in ((1, "https://site.example/news/a"), (2, None)):
        item = RawItem(source="s", guid=f"g{n}", link=link, title=f"Rare earth {n}", content_html=raw)
        e = normalize(item, fetched_at=T0)
        assert "/rel/path" in e.content_html and 'href="https://' not in e.content_html  # stored relative
        entries.append(dataclasses.replace(e, published=T0, updated=T0 + timedelta(hours=n)))
    stories = stories_of(entries)
    assert render_all(config, stories, clean_html=True) == render_all(config, stories)
    content = validate_atom(build_atom(config, stories, clean_html=True)).findall(f"{ATOM}entry/{ATOM}content")
    assert 'href="https://site.example/rel/path?a=1&amp;b=2"' in (content[1].text or "")
    assert 'src="https://site.example/news/img/p.png"' in (content[1].text or "")
    assert 'href="https://cdn.example/x"' in (content[1].text or "")
    assert "/rel/path" not in (content[0].text or "") and "img/p.png" not in (content[0].text or "")


def test_source_info_reads_only_what_the_atom_source_cache_keys_on(config: Config) -> None:
    """build_atom builds one atom:source per (feed, location, site_name, site_domain, source,
    has authors): if source_info starts reading another field, entries would share a wrong source."""
    read: set[str] = set()

    class Recording:
        def __init__(self, entry: Entry) -> None:
            self._entry = entry

        def __getattr__(self, name: str) -> object:
            read.add(name)
            return getattr(self._entry, name)

    for entry in (
        make_entry(1),
        make_entry(2, feed=FeedMeta(), location=None, site_name="Site", site_domain="example.org"),
        make_entry(3, feed=FeedMeta(), location=None, authors=()),
    ):
        source_info(config, Recording(entry))  # type: ignore[arg-type]
    assert read <= {"feed", "location", "site_name", "site_domain", "source", "authors"}
    assert {"feed", "location", "authors"} <= read
