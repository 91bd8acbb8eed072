"""Health and backoff decisions (pure functions), and the bounded body decoder."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime, timedelta

import brotli
import pytest

from aggregator._body import BodyTooLargeError, BoundedBody, UnsupportedEncodingError
from aggregator._netguard import address_problem
from aggregator.health import (
    HealthPolicy,
    after_failure,
    after_success,
    backoff_delay,
    enable,
    is_due,
    one_line,
    parse_max_age,
    parse_retry_after,
    should_warn,
    status_label,
)
from aggregator.store.base import SourceState

NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
POLICY = HealthPolicy(warn_after_failures=3, max_backoff=timedelta(hours=6))


def test_backoff_doubles_and_is_capped() -> None:
    steps = [backoff_delay(n, POLICY) for n in range(0, 8)]
    assert steps[:6] == [timedelta(0), *(timedelta(minutes=m) for m in (15, 30, 60, 120, 240))]
    assert steps[6] == steps[7] == timedelta(hours=6)
    assert backoff_delay(10_000, POLICY) == timedelta(hours=6)  # no overflow, never "forever"


def test_failure_backs_off_keeps_validators_and_warns_when_lasting() -> None:
    state = SourceState("s", etag='"e"', last_modified="x", last_success=NOW - timedelta(days=1))
    for n in range(1, 4):
        state = after_failure(state, now=NOW, error="HTTP 500\nInternal\tError", policy=POLICY, status=500)
        assert state.consecutive_failures == n
        assert should_warn(state, POLICY) == (n >= 3)
    assert state.etag == '"e"' and state.last_modified == "x" and state.last_success == NOW - timedelta(days=1)
    assert state.last_error == "HTTP 500 Internal Error"
    assert state.next_attempt == NOW + timedelta(hours=1)
    assert not is_due(state, NOW) and is_due(state, NOW + timedelta(hours=1))
    assert status_label(state, NOW, POLICY) == "failing (3x)"


def test_success_resets_health() -> None:
    failing = SourceState("s", consecutive_failures=4, last_error="boom", next_attempt=NOW)
    ok = after_success(failing, now=NOW, headers={}, policy=POLICY, etag='"n"', last_modified=None)
    assert (ok.consecutive_failures, ok.last_error, ok.next_attempt, ok.etag) == (0, None, None, '"n"')
    assert ok.last_success == NOW and status_label(ok, NOW, POLICY) == "ok"


def test_gone_disables_and_says_how_to_enable() -> None:
    state = after_failure(SourceState("feed-x"), now=NOW, error="HTTP 410", policy=POLICY, status=410)
    assert state.disabled and not is_due(state, NOW + timedelta(days=365))
    assert "sources enable feed-x" in (state.last_error or "")
    assert should_warn(state, POLICY)
    back = enable(state)
    assert not back.disabled and back.consecutive_failures == 0 and is_due(back, NOW)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", timedelta(minutes=15)),  # backoff is longer than asked: backoff wins
        (429, "3600", timedelta(hours=1)),
        (503, "Sat, 21 Nov 2026 06:00:00 GMT", timedelta(hours=2)),
        (503, "86400000", timedelta(hours=6)),  # capped at max_backoff
        (503, "soon", timedelta(minutes=15)),  # unreadable: ignored
        (500, "3600", timedelta(minutes=15)),  # only 429/503 carry a meaningful Retry-After
    ],
)
def test_retry_after(status: int, retry_after: str, expected: timedelta) -> None:
    state = after_failure(
        SourceState("s"), now=NOW, error="x", policy=POLICY, status=status, headers={"Retry-After": retry_after}
    )
    assert state.next_attempt == NOW + expected


def test_parse_retry_after_and_max_age() -> None:
    assert parse_retry_after("30", NOW) == timedelta(seconds=30)
    assert parse_retry_after("Sat, 21 Nov 2026 03:00:00 GMT", NOW) == timedelta(0)  # in the past
    assert parse_retry_after(None, NOW) is None
    assert parse_max_age("public, max-age=600") == timedelta(minutes=10)
    assert parse_max_age("s-maxage=60, max-age=600") == timedelta(minutes=10)
    assert parse_max_age("no-cache, max-age=600") is None
    assert parse_max_age(None) is None


def test_max_age_and_min_interval_set_next_attempt() -> None:
    policy = HealthPolicy(max_backoff=timedelta(hours=6), min_interval=timedelta(minutes=30))
    s = after_success(
        SourceState("s"), now=NOW, headers={"cache-control": "max-age=60"}, policy=policy, etag=None, last_modified=None
    )
    assert s.next_attempt == NOW + timedelta(minutes=30)  # min_interval beats a short max-age
    s = after_success(
        SourceState("s"),
        now=NOW,
        headers={"Cache-Control": "max-age=31536000"},
        policy=policy,
        etag=None,
        last_modified=None,
    )
    assert s.next_attempt == NOW + timedelta(hours=6)  # a year of max-age is capped


def test_one_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 300


# -- bounded decoding ----------------------------------------------------------------------


def _feed_in_chunks(encoding: str | None, data: bytes, limit: int, size: int = 4096) -> bytes:
    body = BoundedBody(encoding, limit)
    for i in range(0, len(data), size):
        body.feed(data[i : i + size])
    return body.result()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("br", brotli.compress),
        (None, lambda b: b),
    ],
)
def test_bounded_body_decodes(encoding: str | None, compress) -> None:  # type: ignore[no-untyped-def]
    data = b"<rss>" + b"rare earth " * 5000 + b"</rss>"
    assert _feed_in_chunks(encoding, compress(data), limit=len(data)) == data


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("br", lambda b: brotli.compress(b, quality=5))]
)
def test_bombs_stop_at_the_cap(encoding: str, compress) -> None:  # type: ignore[no-untyped-def]
    bomb = compress(b"\0" * 20_000_000)
    body = BoundedBody(encoding, 100_000)
    with pytest.raises(BodyTooLargeError):
        body.feed(bomb)  # the whole bomb in one chunk: still never expanded past the cap
    assert len(body.result()) <= 100_000


def test_unknown_encoding_is_an_error() -> None:
    with pytest.raises(UnsupportedEncodingError):
        BoundedBody("compress", 10)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),
        ("240.0.0.1", "private"),  # 240/4 is on Python's private list, before reserved
        ("93.184.216.34", None),
        ("2606:2800:220:1::1", None),
    ],
)
def test_address_policy(address: str, problem: str | None) -> None:
    import ipaddress

    assert address_problem(ipaddress.ip_address(address)) == problem
