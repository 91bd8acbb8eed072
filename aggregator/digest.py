"""Stories + templates -> Digest (subject, HTML, text). Pure: the period and 'now' are inputs.

HTML and text are rendered from one context, so both always say the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from .config import Config
from .publish import source_label
from .types import DatePrecision, Digest, Entry, Story

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_PACKAGED = Path(__file__).resolve().parent / "templates"


def template_env(directory: Path | None = None) -> jinja2.Environment:
    """StrictUndefined: a typo in a template is an error, not an empty string."""
    where = directory or (TEMPLATE_DIR if TEMPLATE_DIR.is_dir() else _PACKAGED)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(where)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class DigestItem:
    title: str
    link: str | None
    source: str
    date: str  # for people, in the configured zone; "date unknown" when there is none
    excerpt: str
    also: tuple[str, ...]
    ref: int  # numbered link reference in the text version


@dataclass(frozen=True)
class DigestSection:
    key: str
    title: str
    items: tuple[DigestItem, ...]
    total: int  # before the per-topic limit


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
) -> dict[str, object]:
    tz = ZoneInfo(config.timezone)
    keys = [k for k in (topics or sorted(config.topics)) if k in config.topics]
    sections: list[DigestSection] = []
    shown: set[str] = set()
    ref = 0
    for key in keys:
        chosen = [s for s in stories if key in s.topics]
        items = []
        for s in chosen[:max_per_topic]:
            ref += 1
            shown.add(s.id)
            e = s.primary
            items.append(
                DigestItem(
                    title=e.title,
                    link=e.link,
                    source=source_label(e),
                    date=human_date(e, tz),
                    excerpt=e.summary,
                    also=tuple(source_label(o) for o in s.others),
                    ref=ref,
                )
            )
        if items:
            sections.append(DigestSection(key, config.topics[key].title, tuple(items), len(chosen)))
    count = len(shown)  # a story in two topics is one story
    return {
        "title": config.title,
        "subscription": subscription,
        "start": start.astimezone(tz).strftime("%Y-%m-%d"),
        "end": end.astimezone(tz).strftime("%Y-%m-%d"),
        "timezone": config.timezone,
        "sections": sections,
        "count": count,
        "preheader": "; ".join(f"{s.title}: {len(s.items)}" for s in sections) or "No new stories",
        "feed_url": config.base_url + "feed.atom",
        "unsubscribe": unsubscribe,
    }


def render_digest(context: dict[str, object], subject_template: str, env: jinja2.Environment | None = None) -> Digest:
    env = env or template_env()
    html = env.get_template("digest.html.j2").render(**context)
    text = env.get_template("digest.txt.j2").render(**context)
    fields = {k: context[k] for k in ("title", "count", "start", "end")}
    subject = subject_template.format(**fields)
    return Digest(subject=subject, html=html, text=text, item_count=int(context["count"]))  # type: ignore[call-overload]
