from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.errors import ConfigError

from .conftest import ROOT


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "feeds.yaml")
    assert {"rare-earth", "university-industry"} <= set(config.topics)
    assert any(s.path for s in config.sources)
    assert config.digests and config.digests[0].delivery == "file"


def _bad(project: Path, text: str) -> ConfigError:
    (project / "feeds.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(project / "feeds.yaml")
    return info.value


BASE = "title: T\nbase_url: https://example.org/\nsources:\n  - name: seeds\n    path: seeds/*.txt\n"


def test_yaml_syntax_error_names_file_and_line(project: Path) -> None:
    err = _bad(project, BASE + "topics: {a: [1, 2}\n")
    assert err.line == 6
    assert "feeds.yaml:6" in str(err) and "YAML syntax error" in str(err)


def test_unknown_key_names_key_and_line(project: Path) -> None:
    err = _bad(project, BASE + "titel: oops\n")
    assert err.key == "titel" and err.line == 6
    assert "unknown key" in str(err)


def test_unknown_nested_key(project: Path) -> None:
    err = _bad(project, BASE + "    colour: red\n")
    assert err.key == "sources[0].colour" and err.line == 6


def test_wrong_type_names_key_and_line(project: Path) -> None:
    err = _bad(project, BASE + "fetch:\n  timeout: soon\n")
    assert err.key == "fetch.timeout" and err.line == 7


def test_every_problem_is_reported_with_its_line(project: Path) -> None:
    err = _bad(project, BASE + "titel: oops\nfetch:\n  timeout: soon\n  concurrency: 0\n")
    lines = str(err).splitlines()
    assert len(lines) == 3
    assert "feeds.yaml:6: titel: unknown key" in lines[0]
    assert "feeds.yaml:8: fetch.timeout: " in lines[1]
    assert "feeds.yaml:9: fetch.concurrency: " in lines[2]


def test_the_cli_prints_every_config_problem(project: Path) -> None:
    from click.testing import CliRunner

    from aggregator.cli import main

    (project / "feeds.yaml").write_text(BASE + "titel: oops\nfetch:\n  timeout: soon\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "validate"])
    assert result.exit_code == 2
    assert [line.split(": ")[1].rsplit("/", 1)[-1] for line in result.output.splitlines()] == [
        "feeds.yaml:6",
        "feeds.yaml:8",
    ]


def test_missing_source_file(project: Path) -> None:
    err = _bad(project, BASE.replace("seeds/*.txt", "nothing/*.txt"))
    assert err.key == "sources[0].path" and err.line == 5
    assert "no file matches" in str(err)


def test_source_needs_url_or_path(project: Path) -> None:
    err = _bad(project, BASE + "  - name: x\n")
    assert err.key == "sources[1]" and "exactly one of" in str(err)


def test_bad_timezone(project: Path) -> None:
    err = _bad(project, BASE + "timezone: Mars/Olympus\n")
    assert err.key == "timezone" and "unknown time zone" in str(err)


def test_path_outside_config_dir_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "a.txt").write_text("Title here for a page\n\nBody text.", encoding="utf-8")
    err = _bad(project, BASE.replace("seeds/*.txt", str(outside / "*.txt")))
    assert "outside the config directory" in str(err)


def test_symlink_out_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "secret.txt").write_text("secret", encoding="utf-8")
    (project / "seeds" / "link.txt").symlink_to(outside / "secret.txt")
    err = _bad(project, BASE)
    assert "symlink" in str(err)


def test_local_roots_allow_another_directory(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "a.txt").write_text("Title", encoding="utf-8")
    (project / "feeds.yaml").write_text(
        BASE.replace("seeds/*.txt", str(outside / "*.txt")) + f"local_roots: [{outside}]\n", encoding="utf-8"
    )
    assert load_config(project / "feeds.yaml").sources[0].path


def test_validate_command_exit_status(project: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["-c", str(project / "feeds.yaml"), "validate"])
    assert ok.exit_code == 0, ok.output
    (project / "feeds.yaml").write_text(BASE + "titel: oops\n", encoding="utf-8")
    bad = runner.invoke(main, ["-c", str(project / "feeds.yaml"), "validate"])
    assert bad.exit_code == 2
    assert "feeds.yaml:6: titel: unknown key" in bad.output


def test_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "nope.yaml"), "validate"])
    assert result.exit_code == 2 and "config file not found" in result.output
