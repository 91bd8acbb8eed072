"""Topic rules -> tags with scores. Pure and deterministic.

English terms match on word boundaries, case-insensitively; Chinese terms (no spaces between
words) match as substrings. A term in the title counts `title_weight` times its weight; body
occurrences count up to BODY_CAP times, so one long article cannot win on repetition alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .config import TopicRule
from .types import Entry

BODY_CAP = 3  # repeated mentions add evidence, but with diminishing value after three
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class TopicScore:
    topic: str
    score: float
    matched: tuple[tuple[str, float], ...]  # (term, contribution)
    excluded_by: str | None
    assigned: bool


@lru_cache(maxsize=4096)
def _term_regex(term: str) -> re.Pattern[str]:
    escaped = re.escape(term).replace(r"\ ", r"[\s\-–]+")
    if _CJK.search(term):
        return re.compile(escaped, re.I)
    return re.compile(rf"(?<![\w-]){escaped}(?![\w])", re.I)


def score_topic(key: str, rule: TopicRule, title: str, body: str) -> TopicScore:
    """Score one entry text against one topic rule."""
    matched: list[tuple[str, float]] = []
    for term in rule.exclude:
        if _term_regex(term).search(title) or _term_regex(term).search(body):
            return TopicScore(key, 0.0, (), term, False)
    patterns = [(t, w, _term_regex(t)) for t, w in rule.terms.items()]
    patterns += [(f"/{p}/", w, re.compile(p, re.I)) for p, w in rule.regexes.items()]
    total = 0.0
    for label, weight, rx in patterns:
        in_title = 1 if rx.search(title) else 0
        in_body = min(len(rx.findall(body)), BODY_CAP)
        contribution = weight * (in_title * rule.title_weight + in_body)
        if contribution:
            matched.append((label, round(contribution, 3)))
            total += contribution
    total = round(total, 3)
    return TopicScore(key, total, tuple(matched), None, total >= rule.min_score)


def score_entry(entry: Entry, rules: dict[str, TopicRule]) -> list[TopicScore]:
    return [score_topic(k, rules[k], entry.title, entry.content_text) for k in sorted(rules)]


def assign_topics(entry: Entry, rules: dict[str, TopicRule]) -> tuple[str, ...]:
    """The sorted topic keys whose score reaches the rule's minimum."""
    return tuple(s.topic for s in score_entry(entry, rules) if s.assigned)
