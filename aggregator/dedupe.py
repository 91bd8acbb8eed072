"""Entries -> stories. Exact keys (canonical URL, content hash) joined with union-find.

Pure. A story's id is its founder's id: the member seen first (ties broken by entry id), so
it does not change when later copies join or when members arrive in another order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from .store.base import StoryLink
from .types import Entry, Story

_EPOCH = datetime.min.replace(tzinfo=UTC)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def founder_key(e: Entry) -> tuple[datetime, str]:
    return (e.first_seen or _EPOCH, e.id)


def primary_key(priority: Sequence[str]) -> Callable[[Entry], tuple[int, datetime, int, str]]:
    """Source priority list first, then earliest published, then the richest content."""
    rank = {name: i for i, name in enumerate(priority)}

    def key(e: Entry) -> tuple[int, datetime, int, str]:
        far = datetime.max.replace(tzinfo=UTC)
        return (rank.get(e.source, len(rank)), e.published or far, -len(e.content_text), e.id)

    return key


def exact_matches(entries: Sequence[Entry]) -> list[tuple[str, str, str, float]]:
    """(a, b, rule, score) for entries sharing a canonical URL or a content hash."""
    pairs: list[tuple[str, str, str, float]] = []
    for attr, rule in (("canonical_url", "canonical-url"), ("content_hash", "content-hash")):
        first: dict[str, str] = {}
        for e in sorted(entries, key=founder_key):
            value = getattr(e, attr)
            if not value:
                continue
            if value in first:
                pairs.append((first[value], e.id, rule, 1.0))
            else:
                first[value] = e.id
    return pairs


def build_stories(entries: Iterable[Entry], priority: Sequence[str] = ()) -> tuple[list[Story], list[StoryLink]]:
    """Cluster entries into stories; return the stories (newest first) and why each member joined."""
    items = sorted(entries, key=founder_key)
    by_id = {e.id: e for e in items}
    uf = _UnionFind()
    why: dict[str, tuple[str, float, str]] = {}
    for a, b, rule, score in exact_matches(items):
        uf.union(a, b)
        why.setdefault(b, (rule, score, a))
    groups: dict[str, list[Entry]] = {}
    for e in items:
        groups.setdefault(uf.find(e.id), []).append(e)
    pkey = primary_key(priority)
    stories: list[Story] = []
    links: list[StoryLink] = []
    for members in groups.values():
        founder = min(members, key=founder_key)
        ordered = sorted(members, key=pkey)
        story = Story(id=founder.id, primary=ordered[0], others=tuple(ordered[1:]))
        stories.append(story)
        for m in members:
            rule, score, other = why.get(m.id, ("founder", 1.0, None))  # type: ignore[assignment]
            links.append(StoryLink(m.id, story.id, rule, score, other))
    stories.sort(key=story_sort_key, reverse=True)
    assert len(by_id) == sum(len(s.members) for s in stories)
    return stories, links


def story_sort_key(s: Story) -> tuple[datetime, str]:
    """Newest first for feeds: by the primary's updated (or first-seen) time, then id."""
    p = s.primary
    return (p.updated or p.first_seen or _EPOCH, s.id)
