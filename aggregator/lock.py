"""EDGE: the single-instance lock that keeps two senders from racing.

One OS file lock (flock via `filelock`) on a file beside the database: `<database>.lock`. The
scheduler daemon holds it for its whole life; a manual `digest --send` holds it while it sends.
Whoever comes second gets a LockedError (exit status 3) naming the holder, instead of queueing:
a second daemon must not queue up behind the first, and a person at a terminal wants to know now.

The kernel drops an flock when its process dies (even on SIGKILL), so a crash never leaves a stale
lock behind. Who holds it is written to `<database>.lock.owner` for the error message and for
`aggregator status`; that file is informative only, never trusted for exclusion.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .config import Config
from .errors import LockedError

_PROBE_TOLERANCE_SECONDS = 0.2


@dataclass(frozen=True)
class LockOwner:
    """Who holds the lock, as written by the holder."""

    pid: int
    purpose: str
    since: datetime

    def describe(self) -> str:
        return f"pid {self.pid} ({self.purpose}, since {self.since:%Y-%m-%d %H:%M:%S} UTC)"


def lock_path(config: Config) -> Path:
    """The lock file for this project's database: `<database>.lock` in the same directory."""
    db = config.database_path
    return db.with_name(db.name + ".lock")


def _owner_path(path: Path) -> Path:
    return path.with_name(path.name + ".owner")


def read_owner(config: Config) -> LockOwner | None:
    """The last recorded holder, or None if unknown. Informative only (may be stale after a crash)."""
    try:
        data = json.loads(_owner_path(lock_path(config)).read_text(encoding="utf-8"))
        return LockOwner(
            pid=int(data["pid"]), purpose=str(data["purpose"]), since=datetime.fromisoformat(data["since"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_locked(config: Config) -> bool:
    """True if some process holds the lock right now (tries it without waiting, then lets go)."""
    path = lock_path(config)
    if not path.exists():
        return False
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


@contextmanager
def instance_lock(config: Config, purpose: str) -> Iterator[Path]:
    """Hold the project's single-instance lock for the `with` block, or raise LockedError at once.

    `purpose` says who we are ("schedule", "serve --schedule", "digest --send") and appears in the
    other process's error message. Use it around anything that sends digests outside the daemon.
    """
    path = lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short wait, not none: `aggregator status` probes the lock for a moment, and that probe
    # must not turn a starting daemon away. A real holder keeps it far longer than this.
    lock = FileLock(path, timeout=_PROBE_TOLERANCE_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        owner = read_owner(config)
        who = owner.describe() if owner else "another process"
        raise LockedError(
            f"another aggregator process holds the lock {path.name} in {path.parent}: {who}. "
            f"Only one scheduler or digest sender may run at a time; stop it first or try again when it is done."
        ) from None
    owner_file = _owner_path(path)
    try:
        # A plain write is enough: this file is only a label (wall-clock time of the holder's start);
        # the flock above is what excludes.
        owner_file.write_text(
            json.dumps({"pid": os.getpid(), "purpose": purpose, "since": datetime.now(UTC).isoformat()}),
            encoding="utf-8",
        )
        yield path
    finally:
        owner_file.unlink(missing_ok=True)
        lock.release()
