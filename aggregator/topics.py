"""Topic rules -> tags with scores. Pure and deterministic.

How one entry is scored against one topic (rules come from the `topics:` block of feeds.yaml):

- Every term and regex that occurs adds ``weight * title_weight`` if it is in the title, plus
  ``weight * n`` for its ``n`` occurrences in the body, ``n`` capped at ``BODY_CAP``: repetition is
  evidence, but a long article cannot win on one word alone.
- Terms match left to right, longest term first at each position, and their matches do not
  overlap: "rare earth magnet" counts once as itself, not also as "rare earth"; "离子型稀土" not
  also as "稀土". (English and Chinese terms are two passes; terms never mix the two.)
- English terms match whole words: "REE" never matches inside "FREE" or "agreement", "terbium"
  never inside "ytterbium", "cerium" not inside "ceriumoxide" (list "cerium oxide" instead). A
  plural -s matches too, and a space or hyphen in a term matches any run of spaces, hyphens and
  dashes ("rare earth" = "rare-earth" = "rare earths"). A word written with a capital matches
  exactly ("REE" is not "Ree", "NdPr" not "NDPR"); other words ignore case, so "joint R&D center"
  also matches "Joint R&D Center".
- Chinese terms match as substrings, because Chinese puts no spaces between words; where that
  finds a term inside an unrelated word ("依稀土墙" contains "稀土"), an exclusion cancels it.
- Regexes are case-insensitive and each counts like a term.
- Exclusions are negative evidence, not a blanket ban. A penalty term subtracts exactly like a term
  adds, so a rare-earth story that mentions a sports meet in passing keeps its topic (its positive
  evidence outweighs the penalty), while a sports-meet story with one stray "cooperation" loses it.
  Exclusions are matched separately from terms, so a phrase that contains a positive term and means
  something else ("rare earth hypothesis") and carries a penalty equal to the term's weight cancels
  it exactly. Only an exclusion marked ``veto`` removes the topic outright; keep vetoes for phrases
  that can only mean the story is off-topic (Spain's grid operator "Red Eléctrica", also "REE").
- ``require`` names groups of context terms; from every group one term must occur. For
  university–industry: a university or research institute, and a company or government, so that
  neither a joint lab of two companies nor one of two universities is tagged.
- The topic is assigned when nothing vetoed it, the score reaches ``min_score``, and every required
  group is present. A story can have several topics, or none (then it is only in the main feed).

Speed: rules are compiled once per rule object and cached. Terms become trie-shaped regexes,
tried only at the places where one of their first words stands (found from the text's word set,
computed once per entry and shared by all topics); `bench/bench_topics.py` measures the result
against feedparser's cost per entry.
"""

from __future__ import annotations

import importlib
import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .types import Entry


class Rule(Protocol):
    """What scoring reads of one topic's rules: a `config.TopicRule`, or a plain copy of one
    (`ingest.PlainRule`: the parse workers get those, and need not import pydantic to unpickle them)."""

    @property
    def terms(self) -> Mapping[str, float]: ...
    @property
    def regexes(self) -> Mapping[str, float]: ...
    @property
    def exclude(self) -> Mapping[str, float | str]: ...  # penalty, or "veto"
    @property
    def require(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def title_weight(self) -> float: ...
    @property
    def min_score(self) -> float: ...


BODY_CAP = 3  # repeated mentions add evidence, but with diminishing value after three

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Letters and digits that make a word continue. Not `\w`: in Python that includes Chinese characters,
# and "在Baotou举行" must still match "Baotou".
_WORD = r"0-9A-Za-z_\u00c0-\u024f"
# What a space or hyphen in an English term matches: any run of spaces, hyphens and dashes.
_SEP = r"[\s\u00a0\-\u2010-\u2015]+"
_SEP_IN_TERM = re.compile(r"[\s\-\u2010-\u2015]+")
_WORD_RUN = re.compile(rf"[{_WORD}]+")
_WORD_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_" + "".join(map(chr, range(0xC0, 0x250)))
)
# For ASCII text, the word runs of `_WORD_RUN` are what str.split() finds once every other ASCII
# character is a space: about a quarter faster than findall on a long body.
_ASCII_NON_WORD = str.maketrans({chr(i): " " for i in range(128) if chr(i) not in _WORD_CHARS})


def _words(low: str, vocabulary: frozenset[str] | None) -> frozenset[str]:
    words = low.translate(_ASCII_NON_WORD).split() if low.isascii() else _WORD_RUN.findall(low)
    return frozenset(words) if vocabulary is None else vocabulary.intersection(words)


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


class Prepared:
    """One text with a lowercase copy and its set of words, shared by every topic and term list.

    English terms are tried only where their first word stands (found with `str.find`, cached per
    word), instead of the regex engine visiting every character. In the rare text whose lowercase
    form has another length, positions would not line up, so the patterns scan the whole text.

    `words` holds only the words in `vocabulary` when one is given: the term sets look at nothing
    else, and intersecting skips building a set of every word of a long body. A vocabulary must
    cover the first words of every rule the text is scored against (`_vocabulary`).
    """

    __slots__ = ("_starts", "has_cjk", "low", "text", "words")

    def __init__(self, text: str, vocabulary: frozenset[str] | None = None) -> None:
        self.text = text
        low = text.lower()
        self.low: str | None = low if len(low) == len(text) else None
        self.words: frozenset[str] = _words(low, vocabulary)
        self.has_cjk = not text.isascii() and _CJK.search(text) is not None
        self._starts: dict[str, list[int]] = {}

    @classmethod
    def of(cls, text: str, vocabulary: frozenset[str] | None = None) -> Prepared:
        return cls(text, vocabulary)

    def starts(self, word: str) -> list[int]:
        """Where `word` (lowercase) stands as a whole word in the text."""
        hit = self._starts.get(word)
        if hit is None:
            assert self.low is not None
            low, n, hit, i = self.low, len(word), [], self.low.find(word)
            while i >= 0:
                if (i == 0 or low[i - 1] not in _WORD_CHARS) and low[i + n : i + n + 1] not in _WORD_CHARS:
                    hit.append(i)
                i = low.find(word, i + 1)
            self._starts[word] = hit
        return hit


@dataclass(frozen=True)
class _TermSet:
    """Terms compiled into two trie-shaped regexes: English (whole words) and Chinese (substrings).

    A trie ("rare (earth (magnet)?)?") instead of a flat list of alternatives lets Python's regex
    engine reject a position after a character comparison or two. Before scanning, a set check on
    the text's words (or its having any Chinese at all) skips patterns that cannot match, which is
    the common case for exclusions and off-topic stories. The matched text is mapped back to its
    term through a normalised key.
    """

    english: re.Pattern[str] | None
    first_words: frozenset[str] | None  # lowercased first word of each English term (and plural); None: scan all
    chinese: re.Pattern[str] | None
    by_key: Mapping[str, tuple[str, ...]]  # normalised text -> the terms with that key
    memo: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # matched text -> term

    def _matches(self, text: Prepared) -> Iterator[re.Match[str]]:
        """Non-overlapping matches, left to right: English terms, then Chinese terms."""
        if self.english is not None:
            if text.low is None or self.first_words is None:
                yield from self.english.finditer(text.text)
            elif not text.words.isdisjoint(self.first_words):
                # Only where a term's first word starts; the same matches finditer would give,
                # since a match must begin with its term's first word.
                hits = sorted(p for w in self.first_words & text.words for p in text.starts(w))
                end = 0
                for pos in hits:
                    if pos >= end and (m := self.english.match(text.text, pos)):
                        end = m.end()
                        yield m
        if self.chinese is not None and text.has_cjk:
            yield from self.chinese.finditer(text.text)

    def _term_of(self, text: str) -> str:
        term = self.memo.get(text)
        if term is None:
            if len(self.memo) > 10_000:  # matched spellings are few; this only guards odd input
                self.memo.clear()
            term = self.memo[text] = self._lookup(text)
        return term

    def _lookup(self, text: str) -> str:
        key = _key(text)
        terms = self.by_key.get(key) or self.by_key.get(key[:-1], ())  # a plural -s
        if len(terms) == 1:
            return terms[0]
        # Terms equal but for case ("MoU", "MOU"): the one whose own pattern matches.
        return next((t for t in terms if re.fullmatch(term_pattern(t), text)), terms[0] if terms else text)

    def counts(self, text: Prepared) -> dict[str, int]:
        found: dict[str, int] = {}
        for m in self._matches(text):
            term = self._term_of(m.group())
            found[term] = found.get(term, 0) + 1
        return found

    def first(self, *texts: Prepared) -> str | None:
        for text in texts:
            for m in self._matches(text):
                return self._term_of(m.group())
        return None

    def __bool__(self) -> bool:
        return bool(self.by_key)


@dataclass(frozen=True)
class _Regex:
    """One `regexes:` entry. Case-insensitive; matched against the lowercased text when the pattern
    has no capital letters, so that it needs no IGNORECASE flag: without it the engine can jump
    straight to a leading literal ("transform...") instead of trying every position."""

    label: str
    weight: float
    on_lower: re.Pattern[str] | None  # the pattern without IGNORECASE, for the lowercased text
    anycase: re.Pattern[str]
    # Strings one of which every match of `on_lower` starts with ("transform", "市委"...): a text
    # containing none of them is not scanned. `str in` is a fast search, and a Chinese needle in
    # an ASCII text is rejected at once.
    prefixes: tuple[str, ...] | None = None

    @classmethod
    def of(cls, pattern: str, weight: float) -> _Regex:
        lower_ok = not any(c.isupper() for c in re.sub(r"\\.", "", pattern))  # \S, \W... are not letters
        on_lower = re.compile(pattern) if lower_ok else None
        prefixes = _literal_prefixes(pattern) if on_lower is not None else None
        return cls(f"/{pattern}/", weight, on_lower, re.compile(pattern, re.I), prefixes)

    def _scan(self, text: Prepared) -> tuple[re.Pattern[str], str] | None:
        """The pattern and the string to scan, or None when the text cannot match."""
        if self.on_lower is not None and text.low is not None:
            if self.prefixes is not None:
                for p in self.prefixes:
                    if p in text.low:
                        break
                else:
                    return None
            return self.on_lower, text.low
        return self.anycase, text.text

    def search(self, text: Prepared) -> bool:
        scan = self._scan(text)
        return scan is not None and bool(scan[1]) and scan[0].search(scan[1]) is not None

    def count(self, text: Prepared) -> int:
        scan = self._scan(text)
        return sum(1 for _ in scan[0].finditer(scan[1])) if scan is not None and scan[1] else 0


def _literal_prefixes(pattern: str) -> tuple[str, ...] | None:
    """Literal strings one of which starts every match of `pattern`; None if there are none.

    Read from the regex parser's tree: the leading literal characters, extended through a
    leading group or alternation whose every branch starts with a literal. Case-sensitive
    patterns only (the caller checks); anything unusual gives None, i.e. no prefilter.
    """
    try:
        parser = importlib.import_module("re._parser")  # the stdlib's own regex parser (3.11+)
        sre = importlib.import_module("re._constants")
        tree = parser.parse(pattern)
    except Exception:  # a private module: any surprise just means "no prefilter"
        return None
    if tree.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None

    def lead(items: Any) -> set[str]:
        run = ""
        for op, av in items:
            if op is sre.LITERAL:
                run += chr(av)
                continue
            if op is sre.BRANCH:
                branches = av[1]
            elif op is sre.SUBPATTERN and not av[1] and not av[2]:  # a group without inline flags
                branches = [av[3]]
            else:
                break
            heads = set().union(*(lead(b) for b in branches))
            if "" in heads:  # a branch starts with something else: only `run` is certain
                break
            return {run + h for h in heads}
        return {run}

    heads = lead(tree)
    return None if "" in heads else tuple(sorted(heads))


@dataclass(frozen=True)
class CompiledRule:
    """A topic's `Rule` ready to score text: built once, reused for every entry."""

    key: str
    rule: Rule
    terms: _TermSet
    regexes: tuple[_Regex, ...]
    exclude: _TermSet
    require: tuple[tuple[str, _TermSet], ...]  # (group name, its terms)
    weights: Mapping[str, float]  # term -> weight, and penalty term -> penalty
    vetoes: frozenset[str]

    @property
    def first_words(self) -> frozenset[str]:
        """Every word the rule's term sets look up in `Prepared.words`."""
        sets = (self.terms, self.exclude, *(group for _, group in self.require))
        return frozenset().union(*(ts.first_words for ts in sets if ts.first_words is not None))


def _key(text: str) -> str:
    return _SEP_IN_TERM.sub(" ", text.strip()).lower()


def _is_cjk(term: str) -> bool:
    return bool(_CJK.search(term))


# Trie units: a set of characters (one character, or both cases of it), or _GAP for a separator.
_Unit = frozenset[str] | None
_GAP: _Unit = None
_END_PLURAL = "end+s"  # trie node keys that end a term; strings, so they never equal a unit
_END = "end"


def _chars(c: str, exact: bool) -> frozenset[str]:
    if exact:
        return frozenset(c)
    return frozenset(v for v in {c, c.lower(), c.upper()} if len(v) == 1)


def _units(term: str) -> list[_Unit]:
    """A term as trie units. In English terms a word with a capital matches exactly ("REE", "NdPr",
    "R&D"), other words in either case; a Chinese term is exact only if it has a capital at all."""
    term = term.strip()
    if _is_cjk(term):
        exact = any(c.isupper() for c in term)
        return [_chars(c, exact) for c in term]
    units: list[_Unit] = []
    for i, word in enumerate(w for w in _SEP_IN_TERM.split(term) if w):
        if i:
            units.append(_GAP)
        exact = any(c.isupper() for c in word)
        units.extend(_chars(c, exact) for c in word)
    return units


def term_pattern(term: str) -> str:
    """The regex source for one term alone (see the module docstring for the matching rules)."""
    body = "".join(_unit_re(u) for u in _units(term))
    if _is_cjk(term):
        return body
    return rf"(?<![{_WORD}]){body}{'s?' if term.strip()[-1].isalpha() else ''}(?![{_WORD}])"


def _unit_re(u: _Unit) -> str:
    if u is None:
        return _SEP
    if len(u) == 1:
        return re.escape(next(iter(u)))
    return "[" + "".join(re.escape(c) for c in sorted(u)) + "]"


def _unit_order(u: object) -> tuple[bool, list[str]]:
    return (u is None, sorted(u) if isinstance(u, frozenset) else [])


def _trie_re(node: dict[Any, Any]) -> str:
    # Continuations before the end of a term: the longest term wins ("rare earth magnet" over
    # "rare earth"), because the engine takes the first alternative that matches.
    alts = [_unit_re(u) + _trie_re(child) for u, child in sorted(_children(node), key=lambda uc: _unit_order(uc[0]))]
    if _END_PLURAL in node:
        alts.append(rf"s?(?![{_WORD}])")
    if _END in node:
        alts.append(rf"(?![{_WORD}])" if node[_END] else "")
    if len(alts) == 1:
        return alts[0]
    return "(?:" + "|".join(alts) + ")"


def _children(node: dict[Any, Any]) -> list[tuple[_Unit, dict[Any, Any]]]:
    return [(u, child) for u, child in node.items() if u not in (_END, _END_PLURAL)]


def _trie_pattern(terms: list[str], boundary: bool) -> re.Pattern[str] | None:
    root: dict[Any, Any] = {}
    for term in terms:
        node = root
        for u in _units(term):
            node = node.setdefault(u, {})
        if boundary and term.strip()[-1].isalpha():
            node[_END_PLURAL] = True  # "rare earth" also matches "rare earths", "REE" also "REEs"
        else:
            node[_END] = boundary
    if not root:
        return None
    # Top level: one branch per first character with both cases spelled out, so each branch starts
    # with a plain character, which the engine tests without entering the branch (measured: about
    # twice as fast as character classes here).
    branches = [
        re.escape(c) + _trie_re(child)
        for u, child in sorted(_children(root), key=lambda uc: _unit_order(uc[0]))
        for c in sorted(u or ())
    ]
    start = rf"(?<![{_WORD}])" if boundary else ""
    return re.compile(start + "(?:" + "|".join(branches) + ")")


def _first_words(terms: list[str]) -> frozenset[str] | None:
    words: set[str] = set()
    for t in terms:
        m = _WORD_RUN.match(t.lower())
        if m is None:  # a term starting with punctuation: no cheap prefilter, always scan
            return None
        words.update((m.group(), m.group() + "s"))
    return frozenset(words)


def _term_set(terms: list[str]) -> _TermSet:
    unique = sorted(dict.fromkeys(t.strip() for t in terms))  # sorted: the same pattern on every run
    by_key: dict[str, tuple[str, ...]] = {}
    for t in unique:
        by_key[_key(t)] = (*by_key.get(_key(t), ()), t)
    english = [t for t in unique if not _is_cjk(t)]
    chinese = [t for t in unique if _is_cjk(t)]
    return _TermSet(_trie_pattern(english, True), _first_words(english), _trie_pattern(chinese, False), by_key)


def compile_rule(key: str, rule: Rule) -> CompiledRule:
    """Compile one topic's rules. `score_entry` does this itself and caches the result per rule."""
    return CompiledRule(
        key=key,
        rule=rule,
        terms=_term_set(list(rule.terms)),
        regexes=tuple(_Regex.of(p, w) for p, w in rule.regexes.items()),
        exclude=_term_set(list(rule.exclude)),
        require=tuple((name, _term_set(list(terms))) for name, terms in rule.require.items()),
        weights={**rule.terms, **{t: float(p) for t, p in rule.exclude.items() if p != "veto"}},
        vetoes=frozenset(t for t, p in rule.exclude.items() if p == "veto"),
    )


# Cache keyed by the rule object's identity. A rule holds dicts, so it is not hashable; the weak
# reference makes sure a recycled id() of a dead rule never returns a stale compilation.
_CACHE: dict[tuple[str, int], tuple[weakref.ref[Rule], CompiledRule]] = {}


def _compiled(key: str, rule: Rule) -> CompiledRule:
    slot = (key, id(rule))
    hit = _CACHE.get(slot)
    if hit is not None and hit[0]() is rule:
        return hit[1]
    compiled = compile_rule(key, rule)
    if len(_CACHE) > 256:  # config reloads in a long-running daemon must not grow this forever
        _CACHE.clear()
    _CACHE[slot] = (weakref.ref(rule), compiled)
    return compiled


def _add(
    out: list[tuple[str, float]] | None,
    title: Mapping[str, int],
    body: Mapping[str, int],
    c: CompiledRule,
    sign: int,
) -> float:
    """Sum the contributions of the terms found; list them in `out` when details are wanted."""
    tw, weights, total = c.rule.title_weight, c.weights, 0.0
    for term in sorted(title.keys() | body.keys()):  # sorted: float sums in a fixed order
        value = weights[term] * (tw * (1 if title.get(term) else 0) + min(body.get(term, 0), BODY_CAP))
        if out is not None:
            out.append((term, sign * round(value, 3)))
        total += value
    return total


def _evaluate(
    c: CompiledRule, t: Prepared, b: Prepared, matched: list[tuple[str, float]] | None
) -> tuple[float, str | None, str | None]:
    """(score, vetoing term, first missing require group); fills `matched` if given."""
    rule = c.rule
    total = _add(matched, c.terms.counts(t), c.terms.counts(b), c, 1)
    for rx in c.regexes:
        in_title = 1 if rx.search(t) else 0
        in_body = min(rx.count(b), BODY_CAP)
        if in_title or in_body:
            value = rx.weight * (rule.title_weight * in_title + in_body)
            if matched is not None:
                matched.append((rx.label, round(value, 3)))
            total += value
    excluded_by = None
    if c.exclude:
        ex_title, ex_body = c.exclude.counts(t), c.exclude.counts(b)
        vetoed = sorted(c.vetoes.intersection(ex_title.keys() | ex_body.keys()))
        excluded_by = vetoed[0] if vetoed else None
        total -= _add(
            matched,
            {k: n for k, n in ex_title.items() if k not in c.vetoes},
            {k: n for k, n in ex_body.items() if k not in c.vetoes},
            c,
            -1,
        )
    total = round(total, 3)
    missing = None
    if excluded_by is None and total >= rule.min_score:  # the require groups only matter then
        missing = next((name for name, group in c.require if group.first(t, b) is None), None)
    return total, excluded_by, missing


def _is_assigned(c: CompiledRule, t: Prepared, b: Prepared) -> bool:
    total, excluded_by, missing = _evaluate(c, t, b, None)
    return excluded_by is None and missing is None and total >= c.rule.min_score


def score_compiled(c: CompiledRule, title: str | Prepared, body: str | Prepared) -> TopicScore:
    """Score one text (title and plain-text body) against one compiled topic rule, with details."""
    t = title if isinstance(title, Prepared) else Prepared.of(title)
    b = body if isinstance(body, Prepared) else Prepared.of(body)
    matched: list[tuple[str, float]] = []
    total, excluded_by, missing = _evaluate(c, t, b, matched)
    matched.sort(key=lambda tv: (-abs(tv[1]), tv[0]))
    min_score = c.rule.min_score
    if excluded_by is not None:
        assigned, reason = False, f"vetoed by {excluded_by!r}"
    elif total < min_score:
        assigned, reason = False, f"score {total:g} < {min_score:g}"
    elif missing is not None:
        assigned, reason = False, f"no term of the required group {missing!r} occurs"
    else:
        assigned, reason = True, f"score {total:g} >= {min_score:g}"
    return TopicScore(c.key, total, tuple(matched), excluded_by, assigned, min_score, reason)


def score_topic(key: str, rule: Rule, title: str, body: str) -> TopicScore:
    """Score one text against one topic rule (compiled on first use, then cached)."""
    return score_compiled(_compiled(key, rule), title, body)


def _vocabulary(compiled: list[CompiledRule]) -> frozenset[str]:
    """The words that matter to these rules, cached per combination of compiled rules."""
    key = tuple(id(c) for c in compiled)
    hit = _VOCABULARY.get(key)
    if hit is None:
        if len(_VOCABULARY) > 64:
            _VOCABULARY.clear()
        hit = _VOCABULARY[key] = (tuple(compiled), frozenset().union(*(c.first_words for c in compiled)))
    return hit[1]


# Keyed by the compiled rules' ids; the rules themselves are kept in the value, so an id is never
# reused by another object while its entry exists.
_VOCABULARY: dict[tuple[int, ...], tuple[tuple[CompiledRule, ...], frozenset[str]]] = {}


def _prepare(title: str, body: str, compiled: list[CompiledRule]) -> tuple[Prepared, Prepared]:
    vocabulary = _vocabulary(compiled)
    return Prepared.of(title, vocabulary), Prepared.of(body, vocabulary)


def score_text(title: str, body: str, rules: Mapping[str, Rule]) -> list[TopicScore]:
    """Score a title and plain-text body against every topic, in topic-key order."""
    compiled = [_compiled(k, rules[k]) for k in sorted(rules)]
    t, b = _prepare(title, body, compiled)
    return [score_compiled(c, t, b) for c in compiled]


def score_entry(entry: Entry, rules: Mapping[str, Rule]) -> list[TopicScore]:
    """Score an entry against every topic, in topic-key order (assigned or not)."""
    return score_text(entry.title, entry.content_text or entry.summary, rules)


def assign_topics(entry: Entry, rules: Mapping[str, Rule]) -> tuple[str, ...]:
    """The sorted keys of the topics assigned to this entry; empty if none.

    The same decision as `score_entry`, without building the explanation (the pipeline's path)."""
    compiled = [_compiled(k, rules[k]) for k in sorted(rules)]
    t, b = _prepare(entry.title, entry.content_text or entry.summary, compiled)
    return tuple(c.key for c in compiled if _is_assigned(c, t, b))
