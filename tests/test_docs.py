"""The README's command table and the CLI's --help agree (sqlite-utils' test_docs idea)."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from aggregator.cli import main

from .conftest import ROOT


def _cli_commands(group: click.Group, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        full = f"{prefix}{name}"
        names.add(full)
        if isinstance(cmd, click.Group):
            names |= _cli_commands(cmd, full + " ")
    return names


def _readme_commands() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = set()
    for m in re.finditer(r"`aggregator ([a-z][a-z -]*?)(?: [A-Z\[-]|`)", text):
        found.add(m.group(1).strip())
    return found


def test_every_command_is_in_the_readme() -> None:
    documented = _readme_commands()
    # A group counts as documented through its subcommands.
    missing = {
        c for c in _cli_commands(main) if c not in documented and not any(d.startswith(c + " ") for d in documented)
    }
    assert not missing, f"commands missing from README.md: {sorted(missing)}"


def test_every_readme_command_exists() -> None:
    commands = _cli_commands(main)
    unknown = {c for c in _readme_commands() if c not in commands}
    assert not unknown, f"README.md documents commands the CLI lacks: {sorted(unknown)}"


def test_every_command_has_help_text() -> None:
    runner = CliRunner()
    for name in sorted(_cli_commands(main)):
        result = runner.invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output
        cmd: click.Command = main
        for part in name.split():
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        assert cmd.help and cmd.help.strip(), f"{name} has no help text"
