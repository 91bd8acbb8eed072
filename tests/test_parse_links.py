"""Relative links in entry bodies become absolute against the right base.

feedparser runs without its own relative-URI pass; each content element's base (xml:base, else
the URL the feed came from after redirects) goes with the item, and normalize's nh3 pass resolves
href and src against it. These tests pin what a reader sees: links that work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator._text import html_to_text, sanitize_html, sanitized_html_to_text
from aggregator.config import Config
from aggregator.normalize import normalize
from aggregator.parse import parse_feed
from aggregator.pipeline import make_deps, refresh
from aggregator.types import Entry, Fetched

from .conftest import Clock

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.org/en/">
  <title>Base test</title><id>urn:x</id><updated>2026-11-20T10:00:00Z</updated>
  <entry xml:base="posts/2026/">
    <title>Entry with its own base</title><id>urn:x:1</id><updated>2026-11-20T10:00:00Z</updated>
    <link href="first.html"/>
    <content type="html">&lt;p&gt;&lt;a href="../img/chart.html"&gt;chart&lt;/a&gt;
      &lt;img src="pic.png" alt="p"&gt; &lt;a href="/about"&gt;about&lt;/a&gt;
      &lt;a href="//cdn.example.net/x.js?a=1&amp;amp;b=2"&gt;cdn&lt;/a&gt;
      &lt;a href="#notes"&gt;notes&lt;/a&gt;
      &lt;a href="javascript:alert(1)"&gt;js&lt;/a&gt; &lt;a href=" JaVaScRiPt:alert(2)"&gt;js2&lt;/a&gt;
      &lt;a href="https://other.example.com/abs"&gt;abs&lt;/a&gt;&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>Summary only, feed base</title><id>urn:x:2</id><updated>2026-11-20T10:00:00Z</updated>
    <summary type="html">&lt;a href="tags/rare-earth"&gt;tag&lt;/a&gt;</summary>
  </entry>
</feed>
"""


def _rss(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>R</title>'
        "<link>https://www.example.com/</link><item><title>One</title><guid>r-1</guid>"
        f"<link>https://www.example.com/news/1</link><description><![CDATA[{body}]]></description>"
        "</item></channel></rss>"
    ).encode()


def _entries(content: bytes, location: str) -> list[Entry]:
    items, _ = parse_feed(Fetched(source="s", location=location, content=content))
    return [normalize(i, fetched_at=NOW) for i in items]


def _links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', html)


def test_atom_entry_xml_base_resolves_links_in_content() -> None:
    first, second = _entries(ATOM, "https://feeds.example.org/atom.xml")
    assert first.link == "https://blog.example.org/en/posts/2026/first.html"
    assert _links(first.content_html) == [
        "https://blog.example.org/en/posts/img/chart.html",
        "https://blog.example.org/en/posts/2026/pic.png",
        "https://blog.example.org/about",
        "https://cdn.example.net/x.js?a=1&amp;b=2",  # protocol-relative takes the base's scheme
        "https://blog.example.org/en/posts/2026/#notes",
        "",  # what feedparser's sanitiser leaves of a javascript: URL: stays empty, not the base
        "",
        "https://other.example.com/abs",
    ]
    assert "javascript" not in first.content_html.lower()
    assert ">js</a>" in first.content_html and ">js2</a>" in first.content_html  # the text stays
    # The second entry has no xml:base of its own: the feed's applies, to its summary too.
    assert _links(second.content_html) == ["https://blog.example.org/en/tags/rare-earth"]


def test_rss_description_links_resolve_against_the_feed_url() -> None:
    body = '<p><a href="/news/2">next</a> <img src="img/a.png"> <a href="//cdn.example.net/v">v</a></p>'
    (entry,) = _entries(_rss(body), "http://feeds.example.com/rss/all.xml")
    assert _links(entry.content_html) == [
        "http://feeds.example.com/news/2",
        "http://feeds.example.com/rss/img/a.png",
        "http://cdn.example.net/v",
    ]


def test_links_in_a_local_feed_file_stay_as_written() -> None:
    """No http(s) base: nothing to resolve against here; publish resolves against the article."""
    (entry,) = _entries(_rss('<a href="/news/2">next</a> <a href="javascript:x()">j</a>'), "feeds/local.xml")
    assert _links(entry.content_html) == ["/news/2", ""]


def test_content_elements_with_different_bases_each_use_their_own() -> None:
    feed = (
        b'<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        b"<channel><title>R</title><link>https://www.example.com/</link><item><guid>m-1</guid><title>M</title>"
        b'<content:encoded xml:base="https://a.example.com/x/"><![CDATA[<a href="one">1</a>]]></content:encoded>'
        b'<content:encoded xml:base="https://b.example.com/y/"><![CDATA[<a href="two">2</a>]]></content:encoded>'
        b"</item></channel></rss>"
    )
    (entry,) = _entries(feed, "https://feeds.example.com/m.xml")
    assert _links(entry.content_html) == ["https://a.example.com/x/one", "https://b.example.com/y/two"]


def test_sanitize_html_base_handling() -> None:
    html = '<a href=" rel/x ">a</a><img src="y.png"><a href="mailto:a@b.example">m</a><a href="">e</a>'
    assert _links(sanitize_html(html, "https://h.example/d/f")) == [
        "https://h.example/d/rel/x",
        "https://h.example/d/y.png",
        "mailto:a@b.example",
        "",
    ]
    assert _links(sanitize_html(html)) == [" rel/x ", "y.png", "mailto:a@b.example", ""]
    assert _links(sanitize_html(html, "file:///etc/")) == [" rel/x ", "y.png", "mailto:a@b.example", ""]


SAMPLES = [
    "<p>One &amp; two &lt;three&gt;</p><p>Four&nbsp;five</p>",
    '<div><p>a<br>b</p><ul><li>x</li><li>y <a href="/q?a=1&amp;b=2" title="t > u">z</a></li></ul></div>',
    "<h2>Title</h2>text<table><tr><td>1</td><td>2</td></tr></table><pre>  keep\n\n  code </pre>",
    '<blockquote>q</blockquote><figure><img src="a.png" alt="&quot;x&quot;"><figcaption>cap</figcaption></figure>',
    "<script>alert(1)</script><style>p{}</style><!-- c --><p>after</p><noscript>ns</noscript>",
    "<p>&amp;lt;p&amp;gt; is markup written as text, &#x41;&#66; &copy &unknown; a<b>&amp;</b>lt;</p>",
    "<p>稀土</p><p>\u3000全角\u00a0空格 </p>\r\n<p>crlf</p>",
    "<P CLASS=x>upper</P><div/><br/>tail",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_fast_text_of_sanitised_html_equals_the_general_extractor(raw: str) -> None:
    clean = sanitize_html(raw, "https://example.com/")
    assert sanitized_html_to_text(clean) == html_to_text(clean)


# -- end to end: a real server that redirects ------------------------------------------------


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


def test_links_resolve_against_the_url_after_redirects(
    server: HTTPServer, write_config: Callable[..., Config], clock: Clock
) -> None:
    body = '<p><a href="story-2.html">next</a> <img src="../img/a.png"> <a href="javascript:x()">j</a></p>'
    server.expect_request("/old/feed.xml").respond_with_response(
        Response("", status=301, headers={"Location": "/moved/news/feed.xml"})
    )
    server.expect_request("/moved/news/feed.xml").respond_with_response(
        Response(_rss(body), headers={"Content-Type": "application/rss+xml; charset=utf-8"})
    )
    cfg = write_config(
        sources=[{"name": "moved", "url": server.url_for("/old/feed.xml")}],
        fetch={"allow_private_addresses": True, "timeout": 5, "connect_timeout": 2},
    )
    d = make_deps(cfg, clock=clock)
    try:
        report = refresh(cfg, d)
        (entry,) = [e for e in d.store.iter_entries() if e.source == "moved"]
    finally:
        d.close()
    assert not report.failed, report
    root = server.url_for("/")
    assert _links(entry.content_html) == [f"{root}moved/news/story-2.html", f"{root}moved/img/a.png", ""]


# -- feedparser is told the document's URL only when it matters ---------------------------------

_ITEMS = {
    "relative permalink guid, no link": "<item><title>a</title><guid>post/7</guid></item>",
    "opaque guid": '<item><title>b</title><guid isPermaLink="false">mining-4711</guid><link>/n/1</link></item>',
    "numeric permalink guid": "<item><title>c</title><guid>12345</guid><link>https://x.example/1</link></item>",
    "upper-case tag": "<item><title>d</title><GUID>rel/9</GUID></item>",
    "fake guid in CDATA": (
        '<item><title>e</title><guid>rel/10</guid><description><![CDATA[<guid isPermaLink="false">x</guid>]]>'
        "</description></item>"
    ),
    "absolute": "<item><title>f</title><guid>https://x.example/2</guid><link>https://x.example/2</link></item>",
}


def _doc(items: str, headers: dict[str, str] | None = None, home: str = "https://feeds.example.com/home") -> Fetched:
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><link>{home}</link>{items}</channel></rss>'
    )
    return Fetched(
        source="s", location="https://feeds.example.com/a/b.xml", content=body.encode(), headers=headers or {}
    )


@pytest.mark.parametrize("home", ["https://feeds.example.com/home", "/home"])
@pytest.mark.parametrize("items", [*_ITEMS.values(), "".join(_ITEMS.values())], ids=[*_ITEMS, "all"])
def test_links_and_ids_are_the_same_as_with_the_url_given_to_feedparser(items: str, home: str) -> None:
    """A server's Content-Location header makes feedparser resolve against it (the old path)."""
    ours, _ = parse_feed(_doc(items, home=home))
    told, _ = parse_feed(_doc(items, {"Content-Location": "https://feeds.example.com/a/b.xml"}, home=home))
    assert ours == told
    assert all(i.feed.link == "https://feeds.example.com/home" for i in ours)


def test_relative_permalink_guid_becomes_the_link() -> None:
    (item,) = parse_feed(_doc(_ITEMS["relative permalink guid, no link"]))[0]
    assert item.guid == item.link == "https://feeds.example.com/a/post/7"
    (opaque,) = parse_feed(_doc(_ITEMS["opaque guid"]))[0]
    assert opaque.guid == "mining-4711" and opaque.link == "https://feeds.example.com/n/1"
