"""OPML import (print or append to feeds.yaml) and export, through the CLI."""

from __future__ import annotations

from pathlib import Path

import listparser
import yaml
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.opml import append_to_config

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="Mining">
      <outline type="rss" text="Mining.com Rare Earths" xmlUrl="https://www.mining.com/tag/rare-earths/feed/"/>
      <outline type="rss" text="Seeds" xmlUrl="https://seeds.example.org/feed.xml"/>
    </outline>
    <outline type="rss" text="Tech Transfer" xmlUrl="https://tto.example.edu/news.rss"/>
    <outline type="rss" text="Tech Transfer" xmlUrl="https://tto.example.edu/other.rss"/>
    <outline type="rss" text="FTP" xmlUrl="ftp://old.example.com/feed"/>
  </body>
</opml>
"""


def _add_remote(project: Path) -> None:
    path = project / "feeds.yaml"
    text = path.read_text(encoding="utf-8")
    assert "sources:\n- name: seeds" in text  # PyYAML's layout: list items not indented
    text = text.replace(
        "sources:\n", "sources:\n# the mining feed\n- name: mining\n  url: https://mining.com/tag/rare-earths/feed\n", 1
    )
    path.write_text(text + "# trailing comment\n", encoding="utf-8")


def test_import_prints_yaml_by_default_and_changes_nothing(project: Path, tmp_path: Path) -> None:
    _add_remote(project)
    before = (project / "feeds.yaml").read_text(encoding="utf-8")
    opml = tmp_path / "subs.opml"
    opml.write_bytes(OPML)
    r = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "opml", "import", str(opml)])
    assert r.exit_code == 0, r.output
    assert (project / "feeds.yaml").read_text(encoding="utf-8") == before
    assert "already configured" in r.output  # mining.com without www, with a trailing slash: same feed
    assert "not an http(s) URL" in r.output
    printed = yaml.safe_load("\n".join(line for line in r.output.splitlines() if line.startswith(" ")))
    assert printed == [
        {"name": "seeds-2", "url": "https://seeds.example.org/feed.xml"},  # "seeds" is taken
        {"name": "tech-transfer", "url": "https://tto.example.edu/news.rss"},
        {"name": "tech-transfer-2", "url": "https://tto.example.edu/other.rss"},
    ]


def test_import_write_appends_keeping_comments(project: Path, tmp_path: Path) -> None:
    _add_remote(project)
    opml = tmp_path / "subs.opml"
    opml.write_bytes(OPML)
    cfg = str(project / "feeds.yaml")
    r = CliRunner().invoke(main, ["-c", cfg, "opml", "import", "--write", str(opml)])
    assert r.exit_code == 0, r.output
    text = (project / "feeds.yaml").read_text(encoding="utf-8")
    assert "# the mining feed" in text and text.endswith("# trailing comment\n")
    config = load_config(cfg)
    assert [s.name for s in config.sources][-3:] == ["seeds-2", "tech-transfer", "tech-transfer-2"]
    # Importing the same list again adds nothing.
    r = CliRunner().invoke(main, ["-c", cfg, "opml", "import", "--write", str(opml)])
    assert r.exit_code == 0 and "nothing to add" in r.output
    assert (project / "feeds.yaml").read_text(encoding="utf-8") == text


def test_export_round_trips_through_listparser(project: Path, tmp_path: Path) -> None:
    _add_remote(project)
    out = tmp_path / "out.opml"
    r = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "opml", "export", "--out", str(out)])
    assert r.exit_code == 0, r.output
    parsed = listparser.parse(out.read_bytes())
    assert [(f.title, f.url) for f in parsed.feeds] == [("mining", "https://mining.com/tag/rare-earths/feed")]


def test_not_opml_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.opml"
    bad.write_text("<html><body>hello</body></html>")
    r = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "opml", "import", str(bad)])
    assert r.exit_code == 1 and "no feed outlines" in r.output and "bad.opml" in r.output


def test_append_after_last_item_before_next_key() -> None:
    text = "title: x\nsources:\n  - name: a\n    url: https://a.example/\n\n  # comment\nfetch:\n  timeout: 5\n"
    out = append_to_config(text, [{"name": "b", "url": "https://b.example/"}])
    assert out == (
        "title: x\nsources:\n  - name: a\n    url: https://a.example/\n  - name: b\n    url: https://b.example/\n"
        "\n  # comment\nfetch:\n  timeout: 5\n"
    )
