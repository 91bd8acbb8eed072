"""Which digest periods are due: a pure function of schedule, ledger and clock.

The digest ledger, not the scheduler, is the truth. APScheduler only says "look now"; this module
answers "what should be sent now", given
  - the subscription's cron schedule and time zone,
  - the end of the last period the ledger recorded for it (None: never sent),
  - the current time, and
  - the catch-up policy.

A *period* is the half-open window [start, end) of first-seen times a digest covers; `end` is a
scheduled fire time. Consecutive digests chain: the next period starts where the last one the
ledger recorded ended, so no story is sent twice or falls between two digests, even when the
schedule in feeds.yaml changes between runs.

Policy for scheduled times missed while the daemon was down (`schedule.catch_up`):
  - "send" (default): one catch-up digest covering the whole gap, from the last recorded end to
    the latest scheduled time that has passed. Two missed Mondays give one digest over two
    weeks, never two digests, and never one per missed week.
  - "skip": only an on-time period is sent (the latest scheduled time passed no more than
    `grace` ago), covering just its own interval; the missed part of the gap is reported in
    `Plan.skipped` for a log line and is never sent.
With no ledger record (a new subscription), only an on-time scheduled time starts the first
digest, covering `first_window` before it; there is no history to catch up on.

Time zones: fire times come from APScheduler's own CronTrigger, so the daemon and this module
agree on every instant. Around DST changes that means: a wall time that does not exist (02:30 on
the spring-forward night in Europe/Berlin) fires once, an hour later by the wall clock (03:30
CEST); a wall time that happens twice (02:30 on the autumn night) fires at its first occurrence
only. APScheduler 3 would fire that one twice; we drop the repeat here, and a second job run
finds nothing due anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from .config import CronSchedule

CatchUp = Literal["send", "skip"]

# A cron of weekday names + hour + minute + second fires at least once a week, so the previous
# fire time before any instant lies within the 8 days before it.
_LOOKBACK = timedelta(days=8)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Period:
    """The window [start, end) of first-seen times one digest covers. Aware UTC datetimes."""

    start: datetime
    end: datetime

    def describe(self, tz: ZoneInfo) -> str:
        """Human form in the subscription's time zone, e.g. `2026-11-09 08:00 – 2026-11-16 08:00 CET`."""
        s, e = self.start.astimezone(tz), self.end.astimezone(tz)
        return f"{s:%Y-%m-%d %H:%M} – {e:%Y-%m-%d %H:%M %Z}"


@dataclass(frozen=True)
class Plan:
    """What to do now for one subscription: periods to send (each exactly once), and why."""

    send: tuple[Period, ...]
    skipped: Period | None  # the missed gap dropped by catch_up: skip (for the log)
    reason: str  # one phrase for the log line / `status`


def make_trigger(schedule: CronSchedule, default_tz: str) -> CronTrigger:
    """The APScheduler 3 trigger for a digest schedule.

    Weekdays go through as names (mon..sun): APScheduler 3 numbers them from Monday = 0, crontab
    from Sunday = 0, so a number would silently shift the day. Config rejects numbers already.
    The time zone is always explicit (never the host's local zone).
    """
    return CronTrigger(
        day_of_week=schedule.day_of_week,
        hour=schedule.hour,
        minute=schedule.minute,
        second=schedule.second,
        timezone=ZoneInfo(schedule.timezone or default_tz),
    )


def _is_repeat(t: datetime) -> bool:
    """True for the second occurrence of an ambiguous wall time (autumn DST fold)."""
    return t.fold == 1 and t.replace(fold=0).utcoffset() != t.utcoffset()


def _next_fire(trigger: CronTrigger, after: datetime) -> datetime:
    """The first scheduled time strictly after `after` (UTC)."""
    candidate = after + _TICK
    while True:
        t = trigger.get_next_fire_time(None, candidate.astimezone(trigger.timezone))
        assert t is not None  # no end_date on our triggers
        if not _is_repeat(t):
            return t.astimezone(UTC)
        candidate = t.astimezone(UTC) + _TICK


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> Iterator[datetime]:
    """Scheduled times t with after < t <= until, oldest first, as UTC."""
    t = _next_fire(trigger, after)
    while t <= until:
        yield t
        t = _next_fire(trigger, t)


def previous_fire(trigger: CronTrigger, at_or_before: datetime) -> datetime:
    """The latest scheduled time <= `at_or_before` (UTC)."""
    latest = None
    for t in fire_times(trigger, at_or_before - _LOOKBACK, at_or_before):
        latest = t
    assert latest is not None, "a weekly cron fires within any 8 days"
    return latest


def next_fire(trigger: CronTrigger, now: datetime) -> datetime:
    """The next scheduled time strictly after `now` (UTC), for `status` and log lines."""
    return _next_fire(trigger, now)


def due_periods(
    trigger: CronTrigger,
    *,
    last_end: datetime | None,
    now: datetime,
    catch_up: CatchUp = "send",
    grace: timedelta = timedelta(hours=1),
    first_window: timedelta = timedelta(days=7),
) -> Plan:
    """Decide which periods are due and unsent at `now`. Pure: no clock, no I/O.

    `last_end` is the end of the last period the ledger recorded for this subscription. A clock
    that jumped backwards (now before last_end) makes nothing due: a period is never sent twice.
    """
    now = now.astimezone(UTC)
    if last_end is not None:
        last_end = last_end.astimezone(UTC)
        if now < last_end:
            return Plan((), None, f"clock is behind the last sent period end ({last_end:%Y-%m-%d %H:%M} UTC)")
        first = _next_fire(trigger, last_end)
        if first > now:
            return Plan((), None, "nothing due")
    latest = previous_fire(trigger, now)
    on_time = now - latest <= grace
    if last_end is None:
        if not on_time:
            return Plan((), None, "no digest sent yet; the first goes at the next scheduled time")
        return Plan((Period(latest - first_window, latest),), None, "first digest")
    if catch_up == "send":
        missed = sum(1 for _ in fire_times(trigger, last_end, latest)) - (1 if on_time else 0)
        reason = "on time" if missed == 0 else f"catch-up over {missed} missed scheduled time(s)"
        return Plan((Period(last_end, latest),), None, reason)
    # catch_up == "skip"
    if not on_time:
        return Plan((), Period(last_end, latest), "missed while down; skipped by catch_up: skip")
    start = max(last_end, previous_fire(trigger, latest - _TICK))
    skipped = Period(last_end, start) if start > last_end else None
    return Plan((Period(start, latest),), skipped, "on time" if skipped is None else "on time; missed gap skipped")
