"""Fetched bytes -> RawItems. feedparser for feeds; article extraction for pages.

Pure: no network, no clock (the fetch time is passed in).
"""

from __future__ import annotations

import calendar
import html
import json
from datetime import UTC, datetime, tzinfo
from typing import Any

import feedparser

from .article import extract_article
from .errors import ParseError
from .types import DatePrecision, FeedMeta, Fetched, RawItem


def decode_text(data: bytes) -> str:
    """Decode a saved page: UTF-8 (with or without BOM), then GB18030, else UTF-8 with replacement."""
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ParseError("binary file (NUL bytes), not a text article")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


def _struct_to_dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_feed(doc: Fetched) -> tuple[list[RawItem], list[str]]:
    """Parse feed bytes with feedparser (sanitising on). Returns items and warnings.

    Raises ParseError when the document is not a feed at all.
    """
    assert doc.content is not None
    if doc.location.endswith(".json") or doc.content.lstrip()[:1] == b"{":
        return _parse_json_feed(doc), []
    parsed = feedparser.parse(
        doc.content,
        response_headers={k.lower(): v for k, v in doc.headers.items()},
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    warnings: list[str] = []
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise ParseError(f"not a feed{f' ({reason})' if reason else ''}")
    if parsed.get("bozo"):
        warnings.append(f"feed is not well-formed, entries kept: {parsed.get('bozo_exception')}")
    f = parsed.feed
    meta = FeedMeta(
        id=f.get("id") or f.get("link") or (doc.location if doc.location.startswith("http") else None),
        title=f.get("title"),
        link=f.get("link"),
        updated=_struct_to_dt(f.get("updated_parsed")),
    )
    items: list[RawItem] = []
    for e in parsed.entries:
        content_html = None
        if e.get("content"):
            content_html = "".join(c.get("value", "") for c in e["content"])
        summary = e.get("summary")
        published = _struct_to_dt(e.get("published_parsed"))
        updated = _struct_to_dt(e.get("updated_parsed"))
        authors = tuple(a.get("name") for a in e.get("authors", []) if a.get("name")) or (
            (e.get("author"),) if e.get("author") else ()
        )
        items.append(
            RawItem(
                source=doc.source,
                guid=e.get("id"),
                link=e.get("link"),
                title=e.get("title"),
                content_html=content_html or summary,
                summary=summary,
                published=published or updated,
                updated=updated or published,
                date_precision=DatePrecision.MINUTE if (published or updated) else DatePrecision.NONE,
                date_provenance="feed entry date" if (published or updated) else None,
                authors=authors,
                site_name=f.get("title"),
                language=(f.get("language") or None),
                location=doc.location,
                feed=meta,
            )
        )
    return items, warnings


def _parse_json_feed(doc: Fetched) -> list[RawItem]:
    assert doc.content is not None
    try:
        data = json.loads(decode_text(doc.content))
    except (ValueError, ParseError) as exc:
        raise ParseError(f"not a JSON Feed: {exc}") from exc
    if not isinstance(data, dict) or "jsonfeed.org" not in str(data.get("version", "")):
        raise ParseError("not a JSON Feed (no jsonfeed.org version)")
    meta = FeedMeta(
        id=data.get("feed_url") or data.get("home_page_url"), title=data.get("title"), link=data.get("home_page_url")
    )
    items = []
    for it in data.get("items", []):
        if not isinstance(it, dict):
            continue
        pub = _iso(it.get("date_published"))
        upd = _iso(it.get("date_modified"))
        body_html = it.get("content_html")
        if body_html is None and it.get("content_text"):
            body_html = "<p>" + html.escape(it["content_text"]) + "</p>"
        items.append(
            RawItem(
                source=doc.source,
                guid=str(it.get("id")) if it.get("id") is not None else None,
                link=it.get("url"),
                title=it.get("title"),
                content_html=body_html,
                summary=it.get("summary"),
                published=pub or upd,
                updated=upd or pub,
                date_precision=DatePrecision.MINUTE if (pub or upd) else DatePrecision.NONE,
                date_provenance="feed entry date" if (pub or upd) else None,
                authors=tuple(str(a["name"]) for a in it.get("authors", []) if isinstance(a, dict) and a.get("name")),
                site_name=data.get("title"),
                language=it.get("language") or data.get("language"),
                location=doc.location,
                feed=meta,
            )
        )
    return items


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(UTC) if dt.tzinfo else None


def parse_article_text(
    doc: Fetched,
    *,
    tz: tzinfo,
    fetched_at: datetime,
    site_name: str | None = None,
    extra_boilerplate: tuple[str, ...] = (),
) -> RawItem:
    """One plain-text news page -> one RawItem (paragraphs as plain text)."""
    assert doc.content is not None
    text = decode_text(doc.content)
    if not text.strip():
        raise ParseError("empty file")
    fields = extract_article(text, tz=tz, fetched_at=fetched_at, extra_boilerplate=extra_boilerplate)
    if not fields.title and not fields.paragraphs:
        raise ParseError("no article text found")
    return RawItem(
        source=doc.source,
        guid=None,
        link=None,
        title=fields.title,
        content_text="\n\n".join(fields.paragraphs),
        published=fields.published,
        updated=fields.published,
        date_precision=fields.precision,
        date_provenance=fields.provenance,
        authors=fields.authors,
        site_name=site_name or fields.site_name,
        site_domain=fields.site_domain,
        language=fields.language,
        location=doc.location,
    )


def parse_article_html(doc: Fetched, *, tz: tzinfo, fetched_at: datetime, site_name: str | None = None) -> RawItem:
    """One saved HTML page -> one RawItem, via trafilatura's main-content extraction."""
    import trafilatura

    assert doc.content is not None
    result: Any = trafilatura.bare_extraction(decode_text(doc.content), with_metadata=True, include_comments=False)
    if not result or not getattr(result, "text", None):
        raise ParseError("no article text found in HTML page")
    from ._dates import parse_date_text

    published, precision, provenance = None, DatePrecision.NONE, None
    if result.date:
        parsed = parse_date_text(result.date, tz)
        if parsed and parsed[0] <= fetched_at:
            published, precision, provenance = parsed[0], DatePrecision.DAY, "HTML page metadata"
    text = result.text
    return RawItem(
        source=doc.source,
        guid=None,
        link=result.url if result.url and result.url.startswith("http") else None,
        title=result.title,
        content_text=text,
        published=published,
        updated=published,
        date_precision=precision,
        date_provenance=provenance,
        authors=(result.author,) if result.author else (),
        site_name=site_name or result.sitename,
        site_domain=result.hostname,
        language=result.language,
        location=doc.location,
    )


def parse_document(
    doc: Fetched,
    *,
    tz: tzinfo,
    fetched_at: datetime,
    site_name: str | None = None,
    extra_boilerplate: tuple[str, ...] = (),
) -> tuple[list[RawItem], list[str]]:
    """Dispatch on the document kind. Raises ParseError for unreadable documents."""
    if doc.kind == "article-text":
        return [
            parse_article_text(
                doc, tz=tz, fetched_at=fetched_at, site_name=site_name, extra_boilerplate=extra_boilerplate
            )
        ], []
    if doc.kind == "article-html":
        return [parse_article_html(doc, tz=tz, fetched_at=fetched_at, site_name=site_name)], []
    return parse_feed(doc)
