"""EDGE: local source files -> Fetched. Paths are confined to the config's directory tree."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING

from .types import Fetched

if TYPE_CHECKING:
    from .config import Config, SourceConfig

MAX_FILE_BYTES = 5_000_000  # a scraped article page is KBs; anything bigger is not one

_KINDS = {
    ".txt": "article-text",
    ".text": "article-text",
    ".md": "article-text",
    ".html": "article-html",
    ".htm": "article-html",
    ".xml": "feed",
    ".atom": "feed",
    ".rss": "feed",
    ".json": "feed",
}


class LocalPathError(ValueError):
    """A local path escapes the allowed roots or cannot be used."""


def _allowed_roots(config: Config) -> list[Path]:
    return [config.base_dir.resolve(), *(config.resolve(r).resolve() for r in config.local_roots)]


def resolve_local_paths(config: Config, source: SourceConfig) -> list[Path]:
    """Expand a source's `path` (file or glob) to sorted files inside the allowed roots.

    Symlinks that lead outside every root are refused, as is a pattern that names a place
    outside them: a shared feeds.yaml must not be able to read arbitrary files.
    """
    assert source.path is not None
    pattern = str(config.resolve(source.path))
    roots = _allowed_roots(config)
    matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
    out: list[Path] = []
    for m in matches:
        p = Path(m)
        if not p.exists():
            continue
        real = p.resolve()
        if not any(real == r or real.is_relative_to(r) for r in roots):
            what = "is a symlink that leads" if p.is_symlink() or real != p.absolute() else "is"
            raise LocalPathError(
                f"{m} {what} outside the config directory; add its folder to 'local_roots' to allow it"
            )
        if real.is_file() and real.suffix.lower() in _KINDS:
            out.append(p)
    return out


def kind_of(path: Path) -> str:
    return _KINDS.get(path.suffix.lower(), "article-text")


def read_local(config: Config, source: SourceConfig) -> tuple[list[Fetched], list[str]]:
    """Read every file of a local source. Returns the documents and per-file skip reasons."""
    docs: list[Fetched] = []
    skipped: list[str] = []
    for p in resolve_local_paths(config, source):
        rel = p.resolve().relative_to(config.base_dir) if p.resolve().is_relative_to(config.base_dir) else p
        try:
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                skipped.append(f"{rel}: {size} bytes is over the {MAX_FILE_BYTES}-byte cap")
                continue
            content = p.read_bytes()
        except OSError as exc:
            skipped.append(f"{rel}: cannot read ({exc.strerror or exc})")
            continue
        docs.append(Fetched(source=source.name, location=rel.as_posix(), content=content, kind=kind_of(p)))
    return docs, skipped
