"""Stories -> JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/). Pure and deterministic.

The same window, ids, dates, sanitised HTML and provenance as the Atom feed. Provenance goes in a
custom `_provenance` object (`source`, like atom:source, and `also_reported_by`): the spec lets
publishers add objects under keys starting with "_", and readers ignore what they do not know.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .config import Config
from .publish import (
    content_html,
    entry_updated,
    is_http_url,
    language_tag,
    related_links,
    source_info,
    story_key,
    story_uri,
)
from .types import Story

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def _item(config: Config, story: Story, clean_html: bool) -> dict[str, Any]:
    e = story.primary
    item: dict[str, Any] = {"id": story_uri(config, story.id)}
    if is_http_url(e.link):
        item["url"] = e.link
    item["title"] = e.title
    item["content_html"] = content_html(story, clean_html=clean_html)
    item["summary"] = e.summary or e.title
    if e.published:
        item["date_published"] = e.published.isoformat()
    item["date_modified"] = entry_updated(e).isoformat()
    if e.authors:
        item["authors"] = [{"name": a} for a in e.authors]
    if story.topics:
        item["tags"] = list(story.topics)
    lang = language_tag(e.language)
    if lang:
        item["language"] = lang
    src = source_info(config, e)
    source: dict[str, Any] = {"id": src.id, "title": src.title}
    if src.link:
        source["home_page_url"] = src.link
    if src.feed_url:
        source["feed_url"] = src.feed_url
    if src.updated:
        source["updated"] = src.updated.isoformat()
    provenance: dict[str, Any] = {"source": source}
    related = related_links(story)
    if related:
        provenance["also_reported_by"] = [{"url": href, "title": title} for href, title in related]
    item["_provenance"] = provenance
    return item


def build_json_feed(
    config: Config, stories: Sequence[Story], *, self_path: str = "feed.json", clean_html: bool = False
) -> bytes:
    """Render the given stories (newest first) as a JSON Feed 1.1 document (UTF-8 bytes).

    `clean_html`: see `publish.content_html` (True only for bodies that are normalize's nh3 output).
    """
    ordered = sorted(stories, key=story_key, reverse=True)
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": config.title,
        "home_page_url": config.base_url,
        "feed_url": config.base_url + self_path,
        "description": config.subtitle or "Rare-earth and university–industry news, merged and deduplicated",
        "authors": [{"name": config.author}],
        "language": language_tag(config.language) or "en",
        "items": [_item(config, s, clean_html) for s in ordered],
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
