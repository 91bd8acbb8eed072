"""Dedupe: the labelled pair set, exact rules, stable story ids, explain, pins, and end to end."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config, DedupeConfig
from aggregator.dedupe import Clustering, cluster, compare, features, fingerprint
from aggregator.normalize import normalize
from aggregator.pipeline import make_deps, make_digest, refresh
from aggregator.types import DatePrecision, Entry, RawItem

from .conftest import Clock

DATA = Path(__file__).resolve().parent / "data" / "dedupe"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def make_entry(
    source: str,
    title: str,
    body: str,
    *,
    published: datetime | None = None,
    url: str | None = None,
    guid: str | None = None,
    first_seen: datetime = T0,
) -> Entry:
    """An Entry as normalize makes it (real content hash, canonical URL), first seen at `first_seen`."""
    item = RawItem(
        source=source,
        guid=guid or f"{source}:{title}",
        link=url,
        title=title,
        content_text=body,
        published=published,
        date_precision=DatePrecision.DAY if published else DatePrecision.NONE,
    )
    return dataclasses.replace(normalize(item, fetched_at=T0 + timedelta(days=3650)), first_seen=first_seen)


def load_labelled() -> tuple[dict[str, Entry], list[dict[str, Any]]]:
    """The labelled articles (by key) and pairs of tests/data/dedupe."""
    arts: dict[str, Entry] = {}
    for name in ("articles_en.yaml", "articles_zh.yaml"):
        for key, a in yaml.safe_load((DATA / name).read_text(encoding="utf-8")).items():
            pub = a.get("published")
            when = datetime(pub.year, pub.month, pub.day, tzinfo=UTC) if pub else None
            arts[key] = make_entry(a["source"], a["title"], a["body"], published=when, url=a.get("url"), guid=key)
    pairs = yaml.safe_load((DATA / "pairs.yaml").read_text(encoding="utf-8"))
    return arts, pairs


def _stored_and_new() -> tuple[list[Entry], list[Entry]]:
    """The labelled articles split in two: half stored at T0, half arriving an hour later."""
    arts, _ = load_labelled()
    keys = sorted(arts)
    old = [dataclasses.replace(arts[k], first_seen=T0) for k in keys[::2]]
    new = [dataclasses.replace(arts[k], first_seen=T0 + timedelta(hours=1)) for k in keys[1::2]]
    return old, new


def pair_metrics(arts: dict[str, Entry], pairs: Iterable[dict[str, Any]], result: Clustering) -> dict[str, Any]:
    """Precision and recall of a clustering on the labelled pairs (same story = predicted duplicate)."""
    story = {e.id: result.links[e.id].story_id for e in arts.values()}
    tp = fp = fn = tn = 0
    wrong = []
    for p in pairs:
        merged = story[arts[p["a"]].id] == story[arts[p["b"]].id]
        if merged and p["same"]:
            tp += 1
        elif merged:
            fp += 1
            wrong.append(("false merge", p["a"], p["b"]))
        elif p["same"]:
            fn += 1
            wrong.append(("missed", p["a"], p["b"]))
        else:
            tn += 1
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "wrong": wrong,
    }


# -- the labelled set ----------------------------------------------------------------------


def test_labelled_set_has_enough_pairs_of_every_kind() -> None:
    arts, pairs = load_labelled()
    assert len(pairs) >= 40
    kinds = {p["kind"] for p in pairs}
    assert {"reprint", "rewrite", "summary", "two-feeds", "same-institution", "follow-up", "template"} <= kinds
    zh = [p for p in pairs if p["a"].startswith("z")]
    assert len(zh) >= 15, "Chinese pairs"
    for p in pairs:
        assert p["a"] in arts and p["b"] in arts, p


def test_labelled_set_precision_and_recall() -> None:
    """Stories over all labelled articles at once: the pairs that end in one story are the merges."""
    arts, pairs = load_labelled()
    m = pair_metrics(arts, pairs, cluster(arts.values(), DedupeConfig()))
    assert m["precision"] >= 0.98, m["wrong"]
    assert m["recall"] >= 0.95, m["wrong"]


def test_labelled_set_arriving_one_refresh_at_a_time() -> None:
    """Each article first seen in its own refresh, in order of publication (stored links kept)."""
    arts, pairs = load_labelled()
    cfg = DedupeConfig()
    order = sorted(arts, key=lambda k: (arts[k].published or T0, k))
    links: dict = {}
    sigs: dict = {}
    seen: list[Entry] = []
    for i, key in enumerate(order):
        seen.append(dataclasses.replace(arts[key], first_seen=T0 + timedelta(hours=i)))
        result = cluster(seen, cfg, links=links, signatures=sigs, state=fingerprint(cfg) if links else None)
        assert set(result.signatures) <= {seen[-1].id}, "only the new article is hashed"
        links, sigs = result.links, {**sigs, **result.signatures}
    m = pair_metrics({k: seen[order.index(k)] for k in arts}, pairs, result)
    assert m["precision"] >= 0.98 and m["recall"] >= 0.95, m["wrong"]


def test_labelled_pairs_judged_alone() -> None:
    """`compare` on each pair alone: it never merges a negative; a few positives only join through a
    third copy (a summary of a rewrite), so pairwise recall is lower than the stories' recall."""
    arts, pairs = load_labelled()
    cfg = DedupeConfig()
    feats = {k: features(e) for k, e in arts.items()}
    verdicts = [(p, compare(arts[p["a"]], arts[p["b"]], feats[p["a"]], feats[p["b"]], cfg)) for p in pairs]
    false_merges = [(p["a"], p["b"], ev.rule) for p, ev in verdicts if ev.rule and not p["same"]]
    assert false_merges == []
    positives = [ev for p, ev in verdicts if p["same"]]
    assert sum(1 for ev in positives if ev.rule) / len(positives) >= 0.85


def test_labelled_set_same_stories_in_any_input_order() -> None:
    arts, _ = load_labelled()
    entries = list(arts.values())
    first = cluster(entries, DedupeConfig()).links
    for seed in range(3):
        import random

        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        assert cluster(shuffled, DedupeConfig()).links == first


# -- the rules -----------------------------------------------------------------------------

BODY = (DATA / "articles_en.yaml").read_text(encoding="utf-8")
_F1 = yaml.safe_load(BODY)["f1-orig"]["body"]


def test_reprint_with_new_header_and_footer_is_a_duplicate() -> None:
    a = make_entry("uni", "Baotou delegation visits JXUST", _F1)
    b = make_entry(
        "wiki",
        "Wiki: Baotou delegation visits JXUST",
        "Rare Earth Wiki | News | Reprinted with permission of the JXUST news office.\n\n"
        + _F1
        + "\n\nDisclaimer: reprinted for information only. Related: prices, magnets, output, exports, policy.",
    )
    ev = compare(a, b, features(a), features(b), DedupeConfig())
    assert ev.rule == "near-duplicate" and ev.containment >= 0.95


def test_within_one_source_only_id_or_canonical_url_merge() -> None:
    a = make_entry("uni", "Visit", _F1, url="https://uni.example/news/1?utm_source=rss", guid="1")
    same_url = make_entry("uni", "Visit (updated)", _F1 + "\n\nUpdated.", url="http://UNI.example/news/1/", guid="2")
    same_text = make_entry("uni", "Visit", _F1, url="https://uni.example/news/2", guid="3")
    result = cluster([a, same_url, same_text], DedupeConfig())
    assert result.links[same_url.id].story_id == result.links[a.id].story_id
    assert result.links[same_url.id].rule == "canonical-url"
    assert result.links[same_text.id].story_id == same_text.id  # same body, same source: not merged


def test_same_body_in_two_sources_merges_on_content_hash() -> None:
    a = make_entry("uni", "Visit", _F1, guid="1")
    b = make_entry("paper", "A visit", _F1.replace("\n\n", "\n\n\n").upper(), guid="1")
    result = cluster([a, b], DedupeConfig())
    assert {result.links[a.id].rule, result.links[b.id].rule} == {"founder", "content-hash"}


def test_short_text_never_merges_on_text_alone() -> None:
    body = "Spot prices of praseodymium-neodymium oxide rose to 560,000 yuan per tonne."
    a = make_entry("a", "NdPr price up", body, published=T0)
    b = make_entry("b", "Magnet makers restock", body + " More later.", published=T0)
    c = make_entry("c", "NdPr price up", body + " More later.", published=T0)
    cfg = DedupeConfig()
    assert compare(a, b, features(a), features(b), cfg).rule is None  # same text, other title
    assert compare(a, c, features(a), features(c), cfg).rule == "short-text+title"
    undated = dataclasses.replace(c, published=None)
    assert compare(a, undated, features(a), features(undated), cfg).rule is None  # needs both dates


def test_dates_outside_the_window_do_not_merge() -> None:
    a = make_entry("uni", "Visit", _F1 + " one", published=T0)
    b = make_entry("wiki", "Visit", _F1 + " two", published=T0 + timedelta(days=45))
    ev = compare(a, b, features(a), features(b), DedupeConfig())
    assert ev.rule is None and "45 days apart" in ev.reason
    assert compare(a, b, features(a), features(b), DedupeConfig(window_days=60)).rule == "near-duplicate"


def test_primary_by_priority_then_earliest_then_richest() -> None:
    a = make_entry("wiki", "Visit", _F1 + " extra words here", published=T0)
    b = make_entry("uni", "Visit", _F1, published=T0 + timedelta(days=1))
    c = make_entry("paper", "Visit", _F1 + " x", published=T0 - timedelta(days=1))
    (story,) = cluster([a, b, c], DedupeConfig(priority=("uni",))).stories
    assert story.primary.id == b.id
    (story,) = cluster([a, b, c], DedupeConfig()).stories
    assert story.primary.id == c.id  # earliest published
    c2 = dataclasses.replace(c, published=T0)
    (story,) = cluster([a, b, c2], DedupeConfig()).stories
    assert story.primary.id == a.id  # same date: the richest content


# -- stable ids ----------------------------------------------------------------------------


def test_late_duplicate_joins_existing_story_without_changing_its_id() -> None:
    arts, _ = load_labelled()
    cfg = DedupeConfig()
    orig = arts["z1-orig"]
    late = dataclasses.replace(arts["z1-reprint"], first_seen=T0 + timedelta(hours=5))
    later = dataclasses.replace(arts["z1-rewrite"], first_seen=T0 + timedelta(days=2))
    run1 = cluster([orig], cfg)
    sigs = dict(run1.signatures)
    run2 = cluster([orig, late], cfg, links=run1.links, signatures=sigs, state=fingerprint(cfg))
    assert set(run2.signatures) == {late.id}, "stored signatures are reused, only the new entry is hashed"
    sigs |= run2.signatures
    run3 = cluster([orig, late, later], cfg, links=run2.links, signatures=sigs, state=fingerprint(cfg))
    assert [s.id for s in run3.stories] == [orig.id]
    assert run3.links[later.id].story_id == orig.id and run3.links[later.id].rule == "near-duplicate"
    assert [link.entry_id for link in run3.changed] == [later.id]
    # Re-running changes nothing.
    run4 = cluster([orig, late, later], cfg, links=run3.links, signatures=sigs, state=fingerprint(cfg))
    assert run4.changed == [] and run4.signatures == {} and run4.links == run3.links


def test_incremental_runs_give_the_same_stories_as_one_full_pass() -> None:
    arts, _ = load_labelled()
    cfg = DedupeConfig()
    staged = [dataclasses.replace(e, first_seen=T0 + timedelta(hours=i % 5)) for i, e in enumerate(arts.values())]
    full = cluster(staged, cfg)
    links: dict = {}
    sigs: dict = {}
    for hour in range(5):
        seen = [e for e in staged if e.first_seen <= T0 + timedelta(hours=hour)]
        step = cluster(seen, cfg, links=links, signatures=sigs, state=fingerprint(cfg) if links else None)
        links, sigs = step.links, {**sigs, **step.signatures}
    assert {k: v.story_id for k, v in links.items()} == {k: v.story_id for k, v in full.links.items()}


def test_new_entry_never_merges_two_published_stories() -> None:
    """A bridge between two published stories joins the better match; both ids stay."""
    body_a = _F1
    body_b = yaml.safe_load(BODY)["f3-orig"]["body"]
    a = make_entry("a", "Visit one", body_a)
    b = make_entry("b", "Visit two", body_b)
    cfg = DedupeConfig()
    run1 = cluster([a, b], cfg)
    assert len(run1.stories) == 2
    bridge = make_entry("c", "Two visits", body_a + "\n\n" + body_b, first_seen=T0 + timedelta(hours=1))
    run2 = cluster([a, b, bridge], cfg, links=run1.links, signatures=run1.signatures, state=fingerprint(cfg))
    assert {s.id for s in run2.stories} == {a.id, b.id}
    assert run2.links[bridge.id].story_id in {a.id, b.id}


def test_never_and_always_merge_pins() -> None:
    arts, _ = load_labelled()
    orig, reprint, other = arts["f1-orig"], arts["f1-reprint"], arts["f5-orig"]
    never = DedupeConfig(never_merge=((orig.id[:10], reprint.id),))
    result = cluster([orig, reprint, other], never)
    assert result.links[orig.id].story_id != result.links[reprint.id].story_id
    always = DedupeConfig(always_merge=((orig.id, other.id),))
    result = cluster([orig, reprint, other], always)
    assert result.links[other.id].story_id == result.links[orig.id].story_id
    assert "always-merge" in {result.links[other.id].rule, result.links[orig.id].rule}
    assert fingerprint(never) != fingerprint(always) != fingerprint(DedupeConfig())


def test_changed_settings_recluster_and_keep_unaffected_ids() -> None:
    arts, _ = load_labelled()
    entries = list(arts.values())
    cfg = DedupeConfig()
    before = cluster(entries, cfg)
    pinned = DedupeConfig(never_merge=((arts["z1-orig"].id, arts["z1-reprint"].id),))
    after = cluster(entries, pinned, links=before.links, signatures=before.signatures, state=fingerprint(cfg))
    assert after.recomputed
    assert after.links[arts["z1-orig"].id].story_id != after.links[arts["z1-reprint"].id].story_id
    for key in ("f1-orig", "f2-orig", "z2-orig", "f4-reprint"):
        assert after.links[arts[key].id].story_id == before.links[arts[key].id].story_id


# -- end to end: two local feeds, a reprint, one Atom entry --------------------------------


def _rss(items: list[tuple[str, str, str, str]]) -> str:
    from xml.sax.saxutils import escape

    out = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title><link>https://x.example/</link>'
    ]
    for guid, link, title, body in items:
        html = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n\n") if p.strip())
        out.append(
            f"<item><guid>{guid}</guid><link>{link}</link><title>{escape(title)}</title>"
            f"<pubDate>Tue, 10 Mar 2026 08:00:00 +0000</pubDate><description>{escape(html)}</description></item>"
        )
    out.append("</channel></rss>")
    return "".join(out)


UNI_ITEMS = [
    ("u1", "https://uni.example/news/1", "Senior Official from Inner Mongolia Visits JXUST", _F1),
    ("u2", "https://uni.example/news/2", "JXUST and USTB hold a forum", yaml.safe_load(BODY)["f3-orig"]["body"]),
]
WIKI_ITEM = (
    "w1",
    "https://wiki.example/reprint/77",
    "Senior Official from Inner Mongolia Visits JXUST | Wiki",
    "Rare Earth Wiki | Industry News. Reprinted from the JXUST news office.\n\n"
    + _F1
    + "\n\nReprint statement: for information only. Related posts: prices, magnets, exports.",
)


def _atom(config: Config) -> Any:
    return feedparser.parse((config.output_path / "feed.atom").read_bytes())


def test_refresh_publishes_one_entry_per_story_and_late_copy_keeps_its_id(
    project: Path, write_config, clock: Clock
) -> None:
    feeds = project / "feeds"
    feeds.mkdir()
    (feeds / "uni.xml").write_text(_rss(UNI_ITEMS), encoding="utf-8")
    config = write_config(sources=[{"name": "uni", "path": "feeds/uni.xml"}], dedupe={"priority": ["uni"]})
    deps = make_deps(config, clock=clock)
    try:
        refresh(config, deps)
        first = {e.title: e.id for e in _atom(config).entries}
        assert len(first) == 2
        # A wiki reprints the first story a day later.
        (feeds / "wiki.xml").write_text(_rss([WIKI_ITEM]), encoding="utf-8")
        config = write_config(
            sources=[{"name": "uni", "path": "feeds/uni.xml"}, {"name": "wiki", "path": "feeds/wiki.xml"}]
        )
        clock.now += timedelta(days=1)
        refresh(config, deps)
        feed = _atom(config)
        assert {e.title: e.id for e in feed.entries} == first, "one entry per story, same ids"
        entry = next(e for e in feed.entries if e.title.startswith("Senior Official"))
        related = [link.href for link in entry.links if link.rel == "related"]
        assert related == ["https://wiki.example/reprint/77"]
        assert "Also reported by" in entry.content[0].value
        # Re-running refresh changes no id and no byte.
        before = (config.output_path / "feed.atom").read_bytes()
        links = deps.store.story_links()
        clock.now += timedelta(hours=1)
        refresh(config, deps)
        assert (config.output_path / "feed.atom").read_bytes() == before
        assert deps.store.story_links() == links
        # The digest shows the other report too.
        digest = make_digest(config, deps, start=clock.now - timedelta(days=7), end=clock.now + timedelta(hours=1))
        assert "Also reported by" in digest.text
    finally:
        deps.close()
    runner = CliRunner()
    wiki_id = next(k for k, v in links.items() if v.rule not in ("founder",))
    r = runner.invoke(main, ["-c", str(project / "feeds.yaml"), "explain", wiki_id[:10]])
    assert r.exit_code == 0, r.output
    assert "merged by: near-duplicate, score 1.000" in r.output
    assert "(the story's first entry)" in r.output
    assert "[uni]  Senior Official from Inner Mongolia Visits JXUST  (published)" in r.output
    assert "text containment 1.00" in r.output
    assert "topic rare-earth: score" in r.output and "rare earth" in r.output
    atom_id = r.output.split("Atom id ", 1)[1].split()[0]
    by_atom = runner.invoke(main, ["-c", str(project / "feeds.yaml"), "explain", atom_id])
    assert by_atom.exit_code == 0 and by_atom.output == r.output


def test_explain_unknown_id(project: Path) -> None:
    r = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "explain", "ffffffff"])
    assert r.exit_code != 0 and "0 entries match" in r.output


def test_never_merge_in_feeds_yaml_splits_published_story(project: Path, write_config, clock: Clock) -> None:
    feeds = project / "feeds"
    feeds.mkdir()
    (feeds / "uni.xml").write_text(_rss(UNI_ITEMS), encoding="utf-8")
    (feeds / "wiki.xml").write_text(_rss([WIKI_ITEM]), encoding="utf-8")
    sources = [{"name": "uni", "path": "feeds/uni.xml"}, {"name": "wiki", "path": "feeds/wiki.xml"}]
    config = write_config(sources=sources)
    deps = make_deps(config, clock=clock)
    try:
        refresh(config, deps)
        assert len(_atom(config).entries) == 2
        config = write_config(
            dedupe={"never_merge": [["https://uni.example/news/1", "https://wiki.example/reprint/77"]]}
        )
        refresh(config, deps)
        assert len(_atom(config).entries) == 3
    finally:
        deps.close()


def test_config_rejects_a_pin_naming_one_entry_twice(write_config) -> None:
    from aggregator.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        write_config(dedupe={"always_merge": [["abc123", "abc123"]]})
    assert "dedupe.always_merge" in str(err.value) and "two different entries" in str(err.value)


def test_refresh_path_finds_the_same_candidates_as_a_full_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh queries a small index of its batch with the stored entries (collisions are
    symmetric); forcing the other path (stored entries inserted) must give the same stories."""
    import aggregator.dedupe as dedupe

    cfg = DedupeConfig()
    old, new = _stored_and_new()
    stored = cluster(old, cfg)
    results = []
    for reverse in (4, 0):
        monkeypatch.setattr(dedupe, "REVERSE_BATCHES", reverse)
        r = cluster([*old, *new], cfg, links=stored.links, signatures=stored.signatures, state=fingerprint(cfg))
        results.append((r.links, r.compared))
    assert results[0] == results[1]
    assert any(link.rule != "founder" for link in results[0][0].values() if link.entry_id in {e.id for e in new})


def test_minhash_values_equal_datasketch_so_stored_signatures_stay_valid() -> None:
    """The MinHash is computed here, vectorised, but must equal datasketch's (affine32, seed 1,
    values already hashed): signatures stored by a version that let datasketch compute them are
    compared with new ones without recomputation, so any difference would silently lose matches."""
    import numpy as np
    from datasketch import MinHash

    from aggregator import _shingle

    rng = np.random.default_rng(5)
    texts = ["", "one", "two words", *(e.content_text for e in list(load_labelled()[0].values())[:5])]
    samples = [_shingle.shingle_hashes(t) for t in texts]
    samples += [rng.integers(0, 2**32, n, dtype=np.uint64) for n in (1, 3, 40, 999)]
    for values in samples:
        for perm in (_shingle.BODY_PERM, _shingle.TITLE_PERM):
            m = MinHash(num_perm=perm, seed=1, hashfunc=int, scheme="affine32")
            if len(values):
                m.update_batch(values.tolist())
            assert np.array_equal(_shingle.minhash_values(values, perm), m.digest().astype(np.uint32))


def test_big_batch_sorting_finds_the_same_candidates_as_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """A big batch finds collisions among its own entries by sorting band values; forcing that
    path for every batch (and the index for none) must give the same stories, also when a
    later batch has to find the big one's entries in the index."""
    import aggregator.dedupe as dedupe

    arts, _ = load_labelled()
    keys = sorted(arts)
    one = list(arts.values())  # all first seen at T0: one batch
    two = [dataclasses.replace(arts[k], first_seen=T0 + timedelta(hours=i % 2)) for i, k in enumerate(keys)]
    for entries in (one, two):
        results = []
        for big in (10**9, 1):
            monkeypatch.setattr(dedupe, "BIG_BATCH", big)
            r = cluster(entries, DedupeConfig())
            results.append((r.links, r.compared))
        assert results[0] == results[1]
        assert any(link.rule not in ("founder",) for link in results[0][0].values())


def test_entries_without_bodies_cluster_the_same_and_load_only_what_they_compare() -> None:
    """The store path passes entries without their texts (`Bodies`): the stories must be the same,
    and only new entries (no stored signature) and compared candidates have their text loaded."""
    from aggregator.dedupe import Bodies

    cfg = DedupeConfig()
    old, new = _stored_and_new()
    stored = cluster(old, cfg)
    whole = cluster([*old, *new], cfg, links=stored.links, signatures=stored.signatures, state=fingerprint(cfg))
    texts = {e.id: e.content_text for e in [*old, *new]}
    loaded: list[str] = []

    def load(ids: Any) -> dict[str, str]:
        loaded.extend(ids)
        return {k: texts[k] for k in ids}

    bare = [dataclasses.replace(e, content_text="", content_html="") for e in [*old, *new]]
    light = cluster(
        bare,
        cfg,
        links=stored.links,
        signatures=stored.signatures,
        state=fingerprint(cfg),
        bodies=Bodies({k: len(v) for k, v in texts.items()}, load),
    )
    assert light.links == whole.links and light.compared == whole.compared
    assert [s.primary.id for s in light.stories] == [s.primary.id for s in whole.stories]
    assert {e.id for e in new} <= set(loaded), "new entries are hashed from their text"
    assert len(set(loaded) - {e.id for e in new}) < len(old), "stored entries load only to be compared"


def test_signature_rows_cluster_as_signature_objects_and_take_what_is_computed() -> None:
    """The store passes its signatures as rows of arrays (`SignatureRows`): the same stories as
    with Signature objects; a stale row (the entry changed since) is recomputed, not used."""
    from aggregator.dedupe import SignatureRows

    cfg = DedupeConfig()
    old, new = _stored_and_new()
    stored = cluster(old, cfg)
    ids = [e.id for e in [*old, *new]]
    rows = SignatureRows.of(stored.signatures, ids)
    assert len(rows) == len(stored.signatures) and all(rows[k] == v for k, v in stored.signatures.items())
    assert new[0].id not in rows
    whole = cluster([*old, *new], cfg, links=stored.links, signatures=stored.signatures, state=fingerprint(cfg))
    light = cluster([*old, *new], cfg, links=stored.links, signatures=rows, state=fingerprint(cfg))
    assert light.links == whole.links and light.compared == whole.compared
    assert light.signatures == whole.signatures and set(light.signatures) == {e.id for e in new}
    assert len(rows) == 0, "cleared once clustered"
    # A stored signature that no longer matches its entry (same sizes, other basis): the other
    # entry's MinHash under it would make the two collide; it must be recomputed instead.
    a, b = old[0], old[1]
    fake = dataclasses.replace(stored.signatures[b.id], basis="0" * 20)
    stale = SignatureRows.of({**stored.signatures, a.id: fake}, ids)
    again = cluster([*old, *new], cfg, links=stored.links, signatures=stale, state=fingerprint(cfg))
    assert again.links == whole.links and again.signatures[a.id] == stored.signatures[a.id]


def _two_feeds(project: Path) -> list[dict[str, str]]:
    feeds = project / "feeds"
    feeds.mkdir()
    (feeds / "uni.xml").write_text(_rss(UNI_ITEMS), encoding="utf-8")
    (feeds / "wiki.xml").write_text(_rss([WIKI_ITEM]), encoding="utf-8")
    return [{"name": "uni", "path": "feeds/uni.xml"}, {"name": "wiki", "path": "feeds/wiki.xml"}]


def test_rebuilt_stories_carry_whole_entries_where_published(project: Path, write_config, clock: Clock) -> None:
    """Clustering reads the store without bodies; the stories the feed and the digest render must
    still hold the stored entries whole (the others need not)."""
    from aggregator.pipeline import rebuild_stories, stories_in_window
    from aggregator.publish import select_window

    config = write_config(sources=_two_feeds(project), topics={}, digests=[], feed={"max_entries": 1})
    deps = make_deps(config, clock=clock)
    try:
        refresh(config, deps)
        stories = rebuild_stories(config, deps)
        assert len(stories) == 2
        published = select_window(config, stories)
        assert len(published) == 1
        for m in published[0].members:
            assert m == deps.store.get_entry(m.id) and m.content_html and m.content_text
        rest = [s for s in stories if s not in published]
        assert all(not m.content_html and not m.content_text for s in rest for m in s.members)
        window = stories_in_window(config, deps, clock.now - timedelta(days=1), clock.now + timedelta(hours=1))
        assert len(window) == 2
        for m in (m for s in window for m in s.members):
            assert m == deps.store.get_entry(m.id)
    finally:
        deps.close()


def test_signatures_stored_by_another_scheme_are_recomputed_not_compared(
    project: Path, write_config, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored signature whose basis names another shingling/MinHash scheme is recomputed from the
    entry's text (and stored again), never compared with current ones; story ids stay."""
    from aggregator import _shingle
    from aggregator.dedupe import compute_signature, signature_basis
    from aggregator.pipeline import rebuild_stories

    config = write_config(sources=_two_feeds(project))
    deps = make_deps(config, clock=clock)
    try:
        refresh(config, deps)
        links = deps.store.story_links()
        merged = next(k for k, v in links.items() if v.rule != "founder")
        # One entry's signature as an older version stored it, and its story link not yet made.
        deps.store.put_dedupe_signatures({merged: ("older-scheme", b"\0" * 160, b"\0" * 144)})
        deps.store.db.execute("DELETE FROM story_links WHERE entry_id = ?", (merged,))
        rebuild_stories(config, deps)
        entry = deps.store.get_entry(merged)
        assert entry is not None
        sig = compute_signature(entry)
        assert deps.store.dedupe_signatures()[merged] == (sig.basis, sig.body, sig.title)
        assert deps.store.story_links() == links
        # A new scheme: every stored signature is stale and recomputed, the stories stay.
        monkeypatch.setattr(_shingle, "SCHEME", _shingle.SCHEME + "-next")
        rebuild_stories(config, deps)
        rows = deps.store.dedupe_signatures()
        assert rows and all(rows[k][0] == signature_basis(deps.store.get_entry(k)) for k in rows)  # type: ignore[arg-type]
        assert deps.store.story_links() == links
    finally:
        deps.close()


if __name__ == "__main__":  # python -m tests.test_dedupe: the labelled-set figures
    arts_, pairs_ = load_labelled()
    cfg_ = DedupeConfig()
    m_ = pair_metrics(arts_, pairs_, cluster(arts_.values(), cfg_))
    print(f"{len(pairs_)} pairs ({sum(p['same'] for p in pairs_)} duplicates), {len(arts_)} articles")
    print(
        f"stories: precision {m_['precision']:.3f} recall {m_['recall']:.3f} (tp {m_['tp']} fp {m_['fp']} fn {m_['fn']})"
    )
    feats_ = {k: features(e) for k, e in arts_.items()}
    alone = [(p, compare(arts_[p["a"]], arts_[p["b"]], feats_[p["a"]], feats_[p["b"]], cfg_).rule) for p in pairs_]
    tp_ = sum(1 for p, r in alone if r and p["same"])
    fp_ = sum(1 for p, r in alone if r and not p["same"])
    fn_ = sum(1 for p, r in alone if not r and p["same"])
    print(f"pairs judged alone: precision {tp_ / max(tp_ + fp_, 1):.3f} recall {tp_ / max(tp_ + fn_, 1):.3f}")
    for p, r in alone:
        if bool(r) != p["same"]:
            print(f"  {'missed' if p['same'] else 'false merge'} alone: {p['a']} ~ {p['b']} ({p['kind']})")


@pytest.mark.parametrize(
    "text",
    [
        "Hello, World! foo_bar\tBAZ\x00qux 12.5% The Of AND x\x7fy",
        "日本語のテキスト・カタカナ゛ 中文_under_score中",
        "2026年第十五届 forum ｆｕｌｌ width ＡＢＣ mixed日本abc語123def",
        "é café naïve, Ünïcode WORDS without Chinese",
        "𠀀中文𠀁 abc x\ud800y",
    ],
)
def test_shingle_hashes_are_the_crc32_of_the_tokens(text: str) -> None:
    """Shingles are hashed without making a string of every token (bytes for ASCII, a code point
    table for Chinese), but must stay the CRC-32 of `tokens`: stored signatures depend on it."""
    import zlib

    import numpy as np

    from aggregator import _shingle

    h = np.array(
        [zlib.crc32(t.encode()) for t in _shingle.tokens(text) if t not in _shingle.STOPWORDS], dtype=np.uint64
    )
    expected = ((h[:-2] * _shingle._MIX1 + h[1:-1]) * _shingle._MIX2 + h[2:]) & _shingle._MASK32
    assert np.array_equal(_shingle.shingle_hashes(text), expected)


def test_features_hold_each_shingle_once_in_order() -> None:
    """`compare` intersects shingle sets by binary search: they must be sorted and distinct."""
    import dataclasses

    import numpy as np

    from aggregator import _shingle
    from aggregator.dedupe import features

    e = next(iter(load_labelled()[0].values()))
    text = e.content_text + " " + e.content_text  # every shingle twice
    f = features(dataclasses.replace(e, content_text=text))
    assert np.array_equal(f.shingles, np.unique(_shingle.shingle_hashes(text)).astype(np.uint32))
    assert features(dataclasses.replace(e, content_text="")).shingles.size == 0
