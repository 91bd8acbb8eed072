"""OPML subscription lists in and out.

Import reads with listparser (bytes only, never a URL) and turns each feed outline into a
`sources:` entry. Entries whose URL is already configured are skipped; names are made unique.
The command prints the YAML by default; with `--write` it appends the entries to the end of
the `sources:` list in feeds.yaml, keeping the rest of the file (comments included) as it was.
Export writes OPML 2.0 with every remote source.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import listparser
import yaml

from ._url import canonical_url
from .config import SourceConfig
from .errors import AggregatorError


class OpmlError(AggregatorError):
    """An OPML file that cannot be read, or a feeds.yaml it cannot be merged into."""


@dataclass(frozen=True)
class OpmlFeed:
    title: str | None
    url: str
    categories: tuple[str, ...] = ()


def read_opml(data: bytes, *, where: str = "OPML file") -> list[OpmlFeed]:
    """Feed outlines of an OPML document. Raises OpmlError when there are none."""
    parsed = listparser.parse(data)  # bytes: listparser never fetches anything
    feeds = [
        OpmlFeed(
            title=(f.get("title") or "").strip() or None,
            url=str(f["url"]).strip(),
            categories=tuple("/".join(c) for c in f.get("categories", []) if c),
        )
        for f in parsed.feeds
        if f.get("url")
    ]
    if not feeds:
        reason = f": {parsed.bozo_exception}" if parsed.get("bozo") else ""
        raise OpmlError(f"{where}: no feed outlines (xmlUrl) found{reason}; is it an OPML subscription list?")
    return feeds


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")


def new_sources(existing: Sequence[SourceConfig], feeds: Iterable[OpmlFeed]) -> tuple[list[dict[str, str]], list[str]]:
    """`sources:` entries for feeds not configured yet, and a note for each feed skipped."""
    taken = {s.name for s in existing}
    known = {canonical_url(s.url) for s in existing if s.url}
    out: list[dict[str, str]] = []
    notes: list[str] = []
    for feed in feeds:
        parts = urlsplit(feed.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            notes.append(f"skipped {feed.url!r}: not an http(s) URL")
            continue
        canon = canonical_url(feed.url)
        if canon in known:
            notes.append(f"skipped {feed.url}: already configured")
            continue
        base = _slug(feed.title or "") or _slug(parts.hostname or "") or "feed"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        known.add(canon)
        out.append({"name": name, "url": feed.url})
    return out, notes


def sources_yaml(entries: Sequence[dict[str, str]], indent: int = 2) -> str:
    """YAML list items for `sources:`, indented by `indent` spaces."""
    text = yaml.safe_dump(list(entries), allow_unicode=True, sort_keys=False, default_flow_style=False)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


_TOP_KEY = re.compile(r"^[^\s#-][^:]*:")


def append_to_config(text: str, entries: Sequence[dict[str, str]]) -> str:
    """feeds.yaml text with `entries` added after the last item of the top-level `sources:` list.

    Text insertion rather than a YAML round trip, so the user's comments and layout survive.
    Raises OpmlError if there is no block-style `sources:` list to extend.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"^sources:\s*(#.*)?$", ln)), None)
    if start is None:
        raise OpmlError("feeds.yaml has no block-style top-level 'sources:' list to append to")
    end = len(lines)
    for i in range(start + 1, len(lines)):
        if _TOP_KEY.match(lines[i]):
            end = i
            break
    # Insert after the last line that belongs to a list item (not trailing blanks/comments).
    last = start
    for i in range(start + 1, end):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            last = i
    item = next((ln for ln in lines[start + 1 : end] if ln.lstrip().startswith("- ")), "  - ")
    indent = len(item) - len(item.lstrip())
    block = sources_yaml(entries, indent)
    if lines[last] and not lines[last].endswith("\n"):
        lines[last] += "\n"
    return "".join([*lines[: last + 1], block, *lines[last + 1 :]])


def export_opml(title: str, sources: Iterable[SourceConfig], now: datetime) -> bytes:
    """OPML 2.0 listing every remote source (local sources have no URL to share)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ET.SubElement(root, "body")
    for s in sources:
        if s.url:
            ET.SubElement(body, "outline", type="rss", text=s.name, title=s.name, xmlUrl=s.url)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
