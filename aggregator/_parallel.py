"""Parse, normalise and tag fetched documents on every core while the main process fetches and stores.

feedparser is pure Python and single-threaded (about 0.5–1 ms per entry), and normalising (nh3,
HTML to text) and the topic rules are CPU work per document too. Documents are independent, so a
refresh of many feeds hands the fetched *bytes* to a pool of worker processes and stores each
result as it comes back. Small runs stay in-process: starting workers (~1 s of CPU) would cost
more than it saves, and most tests stay single-process.

The work function is pickled by reference, so the workers import it themselves; the pool uses
the forkserver start method (never plain fork: the fetcher's event-loop thread is running, and
forking a process with threads can deadlock) and preloads the parse stages' modules into it
(`aggregator.ingest`: not the whole pipeline, whose fetcher, publisher and mailer no worker uses).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")
Work = Callable[..., T]  # work(config, *args)

# Remote sources in a run below which parsing stays in-process: starting the pool costs ~1-2 s of
# CPU (the forkserver imports the parse stages once), about what 30 feeds of 50 entries take to parse.
MIN_JOBS = 32
# Imported once in the forkserver, inherited by every worker; `_forkserver` then warms the parse
# stages up (what they build on first use is shared, not built per worker) and freezes the heap.
PRELOAD = ["aggregator.ingest", "aggregator._forkserver"]

_CONFIG: Any = None
_TRIM: Callable[[int], int] | None = None


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl, macOS: no such function, nothing to do)."""
    with contextlib.suppress(OSError):
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # type: ignore[no-any-return]
    return None


def cpu_count() -> int:
    """CPUs this process may run on (not the machine's count, which ignores affinity limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _stop_forkserver() -> None:
    """Stop the forkserver once its workers are gone.

    It outlives the pool otherwise, holding the preloaded parse stages (~50 MB, no longer shared
    with any worker) through clustering and publishing and for the rest of a long-lived process;
    the next pool starts a new one. multiprocessing has no public way to stop it: `_stop` is what
    its own tests use, so it is looked up, and without it the server simply stays.
    """
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        with contextlib.suppress(OSError):
            stop()


def _init(config: Any) -> None:
    global _CONFIG, _TRIM
    _CONFIG = config
    # glibc gives freed memory back to the system only from the top of its heap: the pages a parse
    # freed below a live block stay with the worker. malloc_trim returns them after each document
    # (~2-3 MB less per worker).
    _TRIM = malloc_trim()
    # The modules preloaded in the forkserver are shared with it copy-on-write; a full garbage
    # collection walks (and writes to) every object, which would copy their pages into each
    # worker. Frozen, the inherited objects are left out of collections and stay shared.
    gc.freeze()


def _noop() -> None:
    pass


def _call(work: Work[T], *args: Any) -> T:
    assert _CONFIG is not None, "worker not initialised"
    try:
        return work(_CONFIG, *args)
    finally:
        if _TRIM is not None:
            _TRIM(0)


class DocPool:
    """Runs `work(config, *args)` per fetched document, in worker processes when it pays.

    `config` and the arguments are pickled to the workers: plain data (`ingest.ParseConfig`, not
    the pydantic `Config`) keeps what the workers and the forkserver import small.

    `warm`: start the workers at once (when most documents are expected to need parsing), not at
    the first document. `submit` queues a job; `drain` yields (tag, result) for finished jobs
    and, when more than `max_pending` are queued, waits, so at most that many documents' bytes
    sit in the queue (memory stays bounded however fast the fetcher is).
    """

    def __init__(
        self,
        config: Any,
        work: Work[Any],
        *,
        jobs: int,
        workers: int | None = None,
        warm: bool = True,
    ) -> None:
        self.config = config
        self.work = work
        self.workers = workers if workers is not None else cpu_count()
        self.enabled = self.workers > 1 and jobs >= MIN_JOBS
        self.max_pending = 2 * self.workers + 2
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[Future[Any], Any] = {}
        if self.enabled and warm:
            # Start the workers now, in the background: their start-up overlaps the first fetches.
            threading.Thread(target=self._warm_up, daemon=True).start()

    def _warm_up(self) -> None:
        try:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(_noop)
        except (BrokenProcessPool, RuntimeError):  # closed already, or a worker died: submit copes
            pass

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("document pool is closed")
            if self._pool is None:
                try:
                    ctx: Any = multiprocessing.get_context("forkserver")
                    ctx.set_forkserver_preload(PRELOAD)
                except ValueError:  # no forkserver (Windows): spawn, each worker imports for itself
                    ctx = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=ctx, initializer=_init, initargs=(self.config,)
                )
            return self._pool

    def submit(self, tag: Any, *args: Any) -> None:
        """Queue `work(config, *args)` for one document (run in-process right away when the pool is off).

        The arguments (the fetched bytes among them) are pickled to the worker: keep them small.
        """
        fut: Future[Any]
        if self.enabled:
            try:
                fut = self._executor().submit(_call, self.work, *args)
            except BrokenProcessPool:  # a worker died (OOM?): carry on without the pool
                self.enabled = False
                fut = self._inline(args)
        else:
            fut = self._inline(args)
        self._pending[fut] = (tag, args)

    def _inline(self, args: tuple[Any, ...]) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(self.work(self.config, *args))
        except Exception as exc:  # delivered through the future, like a worker's error
            fut.set_exception(exc)
        return fut

    def drain(self, *, block: bool = False) -> Iterator[tuple[Any, Any]]:
        """Yield (tag, result) for finished documents; `block`: until none is left.

        Without `block`, waits only while more than `max_pending` documents are queued.
        A worker's exception is raised here, as it would be in-process; if the pool itself broke,
        the document is parsed in-process instead.
        """
        while self._pending:
            done = [f for f in self._pending if f.done()]
            if not done:
                if not block and len(self._pending) <= self.max_pending:
                    return
                done_set, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
                done = list(done_set)
            for fut in done:
                tag, args = self._pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    self.enabled = False
                    result = self.work(self.config, *args)
                yield tag, result

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self.enabled = False
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            _stop_forkserver()

    def __enter__(self) -> DocPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
