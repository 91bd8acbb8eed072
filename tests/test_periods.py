"""Due-period logic with an injected clock: DST, downtime, clock jumps, restarts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import CronSchedule
from aggregator.periods import Period, due_periods, fire_times, make_trigger, next_fire

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


WEEKLY = make_trigger(CronSchedule(day_of_week="mon", hour=8, minute=0, timezone="Europe/Berlin"), "UTC")


def test_weekday_names_mean_what_they_say() -> None:
    # 2026-11-16 is a Monday; crontab's 1 would be Monday too, APScheduler 3's 1 is Tuesday.
    t = next_fire(WEEKLY, berlin(2026, 11, 12, 12, 0))
    assert t.astimezone(BERLIN).strftime("%a %Y-%m-%d %H:%M") == "Mon 2026-11-16 08:00"


def test_default_time_zone_is_the_configs_not_the_hosts() -> None:
    trig = make_trigger(CronSchedule(day_of_week="fri", hour=9), "Asia/Shanghai")
    t = next_fire(trig, datetime(2026, 11, 16, tzinfo=UTC))
    assert t == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai (UTC+8)


def test_on_time_run_sends_the_period_since_the_last_one() -> None:
    last = berlin(2026, 11, 9, 8, 0)
    now = berlin(2026, 11, 16, 8, 0, 1)
    plan = due_periods(WEEKLY, last_end=last, now=now)
    assert plan.send == (Period(last, berlin(2026, 11, 16, 8, 0)),)
    assert plan.reason == "on time"


def test_restart_right_after_a_send_sends_nothing() -> None:
    sent_end = berlin(2026, 11, 16, 8, 0)
    for later in (timedelta(0), timedelta(seconds=2), timedelta(minutes=59), timedelta(days=6, hours=23)):
        plan = due_periods(WEEKLY, last_end=sent_end, now=sent_end + later)
        assert plan.send == (), later
        assert plan.skipped is None


def test_downtime_over_two_scheduled_times_gives_one_catch_up_digest() -> None:
    last = berlin(2026, 11, 2, 8, 0)
    now = berlin(2026, 11, 19, 15, 30)  # down over Mon 9th and Mon 16th
    plan = due_periods(WEEKLY, last_end=last, now=now, catch_up="send")
    assert plan.send == (Period(last, berlin(2026, 11, 16, 8, 0)),)  # the whole gap, once
    assert plan.reason == "catch-up over 2 missed scheduled time(s)"
    # ...and once it is recorded, the same restart finds nothing more.
    assert due_periods(WEEKLY, last_end=plan.send[0].end, now=now).send == ()


def test_downtime_with_skip_policy_logs_and_sends_nothing() -> None:
    last = berlin(2026, 11, 2, 8, 0)
    now = berlin(2026, 11, 19, 15, 30)
    plan = due_periods(WEEKLY, last_end=last, now=now, catch_up="skip")
    assert plan.send == ()
    assert plan.skipped == Period(last, berlin(2026, 11, 16, 8, 0))


def test_skip_policy_still_sends_the_on_time_period_only() -> None:
    last = berlin(2026, 11, 2, 8, 0)
    now = berlin(2026, 11, 16, 8, 20)  # back up 20 minutes after Monday 08:00, grace is 1 h
    plan = due_periods(WEEKLY, last_end=last, now=now, catch_up="skip", grace=HOUR)
    assert plan.send == (Period(berlin(2026, 11, 9, 8, 0), berlin(2026, 11, 16, 8, 0)),)
    assert plan.skipped == Period(last, berlin(2026, 11, 9, 8, 0))


def test_clock_jump_backwards_never_resends() -> None:
    sent_end = berlin(2026, 11, 16, 8, 0)
    # NTP correction or a wrong RTC: now is before the recorded end, even before the prior Monday.
    for now in (sent_end - timedelta(seconds=30), sent_end - timedelta(days=8), sent_end - timedelta(days=400)):
        plan = due_periods(WEEKLY, last_end=sent_end, now=now)
        assert plan.send == ()
        assert "clock is behind" in plan.reason
    # When the clock comes back, the next period chains on from the recorded end.
    plan = due_periods(WEEKLY, last_end=sent_end, now=berlin(2026, 11, 23, 8, 0, 5))
    assert plan.send == (Period(sent_end, berlin(2026, 11, 23, 8, 0)),)


def test_weekly_across_spring_forward_keeps_local_time() -> None:
    # Europe/Berlin: Sunday 2026-03-29 02:00 CET -> 03:00 CEST. A Monday 08:00 digest stays 08:00.
    last = berlin(2026, 3, 23, 8, 0)
    plan = due_periods(WEEKLY, last_end=last, now=berlin(2026, 3, 30, 8, 0, 1))
    (period,) = plan.send
    assert period.end.astimezone(BERLIN).strftime("%H:%M %Z") == "08:00 CEST"
    assert period.end - period.start == timedelta(hours=167)  # the week lost an hour


def test_weekly_across_autumn_back_keeps_local_time() -> None:
    last = berlin(2026, 10, 19, 8, 0)
    plan = due_periods(WEEKLY, last_end=last, now=berlin(2026, 10, 26, 8, 0, 1))
    (period,) = plan.send
    assert period.end.astimezone(BERLIN).strftime("%H:%M %Z") == "08:00 CET"
    assert period.end - period.start == timedelta(hours=169)


NIGHTLY = make_trigger(CronSchedule(day_of_week="*", hour=2, minute=30, timezone="Europe/Berlin"), "UTC")


def test_wall_time_in_the_spring_gap_fires_once_an_hour_later() -> None:
    times = list(fire_times(NIGHTLY, berlin(2026, 3, 28, 3, 0), berlin(2026, 3, 30, 3, 0)))
    local = [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times]
    assert local == ["03-29 03:30 CEST", "03-30 02:30 CEST"]


def test_wall_time_repeated_in_autumn_fires_once() -> None:
    # 02:30 happens twice on 2026-10-25 (CEST, then CET); APScheduler 3 alone fires both.
    times = list(fire_times(NIGHTLY, berlin(2026, 10, 24, 3, 0), berlin(2026, 10, 26, 3, 0)))
    local = [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in times]
    assert local == ["10-25 02:30 CEST", "10-26 02:30 CET"]
    first = times[0]
    # The daemon's second wake-up that night (the repeated 02:30) finds nothing to send.
    repeat = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert due_periods(NIGHTLY, last_end=first, now=repeat + timedelta(seconds=1)).send == ()
    # The next night's period is 25 hours long and covers the repeated hour once.
    (period,) = due_periods(NIGHTLY, last_end=first, now=times[1] + timedelta(seconds=1)).send
    assert period == Period(first, times[1])
    assert period.end - period.start == timedelta(hours=25)


def test_first_digest_only_when_on_time() -> None:
    mon = berlin(2026, 11, 16, 8, 0)
    plan = due_periods(WEEKLY, last_end=None, now=mon + timedelta(minutes=5), first_window=timedelta(days=7))
    assert plan.send == (Period(mon - timedelta(days=7), mon),)
    late = due_periods(WEEKLY, last_end=None, now=mon + timedelta(hours=3), grace=HOUR)
    assert late.send == () and late.skipped is None


def test_schedule_change_chains_on_from_the_last_end() -> None:
    # Was Monday 08:00, feeds.yaml now says Friday 17:00: the next digest starts where the last ended.
    last = berlin(2026, 11, 16, 8, 0)
    friday = make_trigger(CronSchedule(day_of_week="fri", hour=17, timezone="Europe/Berlin"), "UTC")
    (period,) = due_periods(friday, last_end=last, now=berlin(2026, 11, 20, 17, 0, 3)).send
    assert period == Period(last, berlin(2026, 11, 20, 17, 0))


@pytest.mark.parametrize("policy", ["send", "skip"])
def test_a_year_of_wake_ups_tiles_time_without_gap_or_overlap(policy: str) -> None:
    # A daemon wakes at each fire time and again two hours later (a restart); each sent period is
    # recorded as the ledger would. Every scheduled time gets exactly one digest, and consecutive
    # periods meet exactly, across both 2026 DST changes (both on Sundays, both at 02:30).
    trig = make_trigger(CronSchedule(day_of_week="mon,thu,sun", hour=2, minute=30, timezone="Europe/Berlin"), "UTC")
    sent: list[Period] = []
    last_end = None
    fire = next_fire(trig, datetime(2026, 1, 1, tzinfo=UTC))
    while fire < datetime(2027, 1, 1, tzinfo=UTC):
        for wake in (fire + timedelta(seconds=1), fire + 2 * HOUR):
            plan = due_periods(trig, last_end=last_end, now=wake, catch_up=policy)  # type: ignore[arg-type]
            assert plan.skipped is None
            sent.extend(plan.send)
            last_end = sent[-1].end if sent else None
        fire = next_fire(trig, fire)
    assert len(sent) == 53 + 52 + 52  # Thursdays, Mondays and Sundays in 2026
    assert all(a.end == b.start for a, b in itertools.pairwise(sent))
    assert {p.end.astimezone(BERLIN).strftime("%H:%M") for p in sent} == {"02:30", "03:30"}  # 03:30: spring gap


@settings(max_examples=60, deadline=None)
@given(
    days=st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 30, 59]),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Shanghai", "UTC"]),
    steps=st.lists(st.integers(-3 * 24 * 60, 10 * 24 * 60), min_size=1, max_size=25),
    policy=st.sampled_from(["send", "skip"]),
)
def test_any_wake_up_sequence_never_overlaps_or_repeats(
    days: set[str], hour: int, minute: int, zone: str, steps: list[int], policy: str
) -> None:
    # Wake-ups move by random minutes, backwards too (clock jumps); whatever happens, sent periods
    # end on scheduled times, never overlap, and each starts where the previous one ended.
    trig = make_trigger(
        CronSchedule(day_of_week=",".join(sorted(days)), hour=hour, minute=minute, timezone=zone), "UTC"
    )
    now = datetime(2026, 3, 20, tzinfo=UTC)
    last_end = None
    sent: list[Period] = []
    for step in steps:
        now += timedelta(minutes=step)
        plan = due_periods(trig, last_end=last_end, now=now, catch_up=policy)  # type: ignore[arg-type]
        assert len(plan.send) <= 1
        for p in plan.send:
            assert p.start < p.end <= now
            assert next_fire(trig, p.end - timedelta(microseconds=1)) == p.end  # ends on a fire time
            if sent:
                assert p.start >= sent[-1].end
                if policy == "send":
                    assert p.start == sent[-1].end
            sent.append(p)
            last_end = p.end
