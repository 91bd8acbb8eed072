"""Text helpers shared by normalize, dedupe, topics and digest: cleaning, HTML <-> text."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from typing import ClassVar

import nh3

# XML 1.0 forbids these; feedgen/lxml refuse them, so they never get past normalize.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt", "em",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRS = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


def clean_text(s: str) -> str:
    """NFC, XML-legal, no stray control characters."""
    return _XML_ILLEGAL.sub("", unicodedata.normalize("NFC", s))


def collapse_ws(s: str) -> str:
    """Runs of whitespace become one space; no leading or trailing space."""
    # str.split() splits on exactly the characters `\s` matches (checked over all of Unicode)
    # and is several times faster than the regex; this runs on every paragraph of every entry.
    return " ".join(s.split())


def sanitize_html(fragment: str) -> str:
    """Final allow-list pass (after feedparser's sanitiser): no scripts, handlers or js: URLs."""
    return nh3.clean(
        clean_text(fragment),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


def paragraphs_to_html(text: str) -> str:
    """Plain text (paragraphs split by blank lines) -> escaped <p> HTML. Text stays text."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paras)


class _TextExtractor(HTMLParser):
    _BLOCK: ClassVar[set[str]] = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "figcaption",
        "table",
    }
    _SKIP: ClassVar[set[str]] = {"script", "style", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """HTML -> plain text with paragraphs separated by blank lines."""
    p = _TextExtractor()
    p.feed(fragment)
    p.close()
    paras = [collapse_ws(x) for x in re.split(r"\n\s*\n", "".join(p.parts))]
    return "\n\n".join(x for x in paras if x)


def excerpt(text: str, limit: int = 280) -> str:
    """First `limit` characters of text, cut at a word (or CJK character) boundary."""
    flat = collapse_ws(text)
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:，；、") + "…"
