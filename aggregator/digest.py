"""Stories + templates -> Digest (subject, HTML, text). Pure: the period and 'now' are inputs.

HTML and text are rendered from one context, so both always say the same thing. The HTML's
<style> block is inlined into style="" attributes (css-inline), because many mail clients drop
<style>; the @media rules (dark mode, phone widths) stay in a <style> block since they cannot be
inlined and clients that support them read them there.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2

from .config import Config
from .publish import source_label
from .types import DatePrecision, Digest, Entry, Story

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_PACKAGED = Path(__file__).resolve().parent / "templates"

EXCERPT_CHARS = 320  # about three lines at phone width: enough to decide whether to click
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")  # keeps \t and \n only
_SPACES = re.compile(r"\s+")


# Plain-text wrapping for Chinese as well as English: a Chinese character takes two columns and a
# line may break between any two of them, but not before closing punctuation (，。）、...).
_W = "\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
_WIDE = re.compile(f"[{_W}]")
_CLOSING = frozenset("，。、；：！？）》」』】〉”’·…")
_WRAP_TOKENS = re.compile(rf"\s+|[{_W}]+|[^\s{_W}]+")  # spaces, runs of wide characters, words


def wrap(text: str, width: int = 72) -> str:
    """Wrap to `width` display columns without breaking words or URLs (Jinja filter `wrap`).

    Text without wide characters is wrapped exactly as Jinja's `wordwrap(width,
    break_long_words=False)` does; Chinese, Japanese and Korean text breaks between characters.
    """
    return "\n".join(_wrap_paragraph(p, width) for p in text.splitlines())


def _wrap_paragraph(text: str, width: int) -> str:
    if not _WIDE.search(text):
        return "\n".join(
            textwrap.wrap(text, width, expand_tabs=False, replace_whitespace=False, break_long_words=False)
        )
    lines: list[str] = []
    line: list[str] = []
    used = 0
    space = False
    for token in _WRAP_TOKENS.findall(text):
        if token.isspace():
            space = True
            continue
        gap = 1 if space and line else 0  # a space the text has is kept (except at a line break)
        space = False
        if not _WIDE.match(token):  # a word or URL: never broken
            if line and used + gap + len(token) > width:
                lines.append("".join(line))
                line, used, gap = [], 0, 0
            line += [" "] * gap + [token]
            used += gap + len(token)
            continue
        while token:  # a run of wide characters: break between any two, not before a closer
            room = max((width - used - gap) // 2, 0)
            cut = min(room, len(token))
            while 0 < cut < len(token) and token[cut] in _CLOSING:
                cut -= 1
            if cut == 0:  # closing punctuation hangs at the end of the line rather than open the next
                while cut < len(token) and token[cut] in _CLOSING:
                    cut += 1
                if cut == 0 and not line:
                    cut = 1  # a column narrower than one character: one per line
            if cut:
                line += [" "] * gap + [token[:cut]]
                used += gap + 2 * cut
                token = token[cut:]
            if token:
                lines.append("".join(line))
                line, used, gap = [], 0, 0
    if line:
        lines.append("".join(line))
    return "\n".join(lines)


def template_env(directory: Path | None = None) -> jinja2.Environment:
    """StrictUndefined: a typo in a template is an error, not an empty string."""
    where = directory or (TEMPLATE_DIR if TEMPLATE_DIR.is_dir() else _PACKAGED)
    env = _environment(where)
    env.filters["wrap"] = wrap
    return env


def _environment(where: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(where)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@functools.lru_cache(maxsize=1)
def _default_env() -> jinja2.Environment:
    """The shipped templates' environment, built once: it compiles each template on first use and
    reuses it (a scheduled send renders one digest per recipient). Jinja still checks the files'
    mtimes, so an edited template is picked up."""
    return template_env()


@dataclass(frozen=True)
class DigestItem:
    title: str
    link: str | None  # http(s) only: a javascript: or data: link from a feed is dropped
    source: str
    date: str  # for people, in the configured zone; "date unknown" when there is none
    excerpt: str
    also: tuple[str, ...]
    ref: int  # numbered link reference in the text version; 0 when there is no link


@dataclass(frozen=True)
class DigestSection:
    key: str
    title: str
    items: tuple[DigestItem, ...]
    total: int  # before the per-topic limit


def clean_line(text: str | None) -> str:
    """One line of plain text: no control characters (no header or terminal tricks), single spaces."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text or "")).strip()


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters, cut at a word boundary when there is one, with an ellipsis."""
    line = clean_line(text)
    if len(line) <= limit:
        return line
    cut = line[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:  # CJK text has no spaces: cut mid-run rather than lose most of it
        cut = cut[:space]
    return cut.rstrip(" ,.;:，。；：") + "…"


def safe_link(url: str | None) -> str | None:
    """Only absolute http(s) links become clickable."""
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or re.search(r"[\s\x00-\x1f\x7f]", url):
        return None
    return url


def human_date(e: Entry, tz: ZoneInfo) -> str:
    if e.published is None:
        return "date unknown"
    local = e.published.astimezone(tz)
    if e.date_precision == DatePrecision.MINUTE:
        return local.strftime("%Y-%m-%d %H:%M")
    if e.date_precision == DatePrecision.INFERRED_YEAR:
        return local.strftime("%Y-%m-%d") + " (approximate)"
    return local.strftime("%Y-%m-%d")


def build_context(
    config: Config,
    stories: Sequence[Story],
    *,
    start: datetime,
    end: datetime,
    topics: Sequence[str] = (),
    max_per_topic: int = 20,
    subscription: str = "one-off",
    unsubscribe: str | None = None,
    recipient: str | None = None,
) -> dict[str, object]:
    """Everything both templates show. Stories keep their given order (first seen) within a topic;
    a story in two topics appears in both and counts once."""
    tz = ZoneInfo(config.timezone)
    keys = [k for k in (topics or sorted(config.topics)) if k in config.topics]
    sections: list[DigestSection] = []
    shown: set[str] = set()
    ref = 0
    tagged = [(s, s.topics) for s in stories]  # Story.topics walks the members: once per story
    for key in keys:
        chosen = [s for s, story_topics in tagged if key in story_topics]
        items = []
        for s in chosen[:max_per_topic]:
            shown.add(s.id)
            e = s.primary
            link = safe_link(e.link)
            if link:
                ref += 1
            items.append(
                DigestItem(
                    title=clean_line(e.title) or "(untitled)",
                    link=link,
                    source=clean_line(source_label(e)),
                    date=human_date(e, tz),
                    excerpt=excerpt(e.summary or e.content_text),
                    also=tuple(dict.fromkeys(clean_line(source_label(o)) for o in s.others)),
                    ref=ref if link else 0,
                )
            )
        if items:
            sections.append(DigestSection(key, config.topics[key].title, tuple(items), len(chosen)))
    count = len(shown)  # a story in two topics is one story
    start_s = start.astimezone(tz).strftime("%Y-%m-%d")
    end_s = end.astimezone(tz).strftime("%Y-%m-%d")
    summary = ", ".join(f"{s.title}: {len(s.items)}" for s in sections)
    return {
        "title": clean_line(config.title),
        "subscription": subscription,
        "start": start_s,
        "end": end_s,
        "timezone": config.timezone,
        "sections": sections,
        "count": count,
        "topic_titles": [config.topics[k].title for k in keys],
        "preheader": f"{count} {'story' if count == 1 else 'stories'}, {start_s} – {end_s}. {summary}".strip(),
        "feed_url": config.base_url + "feed.atom",
        "unsubscribe": unsubscribe,
        "unsubscribe_is_mail": bool(unsubscribe and unsubscribe.lower().startswith("mailto:")),
        "recipient": recipient,
    }


# keep_at_rules: @media blocks (dark mode, narrow screens) stay in <style>; everything else is
# inlined and dropped from the block. No remote stylesheets: rendering never touches the network.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    return _INLINER.inline(html)


def render_digest(context: dict[str, object], subject_template: str, env: jinja2.Environment | None = None) -> Digest:
    """Render HTML (CSS inlined) and text from one context, and the subject from its template."""
    env = env or _default_env()
    html = inline_css(env.get_template("digest.html.j2").render(**context))
    text = env.get_template("digest.txt.j2").render(**context)
    fields = {k: context[k] for k in ("title", "count", "start", "end", "subscription")}
    subject = clean_line(subject_template.format(**fields))
    return Digest(subject=subject, html=html, text=text, item_count=int(context["count"]))  # type: ignore[call-overload]
