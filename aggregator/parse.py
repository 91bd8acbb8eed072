"""Fetched bytes -> RawItems. feedparser for feeds; article extraction for pages.

Pure: no network, no clock (the fetch time is passed in).
"""

from __future__ import annotations

import calendar
import io
import json
import re
import unicodedata
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urljoin

import feedparser
import feedparser.api

from ._dates import FoundDate, find_markup_date, mostly_date, parse_date_text
from ._text import html_to_text, paragraphs_to_html, sanitize_html
from .errors import ParseError
from .types import DatePrecision, FeedMeta, Fetched, RawItem

_MAX_CONTROL_SHARE = 0.05  # text pages have no control characters; binary junk decodes to many


def _looks_binary(text: str) -> bool:
    sample = text[:20000]
    if not sample:
        return False
    bad = sum(
        1
        for ch in sample
        if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") and ch not in "\t\n\r\f\v")
    )
    return bad / len(sample) > _MAX_CONTROL_SHARE


def decode_text(data: bytes, *, declared: str | None = None) -> str:
    """Decode a saved page to text.

    Order: a declared charset (an HTML page's <meta charset>), UTF-16 with a BOM, UTF-8 (with or
    without BOM), GB18030 (a superset of GBK/GB2312, what Chinese sites save), then charset
    detection. Raises ParseError for binary data, so a bad file becomes a per-file skip reason.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError(f"not valid UTF-16 text ({exc.reason})") from exc
    elif b"\x00" in data[:4096]:
        raise ParseError("binary file (NUL bytes), not a text page")
    else:
        text = _decode_8bit(data, declared)
    if _looks_binary(text):
        raise ParseError("binary or undecodable content (control characters), not a text page")
    return text


_GLUED_HANZI = re.compile(r"(?<=[A-Za-z])[\u3400-\u9fff](?=[A-Za-z])")
_HANZI = re.compile(r"[\u3400-\u9fff]")


def _mojibake(text: str) -> bool:
    """GB18030 read of a Western page ("café" -> "caf閟"): Chinese characters glued inside Latin words."""
    hanzi = len(_HANZI.findall(text[:50_000]))
    return hanzi > 0 and len(_GLUED_HANZI.findall(text[:50_000])) * 3 > hanzi


def _decode_8bit(data: bytes, declared: str | None) -> str:
    encodings = [declared] if declared else []
    for enc in [*encodings, "utf-8-sig", "gb18030"]:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        if enc != "gb18030" or not (_mojibake(text) or _looks_binary(text)):
            return text  # GB18030 accepts most byte strings: Big5 or cp1252 pages fall through
    import charset_normalizer  # rarely needed: imported then (~3 MB in every parse process)

    best = charset_normalizer.from_bytes(data[:200_000]).best()
    if best is not None and best.encoding:
        return data.decode(best.encoding, errors="replace")
    return data.decode("utf-8", errors="replace")


def _struct_to_dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


# The end of a date that names its zone: an offset, Z, or a zone name (RFC 822: GMT, EST, ...).
# CST and IST are not: feedparser reads CST as US Central, but a Chinese site means China (+8).
_ZONE_AT_END = re.compile(
    r"(?:\d:\d\d(?::\d\d(?:\.\d+)?)?\s*(?:[+-]\d{2}(?::?\d{2})?|[zZ])|\s(?!AM\b|PM\b|CST\b|IST\b)[A-Z]{1,5})\s*\)?\s*$"
)


def _feed_date(raw: Any, parsed: Any, tz: tzinfo) -> tuple[datetime | None, DatePrecision, str]:
    """An entry's date as the feed wrote it (`raw`) and as feedparser read it (`parsed`, UTC).

    feedparser reads a date without a zone as UTC, and some non-standard forms wrongly
    ("2025年11月05日 10:30" became 1 November, midnight). A date that names its zone is
    feedparser's; one without a zone is read as `_dates` reads page dates, in the source's time
    zone (a feed that omits the zone writes its publisher's local time; so does one that writes
    CST or IST, each two zones), with its real precision
    (a date alone is a day, not midnight UTC).
    """
    if isinstance(raw, str) and raw.strip() and not (parsed and _ZONE_AT_END.search(raw)):
        ours = parse_date_text(raw, tz)
        if ours and mostly_date(raw, ours.matched):
            read = "" if _ZONE_AT_END.search(raw) else f" (no time zone, or an ambiguous one: read as {tz})"
            return ours.value, ours.precision, f"feed entry date {raw.strip()!r}{read}"
    value = _struct_to_dt(parsed)
    return value, (DatePrecision.MINUTE if value else DatePrecision.NONE), "feed entry date"


def parse_feed(doc: Fetched, *, tz: tzinfo = UTC) -> tuple[list[RawItem], list[str]]:
    """Parse feed bytes with feedparser (HTML is sanitised later, by normalize). Returns items and warnings.

    `tz`: the time zone of dates the feed writes without one (`_feed_date`).
    Raises ParseError when the document is not a feed at all.
    """
    assert doc.content is not None
    headers = {k.lower(): v for k, v in doc.headers.items()}
    if _is_json_feed(doc, headers.get("content-type", "")):
        return _parse_json_feed(doc), []
    location = doc.location if doc.location.startswith(("http://", "https://")) else None
    parsed = None
    ids = not _all_ids_opaque(doc.content)
    if location and "content-location" not in headers and not _needs_base(doc.content, ids=ids):
        # Relative links resolve against the URL the feed came from (after redirects). Told that
        # URL, feedparser re-joins it with itself at every element (a sixth of its parse time).
        # Without xml:base, it only resolves links and ids with it: parse without, and keep the
        # result if every link and id read from it is one that URL would not change.
        parsed = _feedparse(doc.content, headers)
        if not _base_independent(parsed, location, ids=ids):
            parsed = None
    if location:
        headers.setdefault("content-location", location)
    if parsed is None:
        parsed = _feedparse(doc.content, headers)
    warnings: list[str] = []
    reason = parsed.get("bozo_exception")
    if isinstance(reason, feedparser.CharacterEncodingOverride) and parsed.get("encoding") in _LAST_RESORT:
        # Neither the header nor the XML prolog named a charset that fits, and feedparser fell back
        # to a Western single-byte code page (mojibake for GBK/GB18030/Shift_JIS...). Detect it.
        import charset_normalizer

        guess = charset_normalizer.from_bytes(doc.content).best()
        if guess is not None and guess.encoding and guess.encoding.replace("_", "-") not in _LAST_RESORT:
            media = headers.get("content-type", "application/xml").split(";", 1)[0]
            parsed = _feedparse(doc.content, {**headers, "content-type": f"{media}; charset={guess.encoding}"})
            warnings.append(f"charset missing or wrong; detected {guess.encoding}")
            reason = parsed.get("bozo_exception")
    version = parsed.get("version") or ""
    if not version and not parsed.entries:
        raise ParseError(f"not a feed{f' ({_one_line(reason)})' if reason else ''}")
    if parsed.get("bozo") and not parsed.entries and doc.content.strip():
        # A feed so broken that nothing was recovered: an error, so its validators are not stored.
        raise ParseError(f"malformed feed, no entries could be read ({_one_line(reason)})")
    if parsed.get("bozo") and not isinstance(reason, _BENIGN):
        warnings.append(f"feed is not well-formed, entries kept: {_one_line(reason)}")
    f = parsed.feed
    meta = FeedMeta(
        id=f.get("id") or f.get("link") or (doc.location if doc.location.startswith("http") else None),
        title=f.get("title"),
        link=f.get("link"),
        # dict.get: FeedParserDict.get maps a missing updated_parsed to published_parsed, with a warning.
        updated=_struct_to_dt(dict.get(f, "updated_parsed")),
    )
    items: list[RawItem] = []
    empty = 0
    for e in parsed.entries:
        content_html, base = _content(e)
        summary = e.get("summary")
        if not content_html:
            base = (e.get("summary_detail") or {}).get("base") or None
        base = base or location
        if not any((e.get("title"), e.get("link"), e.get("id"), content_html, summary)):
            empty += 1  # e.g. the half-item at the end of a truncated feed: nothing to show
            continue
        published, p_precision, p_provenance = _feed_date(e.get("published"), e.get("published_parsed"), tz)
        # dict.get: FeedParserDict.get maps a missing updated to published.
        updated, u_precision, u_provenance = _feed_date(dict.get(e, "updated"), dict.get(e, "updated_parsed"), tz)
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
                content_base=base,
                summary=summary,
                published=published or updated,
                updated=updated or published,
                date_precision=p_precision if published else u_precision,
                date_provenance=(p_provenance if published else u_provenance) if (published or updated) else None,
                authors=authors,
                site_name=f.get("title"),
                language=(f.get("language") or None),
                location=doc.location,
                feed=meta,
            )
        )
    if empty:
        warnings.append(f"{empty} empty item(s) skipped")
    if not items and parsed.entries and parsed.get("bozo"):
        raise ParseError(f"malformed feed, no usable entries ({_one_line(reason)})")
    return items, warnings


# feedparser's fallbacks when no declared charset decodes the bytes.
_LAST_RESORT = ("windows-1252", "cp1252", "iso-8859-2")
# A missing or odd Content-Type, or a charset the XML prolog corrected: the feed itself read fine.
_BENIGN = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


# An xml:base (or HTML base) attribute anywhere: feedparser must know the document's URL.
_BASE_ATTR = re.compile(rb"base\s*=")
# A link or id element whose value does not start with a scheme ("/news/1", "12345"): a parse
# without the URL would be thrown away, so parse once with it. Only a forecast: stray matches
# (markup in CDATA) cost the saving, never correctness, which `_base_independent` checks.
_NO_SCHEME = rb"(?:<!\[CDATA\[)?\s*(?![a-z][a-z0-9+.-]*:)[^<\s]"
_RELATIVE_LINK = re.compile(
    rb"<(?:[\w.-]+:)?link>\s*"
    + _NO_SCHEME
    + rb"""|<(?:[\w.-]+:)?link\s[^>]*?\bhref\s*=\s*["']\s*(?![a-z][a-z0-9+.-]*:)""",
    re.I,
)
_RELATIVE_ID = re.compile(rb"<(?:[\w.-]+:)?(?:guid|id)(?:\s[^>]*)?>\s*" + _NO_SCHEME, re.I)


def _needs_base(content: bytes, *, ids: bool) -> bool:
    if _BASE_ATTR.search(content) or _RELATIVE_LINK.search(content):
        return True
    return ids and _RELATIVE_ID.search(content) is not None


def _unchanged_by(base: str, url: Any) -> bool:
    if not url:
        return True
    try:
        return bool(urljoin(base, url) == url)
    except (ValueError, TypeError):
        return False


def _base_independent(parsed: Any, location: str, *, ids: bool) -> bool:
    """True if the links and ids we read are what feedparser gives when told `location` too.

    Without xml:base, the document's URL changes only the elements feedparser resolves (links,
    ids; bodies are resolved by normalize): a value that joining with the URL leaves as it is
    (absolute: http, urn:, tag: ...) comes out the same either way; any other means parsing again.
    `ids=False` when no id is resolved at all (every one an RSS guid with isPermaLink="false").
    """
    f = parsed.feed
    if not (_unchanged_by(location, f.get("link")) and (not ids or _unchanged_by(location, f.get("id")))):
        return False
    return all(
        _unchanged_by(location, e.get("link")) and (not ids or _unchanged_by(location, e.get("id")))
        for e in parsed.entries
    )


# feedparser resolves an id element (RSS guid, Atom id) against the base unless it is a guid with
# isPermaLink other than "true". Counted in the bytes, case-insensitively as feedparser reads tags;
# a stray match (in CDATA) can only make the counts differ, which keeps the check on.
_ID_TAG = re.compile(rb"<(?:[\w.-]+:)?(?:guid|id)[\s>/]", re.I)
_OPAQUE_GUID = re.compile(rb"""<(?:[\w.-]+:)?guid\s[^>]*\bispermalink\s*=\s*["']\s*false\s*["']""", re.I)


def _all_ids_opaque(content: bytes) -> bool:
    return len(_ID_TAG.findall(content)) == len(_OPAQUE_GUID.findall(content))


def _content(e: Any) -> tuple[str | None, str | None]:
    """An entry's content elements as one HTML string, and the base its relative URLs resolve against.

    feedparser records each element's base (xml:base, else the feed's URL); normalize's nh3 pass
    resolves against it. Pieces with different bases (rare) are resolved here, one by one.
    """
    pieces = e.get("content") or []
    if not pieces:
        return None, None
    bases = {c.get("base") or None for c in pieces}
    if len(bases) == 1:
        return "".join(c.get("value", "") for c in pieces), bases.pop()
    return "".join(sanitize_html(c.get("value", ""), c.get("base")) for c in pieces), None


# feedparser's strict parser on the buffered expat driver (`_expat.py`: same result, fewer calls).
if "aggregator._expat" not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, "aggregator._expat")


def _feedparse(content: bytes, headers: dict[str, str]) -> Any:
    return feedparser.parse(
        # A file object, never bytes or str: feedparser would treat a short body as a path or URL.
        io.BytesIO(content),
        response_headers=headers,
        # On, as the design asks: feedparser's sanitiser first (it also turns markup in titles and
        # feed titles into text), then normalize's nh3 allow-list as the final pass. It costs about
        # a third of feedparser's parse time (bench/README.md); nh3 alone would be safe too, but
        # two independent sanitisers keep one library's bug from reaching readers.
        sanitize_html=True,
        # Off: relative links are resolved in normalize's nh3 pass against the base feedparser
        # records per content element (`_content`); feedparser's own pass re-parses every body
        # with sgmllib, about a third of its parse time.
        resolve_relative_uris=False,
    )


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:200]


def _is_json_feed(doc: Fetched, content_type: str) -> bool:
    """JSON Feed by media type, file name, or (servers often say text/plain) a leading '{'."""
    assert doc.content is not None
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/feed+json", "application/json"):
        return True
    return doc.location.endswith(".json") or doc.content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _parse_json_feed(doc: Fetched) -> list[RawItem]:
    """JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) -> RawItems."""
    assert doc.content is not None
    try:
        data = json.loads(decode_text(doc.content))
    except (ValueError, ParseError) as exc:
        raise ParseError(f"not a JSON Feed: {exc}") from exc
    if not isinstance(data, dict) or "jsonfeed.org" not in str(data.get("version", "")):
        raise ParseError("not a JSON Feed (no jsonfeed.org version)")
    raw_items = data.get("items", [])
    if not isinstance(raw_items, list):
        raise ParseError("not a JSON Feed ('items' is not a list)")
    meta = FeedMeta(
        id=_str(data.get("feed_url")) or _str(data.get("home_page_url")),
        title=_str(data.get("title")),
        link=_str(data.get("home_page_url")),
    )
    items = []
    for it in raw_items:
        if not isinstance(it, dict):
            continue
        pub = _iso(it.get("date_published"))
        upd = _iso(it.get("date_modified"))
        body_html = _str(it.get("content_html"))
        if body_html is None and _str(it.get("content_text")):
            body_html = paragraphs_to_html(it["content_text"])
        # 1.1 has `authors` (a list); 1.0 had a single `author` object.
        people = it.get("authors") or data.get("authors") or [it.get("author") or data.get("author")]
        authors = tuple(str(a["name"]) for a in people if isinstance(a, dict) and _str(a.get("name")))
        items.append(
            RawItem(
                source=doc.source,
                guid=str(it.get("id")) if it.get("id") not in (None, "") else None,
                link=_str(it.get("url")) or _str(it.get("external_url")),
                title=_str(it.get("title")),
                content_html=body_html,
                summary=_str(it.get("summary")),
                published=pub or upd,
                updated=upd or pub,
                date_precision=DatePrecision.MINUTE if (pub or upd) else DatePrecision.NONE,
                date_provenance="feed entry date" if (pub or upd) else None,
                authors=authors,
                site_name=meta.title,
                language=_str(it.get("language")) or _str(data.get("language")),
                location=doc.location,
                feed=meta,
            )
        )
    return items


def _str(value: Any) -> str | None:
    """A JSON value that should be a string: a non-empty string or None (numbers are stringified)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


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
    """One plain-text news page -> one RawItem (paragraphs as plain text; markup stays text)."""
    from .article import extract_article  # pages only: feeds (and the parse workers) never need it

    assert doc.content is not None
    text = decode_text(doc.content)
    if not text.strip():
        raise ParseError("empty file")
    fields = extract_article(text, tz=tz, fetched_at=fetched_at, extra_boilerplate=extra_boilerplate)
    if not fields.title and not fields.paragraphs:
        raise ParseError("no article text found (only boilerplate lines)")
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


_JSONLD_AUTHOR = re.compile(r'"author"\s*:\s*(\{[^{}]{0,500}\}|\[[^\[\]]{0,2000}\]|"[^"]{1,100}")')
_JSONLD_NAME = re.compile(r'"name"\s*:\s*"([^"]{1,100})"')


def _jsonld_authors(page: str) -> tuple[str, ...]:
    """Author names from a page's JSON-LD ("author": {"name": ...} or a list of them)."""
    from html import unescape

    if "ld+json" not in page:
        return ()
    m = _JSONLD_AUTHOR.search(page)
    if not m:
        return ()
    value = m.group(1)
    names = [value.strip('"')] if value.startswith('"') else _JSONLD_NAME.findall(value)
    return tuple(unescape(n).strip() for n in names if n.strip())


def _without_site_suffix(markup_title: str, text_title: str | None) -> str:
    """Drop the site from a <title> like "Title-Site": keep the part our extractor found as the headline."""
    from ._site import TITLE_SITE_SEP

    if text_title and markup_title != text_title:
        key = text_title.replace(" ", "")
        for part in TITLE_SITE_SEP.split(markup_title):
            if part.strip().replace(" ", "") == key:
                return part.strip()
        for sep in ("-", "_", "|", "｜", "—", "–"):
            head, _, tail = markup_title.rpartition(sep)
            if head.strip().replace(" ", "") == key and tail.strip():
                return head.strip()
    return markup_title


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w-]{2,40})""", re.I)


def parse_article_html(
    doc: Fetched,
    *,
    tz: tzinfo,
    fetched_at: datetime,
    site_name: str | None = None,
    extra_boilerplate: tuple[str, ...] = (),
) -> RawItem:
    """One saved HTML page -> one RawItem.

    trafilatura finds the main content, title, author and site name in the markup. The date is
    what the markup declares (`find_markup_date`), else one the text extractor finds where pages
    put dates. The text extractor also cleans trafilatura's text (nav and metadata lines it keeps)
    and, run over the whole page's text, supplies what the markup lacks: bylines, the site name
    from the <title> suffix or the copyright line.
    """
    import trafilatura

    from .article import extract_article, language_of

    assert doc.content is not None
    m = _META_CHARSET.search(doc.content[:4096])
    page = decode_text(doc.content, declared=m.group(1).decode("ascii") if m else None)
    if not page.strip():
        raise ParseError("empty file")
    local_day = fetched_at.astimezone(tz).strftime("%Y-%m-%d")
    result: Any = trafilatura.bare_extraction(
        page,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        deduplicate=True,
        date_extraction_params={"extensive_search": False, "max_date": local_day},  # its date is not used
    )
    whole = extract_article(html_to_text(page), tz=tz, fetched_at=fetched_at, extra_boilerplate=extra_boilerplate)
    main = None
    if result and getattr(result, "text", None):
        main = extract_article(str(result.text), tz=tz, fetched_at=fetched_at, extra_boilerplate=extra_boilerplate)
    paragraphs = (main.paragraphs if main and main.paragraphs else None) or whole.paragraphs
    ours = (main.title if main else None) or whole.title
    title = _without_site_suffix(result.title, ours) if result and result.title else ours
    if not title and not paragraphs:
        raise ParseError("no article text found in HTML page")
    # The date: what the markup declares (<meta>, JSON-LD, <time>), else a date line or labelled
    # field in the page's text. htmldate's own search (inside trafilatura) is not used: even
    # without its "extensive" mode it scans the whole page text for a bare date.
    found = find_markup_date(page, tz=tz, fetched_at=fetched_at)
    if found is None:
        best = whole if whole.published or not (main and main.published) else main
        found = FoundDate(best.published, best.precision, best.provenance or "no date in the page's markup or text")
    published, precision, provenance = found.value, found.precision, found.provenance
    authors: tuple[str, ...] = ()
    if result and result.author:
        authors = tuple(a.strip() for a in str(result.author).split(";") if a.strip())
    authors = authors or _jsonld_authors(page) or whole.authors or (main.authors if main else ())
    url = str(result.url) if result and result.url else ""
    return RawItem(
        source=doc.source,
        guid=None,
        link=url if url.startswith(("http://", "https://")) else None,
        title=title,
        content_text="\n\n".join(paragraphs),
        published=published,
        updated=published,
        date_precision=precision,
        date_provenance=provenance,
        authors=authors,
        site_name=site_name or (result.sitename if result else None) or whole.site_name,
        site_domain=(result.hostname if result else None) or whole.site_domain,
        language=language_of("\n".join([title or "", *paragraphs])),
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
        return [
            parse_article_html(
                doc, tz=tz, fetched_at=fetched_at, site_name=site_name, extra_boilerplate=extra_boilerplate
            )
        ], []
    return parse_feed(doc, tz=tz)
