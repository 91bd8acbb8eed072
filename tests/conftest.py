"""Shared fixtures: a project directory with a feeds.yaml, the seeds, and a fixed clock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aggregator.config import Config, load_config
from aggregator.pipeline import Deps, make_deps

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DATA = Path(__file__).resolve().parent / "data"
FIXED_NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)


class Clock:
    """A settable clock: tests move time on purpose, nothing reads the real one."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def shipped_config_data() -> dict:
    return yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project dir holding a copy of the seeds and a feeds.yaml with only local sources."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    data = shipped_config_data()
    data["sources"] = [{"name": "seeds", "path": "seeds/*.txt"}]
    data["fetch"] = {"allow_private_addresses": True, "timeout": 5, "connect_timeout": 2}
    (tmp_path / "feeds.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return tmp_path


@pytest.fixture
def write_config(project: Path) -> Callable[..., Config]:
    """Rewrite the project's feeds.yaml with changes and return the loaded Config."""

    def write(**changes: object) -> Config:
        path = project / "feeds.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data.update(changes)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return load_config(path)

    return write


@pytest.fixture
def config(project: Path) -> Config:
    return load_config(project / "feeds.yaml")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(config: Config, clock: Clock) -> Iterator[Deps]:
    d = make_deps(config, clock=clock)
    yield d
    d.close()
