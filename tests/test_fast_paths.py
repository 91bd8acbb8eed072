"""The parse worker's fast paths give exactly what the plain definitions give.

Content hashes (and so entry ids), topic word sets, regex prefilters and the vocabulary-limited
topic scoring each have a quicker implementation; these tests hold them to the slow one, on
generated text and on the shipped topic rules.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator._text import excerpt
from aggregator.config import TopicRule, load_config
from aggregator.normalize import _HASH_WS, _hash_basis, content_hash
from aggregator.topics import _WORD_RUN, Prepared, _compiled, _literal_prefixes, _words, score_compiled, score_text
from bench.bench_topics import labelled_texts

from .conftest import ROOT

_PIECES = st.sampled_from(
    ["Rare", "earth", "REE", "R&D", "foo_bar", "_", "x2", "2026", "é", "Straße", "İ", "稀土", "，", "。", "\u3000",
     "\u00a0", " ", "  ", "\n\n", "\t", "-", "–", "'", ".", "!", "\x1f", "\u0660", "²", "ǅ", "university", "visits"]
)  # fmt: skip
_TEXTS = st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=40).map("".join))


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_content_hash_basis_is_the_regex_definition(text: str) -> None:
    expected = _HASH_WS.sub(" ", text.lower()).strip()
    assert _hash_basis(text) == expected
    if expected:
        assert content_hash("t", text) == hashlib.sha256(expected.encode()).hexdigest()


def test_content_hash_is_stable() -> None:
    """Entry ids fall back to this hash: its value must not change between versions."""
    digest = hashlib.sha256(b"hello world foo bar 2026").hexdigest()
    assert content_hash("Title", "Hello, World!\n\n  foo_bar — 2026.") == digest
    assert content_hash("Only — the title!", "  ...  ") == hashlib.sha256(b"only the title").hexdigest()


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_topic_word_set_is_the_regex_definition(text: str) -> None:
    low = text.lower()
    full = frozenset(_WORD_RUN.findall(low))
    assert _words(low, None) == full
    vocabulary = frozenset({"rare", "earth", "ree", "r", "d", "university", "é", "straße"})
    assert _words(low, vocabulary) == full & vocabulary


@pytest.fixture(scope="module")
def rules() -> dict[str, TopicRule]:
    return load_config(ROOT / "feeds.yaml").topics


def test_literal_prefixes_of_the_shipped_regexes(rules: dict[str, TopicRule]) -> None:
    got = {p: _literal_prefixes(p) for rule in rules.values() for p in rule.regexes}
    assert got, "the shipped rules have regexes"
    assert all(v is not None for v in got.values()), got  # every shipped regex gets a prefilter
    assert _literal_prefixes(r"(?:市委|市政府|市长)x") == ("市委", "市政府", "市长")
    assert _literal_prefixes(r"visit(?:s|ed)?\b") == ("visit",)
    for no_prefilter in (r"\bjoint", r"(?:a|\w)b", r"(?i)abc", r"[ab]c", r"x*y", r"(?x) a b"):
        assert _literal_prefixes(no_prefilter) is None, no_prefilter


_REGEX_PIECES = st.sampled_from(
    ["transform", "transformation of", "research results", "achievements", "commercialise", "commercialization",
     "industrialised", "visited", "visits", "the", "university", "universities", "college", "companies", "firm",
     "local government", "市委", "书记", "来校", "调研", "大学", "高校", "企业", "合作", "共建", "。", ".", " ", "\n"]
)  # fmt: skip


_SHIPPED_REGEXES = [
    (re.compile(p), _literal_prefixes(p))
    for rule in load_config(ROOT / "feeds.yaml").topics.values()
    for p in rule.regexes
]


@settings(max_examples=300, deadline=None)
@given(st.lists(_REGEX_PIECES, max_size=25).map("".join))
def test_regex_prefilter_never_hides_a_match(text: str) -> None:
    low = text.lower()
    for rx, prefixes in _SHIPPED_REGEXES:
        assert prefixes is not None
        if rx.search(low):
            assert any(p in low for p in prefixes), (rx.pattern, text)


def test_scores_with_a_vocabulary_equal_scores_over_every_word(rules: dict[str, TopicRule]) -> None:
    texts = labelled_texts()
    assert len(texts) >= 30
    for title, body in texts + [(t.upper(), b.replace(" ", "-")) for t, b in texts]:
        full = [score_compiled(_compiled(k, rules[k]), Prepared(title), Prepared(body)) for k in sorted(rules)]
        assert score_text(title, body, rules) == full, title


def _plain_excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:，；、") + "…"


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=400).map("".join), st.integers(min_value=1, max_value=40))
def test_excerpt_of_a_long_text_equals_collapsing_it_whole(text: str, limit: int) -> None:
    assert excerpt(text, limit) == _plain_excerpt(text, limit)
