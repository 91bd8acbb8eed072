"""The scheduler daemon: ledger-driven digest jobs, the lock, the job store, `status`, and a real
daemon (subprocess) against a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import feedparser
import pytest
from aiosmtpd.controller import Controller
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config
from aggregator.errors import LockedError
from aggregator.lock import instance_lock, is_locked, read_owner
from aggregator.pipeline import Deps, make_deps, refresh
from aggregator.schedule import (
    REFRESH_JOB,
    RETRY_JOB,
    build_scheduler,
    digest_job_id,
    digest_once,
    jobs_path,
    status_lines,
    stored_next_runs,
)

from .conftest import Clock

BERLIN_MONDAY_8 = {"day_of_week": "mon", "hour": 8, "minute": 0, "timezone": "Europe/Berlin"}
# 2026-11-16 is a Monday; 08:00 CET is 07:00 UTC.
MON_16 = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)


def weekly(outbox: str = "out/outbox", **extra: Any) -> dict[str, Any]:
    return {
        "name": "weekly",
        "recipients": ["ana@example.org", "bo@example.org"],
        "schedule": BERLIN_MONDAY_8,
        "delivery": "file",
        "outbox": outbox,
        **extra,
    }


def outbox_files(config: Config) -> list[Path]:
    return sorted(config.resolve("out/outbox").glob("*.eml"))


@pytest.fixture
def weekly_config(write_config: Callable[..., Config]) -> Config:
    return write_config(digests=[weekly()])


@pytest.fixture
def wdeps(weekly_config: Config, clock: Clock) -> Iterator[Deps]:
    d = make_deps(weekly_config, clock=clock)
    yield d
    d.close()


def run_at(config: Config, deps: Deps, clock: Clock, when: datetime) -> str:
    clock.now = when
    return digest_once(config, deps, config.digests[0])


# -- the digest job against the ledger, with an injected clock -------------------------------------


def test_scheduled_run_then_restart_sends_each_period_once(weekly_config: Config, wdeps: Deps, clock: Clock) -> None:
    clock.now = MON_16 - timedelta(days=2)
    refresh(weekly_config, wdeps)  # the seeds are first seen on Saturday
    line = run_at(weekly_config, wdeps, clock, MON_16 + timedelta(seconds=1))
    assert "first digest" in line and "sent 2, 2/2 delivered" in line, line
    assert len(outbox_files(weekly_config)) == 2
    # A restart right after (the start-up check), and a repeated fire: nothing more.
    for later in (timedelta(seconds=3), timedelta(minutes=30), timedelta(days=3)):
        line = run_at(weekly_config, wdeps, clock, MON_16 + later)
        assert "nothing due" in line and "next run 2026-11-23 08:00 CET" in line, line
    assert len(outbox_files(weekly_config)) == 2


def test_downtime_over_two_mondays_sends_one_catch_up_digest(write_config: Callable[..., Config], clock: Clock) -> None:
    # send_empty: the catch-up period has no new stories but must still go out, once.
    config = write_config(digests=[weekly(send_empty=True)])
    deps = make_deps(config, clock=clock)
    try:
        clock.now = MON_16 - timedelta(days=9)
        refresh(config, deps)
        run_at(config, deps, clock, MON_16 - timedelta(days=7) + timedelta(seconds=5))  # Mon 9th, on time
        first = set(outbox_files(config))
        assert len(first) == 2
        # Down from Tuesday 10th to Wednesday 25th: Mondays 16th and 23rd were missed.
        line = run_at(config, deps, clock, MON_16 + timedelta(days=9))
        assert "period 2026-11-16 08:00 – 2026-11-23 08:00 CET" not in line
        assert "period 2026-11-09 08:00 – 2026-11-23 08:00 CET (catch-up over 2 missed scheduled time(s))" in line
        assert len(set(outbox_files(config)) - first) == 2  # one digest per recipient for the whole gap
        again = run_at(config, deps, clock, MON_16 + timedelta(days=9, minutes=1))
        assert "nothing due" in again, again
        assert len(outbox_files(config)) == 4
    finally:
        deps.close()


def test_catch_up_skip_logs_the_gap_and_sends_nothing(write_config: Callable[..., Config], clock: Clock) -> None:
    config = write_config(digests=[weekly(send_empty=True)], schedule={"catch_up": "skip"})
    deps = make_deps(config, clock=clock)
    try:
        clock.now = MON_16 - timedelta(days=9)
        refresh(config, deps)
        run_at(config, deps, clock, MON_16 - timedelta(days=7) + timedelta(seconds=5))
        before = len(outbox_files(config))
        line = run_at(config, deps, clock, MON_16 + timedelta(days=9))
        assert "skipped missed period 2026-11-09 08:00 – 2026-11-23 08:00 CET (catch_up: skip)" in line, line
        assert len(outbox_files(config)) == before
    finally:
        deps.close()


def test_clock_jump_backwards_sends_nothing(weekly_config: Config, wdeps: Deps, clock: Clock) -> None:
    clock.now = MON_16 - timedelta(days=2)
    refresh(weekly_config, wdeps)
    run_at(weekly_config, wdeps, clock, MON_16 + timedelta(seconds=1))
    line = run_at(weekly_config, wdeps, clock, MON_16 - timedelta(hours=5))
    assert "clock is behind the last sent period end" in line, line
    assert len(outbox_files(weekly_config)) == 2


# -- the lock ------------------------------------------------------------------------------------


def test_second_holder_gets_a_clear_locked_error(config: Config) -> None:
    with instance_lock(config, "schedule"):
        assert is_locked(config)
        owner = read_owner(config)
        assert owner is not None and owner.pid == os.getpid() and owner.purpose == "schedule"
        with pytest.raises(LockedError) as err, instance_lock(config, "digest --send"):
            pass
        assert err.value.exit_code == 3
        assert f"pid {os.getpid()} (schedule, since" in str(err.value)
    assert not is_locked(config)
    with instance_lock(config, "digest --send"):  # released: the next one gets it
        pass


def test_schedule_command_exits_3_while_another_holds_the_lock(config: Config, project: Path) -> None:
    with instance_lock(config, "digest --send"):
        result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "schedule"])
    assert result.exit_code == 3
    assert "another aggregator process holds the lock" in result.output
    assert "(digest --send, since" in result.output
    assert not jobs_path(config).exists()  # the loser never touched the job store


# -- job store wiring ------------------------------------------------------------------------------


def start_paused(config: Config) -> BackgroundScheduler:
    scheduler = build_scheduler(config, BackgroundScheduler(), datetime.now(UTC))
    scheduler.start(paused=True)  # adds the jobs to the store; runs nothing
    return scheduler


def test_jobs_have_fixed_ids_and_documented_options(write_config: Callable[..., Config]) -> None:
    config = write_config(digests=[weekly()], schedule={"refresh_minutes": 30, "misfire_grace_seconds": 600})
    scheduler = start_paused(config)
    try:
        jobs = {j.id: j for j in scheduler.get_jobs(jobstore="default")}
        assert set(jobs) == {REFRESH_JOB, RETRY_JOB, digest_job_id("weekly")}
        for job in jobs.values():
            assert (job.coalesce, job.max_instances) == (True, 1)
        assert jobs[REFRESH_JOB].misfire_grace_time == jobs[RETRY_JOB].misfire_grace_time == 600
        assert jobs[digest_job_id("weekly")].misfire_grace_time is None  # late runs only ask the ledger
        trig = jobs[digest_job_id("weekly")].trigger
        assert str(trig.timezone) == "Europe/Berlin"
        assert "day_of_week='mon'" in str(trig)
        assert jobs[REFRESH_JOB].trigger.interval == timedelta(minutes=30)
    finally:
        scheduler.shutdown(wait=False)


def test_schedule_change_replaces_jobs_at_next_start(write_config: Callable[..., Config]) -> None:
    config = write_config(digests=[weekly()])
    start_paused(config).shutdown(wait=False)
    start_paused(config).shutdown(wait=False)  # a plain restart: same jobs, no duplicates
    assert set(stored_next_runs(config)) == {REFRESH_JOB, RETRY_JOB, digest_job_id("weekly")}
    friday = {"name": "friday", "recipients": ["c@example.org"], "schedule": {"day_of_week": "fri", "hour": 17}}
    config = write_config(digests=[friday])
    start_paused(config).shutdown(wait=False)
    runs = stored_next_runs(config)
    assert set(runs) == {REFRESH_JOB, RETRY_JOB, digest_job_id("friday")}  # weekly's job is gone
    nxt = runs[digest_job_id("friday")]
    assert nxt is not None and nxt.strftime("%a %H:%M") == "Fri 17:00"  # in Asia/Shanghai, the default


# -- status ---------------------------------------------------------------------------------------


def test_status_before_and_after_a_digest(weekly_config: Config, wdeps: Deps, clock: Clock, project: Path) -> None:
    cfg = str(project / "feeds.yaml")
    out = CliRunner().invoke(main, ["-c", cfg, "status"]).output
    assert "scheduler: not running" in out
    assert "refresh" in out and "at next start" in out
    assert "digest:weekly" in out and "mon 08:00:00 Europe/Berlin" in out
    assert "weekly: never" in out
    clock.now = MON_16 - timedelta(days=2)
    refresh(weekly_config, wdeps)
    run_at(weekly_config, wdeps, clock, MON_16 + timedelta(seconds=1))
    with instance_lock(weekly_config, "schedule"):
        result = CliRunner().invoke(main, ["-c", cfg, "status"])
    assert result.exit_code == 0, result.output
    assert f"scheduler: running, pid {os.getpid()} (schedule" in result.output
    assert "weekly: period 2026-11-09 08:00:00 CET – 2026-11-16 08:00:00 CET, sent 2026-11-16 08:00:01 CET" in (
        result.output
    )
    # Down over the next Monday: status says what the next start will send.
    later = "\n".join(status_lines(weekly_config, MON_16 + timedelta(days=9)))
    assert "scheduler: not running" in later
    assert (
        "weekly: due now, sent at the next start: 2026-11-16 08:00 – 2026-11-23 08:00 CET"
        " (catch-up over 1 missed scheduled time(s))"
    ) in later


# -- the real daemon, in real time, against a real SMTP server --------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


class Daemon:
    """`python -m aggregator -c feeds.yaml schedule` as a subprocess, its stderr collected."""

    def __init__(self, config_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "-c", str(config_path), "schedule"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(check: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log:\n{logs()}")
        time.sleep(0.05)


@pytest.mark.slow
def test_daemon_sends_once_survives_restart_and_runs_alone(
    write_config: Callable[..., Config], project: Path, smtp: tuple[int, _Inbox]
) -> None:
    port, inbox = smtp
    # A daily schedule whose time is ~2 s from now, in UTC: the first digest fires once, while the
    # daemon runs (or, on a slow machine, just before it is up: then the start-up check sends it,
    # on time within the grace period); the next would be tomorrow. refresh_seconds: 1 s refreshes.
    fire = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    sched = {"day_of_week": "*", "hour": fire.hour, "minute": fire.minute, "second": fire.second, "timezone": "UTC"}
    config = write_config(
        digests=[
            {
                "name": "daily",
                "recipients": ["ana@example.org", "bo@example.org"],
                "delivery": "smtp",
                "schedule": sched,
            }
        ],
        smtp={"host": "127.0.0.1", "port": port, "timeout": 5},
        schedule={"refresh_seconds": 1},
    )
    config_path = project / "feeds.yaml"
    # The stories are first seen now, before the period ends, however slowly the daemons start.
    deps = make_deps(config)
    try:
        refresh(config, deps)
    finally:
        deps.close()
    # Two daemons started at once: exactly one gets the lock and runs jobs; the other says why it quit.
    a, b = Daemon(config_path), Daemon(config_path)
    try:
        wait_for(lambda: a.proc.poll() is not None or b.proc.poll() is not None, 15, "one daemon to quit", lambda: "")
        loser, winner = (a, b) if a.proc.poll() is not None else (b, a)
        assert loser.stop() == 3

        def logs() -> str:
            return "\n".join(winner.lines)

        assert any("another aggregator process holds the lock" in line for line in loser.lines), loser.lines
        assert loser.count("refresh:") == 0 and loser.count("digest daily") == 0
        wait_for(
            lambda: len(inbox.messages) >= 2 and winner.count("refresh:") >= 2, 15, "refresh x2 and a digest", logs
        )
        time.sleep(0.3)  # would a second digest follow? (it must not)
        assert winner.stop() == 0
    finally:
        a.kill()
        b.kill()
    assert (
        len([line for line in winner.lines if re.search(r"\(first digest\): \d+ stories, sent 2, 2/2 delivered", line)])
        == 1
    ), logs()
    assert winner.lines[-1].endswith("schedule: stopped")
    assert sorted(message_from_bytes(m)["To"] for m in inbox.messages) == ["ana@example.org", "bo@example.org"]

    # Restart for the same period: the start-up check finds it sent; nothing goes out again.
    again = Daemon(config_path)
    try:
        wait_for(
            lambda: again.count("digest daily: nothing due") == 1 and again.count("refresh:") >= 1,
            15,
            "the start-up check",
            lambda: "\n".join(again.lines),
        )
        assert again.stop(signal.SIGINT) == 0  # Ctrl-C stops as cleanly as SIGTERM
    finally:
        again.kill()
    assert len(inbox.messages) == 2
    assert again.lines[-1].endswith("schedule: stopped")
    # Stopped mid-refresh or not, the published feed is whole (writes are atomic).
    assert feedparser.parse((config.output_path / "feed.atom").read_bytes()).bozo == 0


# -- serve --schedule ------------------------------------------------------------------------------


def test_serve_schedule_runs_jobs_under_the_lock(
    weekly_config: Config, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aggregator.schedule import serve_hook

    caplog.set_level(logging.INFO, logger="aggregator.schedule")
    running = serve_hook(weekly_config)  # takes the lock before the server would start
    assert read_owner(weekly_config) is not None and read_owner(weekly_config).purpose == "serve --schedule"  # type: ignore[union-attr]
    result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "schedule"])
    assert result.exit_code == 3 and "(serve --schedule, since" in result.output
    with running():  # what the server's lifespan does
        wait_for(lambda: "refresh: 1 sources" in caplog.text, 10, "the start-up refresh", lambda: caplog.text)
        shown = "\n".join(status_lines(weekly_config, datetime.now(UTC)))
        assert f"scheduler: running, pid {os.getpid()} (serve --schedule" in shown
        stored = stored_next_runs(weekly_config)  # what status read from the job store
        assert set(stored) == {REFRESH_JOB, RETRY_JOB, digest_job_id("weekly")}
        for job, nxt in stored.items():
            assert nxt is not None and nxt > datetime.now(UTC) - timedelta(seconds=5), job
            assert f"{nxt:%Y-%m-%d %H:%M:%S %Z}" in shown, job
    assert "digest weekly:" in caplog.text  # the start-up ledger check ran too
    assert not is_locked(weekly_config)  # released when the server stops


def test_serve_schedule_refuses_while_a_daemon_runs(weekly_config: Config, project: Path) -> None:
    with instance_lock(weekly_config, "schedule"):
        result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "serve", "--port", "0", "--schedule"])
    assert result.exit_code == 3
    assert "another aggregator process holds the lock" in result.output
