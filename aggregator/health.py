"""Per-source health and backoff decisions: pure functions from (state, outcome, now) to state.

Nothing here does I/O. The pipeline feeds in what happened; these functions decide when to try
again, when a failure is worth a warning, and what the user is told.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .store.base import SourceState

# The first retry after a failure waits this long; each further failure doubles it up to the cap.
# 15 minutes: a blip (a deploy, a restarting CDN) is over by then, and with an hourly schedule
# the first two retries still happen on the next runs.
BACKOFF_BASE = timedelta(minutes=15)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.I)


@dataclass(frozen=True)
class HealthPolicy:
    """The knobs from `fetch:` and the source's own `min_interval_minutes`."""

    warn_after_failures: int = 3
    max_backoff: timedelta = timedelta(hours=24)
    min_interval: timedelta = timedelta(0)


def backoff_delay(failures: int, policy: HealthPolicy) -> timedelta:
    """Exponential backoff: 15 min, 30 min, 1 h, ... capped at `max_backoff` (never forever)."""
    if failures <= 0:
        return timedelta(0)
    # 2**20 * 15 min is far past any cap; bounding the exponent avoids huge integers.
    return min(BACKOFF_BASE * (2 ** min(failures - 1, 20)), policy.max_backoff)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date, relative to now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def parse_max_age(cache_control: str | None) -> timedelta | None:
    """`Cache-Control: max-age=N` (s-maxage too) as a timedelta; None for no-cache/no-store/absent."""
    if not cache_control or _NO_CACHE.search(cache_control):
        return None
    m = _MAX_AGE.search(cache_control)
    return timedelta(seconds=int(m.group(1))) if m else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def is_due(state: SourceState, now: datetime) -> bool:
    """Whether a remote source should be fetched in this run."""
    return not state.disabled and (state.next_attempt is None or state.next_attempt <= now)


def after_success(
    state: SourceState,
    *,
    now: datetime,
    headers: Mapping[str, str],
    policy: HealthPolicy,
    etag: str | None,
    last_modified: str | None,
    permanent_redirect: str | None = None,
) -> SourceState:
    """A 200 that was parsed and stored, or a 304: health is reset, validators kept.

    The next attempt waits for `Cache-Control: max-age` (capped at the backoff cap, because some
    CDNs send a year) and at least the source's `min_interval_minutes`.
    """
    wait = max(parse_max_age(_header(headers, "cache-control")) or timedelta(0), policy.min_interval)
    wait = min(wait, max(policy.max_backoff, policy.min_interval))
    return dataclasses.replace(
        state,
        etag=etag,
        last_modified=last_modified,
        last_attempt=now,
        last_success=now,
        last_error=None,
        consecutive_failures=0,
        next_attempt=now + wait if wait > timedelta(0) else None,
        redirected_to=permanent_redirect,
    )


def after_failure(
    state: SourceState,
    *,
    now: datetime,
    error: str,
    policy: HealthPolicy,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    permanent_redirect: str | None = None,
) -> SourceState:
    """A failed fetch or parse. Validators and entries stay; the next try backs off.

    410 Gone disables the source (the publisher said it is gone for good). 429/503 with
    Retry-After wait at least that long (capped). Everything else: exponential backoff.
    """
    failures = state.consecutive_failures + 1
    line = one_line(error)
    if status == 410:
        return dataclasses.replace(
            state,
            last_attempt=now,
            last_error=f"410 Gone: source disabled; fix its url and run `aggregator sources enable {state.name}`",
            consecutive_failures=failures,
            next_attempt=None,
            disabled=True,
            redirected_to=permanent_redirect or state.redirected_to,
        )
    wait = max(backoff_delay(failures, policy), policy.min_interval)
    if status in (429, 503) and headers is not None:
        asked = parse_retry_after(_header(headers, "retry-after"), now)
        if asked is not None:
            wait = max(wait, min(asked, policy.max_backoff))
    return dataclasses.replace(
        state,
        last_attempt=now,
        last_error=line,
        consecutive_failures=failures,
        next_attempt=now + wait,
        redirected_to=permanent_redirect or state.redirected_to,
    )


def enable(state: SourceState) -> SourceState:
    """Re-enable a disabled source and forget its failures (the user fixed it)."""
    return dataclasses.replace(state, disabled=False, consecutive_failures=0, next_attempt=None, last_error=None)


def should_warn(state: SourceState, policy: HealthPolicy) -> bool:
    """A failure is worth a warning once it has lasted `warn_after_failures` runs, or is final."""
    return state.disabled or state.consecutive_failures >= policy.warn_after_failures


def one_line(message: str, limit: int = 300) -> str:
    """Collapse an error message to one readable line."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def status_label(state: SourceState, now: datetime, policy: HealthPolicy) -> str:
    """Short health word for the `sources` table."""
    if state.disabled:
        return "disabled"
    if state.consecutive_failures:
        word = "failing" if should_warn(state, policy) else "retrying"
        return f"{word} ({state.consecutive_failures}x)"
    if state.last_success is None:
        return "never fetched"
    return "ok"
