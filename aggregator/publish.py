"""Stories -> Atom bytes with feedgen. Pure and deterministic: same stories, same bytes.

feedgen gets an explicit `updated` (the newest entry's, never the build time) and
`order='append'`, otherwise its output is neither reproducible nor in order.
"""

from __future__ import annotations

import html
import os
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from feedgen.feed import FeedGenerator

from . import __version__
from .config import Config
from .types import Entry, Story

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def story_uri(config: Config, story_id: str) -> str:
    """Stable URI id for a story: a name-based UUID under the feed's base URL."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{config.base_url}story/{story_id}").urn


def entry_updated(e: Entry) -> datetime:
    return e.updated or e.published or e.first_seen or _EPOCH


def source_label(e: Entry) -> str:
    return e.site_name or e.feed.title or e.source


def also_reported_html(story: Story) -> str:
    if not story.others:
        return ""
    names = []
    for o in story.others:
        label = html.escape(source_label(o))
        names.append(f'<a href="{html.escape(o.link)}">{label}</a>' if o.link else label)
    return f"<p><em>Also reported by: {', '.join(names)}</em></p>"


def build_atom(
    config: Config, stories: Sequence[Story], *, topic: str | None = None, self_path: str = "feed.atom"
) -> bytes:
    """Render stories (newest first) as an Atom 1.0 document."""
    fg = FeedGenerator()
    feed_url = config.base_url + self_path
    fg.id(feed_url)
    title = config.title if topic is None else f"{config.title}: {config.topics[topic].title}"
    fg.title(title)
    fg.subtitle(config.subtitle or "Rare-earth and university–industry news, merged and deduplicated")
    fg.author({"name": config.author})
    fg.link(href=feed_url, rel="self", type="application/atom+xml")
    fg.link(href=config.base_url, rel="alternate", type="text/html")
    fg.generator("aggregator", version=__version__, uri="https://example.invalid/aggregator")
    fg.language(config.language or "en")
    newest = max((entry_updated(s.primary) for s in stories), default=_EPOCH)
    fg.updated(newest)
    for story in stories:
        e = story.primary
        fe = fg.add_entry(order="append")
        fe.id(story_uri(config, story.id))
        fe.title(e.title)
        fe.updated(entry_updated(e))
        if e.published:
            fe.published(e.published)
        for a in e.authors:
            fe.author({"name": a})
        if e.link:
            fe.link(href=e.link, rel="alternate", type="text/html")
        for o in story.others:
            if o.link and o.link != e.link:
                fe.link(href=o.link, rel="related", type="text/html", title=source_label(o))
        fe.summary(e.summary or e.title)
        fe.content(e.content_html + also_reported_html(story), type="html")
        for key in story.topics:
            label = config.topics[key].title if key in config.topics else key
            fe.category(term=key, label=label, scheme=config.base_url + "topics/")
    return bytes(fg.atom_str(pretty=True))


def write_atomic(path: Path, data: bytes) -> bool:
    """Write via temp file + rename so readers never see half a file. Returns True if changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data:
            return False  # unchanged: keep mtime so HTTP Last-Modified stays honest
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def publish_all(config: Config, stories: Sequence[Story]) -> list[Path]:
    """Write feed.atom and topics/<key>.atom; return the paths written."""
    out = config.output_path
    window = list(stories)[: config.feed.max_entries]
    written = [out / "feed.atom"]
    write_atomic(written[0], build_atom(config, window))
    for key in sorted(config.topics):
        in_topic = [s for s in stories if key in s.topics][: config.feed.max_entries]
        path = out / "topics" / f"{key}.atom"
        write_atomic(path, build_atom(config, in_topic, topic=key, self_path=f"topics/{key}.atom"))
        written.append(path)
    return written
