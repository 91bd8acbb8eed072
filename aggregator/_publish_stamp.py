"""Skip re-clustering and re-publishing when nothing they depend on has changed.

An unchanged re-poll (every feed answers 304) used to re-read every stored entry, re-cluster and
re-render every feed: seconds of work for a run that changed nothing. The published outputs are
a pure function of the stored entries and story links, the config and the code version, so a
refresh records a marker of those beside the database after publishing, and the next refresh
skips both stages when the marker is the same and the output files are still as it left them.
Anything else (a new or changed entry, a config edit, a deleted or edited output) republishes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import Config
from .store import SQLiteStore


def _stamp_path(config: Config) -> Path:
    return config.database_path.with_name(config.database_path.name + ".published.json")


def _files(paths: Sequence[str]) -> list[tuple[str, int, int]] | None:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None  # an output is gone: publish again
        out.append((p, st.st_size, st.st_mtime_ns))
    return out


def marker(config: Config, store: SQLiteStore) -> str:
    """What the published outputs depend on, as one hash (cheap: aggregates, no payloads)."""
    data = {
        "version": __version__,
        "config": config.model_dump(mode="json"),
        "store": store.change_marker(),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def unchanged(config: Config, store: SQLiteStore) -> list[str] | None:
    """The outputs of the last publish if nothing changed since; None means publish again."""
    try:
        saved = json.loads(_stamp_path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("marker") != marker(config, store):
        return None
    outputs = [str(p) for p in saved.get("outputs", [])]
    files = _files(outputs)
    if not outputs or files is None or [list(f) for f in files] != saved.get("files"):
        return None
    return outputs


def remember(config: Config, store: SQLiteStore, outputs: Sequence[str]) -> None:
    """Record the marker and the output files just published (best effort: a failure only costs time)."""
    files = _files(outputs)
    if files is None:
        return
    data = {"marker": marker(config, store), "outputs": list(outputs), "files": [list(f) for f in files]}
    path = _stamp_path(config)
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
