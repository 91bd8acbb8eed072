"""Golden files: every feed in tests/data/feeds/ parses and normalises to the JSON beside it.

Each `<name>.<ext>` may have `<name>.headers.json` (the response headers it is served with) and
has `<name>.expected.json`. Regenerate after a deliberate change with
`UPDATE_GOLDEN=1 pytest tests/test_feed_parse.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.normalize import normalize
from aggregator.parse import parse_feed
from aggregator.types import Fetched

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
CASES = sorted(p for p in FEEDS.iterdir() if p.is_file() and not p.name.endswith((".expected.json", ".headers.json")))


def _run(path: Path) -> dict[str, Any]:
    headers_file = path.with_name(path.stem + ".headers.json")
    headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
    doc = Fetched(
        source="golden",
        location=f"https://feeds.example.com/{path.name}",
        content=path.read_bytes(),
        headers=headers,
    )
    try:
        items, warnings = parse_feed(doc)
    except ParseError as exc:
        return {"error": str(exc)}
    entries = [normalize(item, fetched_at=NOW) for item in items]
    return {
        "warnings": warnings,
        "entries": [
            {
                "id": e.id,
                "title": e.title,
                "link": e.link,
                "canonical_url": e.canonical_url,
                "published": e.published.isoformat() if e.published else None,
                "authors": list(e.authors),
                "content_html": e.content_html,
            }
            for e in entries
        ],
    }


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_feed_golden(path: Path) -> None:
    got = _run(path)
    expected_file = path.with_name(path.stem + ".expected.json")
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    if "error" in expected:
        assert "error" in got, got
        assert got["error"] == expected["error"]
    else:
        # Warnings carry library wording; the golden file pins whether there are any.
        assert bool(got.get("warnings")) == bool(expected["warnings"]), got.get("warnings")
        assert got.get("entries") == expected["entries"]


def test_every_feed_format_is_covered() -> None:
    names = {p.name for p in CASES}
    for needed in ("rss090.rdf", "rss091.xml", "rss092.xml", "rss10.rdf", "rss20.xml", "atom03.xml", "atom10.xml"):
        assert needed in names
    assert {"jsonfeed10.json", "jsonfeed11.json"} <= names


def test_short_body_is_never_read_as_a_path_or_url(tmp_path: Path) -> None:
    """feedparser given bytes/str tries them as a file name or URL; we hand it a file object."""
    secret = tmp_path / "secret.xml"
    secret.write_text('<rss version="2.0"><channel><item><title>secret</title></item></channel></rss>')
    doc = Fetched(source="s", location="https://x.example.com/f", content=str(secret).encode())
    with pytest.raises(ParseError):
        parse_feed(doc)


# -- the buffered expat driver (aggregator/_expat.py) gives feedparser the same result ----------

_BUFFER_CASES = [
    # entities split expat's character data; CDATA, xhtml content, a body longer than the buffer
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>A &amp; B &#169; &lt;i&gt;</title>'
    b"<item><title>x &amp;amp; y</title><description>&lt;p&gt;one &amp;amp; &lt;b&gt;two&lt;/b&gt;&lt;/p&gt;"
    b"</description><content:encoded xmlns:content='http://purl.org/rss/1.0/modules/content/'>"
    b"<![CDATA[<p>cdata &amp; <a href='/rel'>link</a></p>]]> and after</content:encoded></item></channel></rss>",
    b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">&lt;b&gt;T&lt;/b&gt;</title>'
    b'<entry><id>1</id><title>t</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
    b"<p>a<br/>b &amp; c</p></div></content></entry>"
    b'<entry><id>2</id><title>long</title><content type="html">'
    + b"&lt;p&gt;"
    + b"word &amp; " * 20000
    + b"&lt;/p&gt;</content></entry></feed>",
]


@pytest.mark.parametrize("content", [*(p.read_bytes() for p in CASES), *_BUFFER_CASES])
def test_feedparser_gives_the_same_result_with_the_buffered_driver(
    content: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import feedparser.api

    assert feedparser.api.PREFERRED_XML_PARSERS[0] == "aggregator._expat"  # parse.py installed it
    ours = feedparser.parse(io.BytesIO(content), resolve_relative_uris=False)
    monkeypatch.setattr(feedparser.api, "PREFERRED_XML_PARSERS", ["xml.sax.expatreader"])
    stock = feedparser.parse(io.BytesIO(content), resolve_relative_uris=False)
    for key in ("bozo", "version", "encoding", "namespaces", "feed", "entries"):
        assert ours.get(key) == stock.get(key), key


# -- entry dates: zone-less dates are the publisher's local time; odd forms are read, not guessed --


def _dated_feed(*dates: str) -> Fetched:
    items = "".join(
        f"<item><title>t{i}</title><link>https://news.example.edu.cn/{i}</link><pubDate>{d}</pubDate></item>"
        for i, d in enumerate(dates)
    )
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>c</title>{items}</channel></rss>'
    return Fetched(source="golden", location="https://news.example.edu.cn/rss.xml", content=body.encode())


@pytest.mark.parametrize(
    ("raw", "want", "precision"),
    [
        ("Wed, 05 Nov 2025 10:30:00 +0800", "2025-11-05T02:30:00+00:00", "minute"),  # a zone: feedparser's
        ("Wed, 05 Nov 2025 10:30:00 GMT", "2025-11-05T10:30:00+00:00", "minute"),
        ("2025-11-05T10:30:00Z", "2025-11-05T10:30:00+00:00", "minute"),
        ("2025-11-05 10:30:00", "2025-11-05T02:30:00+00:00", "minute"),  # no zone: the source's local time
        ("Wed, 05 Nov 2025 10:30:00", "2025-11-05T02:30:00+00:00", "minute"),
        ("2025年11月05日 10:30", "2025-11-05T02:30:00+00:00", "minute"),  # feedparser read 1 November
        ("2025-11-05", "2025-11-04T16:00:00+00:00", "day"),  # a day, not midnight UTC
        ("Wed, 05 Nov 2025 10:30:00 CST", "2025-11-05T02:30:00+00:00", "minute"),  # China, not US Central
        ("Wed, 05 Nov 2025 10:30:00 EST", "2025-11-05T15:30:00+00:00", "minute"),
        ("soon", None, "none"),
    ],
)
def test_feed_entry_dates(raw: str, want: str | None, precision: str) -> None:
    from zoneinfo import ZoneInfo

    items, _ = parse_feed(_dated_feed(raw), tz=ZoneInfo("Asia/Shanghai"))
    got = items[0].published
    assert (got.isoformat() if got else None) == want
    assert items[0].date_precision == precision
