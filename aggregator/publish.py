"""Stories -> Atom (RFC 4287) and JSON Feed bytes. Pure and deterministic: same stories, same bytes.

feedgen gets an explicit `updated` (the newest entry's, never the build time) and
`order='append'`, otherwise its output is neither reproducible nor in order. feedgen writes
`atom:source` with only a title and a link, so a small feedgen entry extension
(`_ProvenanceExtension`) writes the full `atom:source` (id, title, links, updated), the entry's
`xml:lang` and `type="text"` on titles. Archive pages follow RFC 5005 (section 4).

Provenance rules (`source_info`):
- an entry from a remote feed gets that feed's id (or, when the feed has no URI id, the feed URL),
  title, `alternate` link (the feed's site), `self` link (the feed URL) and `updated`, as the
  store recorded them with the entry;
- a local article page has no feed: its source is the site it came from: id and link
  `https://<site_domain>/`, title the site name (else the domain, else the source name from
  feeds.yaml), no `updated` (there is no feed document whose update time we could report). Without
  a domain the id is a name-based `urn:uuid:` under our `base_url` and there is no link.
- when the entry has no author, `atom:source` carries the source title as author, because RFC 4287
  (4.2.4) would otherwise attribute the entry to the feed-level author, i.e. to us.
"""

from __future__ import annotations

import functools
import html
import itertools
import os
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from lxml import etree

from . import __version__
from ._text import UrlCleaner
from .config import Config
from .types import Entry, Story

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # `updated` of an empty feed: fixed, so rebuilds stay identical
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005 feed history
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_HTTP_URL = re.compile(r"^https?://[^/\s?#]+[^\s]*$", re.I)
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$", re.I)  # any absolute URI (urn:, tag:, http:, ...)
_LANG_TAG = re.compile(r"^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$", re.I)  # BCP 47 shape; junk is dropped
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
GENERATOR_URI = "https://example.invalid/aggregator"
ATOM_TYPE = "application/atom+xml"


# -- small pure helpers ---------------------------------------------------------------------


def is_http_url(url: str | None) -> bool:
    """True for an absolute http(s) URL: the only kind of link we publish."""
    return bool(url) and _HTTP_URL.match(url or "") is not None


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is UTC else dt.astimezone(UTC)


def _text(s: str) -> str:
    """XML-legal text: entries from the store are clean already; hostile callers are not.
    (Only the XML rule here: NFC is normalize's job, and lxml refuses illegal characters.)"""
    return _XML_ILLEGAL.sub("", s)


def story_uri(config: Config, story_id: str) -> str:
    """Stable URI id for a story: a name-based UUID under the feed's base URL."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{config.base_url}story/{story_id}").urn


def entry_updated(e: Entry) -> datetime:
    """The entry's `updated`: from the source, else its published date, else when we first saw it."""
    return _utc(e.updated or e.published or e.first_seen or _EPOCH)


def story_key(s: Story) -> tuple[datetime, str]:
    """Feed order (newest first when reversed): the primary's updated, then the story id."""
    return (entry_updated(s.primary), s.id)


def source_label(e: Entry) -> str:
    """Human name of where an entry came from: site, feed title, else the source name."""
    return e.site_name or e.feed.title or e.source


def language_tag(tag: str | None) -> str | None:
    """A BCP 47-shaped language tag, or None for junk (it would make the XML lie)."""
    return tag if tag and _LANG_TAG.match(tag) else None


@dataclass(frozen=True)
class SourceInfo:
    """What `atom:source` (and JSON Feed `_provenance.source`) says about an entry's origin."""

    id: str
    title: str
    link: str | None = None  # the origin's web page (rel="alternate")
    feed_url: str | None = None  # the origin feed document (rel="self")
    updated: datetime | None = None
    author: str | None = None  # only when the entry has no author of its own (see module doc)


def source_info(config: Config, e: Entry) -> SourceInfo:
    """Decide the provenance of an entry (rules in the module docstring)."""
    feed = e.feed
    feed_url = e.location if is_http_url(e.location) else None
    if feed_url or feed.id or feed.link or feed.title:
        link = feed.link if is_http_url(feed.link) else None
        ident = feed.id if feed.id and _URI.match(feed.id) else (feed_url or link)
        title = feed.title or e.site_name or e.site_domain or e.source
        updated = _utc(feed.updated) if feed.updated else None
    else:
        domain = (e.site_domain or "").lower()
        link = f"https://{domain}/" if _DOMAIN.match(domain) else None
        ident = link
        title = e.site_name or e.site_domain or e.source
        updated = None
    if not ident:
        ident = uuid.uuid5(uuid.NAMESPACE_URL, f"{config.base_url}source/{e.source}").urn
    title = _text(title)
    return SourceInfo(
        id=ident,
        title=title,
        link=link,
        feed_url=feed_url,
        updated=updated,
        author=None if e.authors else title,
    )


def also_reported_html(story: Story) -> str:
    """The "Also reported by" paragraph (unsanitised; `content_html` sanitises the whole body)."""
    if not story.others:
        return ""
    names = []
    for o in story.others:
        label = html.escape(source_label(o))
        names.append(f'<a href="{html.escape(o.link or "")}">{label}</a>' if is_http_url(o.link) else label)
    return f"<p><em>Also reported by: {', '.join(names)}</em></p>"


def _join_or_drop(base: str | None, url: str) -> str | None:
    """Relative links resolve against the article; without one they are dropped."""
    return urljoin(base, url) if base else None


_CLEANER = UrlCleaner(_join_or_drop)


# How nh3 writes the URL attributes it keeps (lower-case name, double-quoted value), and the
# values that need no resolving. Text that merely looks like an attribute costs a full clean.
_URL_ATTRS = (' href="', ' src="')
_ABSOLUTE = ("http://", "https://", "mailto:")


def _links_absolute(body: str) -> bool:
    """True when every href/src in nh3 output is absolute (str.find: ~20x faster than a regex)."""
    for attr in _URL_ATTRS:
        i = body.find(attr)
        while i != -1:
            i += len(attr)
            if not body.startswith(_ABSOLUTE, i):
                return False
            i = body.find(attr, i)
    return True


def _unsettled(body: str) -> bool:
    """What a second nh3 pass would still change: a no-break space (nh3 writes &nbsp;, but
    normalize's escaped plain-text paragraphs keep it), a carriage return (from &#13;: the next
    parse makes it a newline), a byte-order mark, a <pre> that starts with a newline (which the
    next parse drops), and a numeric character reference (nh3 writes none; it decodes them).
    Cheap substring tests; such bodies take the full pass."""
    return "\xa0" in body or "\r" in body or "\ufeff" in body or "<pre>\n" in body or "&#" in body


def content_html(story: Story, *, clean_html: bool = False) -> str:
    """The entry body: sanitised again here (no scripts, handlers, js: URLs), links made absolute.

    By default the body goes through nh3 again: that is what lets the feed promise "no
    executable HTML" whatever a caller hands in. Relative URLs are resolved against the
    article's URL, or dropped when there is none, so every published link is absolute.

    `clean_html=True` says the body is already normalize's nh3 output with this allow-list
    (stories rebuilt from the store). nh3 is idempotent on its own output, so the second pass
    would change nothing and is skipped; a body with a relative URL (to resolve it) or that nh3
    would still rewrite goes through it, and so does the "Also reported by" paragraph, built here.
    The bytes are those of `clean_html=False` (checked on a 10k-entry corpus), except for
    mis-nested markup that nh3 itself leaves unsettled (a heading inside a heading: each pass
    re-nests it); either form is nh3 output, so equally safe.
    """
    return _text(_content(story, clean_html))


def _content(story: Story, clean_html: bool) -> str:
    """`content_html` without the final XML-character pass when the nh3 pass is skipped.
    (nh3 decodes references such as &#1; into characters XML forbids; lxml refuses them.)"""
    e = story.primary
    also = also_reported_html(story)
    if not clean_html or _unsettled(e.content_html) or not _links_absolute(e.content_html):
        return _sanitise(e.content_html + also, e.link)
    return e.content_html + (_sanitise(also, e.link) if also else "")


@functools.lru_cache(maxsize=4096)
def _sanitise(body: str, base: str | None) -> str:
    return _CLEANER.clean(_text(body), base if is_http_url(base) else None)


def related_links(story: Story) -> list[tuple[str, str]]:
    """(href, title) for each "also reported by" member with its own http(s) URL, first one wins."""
    seen = {story.primary.link}
    out = []
    for o in story.others:
        if is_http_url(o.link) and o.link not in seen:
            seen.add(o.link)
            out.append((o.link or "", _text(source_label(o))))
    return out


def select_window(config: Config, stories: Sequence[Story]) -> list[Story]:
    """The stories a feed holds: newest first, at most `feed.max_entries`, and, with
    `feed.max_weeks`, only those updated within that many weeks of the newest story.

    The window is anchored at the newest story, not at the clock, so the same store always gives
    the same feed. Older stories stay in the store (and in the archive pages, if enabled).
    """
    return _window(config, sorted(stories, key=story_key, reverse=True))


def _window(config: Config, ordered: list[Story]) -> list[Story]:
    """`select_window` of stories already in feed order (newest first)."""
    ordered = ordered[: config.feed.max_entries]
    if config.feed.max_weeks and ordered:
        cutoff = story_key(ordered[0])[0] - timedelta(weeks=config.feed.max_weeks)
        ordered = list(itertools.takewhile(lambda s: story_key(s)[0] >= cutoff, ordered))
    return ordered


# -- feedgen extensions ---------------------------------------------------------------------


def _add_provenance(entry: Any, source: Any, lang: str | None, links: list[dict[str, str]]) -> None:
    """Adds what feedgen cannot: full atom:source (`_source_element`), the entry's xml:lang,
    title type="text", and the entry links (feedgen 1.0 drops rel, type and title of entry links:
    its loop variable shadows the link dict with the new element; upstream python-feedgen #135)."""
    # etree.SubElement with an attribute dict directly: this runs once per entry (10k+).
    if lang:
        entry.set(_XML_LANG, lang)
    title = entry.find("title")
    if title is not None:
        title.set("type", "text")
    for attrs in links:
        etree.SubElement(entry, "link", attrs)
    entry.append(source)


def _source_element(s: SourceInfo) -> Any:
    """atom:source. feedgen builds un-namespaced elements under a literal xmlns attribute; so do we."""
    sub = etree.SubElement
    src = etree.Element("source")
    sub(src, "id").text = s.id
    sub(src, "title").text = s.title
    if s.updated:
        sub(src, "updated").text = s.updated.isoformat()
    if s.link:
        sub(src, "link", {"rel": "alternate", "type": "text/html", "href": s.link})
    if s.feed_url:
        sub(src, "link", {"rel": "self", "href": s.feed_url})
    if s.author:
        sub(sub(src, "author"), "name").text = s.author
    return src


class _ArchiveExtension(BaseExtension):  # type: ignore[misc]
    """RFC 5005: marks a document as an archive (`<fh:archive/>`)."""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": _FH_NS}

    def extend_atom(self, feed: Any) -> Any:
        # Put the marker among the feed's metadata, before the first entry.
        feed.append(xml_elem(f"{{{_FH_NS}}}archive"))
        return feed


# -- Atom -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLinks:
    """RFC 5005 links of one document; all paths are relative to `base_url`."""

    prev_archive: str | None = None
    next_archive: str | None = None
    current: str | None = None  # set only on archive documents
    is_archive: bool = False


class _BuiltEntry:
    """Stands in for a feedgen FeedEntry in FeedGenerator's entry list, holding the element that
    feedgen's own FeedEntry built (`_Entries`): one story's element is built once and can appear
    in several documents of a build (feed, topic feeds, archives). FeedGenerator asks an Atom
    entry only for `atom_entry()`, and offers it the feed's extensions (`register_extension`,
    where ImportError means "no entry part", as for the archive marker)."""

    __slots__ = ("element",)

    def __init__(self, element: Any) -> None:
        self.element = element

    def register_extension(self, *args: object, **kwargs: object) -> None:
        raise ImportError("entries are built before they are added")

    def atom_entry(self, extensions: bool = True) -> Any:
        return self.element


class _Entries:
    """Atom `<entry>` elements of one build, each story built once by feedgen's FeedEntry.

    The FeedEntry is dropped as soon as its element exists: keeping 10k of them alive until the
    document is serialised made the garbage collector walk them again and again (most of the
    time of a large build went to full collections).
    """

    def __init__(self, config: Config, *, clean_html: bool = False) -> None:
        self.config = config
        self.clean_html = clean_html
        self.scheme = config.base_url + "topics/"
        self.built: dict[str, Any] = {}
        self.sources: dict[tuple[object, ...], Any] = {}  # atom:source elements by `source_info`'s inputs

    def element(self, story: Story) -> Any:
        built = self.built.get(story.id)
        if built is None:
            built = self.built[story.id] = self._build(story)
            return built
        return built.__copy__()  # a deep copy (lxml): an element has one parent, the first document keeps it

    def _build(self, story: Story) -> Any:
        config, e = self.config, story.primary
        fe = FeedEntry()
        fe.id(story_uri(config, story.id))
        fe.title(_text(e.title).strip() or "(untitled)")  # feedgen and RFC 4287 need a title
        fe.updated(entry_updated(e))
        if e.published:
            fe.published(_utc(e.published))
        for a in e.authors:
            fe.author({"name": _text(a)})
        fe.summary(_text(e.summary or e.title))
        fe.content(_content(story, self.clean_html), type="html")
        for key in story.topics:
            label = config.topics[key].title if key in config.topics else key
            fe.category(term=key, label=label, scheme=self.scheme)
        try:
            element = fe.atom_entry(extensions=False)
        except ValueError:  # a character XML forbids in a body nh3 did not see here: strip it
            fe.content(content_html(story, clean_html=self.clean_html), type="html")
            element = fe.atom_entry(extensions=False)
        links = [{"rel": "alternate", "type": "text/html", "href": e.link or ""}] if is_http_url(e.link) else []
        links += [{"rel": "related", "type": "text/html", "href": h, "title": t} for h, t in related_links(story)]
        # source_info reads only these fields: a few hundred feeds tell 10k stories.
        origin = (e.feed, e.location, e.site_name, e.site_domain, e.source, not e.authors)
        source = self.sources.get(origin)
        if source is None:
            source = self.sources[origin] = _source_element(source_info(config, e))
        _add_provenance(element, source.__copy__(), language_tag(e.language), links)
        return element


def build_atom(
    config: Config,
    stories: Sequence[Story],
    *,
    topic: str | None = None,
    self_path: str = "feed.atom",
    archive: ArchiveLinks | None = None,
    clean_html: bool = False,
) -> bytes:
    """Render the given stories (all of them, newest first) as an Atom 1.0 document.

    Windowing is the caller's job (`select_window`); this function only renders.
    `clean_html`: see `content_html` (True only for bodies that are normalize's nh3 output).
    """
    return _build_atom(config, stories, _Entries(config, clean_html=clean_html), topic, self_path, archive)


def _build_atom(
    config: Config,
    stories: Sequence[Story],
    entries: _Entries,
    topic: str | None = None,
    self_path: str = "feed.atom",
    archive: ArchiveLinks | None = None,
) -> bytes:
    ordered = sorted(stories, key=story_key, reverse=True)
    fg = FeedGenerator()
    if archive and archive.is_archive:
        fg.register_extension("history", _ArchiveExtension, None, atom=True, rss=False)
    feed_url = config.base_url + self_path
    fg.id(feed_url)
    title = config.title
    if topic is not None:
        title = f"{config.title}: {config.topics[topic].title if topic in config.topics else topic}"
    fg.title(title)
    fg.subtitle(config.subtitle or "Rare-earth and university–industry news, merged and deduplicated")
    fg.author({"name": config.author})
    fg.link(href=feed_url, rel="self", type=ATOM_TYPE)
    fg.link(href=config.base_url, rel="alternate", type="text/html")
    if archive:
        for rel, path in (
            ("current", archive.current),
            ("prev-archive", archive.prev_archive),
            ("next-archive", archive.next_archive),
        ):
            if path:
                fg.link(href=config.base_url + path, rel=rel, type=ATOM_TYPE)
    fg.generator("aggregator", version=__version__, uri=GENERATOR_URI)
    fg.language(language_tag(config.language) or "en")
    fg.updated(story_key(ordered[0])[0] if ordered else _EPOCH)
    for story in ordered:
        fg.add_entry(_BuiltEntry(entries.element(story)), order="append")
    return bytes(fg.atom_str(pretty=True))


def archive_documents(
    config: Config, stories: Sequence[Story], *, clean_html: bool = False, entries: _Entries | None = None
) -> tuple[dict[str, bytes], str | None]:
    """RFC 5005 archive pages: one per calendar month (UTC) of the stories' `updated`.

    Only months before the newest story's month are archived: those are closed, so their pages
    stop changing. The subscription feed may overlap them; readers merge by entry id.
    Returns {relative path: bytes} and the path of the newest archive (for `prev-archive`).
    """
    ordered = sorted(stories, key=story_key, reverse=True)
    if not ordered:
        return {}, None
    entries = entries or _Entries(config, clean_html=clean_html)
    current_month = story_key(ordered[0])[0].strftime("%Y-%m")
    months: dict[str, list[Story]] = {}
    for s in ordered:
        month = story_key(s)[0].strftime("%Y-%m")
        if month < current_month:
            months.setdefault(month, []).append(s)
    keys = sorted(months)
    paths = [f"archive/{m}.atom" for m in keys]
    out: dict[str, bytes] = {}
    for i, month in enumerate(keys):
        links = ArchiveLinks(
            prev_archive=paths[i - 1] if i > 0 else None,
            next_archive=paths[i + 1] if i + 1 < len(keys) else None,
            current="feed.atom",
            is_archive=True,
        )
        out[paths[i]] = _build_atom(config, months[month], entries, self_path=paths[i], archive=links)
    return out, (paths[-1] if paths else None)


def build_index(config: Config, paths: Sequence[str]) -> bytes:
    """A small HTML page at base_url (the feeds' `alternate` link) listing the feeds, with
    autodiscovery links so a reader pointed at the site finds them. Changes only with config."""
    esc = html.escape
    names = {"feed.atom": "All stories (Atom)", "feed.json": "All stories (JSON Feed)"}
    for key, rule in config.topics.items():
        names[f"topics/{key}.atom"] = f"{rule.title} (Atom)"
    feeds = [p for p in paths if p in names]
    head = "".join(
        f'<link rel="alternate" type="{"application/feed+json" if p.endswith(".json") else ATOM_TYPE}" '
        f'title="{esc(names[p])}" href="{esc(p)}">\n'
        for p in feeds
    )
    items = "".join(f'<li><a href="{esc(p)}">{esc(names[p])}</a></li>\n' for p in feeds)
    subtitle = esc(config.subtitle or "")
    lang = language_tag(config.language) or "en"
    page = (
        f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(config.title)}</title>\n{head}</head>\n<body>\n<h1>{esc(config.title)}</h1>\n"
        f"<p>{subtitle}</p>\n<ul>\n{items}</ul>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")


def render_all(config: Config, stories: Sequence[Story], *, clean_html: bool = False) -> dict[str, bytes]:
    """Every published file as {path relative to output_dir: bytes}. Pure.

    A story in several documents (feed, topic feeds, archives) is rendered once.
    `clean_html`: see `content_html` (True only for bodies that are normalize's nh3 output).
    """
    from .jsonfeed import build_json_feed

    entries = _Entries(config, clean_html=clean_html)
    out: dict[str, bytes] = {}
    newest_archive = None
    if config.feed.archive:
        archives, newest_archive = archive_documents(config, stories, entries=entries)
        out.update(archives)
    # Sorted once, and each story's topics (Story.topics walks its members) taken once.
    ordered = sorted(stories, key=story_key, reverse=True)
    tagged = [(s, s.topics) for s in ordered]
    window = _window(config, ordered)
    links = ArchiveLinks(prev_archive=newest_archive) if newest_archive else None
    out["feed.atom"] = _build_atom(config, window, entries, archive=links)
    if config.feed.json_feed:
        out["feed.json"] = build_json_feed(config, window, clean_html=clean_html)
    for key in sorted(config.topics):
        in_topic = _window(config, [s for s, story_topics in tagged if key in story_topics])
        path = f"topics/{key}.atom"
        out[path] = _build_atom(config, in_topic, entries, topic=key, self_path=path)
    out["index.html"] = build_index(config, sorted(out))
    return out


# -- the edge: files ------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> bool:
    """Write via temp file + rename so readers never see half a file. Returns True if changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data:
            return False  # unchanged: keep mtime so HTTP Last-Modified stays honest
    except FileNotFoundError:
        pass
    # Not mkstemp: its files are 0600, and a web server in front of us must read the feed. A new
    # file with mode 0666 gets the umask applied, like any other file the user writes.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def publish_all(config: Config, stories: Sequence[Story], *, clean_html: bool = False) -> list[Path]:
    """Write feed.atom, feed.json, topics/<key>.atom, index.html (and archive/*.atom); return the paths.

    Each file is replaced atomically and only when its bytes changed. `clean_html`: see `content_html`.
    """
    out = config.output_path
    written = []
    for rel, data in render_all(config, stories, clean_html=clean_html).items():
        path = out / rel
        write_atomic(path, data)
        written.append(path)
    return written
