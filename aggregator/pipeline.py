"""The orchestrator: the only module that knows the order of the stages.

refresh:  sources -> fetch/read -> parse -> normalize -> topics -> store -> dedupe -> publish
digest:   store -> stories in a window -> digest -> deliver
Side effects (HTTP, files, database, clock) come in through `Deps`, so tests pass real fakes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .config import Config, DigestConfig, SourceConfig
from .dedupe import build_stories
from .deliver import DeliveryReport, MailerFactory, default_mailer_factory
from .errors import AggregatorError, FetchError, ParseError
from .fetch import HttpFetcher
from .local import read_local
from .normalize import normalize
from .parse import parse_document
from .publish import publish_all
from .store import SourceState, SQLiteStore
from .topics import assign_topics
from .types import Digest, Entry, Fetched, RunReport, SourceResult, Story

log = logging.getLogger("aggregator")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """The edges of the program. `make_deps` wires the real ones; tests pass their own."""

    store: SQLiteStore
    fetcher: HttpFetcher
    clock: Callable[[], datetime] = utc_now
    closers: list[Callable[[], None]] = field(default_factory=list)
    # (config, subscription) -> Mailer; tests point it at an SMTP server on 127.0.0.1.
    mailer_factory: MailerFactory = default_mailer_factory

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def make_deps(
    config: Config, *, clock: Callable[[], datetime] = utc_now, mailer_factory: MailerFactory | None = None
) -> Deps:
    store = SQLiteStore(config.database_path)
    fetcher = HttpFetcher(config.fetch)
    return Deps(
        store=store,
        fetcher=fetcher,
        clock=clock,
        closers=[store.close, fetcher.close],
        mailer_factory=mailer_factory or default_mailer_factory,
    )


def _entries_from_docs(
    config: Config, source: SourceConfig, docs: Sequence[Fetched], now: datetime
) -> tuple[list[Entry], list[str], list[str]]:
    """Parse and normalise documents. Returns entries, warnings and per-document skip reasons."""
    tz = ZoneInfo(source.timezone or config.timezone)
    entries: dict[str, Entry] = {}
    warnings: list[str] = []
    skipped: list[str] = []
    for doc in docs:
        try:
            items, warns = parse_document(
                doc, tz=tz, fetched_at=now, site_name=source.site_name, extra_boilerplate=source.boilerplate
            )
        except ParseError as exc:
            skipped.append(f"{doc.location}: {exc}")
            continue
        warnings.extend(warns)
        for item in items:
            entry = normalize(item, fetched_at=now)
            entry = dataclasses.replace(entry, topics=assign_topics(entry, config.topics))
            entries[entry.id] = entry  # the same id twice in one source: the last copy wins
    return list(entries.values()), warnings, skipped


def _store_entries(deps: Deps, name: str, entries: list[Entry], now: datetime, **extra: object) -> SourceResult:
    results = deps.store.upsert_entries(entries, now)
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    for _, status in results:
        counts[status] += 1
    return SourceResult(source=name, **counts, **extra)  # type: ignore[arg-type]


def refresh_source_local(config: Config, deps: Deps, source: SourceConfig, now: datetime) -> SourceResult:
    docs, skipped = read_local(config, source)
    entries, warnings, bad = _entries_from_docs(config, source, docs, now)
    skipped = [*skipped, *bad]
    if not entries and skipped:
        return SourceResult(
            source.name, failed=True, error=f"no readable article ({skipped[0]})", skipped=tuple(skipped)
        )
    return _store_entries(deps, source.name, entries, now, warnings=tuple(warnings), skipped=tuple(skipped))


def _record_remote(
    config: Config, deps: Deps, source: SourceConfig, state: SourceState, got: Fetched | FetchError, now: datetime
) -> SourceResult:
    """Parse and store one remote result and update the source's health. Never raises."""
    if isinstance(got, FetchError):
        deps.store.put_source_state(
            dataclasses.replace(
                state,
                last_attempt=now,
                last_error=str(got),
                consecutive_failures=state.consecutive_failures + 1,
                disabled=state.disabled or (got.status == 410),
            )
        )
        return SourceResult(source.name, failed=True, error=str(got))
    if got.content is None:  # 304: nothing to parse, nothing changes
        deps.store.put_source_state(
            dataclasses.replace(state, last_attempt=now, last_success=now, last_error=None, consecutive_failures=0)
        )
        return SourceResult(source.name, not_modified=True, unchanged=state.entry_count)
    entries, warnings, bad = _entries_from_docs(config, source, [got], now)
    if bad:
        deps.store.put_source_state(
            dataclasses.replace(
                state, last_attempt=now, last_error=bad[0], consecutive_failures=state.consecutive_failures + 1
            )
        )
        return SourceResult(source.name, failed=True, error=bad[0])
    result = _store_entries(deps, source.name, entries, now, warnings=tuple(warnings))
    # Validators are stored only after a successful ingest, so a failed parse is retried in full.
    deps.store.put_source_state(
        dataclasses.replace(
            state,
            etag=got.etag,
            last_modified=got.last_modified,
            last_attempt=now,
            last_success=now,
            last_error=None,
            consecutive_failures=0,
        )
    )
    return result


def refresh(config: Config, deps: Deps) -> RunReport:
    """Read every source, store new and changed entries, rebuild stories, write the feeds."""
    now = deps.clock()
    results: dict[str, SourceResult] = {}
    remote: list[tuple[SourceConfig, SourceState]] = []
    for source in config.sources:
        if not source.enabled:
            continue
        if source.is_remote:
            state = deps.store.get_source_state(source.name)
            if state.disabled:
                results[source.name] = SourceResult(source.name, failed=True, error=f"disabled: {state.last_error}")
            else:
                remote.append((source, state))
            continue
        try:
            results[source.name] = refresh_source_local(config, deps, source, now)
        except (AggregatorError, OSError, ValueError) as exc:
            results[source.name] = SourceResult(source.name, failed=True, error=str(exc))
    if remote:
        for (source, state), got in zip(remote, deps.fetcher.fetch_many(remote), strict=True):
            results[source.name] = _record_remote(config, deps, source, state, got, now)
    stories = rebuild_stories(config, deps)
    outputs = publish_all(config, stories)
    ordered = tuple(results[s.name] for s in config.sources if s.name in results)
    return RunReport(results=ordered, outputs=tuple(str(p) for p in outputs))


def rebuild_stories(config: Config, deps: Deps) -> list[Story]:
    stories, links = build_stories(deps.store.iter_entries(), config.dedupe.priority)
    deps.store.put_story_links(links)
    return stories


def stories_in_window(config: Config, deps: Deps, start: datetime, end: datetime) -> list[Story]:
    """Stories whose first member was first seen in [start, end): late copies don't resend a story."""
    stories, _ = build_stories(deps.store.iter_entries(until=end), config.dedupe.priority)
    return [s for s in stories if s.first_seen and start <= s.first_seen < end]


def default_window(now: datetime, days: int = 7) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now


def make_digest(
    config: Config,
    deps: Deps,
    *,
    start: datetime,
    end: datetime,
    topics: Sequence[str] = (),
    max_per_topic: int = 20,
    subject: str = "{title}: {count} new stories, {start} – {end}",
    subscription: str = "one-off",
    unsubscribe: str | None = None,
    recipient: str | None = None,
) -> Digest:
    from .digest import build_context, render_digest

    stories = stories_in_window(config, deps, start, end)
    ctx = build_context(
        config,
        stories,
        start=start,
        end=end,
        topics=topics,
        max_per_topic=max_per_topic,
        subscription=subscription,
        unsubscribe=unsubscribe,
        recipient=recipient,
    )
    return render_digest(ctx, subject)


def write_digest_files(digest: Digest, out_dir: Path, eml: bytes) -> list[Path]:
    from .publish import write_atomic

    paths = [out_dir / "digest.html", out_dir / "digest.txt", out_dir / "digest.eml"]
    write_atomic(paths[0], digest.html.encode("utf-8"))
    write_atomic(paths[1], digest.text.encode("utf-8"))
    write_atomic(paths[2], eml)
    return paths

# -- scheduled digests: render -> ledger -> deliver ----------------------------------------------


def last_sent_period_end(store: SQLiteStore, subscription_name: str) -> datetime | None:
    """End of the last period of this subscription that was accepted for at least one recipient."""
    from .ledger import Ledger

    return Ledger(store).last_sent_period_end(subscription_name)


def scheduled_window(deps: Deps, subscription: DigestConfig, now: datetime) -> tuple[datetime, datetime]:
    """From the last successfully sent digest (first time: `first_window_days` back) to now.

    By first-seen time, so late-arriving or back-dated items still fall into the next digest.
    Before anything was ever accepted, the start stays at the first recorded period's start, so
    a first digest that never got through is covered (and replaced) by the next one.
    """
    from .ledger import Ledger

    ledger = Ledger(deps.store)
    start = ledger.last_sent_period_end(subscription.name) or ledger.first_period_start(subscription.name)
    if start is None:
        start = now - timedelta(days=subscription.first_window_days)
    return start, now


def send_digest(
    config: Config,
    deps: Deps,
    subscription: DigestConfig,
    period_start: datetime,
    period_end: datetime,
) -> DeliveryReport:
    """Render, record in the ledger, send, and mark sent: exactly once per (subscription, period,
    recipient) as far as SMTP allows. Idempotent: calling it again sends nothing already accepted
    and re-sends pending copies (when their backoff has run out) with the same Message-ID."""
    from .digest_send import send_period

    return send_period(config, deps, subscription, period_start, period_end)


def retry_pending(config: Config, deps: Deps, subscription: str | None = None) -> list[DeliveryReport]:
    """Re-send every pending ledger row whose backoff has run out (after a crash, 4xx, outage)."""
    from .digest_send import retry_due

    return retry_due(config, deps, subscription)
