"""EDGE: local source files -> Fetched. Paths are confined to the config's directory tree.

A source's `path` is a file, a directory (every supported file under it) or a glob. Every
match must lie inside the config file's directory or one of `local_roots` once symlinks are
resolved: a shared feeds.yaml must not be able to read arbitrary files. A pattern that names a
place outside is a config error; a symlink inside the tree that leads out is refused per file.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .types import Fetched

if TYPE_CHECKING:
    from .config import Config, SourceConfig

MAX_FILE_BYTES = 5_000_000  # a scraped article page is KBs, a big feed a few MB; anything bigger is not one

_KINDS = {
    ".txt": "article-text",
    ".text": "article-text",
    ".md": "article-text",
    ".html": "article-html",
    ".htm": "article-html",
    ".xhtml": "article-html",
    ".xml": "feed",
    ".atom": "feed",
    ".rss": "feed",
    ".rdf": "feed",
    ".json": "feed",
}


class LocalPathError(ValueError):
    """A local path escapes the allowed roots or cannot be used."""


def _allowed_roots(config: Config) -> list[Path]:
    return [config.base_dir.resolve(), *(config.resolve(r).resolve() for r in config.local_roots)]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _static_prefix(pattern: str) -> Path:
    """The part of a glob before its first wildcard: the directory it searches."""
    parts = Path(pattern).parts
    first_magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:first_magic]) if first_magic else Path(".")


def scan_local_paths(config: Config, source: SourceConfig) -> tuple[list[Path], list[str]]:
    """Expand a source's `path` to sorted readable files, and say why any match was refused.

    Raises LocalPathError when the path itself points outside the allowed roots.
    """
    assert source.path is not None
    target = config.resolve(source.path)
    pattern = str(target)
    roots = _allowed_roots(config)
    # Where the path points before its last component: a symlink's target is judged per file below.
    where = _static_prefix(pattern) if glob.has_magic(pattern) else target.parent if target.is_symlink() else target
    if not _inside(where.resolve(), roots):
        raise LocalPathError(
            f"{source.path} is outside the config directory; add its folder to 'local_roots' to allow it"
        )
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(pattern, recursive=True))
    elif target.is_dir():
        matches = sorted(str(p) for p in target.rglob("*") if not p.name.startswith("."))
    else:
        matches = [pattern]
    out: list[Path] = []
    refused: list[str] = []
    for m in matches:
        p = Path(m)
        if not p.exists():
            if p.is_symlink():
                refused.append(f"{_shown(config, p)}: broken symlink")
            continue
        if p.is_dir():
            continue
        if not _inside(p.resolve(), roots):
            refused.append(f"{_shown(config, p)}: symlink leads outside the config directory; refused")
            continue
        if not p.resolve().is_file():
            refused.append(f"{_shown(config, p)}: not a regular file")
        elif p.suffix.lower() not in _KINDS:
            refused.append(f"{_shown(config, p)}: unsupported file type {p.suffix or '(none)'!r}")
        else:
            out.append(p)
    return out, refused


def resolve_local_paths(config: Config, source: SourceConfig) -> list[Path]:
    """The readable files of a local source, for config validation (see `scan_local_paths`).

    Strict: raises LocalPathError when the path points outside the allowed roots or any match is
    a symlink leading out, so `validate` names it. A link that appears later is refused per file
    by `read_local` while the other files are still read.
    """
    paths, refused = scan_local_paths(config, source)
    escaping = [r for r in refused if "leads outside" in r]
    if escaping or (not paths and refused):
        raise LocalPathError((escaping or refused)[0])
    return paths


def kind_of(path: Path) -> str:
    """The document kind a file's extension says (plain text when unknown)."""
    return _KINDS.get(path.suffix.lower(), "article-text")


def _shown(config: Config, p: Path) -> str:
    """The path relative to the config directory, symlinks not resolved: stable across machines."""
    absolute = Path(os.path.abspath(p))
    try:
        return absolute.relative_to(config.base_dir).as_posix()
    except ValueError:
        return Path(os.path.relpath(absolute, config.base_dir)).as_posix()


def read_local(config: Config, source: SourceConfig) -> tuple[list[Fetched], list[str]]:
    """Read every file of a local source. Returns the documents and per-file skip reasons."""
    docs: list[Fetched] = []
    paths, skipped = scan_local_paths(config, source)
    for p in paths:
        rel = _shown(config, p)
        try:
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                skipped.append(f"{rel}: {size} bytes is over the {MAX_FILE_BYTES}-byte cap")
                continue
            with p.open("rb") as fh:
                content = fh.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
        except OSError as exc:
            skipped.append(f"{rel}: cannot read ({exc.strerror or exc})")
            continue
        if len(content) > MAX_FILE_BYTES:
            skipped.append(f"{rel}: over the {MAX_FILE_BYTES}-byte cap")
            continue
        docs.append(Fetched(source=source.name, location=rel, content=content, kind=kind_of(p)))
    return docs, skipped
