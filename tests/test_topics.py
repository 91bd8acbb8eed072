"""Topic tagging: the labelled articles and seeds, the matching rules, and topics in feeds and digests.

tests/data/topics/articles/*.yaml are written test articles (title, body, expected topics, and why);
tests/data/topics/seeds.yaml labels the five seed articles, which are read through parse + normalize.
The rules under test are the shipped ones in feeds.yaml.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import feedparser
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import Config, TopicRule, load_config
from aggregator.local import read_local
from aggregator.normalize import normalize
from aggregator.parse import parse_document
from aggregator.pipeline import Deps, make_deps, make_digest, refresh
from aggregator.topics import Prepared, _compiled, assign_topics, compile_rule, score_entry, score_text, score_topic
from aggregator.types import Entry

from .conftest import DATA, FIXED_NOW, ROOT, Clock

ARTICLES = sorted((DATA / "topics" / "articles").glob("*.yaml"))
SEED_LABELS: dict[str, dict[str, Any]] = yaml.safe_load((DATA / "topics" / "seeds.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rules() -> dict[str, TopicRule]:
    return load_config(ROOT / "feeds.yaml").topics


def _article(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -- the labelled set --------------------------------------------------------------------------------


def test_labelled_set_is_big_and_varied() -> None:
    arts = [_article(p) for p in ARTICLES]
    assert len(arts) >= 30
    assert {a["lang"] for a in arts} == {"en", "zh"}
    for a in arts:
        assert a["why"].strip() and a["title"].strip() and a["body"].strip(), a["title"]
    expectations = [tuple(sorted(a["expected"])) for a in arts]
    for combo in [(), ("rare-earth",), ("university-industry",), ("rare-earth", "university-industry")]:
        assert expectations.count(combo) >= 3, f"too few articles labelled {combo}"


@pytest.mark.parametrize("path", ARTICLES, ids=lambda p: p.stem)
def test_labelled_article(path: Path, rules: dict[str, TopicRule]) -> None:
    art = _article(path)
    scores = score_text(art["title"], art["body"].strip(), rules)
    got = [s.topic for s in scores if s.assigned]
    detail = "; ".join(f"{s.topic}: {s.reason} {list(s.matched)}" for s in scores)
    assert got == sorted(art["expected"]), f"{art['why']}\n{detail}"
    # The pipeline's fast path (no explanation built) decides the same.
    assert list(assign_topics(_entry(art["title"], art["body"].strip()), rules)) == got


def _entry(title: str, text: str, summary: str = "") -> Entry:
    return Entry(
        id="x",
        source="s",
        title=title,
        link=None,
        canonical_url=None,
        content_html="",
        content_text=text,
        summary=summary,
        content_hash="h",
        published=datetime(2026, 11, 1, tzinfo=UTC),
        updated=None,
    )


@pytest.fixture(scope="module")
def seed_entries() -> dict[str, Entry]:
    """The seeds as the pipeline sees them: local source -> parse -> normalize."""
    config = load_config(ROOT / "feeds.yaml")
    source = next(s for s in config.sources if s.name == "seeds")
    docs, skipped = read_local(config, source)
    assert not skipped
    out: dict[str, Entry] = {}
    for doc in docs:
        items, _ = parse_document(
            doc,
            tz=ZoneInfo(source.timezone or config.timezone),
            fetched_at=FIXED_NOW,
            site_name=source.site_name,
            extra_boilerplate=source.boilerplate,
        )
        (item,) = items
        out[Path(doc.location).name] = normalize(item, fetched_at=FIXED_NOW)
    return out


def test_every_seed_is_labelled(seed_entries: dict[str, Entry]) -> None:
    assert sorted(seed_entries) == sorted(SEED_LABELS)
    for label in SEED_LABELS.values():
        assert label["expected"], "every seed is rare-earth or university-industry news"
        assert label["why"].strip()


@pytest.mark.parametrize("name", sorted(SEED_LABELS))
def test_seed_topics(name: str, seed_entries: dict[str, Entry], rules: dict[str, TopicRule]) -> None:
    entry = seed_entries[name]
    detail = "; ".join(f"{s.topic}: {s.reason} {list(s.matched)}" for s in score_entry(entry, rules))
    assert list(assign_topics(entry, rules)) == sorted(SEED_LABELS[name]["expected"]), (
        f"{SEED_LABELS[name]['why']}\n{detail}"
    )


# -- how terms match -----------------------------------------------------------------------------------


def _rule(**kw: Any) -> TopicRule:
    kw.setdefault("title", "T")
    return TopicRule(**kw)


def _terms(rule: TopicRule, title: str, body: str = "") -> dict[str, float]:
    return dict(score_topic("t", rule, title, body).matched)


def test_english_terms_match_whole_words_only() -> None:
    rule = _rule(terms={"REE": 1, "terbium": 1, "ytterbium": 1, "cerium": 1, "rare earth": 1})
    assert _terms(rule, "", "FREE AGREEMENT on the REEF; a rare earthquake; ceriumoxide; Ree Drummond") == {}
    assert _terms(rule, "", "ytterbium") == {"ytterbium": 1}  # not also terbium
    assert _terms(rule, "", "REEs, REE-rich clays and rare-earth or rare earths, rare–earth") == {
        "REE": 2,
        "rare earth": 3,  # three body mentions count (and a fourth would not)
    }


def test_capitals_make_a_term_case_sensitive() -> None:
    rule = _rule(terms={"REE": 1, "neodymium": 1})
    assert _terms(rule, "", "ree Ree NEODYMIUM Neodymium") == {"neodymium": 2}


def test_chinese_terms_match_inside_running_text_and_next_to_latin() -> None:
    rule = _rule(terms={"稀土": 1, "NdPr": 1, "Baotou": 1})
    assert _terms(rule, "", "北方稀土在Baotou举行，NdPr氧化物价格上涨") == {"稀土": 1, "NdPr": 1, "Baotou": 1}


def test_a_capitalised_word_is_exact_and_the_others_ignore_case() -> None:
    rule = _rule(terms={"joint R&D center": 1, "NdPr": 1, "MoU": 1, "MOU": 2})
    assert _terms(rule, "", "Joint R&D Center; JOINT R&D CENTER; joint r&d center") == {"joint R&D center": 2}
    assert _terms(rule, "", "NdPr, NDPR (a data law), ndpr") == {"NdPr": 1}
    assert _terms(rule, "", "an MoU and an MOU") == {"MoU": 1, "MOU": 2}


def test_text_whose_lowercase_changes_length_still_matches() -> None:
    """'İ' lowercases to two characters, so word positions would not line up: the full scan is used."""
    rule = _rule(terms={"rare earth": 1, "REE": 1, "稀土": 1}, regexes={"magnet": 1})
    text = "İstanbul: rare earth magnets, REE, 稀土"
    assert _terms(rule, "", text) == {"rare earth": 1, "REE": 1, "稀土": 1, "/magnet/": 1}


def test_a_regex_with_capitals_is_still_case_insensitive() -> None:
    rule = _rule(regexes={r"\bNdFeB\b": 1, r"\bjoint\s+lab\b": 1})
    assert _terms(rule, "", "ndfeb and NDFEB; Joint Lab") == {r"/\bNdFeB\b/": 2, r"/\bjoint\s+lab\b/": 1}


_WORDS = st.sampled_from(
    ["rare", "earth", "earths", "REE", "Ree", "free", "magnet", "joint", "lab", "R&D", "NdPr", "ytterbium",
     "terbium", "稀土", "永磁", "依稀", "土墙", "cerium", "oxide", "ceriumoxide", "in", "the", "é"]
)  # fmt: skip
_GAPS = st.sampled_from([" ", "-", "–", ", ", "", "\n", "在", "(", ")"])


_PROBE_TERMS = ["rare earth", "rare earth magnet", "REE", "joint R&D lab", "NdPr", "terbium", "ytterbium",
                "cerium oxide", "稀土", "稀土永磁"]  # fmt: skip
_PROBE = compile_rule("t", _rule(terms=dict.fromkeys(_PROBE_TERMS, 1))).terms


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_WORDS, _GAPS), max_size=30))
def test_looking_only_at_first_words_finds_what_a_full_scan_finds(parts: list[tuple[str, str]]) -> None:
    text = "".join(w + g for w, g in parts)
    ts = _PROBE
    full: dict[str, int] = {}
    for pattern in (ts.english, ts.chinese):
        assert pattern is not None
        for m in pattern.finditer(text):
            term = ts._term_of(m.group())
            full[term] = full.get(term, 0) + 1
    assert ts.counts(Prepared.of(text)) == full


def test_rules_are_compiled_once_per_rule_object(rules: dict[str, TopicRule]) -> None:
    rule = rules["rare-earth"]
    assert _compiled("rare-earth", rule) is _compiled("rare-earth", rule)
    changed = rule.model_copy(update={"min_score": 99.0})
    assert _compiled("rare-earth", changed) is not _compiled("rare-earth", rule)
    assert not score_topic("rare-earth", changed, "Rare earth prices", "").assigned


def test_longest_term_wins_and_matches_do_not_overlap() -> None:
    rule = _rule(terms={"稀土": 1, "稀土永磁": 3, "rare earth": 1, "rare earth magnet": 2})
    assert _terms(rule, "", "稀土永磁 and rare earth magnets") == {"稀土永磁": 3, "rare earth magnet": 2}


def test_title_counts_more_than_body_and_body_repeats_are_capped() -> None:
    rule = _rule(terms={"rare earth": 1}, title_weight=2.5)
    title_only = score_topic("t", rule, "Rare earth prices", "")
    body_once = score_topic("t", rule, "Prices", "rare earth")
    body_many = score_topic("t", rule, "Prices", "rare earth " * 20)
    assert (title_only.score, body_once.score, body_many.score) == (2.5, 1, 3)


def test_regexes_count_like_terms() -> None:
    rule = _rule(regexes={r"joint\s+lab\w*": 2}, title_weight=2)
    s = score_topic("t", rule, "Joint lab opens", "the joint laboratory")
    assert s.matched == ((r"/joint\s+lab\w*/", 6),)


def test_penalty_subtracts_but_strong_evidence_survives() -> None:
    """A rare-earth story that mentions a sports meet keeps its topic; a sports-meet story does not."""
    rule = _rule(terms={"rare earth": 3}, exclude={"sports meet": 4}, title_weight=2.5, min_score=4)
    story = score_topic("t", rule, "Rare earth smelter expands", "rare earth ... rare earth ... the staff sports meet")
    assert story.assigned and story.score == 7.5 + 6 - 4
    assert ("sports meet", -4) in story.matched
    meet = score_topic("t", rule, "University sports meet", "the rare earth university held its sports meet")
    assert not meet.assigned and meet.score < 0


def test_veto_removes_the_topic_whatever_the_score() -> None:
    rule = _rule(terms={"REE": 3}, exclude={"Red Eléctrica": "veto"}, min_score=1)
    s = score_topic("t", rule, "REE REE", "Red Eléctrica (REE) approved the grid plan")
    assert s.score > 1 and not s.assigned
    assert s.excluded_by == "Red Eléctrica"
    assert s.reason == "vetoed by 'Red Eléctrica'"


def test_a_plain_exclude_list_still_means_veto() -> None:
    rule = _rule(terms={"rare earth": 3}, exclude=["hypothesis"], min_score=1)
    assert rule.exclude == {"hypothesis": "veto"}
    assert score_topic("t", rule, "Rare earth hypothesis", "").excluded_by == "hypothesis"


def test_require_needs_one_context_term() -> None:
    rule = _rule(terms={"joint lab": 5}, require=("university", "大学"), min_score=5)
    assert rule.require == {"require": ("university", "大学")}
    assert not score_topic("t", rule, "Two companies open joint lab", "").assigned
    assert score_topic("t", rule, "Two companies open joint lab", "").reason == (
        "no term of the required group 'require' occurs"
    )
    assert score_topic("t", rule, "Joint lab opens", "with Tsinghua University").assigned
    assert score_topic("t", rule, "Joint lab opens", "与清华大学共建").assigned


def test_every_require_group_must_be_present() -> None:
    rule = _rule(
        terms={"joint lab": 5},
        require={"academia": ("university",), "partner": ("company", "government", "企业")},
        min_score=5,
    )
    two_universities = score_topic("t", rule, "Joint lab opens", "Tsinghua University and Peking University")
    assert not two_universities.assigned
    assert two_universities.reason == "no term of the required group 'partner' occurs"
    assert score_topic("t", rule, "Joint lab opens", "Tsinghua University and a steel company").assigned


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"terms": {"rare earth": -3}}, r"rare-earth.*weight must be > 0.*'exclude'"),
        ({"exclude": {"sports meet": 0}}, r"rare-earth.*'sports meet': weight must be > 0"),
        ({"exclude": {"sports meet": "maybe"}}, r"rare-earth.*exclude"),
        ({"require": {"academia": []}}, r"rare-earth.*require group 'academia'"),
        ({"regexes": {"(unclosed": 1}}, r"rare-earth.*invalid regex"),
    ],
)
def test_bad_rules_are_refused_with_the_key_named(project: Path, change: dict[str, Any], message: str) -> None:
    from aggregator.errors import ConfigError

    data = yaml.safe_load((project / "feeds.yaml").read_text(encoding="utf-8"))
    data["topics"]["rare-earth"].update(change)
    (project / "feeds.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(project / "feeds.yaml")


# -- determinism -------------------------------------------------------------------------------------


def _score_all(rules: dict[str, TopicRule]) -> list[list[Any]]:
    out = []
    for path in ARTICLES:
        art = _article(path)
        for s in score_text(art["title"], art["body"].strip(), rules):
            out.append([path.stem, s.topic, s.score, [list(m) for m in s.matched], s.assigned])
    return out


def test_scores_do_not_depend_on_rule_order(rules: dict[str, TopicRule]) -> None:
    shuffled = {
        key: rule.model_copy(update={"terms": dict(reversed(rule.terms.items()))})
        for key, rule in reversed(rules.items())
    }
    assert _score_all(shuffled) == _score_all(rules)


# Run here and in a fresh interpreter with another hash seed; imports only what scoring needs.
_SCORE_ALL = """
import json, yaml
from aggregator.config import load_config
from aggregator.topics import score_text
rules = load_config(root / "feeds.yaml").topics
out = []
for path in sorted((root / "tests/data/topics/articles").glob("*.yaml")):
    art = yaml.safe_load(path.read_text(encoding="utf-8"))
    out += [[path.stem, s.topic, s.score, s.matched, s.assigned] for s in score_text(art["title"], art["body"].strip(), rules)]
print(json.dumps(out, ensure_ascii=False))
"""


def test_scores_are_the_same_in_another_process() -> None:
    """Another hash seed (so another set and dict order of strings) gives byte-identical results."""
    here = io.StringIO()
    with contextlib.redirect_stdout(here):
        exec(_SCORE_ALL, {"root": ROOT})
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    cmd = [sys.executable, "-c", "import sys, pathlib; root = pathlib.Path(sys.argv[1])" + _SCORE_ALL, str(ROOT)]
    there = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert here.getvalue() == there
    assert len(json.loads(there)) == 2 * len(ARTICLES)


# -- topics in feeds and digests -------------------------------------------------------------------


def _atom(entries: list[dict[str, Any]]) -> str:
    items = "".join(
        f"<entry><id>urn:test:{a['id']}</id><title>{escape(a['title'])}</title>"
        f"<link href='https://news.example.com/{a['id']}'/><updated>2026-11-20T08:00:00Z</updated>"
        f"<content type='text'>{escape(a['body'])}</content></entry>"
        for a in entries
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        "<id>urn:test:feed</id><title>Test news</title><updated>2026-11-20T08:00:00Z</updated>"
        f"{items}</feed>"
    )


def test_topics_reach_feeds_and_digest_sections(project: Path, write_config: Any) -> None:
    """Per-topic feeds hold only their topic's stories; a story in no topic is only in the main feed."""
    picks = {
        "re": "en-01-ndpr-prices",
        "ui": "en-08-steel-joint-lab",
        "both": "en-11-jxust-magnet-recycling-lab",
        "none": "en-13-baotou-coal-mine-accident",
    }
    arts = {k: {**_article(DATA / "topics" / "articles" / f"{v}.yaml"), "id": k} for k, v in picks.items()}
    (project / "news").mkdir()
    (project / "news" / "test.atom").write_text(_atom(list(arts.values())), encoding="utf-8")
    config: Config = write_config(sources=[{"name": "test-news", "path": "news/*.atom"}])
    deps: Deps = make_deps(config, clock=Clock())
    try:
        refresh(config, deps)
        title = {k: a["title"] for k, a in arts.items()}

        main = feedparser.parse((config.output_path / "feed.atom").read_bytes())
        tags = {e.title: sorted(t.term for t in e.get("tags", [])) for e in main.entries}
        assert tags == {
            title["re"]: ["rare-earth"],
            title["ui"]: ["university-industry"],
            title["both"]: ["rare-earth", "university-industry"],
            title["none"]: [],
        }
        for key, expected in [("rare-earth", {"re", "both"}), ("university-industry", {"ui", "both"})]:
            feed = feedparser.parse((config.output_path / "topics" / f"{key}.atom").read_bytes())
            assert {e.title for e in feed.entries} == {title[k] for k in expected}

        window = {"start": FIXED_NOW - timedelta(days=1), "end": FIXED_NOW + timedelta(minutes=1)}
        everything = " ".join(make_digest(config, deps, **window).text.split())  # the text version wraps lines
        assert title["both"] in everything and title["re"] in everything and title["ui"] in everything
        assert title["none"] not in everything
        assert "3 stories" in everything  # the story in both sections counts once
        # A subscriber who chose only university-industry gets no rare-earth-only story.
        ui_only = " ".join(make_digest(config, deps, topics=["university-industry"], **window).text.split())
        assert title["ui"] in ui_only and title["both"] in ui_only
        assert title["re"] not in ui_only
    finally:
        deps.close()


def test_summary_is_scored_when_an_entry_has_no_content_text(rules: dict[str, TopicRule]) -> None:
    entry = _entry("稀土永磁产业大会在包头开幕", "", summary="产学研合作签约项目20个，多家企业参加。")
    assert assign_topics(entry, rules) == ("rare-earth", "university-industry")
    assert [s.assigned for s in score_entry(entry, rules)] == [True, True]


def test_changed_rules_retag_stored_entries_on_next_refresh(project, clock) -> None:
    """Editing the topic rules re-tags entries already stored, even when no source changed."""
    import yaml

    from aggregator.config import load_config
    from aggregator.pipeline import make_deps, refresh

    path = project / "feeds.yaml"
    config = load_config(path)
    deps = make_deps(config, clock=clock)
    try:
        refresh(config, deps)
        tagged = {e.title: e.topics for e in deps.store.iter_entries()}
        assert any("rare-earth" in t for t in tagged.values())
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["topics"]["rare-earth"]["min_score"] = 10_000  # nothing can reach it now
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        config = load_config(path)
        report = refresh(config, deps)
        assert all(r.updated == 0 for r in report.results)  # re-tagging is not a source change
        assert not any("rare-earth" in e.topics for e in deps.store.iter_entries())
        feed = (config.output_path / "topics" / "rare-earth.atom").read_text(encoding="utf-8")
        assert "<entry" not in feed
    finally:
        deps.close()
