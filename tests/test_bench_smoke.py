"""The benchmark harness works at a tiny size: corpus generator, loopback server, scoring.

The benchmark itself (`make bench`) is not part of the test run; this only proves its parts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import feedparser
import httpx
import pytest

from bench.corpus import generate, render, write
from bench.server import CorpusServer
from bench.stages import pair_scores


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    write(generate(6, seed=7, exact=0.2, near=0.2), out)
    return out


def test_corpus_is_deterministic_and_well_formed(corpus: Path) -> None:
    again = generate(6, seed=7, exact=0.2, near=0.2)
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert [render(f) for f in again.feeds] == [(corpus / "feeds" / r["path"]).read_bytes() for r in manifest["feeds"]]
    truth = json.loads((corpus / "ground_truth.json").read_text())
    assert len(truth) == manifest["entries"] == sum(r["entries"] for r in manifest["feeds"])
    kinds = {r["kind"] for r in truth}
    assert "original" in kinds and kinds & {"exact", "near"}
    for row in manifest["feeds"]:
        parsed = feedparser.parse((corpus / "feeds" / row["path"]).read_bytes())
        assert not parsed.bozo, row["path"]
        assert len(parsed.entries) == row["entries"]
        assert 20 <= row["entries"] <= 80
        assert parsed.version.startswith("atom" if row["format"] == "atom" else "rss")


def test_server_validators_faults_and_self_stop(corpus: Path) -> None:
    manifest = json.loads((corpus / "manifest.json").read_text())
    rows = manifest["feeds"]
    faults = {rows[1]["index"]: "error500", rows[2]["index"]: "truncate", rows[3]["index"]: "stall"}
    with CorpusServer(corpus, fault_map=faults, stall_seconds=5, timeout=1.0) as srv:
        with httpx.Client(timeout=0.3) as client:
            ok = client.get(srv.url_for(rows[0]))
            assert ok.status_code == 200 and ok.content == (corpus / "feeds" / rows[0]["path"]).read_bytes()
            again = client.get(srv.url_for(rows[0]), headers={"If-None-Match": ok.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            since = client.get(srv.url_for(rows[0]), headers={"If-Modified-Since": ok.headers["last-modified"]})
            assert since.status_code == 304
            assert client.get(srv.url_for(rows[1])).status_code == 500
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(srv.url_for(rows[2]))
            with pytest.raises(httpx.ReadTimeout):
                client.get(srv.url_for(rows[3]))
            stats = client.get(f"http://127.0.0.1:{srv.port}/_stats").json()["stats"]
            assert stats["200"] == 1 and stats["304"] == 2 and stats["500"] == 1
        # The watchdog stops the server by itself.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                httpx.get(srv.url_for(rows[0]), timeout=0.2)
            except httpx.HTTPError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("server still answering after its timeout")


def test_pair_scores() -> None:
    truth = {"a": "s1", "b": "s1", "c": "s2", "d": "s3"}
    assert pair_scores({"a": "x", "b": "x", "c": "y", "d": "z"}, truth) == (1.0, 1.0)
    precision, recall = pair_scores({"a": "x", "b": "y", "c": "y", "d": "z"}, truth)
    assert (precision, recall) == (0.0, 0.0)
    assert pair_scores({"a": "x", "b": "x", "c": "x", "d": "z"}, truth) == (pytest.approx(1 / 3), 1.0)
