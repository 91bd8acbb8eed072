"""EDGE: the scheduler daemon (APScheduler 3.x) that drives refresh and digests.

Jobs (fixed ids, so a restart replaces rather than duplicates them):
  refresh          every `schedule.refresh_minutes` (or `refresh_seconds`): pipeline.refresh.
                   Each source's min_interval_minutes and failure backoff are the fetch layer's;
                   the daemon only says "refresh now".
  digest:<name>    one per subscription, on its cron schedule (weekday names, explicit zone).
  digest-retry     every `smtp.retry_base_seconds`: re-sends pending ledger rows whose backoff ran
                   out (a recipient whose server said 4xx gets its copy without waiting a week).

Job store: SQLAlchemyJobStore on `<database stem>.jobs.sqlite` beside the database, so
`aggregator status` can read next run times from another process. Every job: coalesce=True (a
backlog of missed runs becomes one run), max_instances=1. misfire_grace_time: for refresh and
retry, `schedule.misfire_grace_seconds` (default 3600 s: a run more than an hour late, after a
suspend or behind a long job, is dropped and the next interval does the work); for digest jobs
None, i.e. run however late: a digest run only asks the ledger, so a late run is always safe, and
whether a late period is still sent is the catch-up policy's call (below), not APScheduler's. Jobs
are re-added with replace_existing=True at every start, and jobs no longer in feeds.yaml are
removed, so a schedule change takes effect at the next start.

The ledger, not APScheduler, decides what is sent: a digest job asks `periods.due_periods` what
is due and unsent given the last period the ledger recorded, and sends each such period once
through `pipeline.send_digest` (itself idempotent per recipient). At start every subscription gets
one such check, which sends a period missed while the daemon was down (policy `schedule.catch_up`).

Jobs run one at a time on a single worker thread: refresh and digests share one SQLite database,
and a digest should never read half of a refresh. Each run opens its own Deps and closes them.

Single instance: the daemon holds `lock.instance_lock` for its whole life; a second daemon, or a
`digest --send`, exits with status 3 and says who holds it.

Shutdown: SIGTERM or SIGINT stops scheduling, lets the running job finish, releases the lock and
exits 0. A second signal while waiting exits at once; that abandons the job cleanly, since every
file write is atomic and the ledger re-sends an interrupted message with the same Message-ID.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import Config, DigestConfig
from .errors import AggregatorError
from .lock import instance_lock
from .periods import due_periods, make_trigger, next_fire

if TYPE_CHECKING:
    from .pipeline import Deps

log = logging.getLogger("aggregator.schedule")

REFRESH_JOB = "refresh"
RETRY_JOB = "digest-retry"
_PERSISTENT = "default"  # the SQLAlchemy job store
_STARTUP = "startup"  # in-memory store for the one-off checks at start (nothing to persist)

DepsFactory = Callable[[Config], "Deps"]
Clock = Callable[[], datetime]


def digest_job_id(name: str) -> str:
    return f"digest:{name}"


def jobs_path(config: Config) -> Path:
    """The APScheduler job store file: `<database stem>.jobs.sqlite` beside the database."""
    db = config.database_path
    return db.with_name(f"{db.stem}.jobs.sqlite")


# -- what one job run does (callable directly, with any Deps) ------------------------------------


def refresh_once(config: Config, deps: Deps) -> str:
    """Run pipeline.refresh and return the one-line summary for the log."""
    from .pipeline import refresh

    started = time.monotonic()
    report = refresh(config, deps)
    failed = len(report.failed)
    new = sum(r.new for r in report.results)
    updated = sum(r.updated for r in report.results)
    line = (
        f"refresh: {len(report.results)} sources ({failed} failed), {new} new, {updated} updated, "
        f"{len(report.outputs)} outputs written in {time.monotonic() - started:.1f} s"
    )
    if failed:
        line += "; failed: " + ", ".join(r.source for r in report.failed)
    return line


def digest_once(config: Config, deps: Deps, subscription: DigestConfig) -> str:
    """Send every period of this subscription that is due and unsent now; return the log line.

    The ledger is asked first and again per period (via send_digest), so calling this twice, from
    a repeated cron fire or a restart, sends nothing the second time.
    """
    from .pipeline import last_sent_period_end, send_digest

    tz = ZoneInfo(subscription.schedule.timezone or config.timezone)
    trigger = make_trigger(subscription.schedule, config.timezone)
    now = deps.clock()
    plan = due_periods(
        trigger,
        last_end=last_sent_period_end(deps.store, subscription.name),
        now=now,
        catch_up=config.schedule.catch_up,
        grace=timedelta(seconds=config.schedule.misfire_grace_seconds),
        first_window=timedelta(days=subscription.first_window_days),
    )
    head = f"digest {subscription.name}:"
    parts: list[str] = []
    if plan.skipped is not None:
        parts.append(f"skipped missed period {plan.skipped.describe(tz)} (catch_up: skip)")
    for period in plan.send:
        report = send_digest(config, deps, subscription, period.start, period.end)
        what = f"period {period.describe(tz)} ({plan.reason})"
        if report.skipped_empty:
            parts.append(f"{what}: no new stories, nothing sent (the next period starts at the same point)")
            continue
        fresh = sum(1 for r in report.results if r.action == "sent")
        stories = "" if report.item_count is None else f"{report.item_count} stories, "
        outcome = f"{stories}sent {fresh}, {len(report.sent)}/{len(report.results)} delivered"
        if report.pending:
            outcome += f", {len(report.pending)} to retry"
        if report.failed:
            outcome += f", {len(report.failed)} failed"
        if report.error:
            outcome += f" ({report.error})"
        parts.append(f"{what}: {outcome}")
    if not plan.send and plan.skipped is None:
        parts.append(f"{plan.reason}; next run {next_fire(trigger, now).astimezone(tz):%Y-%m-%d %H:%M %Z}")
    return " ".join([head, "; ".join(parts)])


def retry_once(config: Config, deps: Deps) -> str | None:
    """Re-send pending ledger rows whose backoff ran out. None when there was nothing to do."""
    from .pipeline import retry_pending

    reports = retry_pending(config, deps)
    if not reports:
        return None
    sent = sum(len(r.sent) for r in reports)
    waiting = sum(len(r.pending) for r in reports)
    failed = sum(len(r.failed) for r in reports)
    return f"digest retry: {sent} delivered, {waiting} still pending, {failed} failed"


# -- job entry points (referenced by name in the persistent job store) ----------------------------


@dataclass
class _Runtime:
    config: Config
    deps_factory: DepsFactory


_runtime: _Runtime | None = None


@contextmanager
def _job_deps(label: str) -> Iterator[tuple[Config, Deps] | None]:
    if _runtime is None:  # a stale job fired outside a daemon (cannot happen via run_daemon)
        log.error("%s: no scheduler runtime in this process; skipped", label)
        yield None
        return
    deps = _runtime.deps_factory(_runtime.config)
    try:
        yield _runtime.config, deps
    finally:
        deps.close()


def _run(label: str, body: Callable[[Config, Deps], str | None]) -> None:
    # One log line per run, also when it fails; the daemon keeps going either way.
    try:
        with _job_deps(label) as got:
            if got is None:
                return
            line = body(*got)
    except AggregatorError as exc:
        log.error("%s: failed: %s", label, exc)
        return
    except Exception:
        log.exception("%s: failed with an unexpected error", label)
        return
    if line is None:
        log.debug("%s: nothing to do", label)
    else:
        log.info("%s", line)


def run_refresh_job() -> None:
    """APScheduler job: one refresh."""
    _run("refresh", refresh_once)


def run_digest_job(name: str) -> None:
    """APScheduler job: send what is due for one subscription."""

    def body(config: Config, deps: Deps) -> str:
        for sub in config.digests:
            if sub.name == name:
                return digest_once(config, deps, sub)
        return f"digest {name}: no such subscription in feeds.yaml any more; nothing sent"

    _run(f"digest {name}", body)


def run_retry_job() -> None:
    """APScheduler job: re-send pending digest copies whose backoff ran out."""
    _run("digest retry", retry_once)


# -- wiring ----------------------------------------------------------------------------------------


def _job_defaults(config: Config) -> dict[str, Any]:
    return {"coalesce": True, "max_instances": 1, "misfire_grace_time": config.schedule.misfire_grace_seconds}


def wanted_job_ids(config: Config) -> set[str]:
    return {REFRESH_JOB, RETRY_JOB, *(digest_job_id(d.name) for d in config.digests)}


def build_scheduler(config: Config, scheduler: BaseScheduler, now: datetime) -> BaseScheduler:
    """Configure `scheduler` (Blocking or Background, not started) with our stores and jobs."""
    tz = ZoneInfo(config.timezone)
    jobs_file = jobs_path(config)
    jobs_file.parent.mkdir(parents=True, exist_ok=True)
    scheduler.configure(
        jobstores={_PERSISTENT: SQLAlchemyJobStore(url=f"sqlite:///{jobs_file}"), _STARTUP: MemoryJobStore()},
        # One worker: jobs never overlap on the shared SQLite database.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults=_job_defaults(config),
        timezone=tz,
    )
    interval = config.schedule.refresh_interval_seconds
    scheduler.add_job(
        "aggregator.schedule:run_refresh_job",
        IntervalTrigger(seconds=interval, timezone=tz),
        id=REFRESH_JOB,
        name=f"refresh every {interval} s",
        replace_existing=True,
        next_run_time=now.astimezone(tz),  # refresh once at start, then every interval
    )
    scheduler.add_job(
        "aggregator.schedule:run_retry_job",
        # The shortest retry backoff: a copy is never kept waiting much past its retry time.
        IntervalTrigger(seconds=max(int(config.smtp.retry_base_seconds), 1), timezone=tz),
        id=RETRY_JOB,
        name="re-send pending digest copies",
        replace_existing=True,
    )
    for sub in config.digests:
        scheduler.add_job(
            "aggregator.schedule:run_digest_job",
            make_trigger(sub.schedule, config.timezone),
            args=[sub.name],
            id=digest_job_id(sub.name),
            name=f"digest {sub.name}",
            replace_existing=True,
            misfire_grace_time=None,  # see the module docstring: the ledger decides, late or not
        )
        # The ledger check at start: sends a period missed while we were down.
        scheduler.add_job(
            "aggregator.schedule:run_digest_job",
            "date",
            args=[sub.name],
            id=f"startup:{sub.name}",
            name=f"digest {sub.name} (start-up check)",
            jobstore=_STARTUP,
        )

    def drop_stale(event: SchedulerEvent) -> None:
        # Jobs of subscriptions removed from feeds.yaml would otherwise fire forever.
        for job in scheduler.get_jobs(jobstore=_PERSISTENT):
            if job.id not in wanted_job_ids(config):
                scheduler.remove_job(job.id, jobstore=_PERSISTENT)
                log.info("schedule: removed job %r (no longer in %s)", job.id, Path(config.config_path).name)

    scheduler.add_listener(drop_stale, EVENT_SCHEDULER_STARTED)
    return scheduler


def describe_plan(config: Config, now: datetime) -> list[str]:
    """Start-up lines: what runs when."""
    lines = [f"refresh every {config.schedule.refresh_interval_seconds} s"]
    for sub in config.digests:
        s = sub.schedule
        sub_tz = ZoneInfo(s.timezone or config.timezone)
        nxt = next_fire(make_trigger(s, config.timezone), now).astimezone(sub_tz)
        lines.append(
            f"digest {sub.name}: {s.day_of_week} {s.hour:02d}:{s.minute:02d}:{s.second:02d} {sub_tz.key}, "
            f"next {nxt:%Y-%m-%d %H:%M:%S %Z}"
        )
    return lines


class _Stop(BaseException):
    """Raised from the signal handler to leave BlockingScheduler's wait loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_daemon(config: Config, *, deps_factory: DepsFactory | None = None, clock: Clock | None = None) -> int:
    """`aggregator schedule`: hold the lock and run the jobs in the foreground until a signal.

    Raises LockedError (exit 3) at once if another daemon or sender holds the lock.
    Returns the exit status (0 after SIGTERM/SIGINT). Defaults: pipeline.make_deps, the real clock.
    """
    global _runtime
    with instance_lock(config, "schedule"):
        # The pipeline (feedparser, trafilatura, numpy...) is imported only once we
        # hold the lock: a second daemon started at the same moment quits in a fraction of the
        # time and does not slow the one that runs.
        from .pipeline import make_deps, utc_now

        clock = clock or utc_now
        _runtime = _Runtime(config, deps_factory or make_deps)
        scheduler = build_scheduler(config, BlockingScheduler(), clock())

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # A second signal while the current job finishes: default action, exit at once.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            raise _Stop(signum)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        log.info("schedule: started; job store %s", jobs_path(config).name)
        for line in describe_plan(config, clock()):
            log.info("schedule: %s", line)
        stopped_by = "scheduler stopped"
        try:
            scheduler.start()
        except _Stop as stop:
            stopped_by = signal.Signals(stop.signum).name
        finally:
            if scheduler.running:
                log.info("schedule: %s received; finishing the current job", stopped_by)
                scheduler.shutdown(wait=True)
            for s, handler in previous.items():
                signal.signal(s, handler)
            _runtime = None
        log.info("schedule: stopped")
    return 0


@contextmanager
def background_scheduler(
    config: Config, *, deps_factory: DepsFactory | None = None, clock: Clock | None = None
) -> Iterator[BaseScheduler]:
    """The same jobs on a background thread, for the block's duration. The caller holds the lock.

    Leaving the block waits for a running job to finish.
    """
    from .pipeline import make_deps, utc_now

    global _runtime
    clock = clock or utc_now
    _runtime = _Runtime(config, deps_factory or make_deps)
    scheduler = build_scheduler(config, BackgroundScheduler(), clock())
    scheduler.start()
    for line in describe_plan(config, clock()):
        log.info("schedule: %s", line)
    try:
        yield scheduler
    finally:
        log.info("schedule: server stopping; finishing the current job")
        scheduler.shutdown(wait=True)
        _runtime = None
        log.info("schedule: stopped")


def serve_hook(config: Config) -> Callable[[], AbstractContextManager[BaseScheduler]]:
    """For `serve --schedule`: take the lock now, run the jobs while the server runs.

    The lock is taken at once, before the server starts, so a running daemon makes `serve
    --schedule` fail with LockedError (exit 3) and a clear message rather than a startup
    traceback. The returned factory is entered by the server's lifespan and releases the lock
    when the server shuts down.
    """
    configure_logging()
    stack = ExitStack()
    stack.enter_context(instance_lock(config, "serve --schedule"))

    @contextmanager
    def running() -> Iterator[BaseScheduler]:
        with stack, background_scheduler(config) as scheduler:
            yield scheduler

    return running


# -- `aggregator status` ---------------------------------------------------------------------------


def stored_next_runs(config: Config) -> dict[str, datetime | None]:
    """Next run times as the running daemon last stored them (empty if there is no job store)."""
    path = jobs_path(config)
    if not path.exists():
        return {}
    store = SQLAlchemyJobStore(url=f"sqlite:///{path}")
    store.start(None, _PERSISTENT)  # creates the table only if a daemon never got that far
    try:
        return {job.id: job.next_run_time for job in store.get_all_jobs()}
    finally:
        store.shutdown()


def configure_logging(level: str = "info") -> None:
    """Daemon logging: one line per job run on stderr; APScheduler's own chatter only when it warns."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S%z",
    )
    # "Running job ..." / "executed successfully" twice per run would bury our one line; misfire
    # warnings ("was missed by") still come through.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, getattr(logging, level.upper())))


def status_lines(config: Config, now: datetime) -> list[str]:
    """What `aggregator status` prints: daemon, next run per job, last digest per subscription."""
    from .ledger import Ledger
    from .lock import is_locked, read_owner
    from .store import SQLiteStore

    tz = ZoneInfo(config.timezone)
    running = is_locked(config)
    owner = read_owner(config) if running else None
    stored = stored_next_runs(config) if running else {}
    if running:
        lines = [f"scheduler: running, {owner.describe() if owner else 'holder unknown'}"]
    else:
        lines = ["scheduler: not running (next times below are computed from feeds.yaml)"]

    def when(t: datetime | None, zone: ZoneInfo) -> str:
        return "-" if t is None else f"{t.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"

    interval = config.schedule.refresh_interval_seconds
    rows: list[tuple[str, str, str]] = []
    refresh_next = when(stored.get(REFRESH_JOB), tz) if running else "at next start"
    rows.append((REFRESH_JOB, refresh_next, f"every {interval} s, and once at start"))
    retry_every = max(int(config.smtp.retry_base_seconds), 1)
    retry_next = when(stored.get(RETRY_JOB), tz) if running else f"{retry_every} s after start"
    rows.append((RETRY_JOB, retry_next, f"every {retry_every} s: re-send pending digest copies"))
    for sub in config.digests:
        s = sub.schedule
        sub_tz = ZoneInfo(s.timezone or config.timezone)
        job = digest_job_id(sub.name)
        nxt = stored.get(job) if job in stored else next_fire(make_trigger(s, config.timezone), now)
        rows.append(
            (job, when(nxt, sub_tz), f"{s.day_of_week} {s.hour:02d}:{s.minute:02d}:{s.second:02d} {sub_tz.key}")
        )
    width = max(len(r[0]) for r in rows)
    lines.append(f"{'job':<{width}}  {'next run':<25}  schedule")
    lines.extend(f"{a:<{width}}  {b:<25}  {c}" for a, b, c in rows)
    if not config.digests:
        return lines
    lines.append("")
    lines.append("last digest sent:")
    if not config.database_path.exists():
        lines.extend(f"  {sub.name}: never (no database yet)" for sub in config.digests)
        return lines
    store = SQLiteStore(config.database_path)
    try:
        ledger = Ledger(store)
        for sub in config.digests:
            sub_tz = ZoneInfo(sub.schedule.timezone or config.timezone)
            sent = [r for r in ledger.rows(sub.name) if r.status == "sent"]
            if not sent:
                lines.append(f"  {sub.name}: never")
            else:
                last = max(sent, key=lambda r: (r.period_end, r.sent_at or r.period_end))
                lines.append(
                    f"  {sub.name}: period {when(last.period_start, sub_tz)} – {when(last.period_end, sub_tz)}, "
                    f"sent {when(last.sent_at, sub_tz)}"
                )
            pending = [r for r in ledger.rows(sub.name) if r.status == "pending"]
            if pending:
                lines.append(f"  {sub.name}: {len(pending)} cop(ies) pending retry")
            if not running:
                plan = due_periods(
                    make_trigger(sub.schedule, config.timezone),
                    last_end=ledger.last_sent_period_end(sub.name),
                    now=now,
                    catch_up=config.schedule.catch_up,
                    grace=timedelta(seconds=config.schedule.misfire_grace_seconds),
                    first_window=timedelta(days=sub.first_window_days),
                )
                for p in plan.send:
                    lines.append(f"  {sub.name}: due now, sent at the next start: {p.describe(sub_tz)} ({plan.reason})")
                if plan.skipped is not None:
                    lines.append(
                        f"  {sub.name}: missed {plan.skipped.describe(sub_tz)}; will be skipped (catch_up: skip)"
                    )
    finally:
        store.close()
    return lines
