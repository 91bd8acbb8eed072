"""datasketch is the oracle of our LSH: the banded index and the big-batch sorting must find
exactly the candidates `MinHashLSH(params=(bands, rows))` finds for the same MinHash values."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from aggregator import _shingle
from aggregator.dedupe import LSH_BODY, LSH_TITLE, Signature, SignatureRows, _Bands, _inner_hits, compute_signature
from bench.bench_dedupe import generate


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, Signature, LeanMinHash, LeanMinHash]]:
    """400 generated entries (a third of the stories copied: exact, reprinted, rewritten,
    summarised) plus empty texts and titles; our signature and datasketch's own MinHash of each."""
    entries, _ = generate(400, seed=11)
    entries[5] = dataclasses.replace(entries[5], content_text="", title="x")
    entries[9] = dataclasses.replace(entries[9], title="")
    for i in range(20, 60, 8):  # five different stories under one title: a band group of five
        entries[i] = dataclasses.replace(entries[i], title=entries[12].title)
    out = []
    for e in entries:
        sig = compute_signature(e)
        lean = []
        for perm, values in (
            (_shingle.BODY_PERM, _shingle.shingle_hashes(e.content_text)),
            (_shingle.TITLE_PERM, _shingle.title_hashes(_shingle.title_words(e.title))),
        ):
            m = MinHash(num_perm=perm, seed=1, hashfunc=int, scheme="affine32")
            if len(values):
                m.update_batch(values.tolist())
            lean.append(LeanMinHash(m))
        # The stored bytes are datasketch's digest: the same signature both indexes are given.
        assert sig.body == lean[0].digest().astype("<u4").tobytes()
        assert sig.title == lean[1].digest().astype("<u4").tobytes()
        out.append((e.id, sig, lean[0], lean[1]))
    return out


def _oracle(perm: int, params: tuple[int, int]) -> MinHashLSH:
    return MinHashLSH(num_perm=perm, params=params)


@pytest.mark.parametrize("which", ["body", "title"])
def test_banded_index_returns_the_candidates_of_datasketch_minhashlsh(corpus: list[Any], which: str) -> None:
    perm, params = (_shingle.BODY_PERM, LSH_BODY) if which == "body" else (_shingle.TITLE_PERM, LSH_TITLE)
    ours, oracle = _Bands(*params, perm), _oracle(perm, params)
    empty: set[str] = set()
    for key, sig, body, title in corpus:
        raw, lean = (sig.body, body) if which == "body" else (sig.title, title)
        if ours.is_empty(raw):
            empty.add(key)  # no text: ours indexes nothing (datasketch would collide all empties)
        else:
            oracle.insert(key, lean)
        ours.insert(key, raw)
    assert empty, "the corpus must hold an empty signature"
    shared = 0
    for key, sig, body, title in corpus:
        raw, lean = (sig.body, body) if which == "body" else (sig.title, title)
        if key in empty:
            assert ours.query(raw) == set()
            continue
        expected = set(oracle.query(lean))
        assert ours.query(raw) == expected, key
        shared += len(expected) > 1
    assert shared >= 40, "near duplicates must collide, or the comparison proves little"


def test_big_batch_sorting_returns_the_candidates_of_datasketch_minhashlsh(corpus: list[Any]) -> None:
    """`_inner_hits` gives each entry the earlier ones it collides with: what querying
    MinHashLSH before inserting each entry in turn returns."""
    keys = [k for k, *_ in corpus]
    table = SignatureRows.of({k: sig for k, sig, *_ in corpus}, reversed(keys))  # rows not in batch order
    body_hits, title_hits = _inner_hits(table, np.array([table.row[k] for k in keys]))
    hits = {k: ([keys[j] for j in body_hits.at(i)], [keys[j] for j in title_hits.at(i)]) for i, k in enumerate(keys)}
    body_lsh, title_lsh = _oracle(_shingle.BODY_PERM, LSH_BODY), _oracle(_shingle.TITLE_PERM, LSH_TITLE)
    found = 0
    for key, sig, body, title in corpus:
        expected = []
        for lsh, lean, raw in ((body_lsh, body, sig.body), (title_lsh, title, sig.title)):
            if np.all(np.frombuffer(raw, "<u4") == 0xFFFFFFFF):
                expected.append(set())
                continue
            expected.append(set(lsh.query(lean)))
            lsh.insert(key, lean)
        got = hits.get(key, ([], []))
        assert (set(got[0]), set(got[1])) == (expected[0], expected[1]), key
        assert len(got[0]) == len(set(got[0])) and len(got[1]) == len(set(got[1]))
        found += bool(expected[0] or expected[1])
    assert found >= 40


@pytest.mark.parametrize("block", [1, 7, 300, 1 << 14])
def test_minhash_in_blocks_equals_datasketch_per_entry(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Signatures are computed a block of entries at a time; each row must still be datasketch's
    MinHash of that entry alone, empty entries and block edges included."""
    rng = np.random.default_rng(block)
    sizes = [0, 1, 2, 0, 40, 299, 300, 301, 0, 5, 1000, 3]
    values = [rng.integers(0, 2**32, n, dtype=np.uint64) for n in sizes]
    monkeypatch.setattr(_shingle, "_BLOCK", block)
    for perm in (_shingle.BODY_PERM, _shingle.TITLE_PERM):
        rows = _shingle.minhash_many(values, perm)
        assert rows.shape == (len(values), perm)
        for v, row in zip(values, rows, strict=True):
            m = MinHash(num_perm=perm, seed=1, hashfunc=int, scheme="affine32")
            if len(v):
                m.update_batch(v.tolist())
            assert np.array_equal(row, m.digest().astype(np.uint32))
