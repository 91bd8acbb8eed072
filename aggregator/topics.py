"""Topic rules -> tags with scores. Pure and deterministic.

How one entry is scored against one topic (rules come from the `topics:` block of feeds.yaml):

- Every term and regex that occurs adds ``weight * (title_weight if in the title) + weight * n``,
  where ``n`` is its number of occurrences in the body, capped at ``BODY_CAP``: repetition is
  evidence, but a long article cannot win on one word alone.
- Terms match in one left-to-right pass over the text, longest term first at each position, and
  matches do not overlap: "rare earth magnet" counts once as itself, not also as "rare earth";
  "离子型稀土" not also as "稀土".
- English terms match whole words: "REE" never matches inside "FREE" or "agreement", "terbium"
  never inside "ytterbium", "cerium" not inside "ceriumoxide" (list "cerium oxide" instead).
  Chinese terms match as substrings, because Chinese puts no spaces between words. A term with a
  capital letter matches case-sensitively ("REE" is not "Ree"), others ignore case.
- Exclusions are negative evidence, not a blanket ban. A penalty term subtracts exactly like a term
  adds, so a rare-earth story that mentions a sports meet in passing keeps its topic (its positive
  evidence outweighs the penalty), while a sports-meet story with one stray "cooperation" loses it.
  A phrase that contains a positive term and means something else ("Rare Earth hypothesis") gets a
  penalty equal to the term's weight, which cancels the term. Only an exclusion marked ``veto``
  removes the topic outright; keep vetoes for phrases that can only mean the story is off-topic.
- ``require`` lists context terms of which at least one must occur (for university–industry: some
  university or research institute), so a joint lab between two companies is not tagged.
- The topic is assigned when nothing vetoed it, a required term occurred, and the score reaches
  ``min_score``. A story can have several topics, or none.

Rules are compiled once per `TopicRule` object (one combined regex for the terms, one for the
exclusions, one for `require`) and cached, so scoring an entry is a handful of regex scans.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from .config import TopicRule
from .types import Entry

BODY_CAP = 3  # repeated mentions add evidence, but with diminishing value after three

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Letters and digits that make a word continue. Not `\w`: in Python that includes Chinese characters,
# and "在Baotou举行" must still match "Baotou".
_WORD = r"0-9A-Za-z_\u00c0-\u024f"
# What a space or hyphen in an English term matches: any run of spaces, hyphens and dashes.
_SEP = r"[\s\u00a0\-\u2010-\u2015]+"
_SEP_IN_TERM = re.compile(r"[\s\-\u2010-\u2015]+")


@dataclass(frozen=True)
class TopicScore:
    """How one entry scored against one topic; what `aggregator explain` shows.

    `matched` lists (term, contribution) pairs, largest effect first; exclusion penalties appear with
    negative contributions; regexes are shown as ``/pattern/``. `excluded_by` is the vetoing term, if
    any. `reason` says in words why the topic was or was not assigned.
    """

    topic: str
    score: float
    matched: tuple[tuple[str, float], ...]
    excluded_by: str | None
    assigned: bool
    min_score: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class _Alternation:
    """Several terms compiled into one regex; group `tN` matched means term N matched."""

    pattern: re.Pattern[str] | None
    terms: tuple[str, ...]

    def term_of(self, m: re.Match[str]) -> str:
        return self.terms[int(m.lastgroup[1:])]  # type: ignore[index]

    def counts(self, text: str) -> dict[str, int]:
        found: dict[str, int] = {}
        if self.pattern is not None and text:
            for m in self.pattern.finditer(text):
                term = self.term_of(m)
                found[term] = found.get(term, 0) + 1
        return found

    def first(self, title: str, body: str) -> str | None:
        for text in (title, body):
            if self.pattern is not None and text and (m := self.pattern.search(text)):
                return self.term_of(m)
        return None


@dataclass(frozen=True)
class CompiledRule:
    """A `TopicRule` ready to score text: built once, reused for every entry."""

    key: str
    rule: TopicRule
    terms: _Alternation
    regexes: tuple[tuple[str, float, re.Pattern[str]], ...]
    exclude: _Alternation
    require: _Alternation


def term_pattern(term: str) -> str:
    """The regex source for one term (see the module docstring for the matching rules)."""
    term = term.strip()
    if _CJK.search(term):
        body = re.escape(term)
        return body if any(c.isupper() for c in term) else f"(?i:{body})"
    parts = [re.escape(p) for p in _SEP_IN_TERM.split(term) if p]
    body = _SEP.join(parts)
    if term[-1].isalpha():
        body += "s?"  # "rare earth" also matches "rare earths", "REE" also "REEs"
    if not any(c.isupper() for c in term):
        body = f"(?i:{body})"
    return rf"(?<![{_WORD}]){body}(?![{_WORD}])"


def _alternation(terms: list[str]) -> _Alternation:
    # Longest first: Python's regex alternation takes the first alternative that matches, so this
    # makes "rare earth magnet" win over "rare earth" at the same position. Ties sort by text so
    # the compiled pattern (and thus every result) is the same on every run.
    ordered = tuple(sorted(dict.fromkeys(terms), key=lambda t: (-len(t), t)))
    if not ordered:
        return _Alternation(None, ())
    source = "|".join(f"(?P<t{i}>{term_pattern(t)})" for i, t in enumerate(ordered))
    return _Alternation(re.compile(source), ordered)


def compile_rule(key: str, rule: TopicRule) -> CompiledRule:
    """Compile one topic's rules. `score_entry` does this itself and caches the result per rule."""
    return CompiledRule(
        key=key,
        rule=rule,
        terms=_alternation(list(rule.terms)),
        regexes=tuple((f"/{p}/", w, re.compile(p, re.I)) for p, w in rule.regexes.items()),
        exclude=_alternation(list(rule.exclude)),
        require=_alternation(list(rule.require)),
    )


# Cache keyed by the rule object's identity. TopicRule holds dicts, so it is not hashable; the weak
# reference makes sure a recycled id() of a dead rule never returns a stale compilation.
_CACHE: dict[tuple[str, int], tuple[weakref.ref[TopicRule], CompiledRule]] = {}


def _compiled(key: str, rule: TopicRule) -> CompiledRule:
    slot = (key, id(rule))
    hit = _CACHE.get(slot)
    if hit is not None and hit[0]() is rule:
        return hit[1]
    compiled = compile_rule(key, rule)
    if len(_CACHE) > 256:  # config reloads in a long-running daemon must not grow this forever
        _CACHE.clear()
    _CACHE[slot] = (weakref.ref(rule), compiled)
    return compiled


def _contributions(
    counts_title: Mapping[str, int], counts_body: Mapping[str, int], weights: Mapping[str, float], title_weight: float
) -> dict[str, float]:
    out: dict[str, float] = {}
    for term in sorted(counts_title.keys() | counts_body.keys()):  # sorted: float sums in a fixed order
        w = weights[term]
        out[term] = w * (title_weight * (1 if counts_title.get(term) else 0) + min(counts_body.get(term, 0), BODY_CAP))
    return out


def score_compiled(c: CompiledRule, title: str, body: str) -> TopicScore:
    """Score one text (title and plain-text body) against one compiled topic rule."""
    rule = c.rule
    tw = rule.title_weight
    positive = _contributions(c.terms.counts(title), c.terms.counts(body), rule.terms, tw)
    for label, weight, rx in c.regexes:
        in_title = 1 if title and rx.search(title) else 0
        in_body = min(sum(1 for _ in rx.finditer(body)), BODY_CAP) if body else 0
        if in_title or in_body:
            positive[label] = positive.get(label, 0.0) + weight * (tw * in_title + in_body)

    vetoes = [t for t, p in rule.exclude.items() if p == "veto"]
    penalties = {t: float(p) for t, p in rule.exclude.items() if p != "veto"}
    ex_title, ex_body = c.exclude.counts(title), c.exclude.counts(body)
    vetoed = sorted(t for t in vetoes if t in ex_title or t in ex_body)
    negative = _contributions(
        {t: n for t, n in ex_title.items() if t in penalties},
        {t: n for t, n in ex_body.items() if t in penalties},
        penalties,
        tw,
    )

    matched = [(t, round(v, 3)) for t, v in positive.items()] + [(t, -round(v, 3)) for t, v in negative.items()]
    matched.sort(key=lambda tv: (-abs(tv[1]), tv[0]))
    total = round(sum(positive.values()) - sum(negative.values()), 3)

    excluded_by = vetoed[0] if vetoed else None
    if excluded_by is not None:
        assigned, reason = False, f"vetoed by {excluded_by!r}"
    elif c.require.pattern is not None and c.require.first(title, body) is None:
        assigned, reason = False, "none of the required terms occurs"
    elif total >= rule.min_score:
        assigned, reason = True, f"score {total:g} >= {rule.min_score:g}"
    else:
        assigned, reason = False, f"score {total:g} < {rule.min_score:g}"
    return TopicScore(c.key, total, tuple(matched), excluded_by, assigned, rule.min_score, reason)


def score_topic(key: str, rule: TopicRule, title: str, body: str) -> TopicScore:
    """Score one text against one topic rule (compiled on first use, then cached)."""
    return score_compiled(_compiled(key, rule), title, body)


def score_text(title: str, body: str, rules: Mapping[str, TopicRule]) -> list[TopicScore]:
    """Score a title and plain-text body against every topic, in topic-key order."""
    return [score_topic(k, rules[k], title, body) for k in sorted(rules)]


def score_entry(entry: Entry, rules: Mapping[str, TopicRule]) -> list[TopicScore]:
    """Score an entry against every topic, in topic-key order (assigned or not)."""
    return score_text(entry.title, entry.content_text or entry.summary, rules)


def assign_topics(entry: Entry, rules: Mapping[str, TopicRule]) -> tuple[str, ...]:
    """The sorted keys of the topics assigned to this entry; empty if none."""
    return tuple(s.topic for s in score_entry(entry, rules) if s.assigned)
