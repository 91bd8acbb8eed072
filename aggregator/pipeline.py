"""The orchestrator: the only module that knows the order of the stages.

refresh:  sources -> fetch/read -> parse -> normalize -> topics -> store -> dedupe -> publish
digest:   store -> stories in a window -> digest -> deliver
Side effects (HTTP, files, database, clock) come in through `Deps`, so tests pass real fakes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from . import _publish_stamp, health
from ._parallel import MIN_JOBS, DocPool
from .config import Config, DigestConfig, SourceConfig
from .dedupe import (
    DEDUPE_STATE_KEY,
    Bodies,
    Clustering,
    SignatureRows,
    cluster,
    fingerprint,
    signature_horizon,
)
from .errors import AggregatorError, FetchError
from .fetch import HttpFetcher, permanent_redirect
from .health import HealthPolicy
from .ingest import ParseConfig, Parsed, ParseSource, entries_from_docs, parse_fetched
from .local import read_local
from .store import SourceState, SQLiteStore
from .store._codec import Encoded, encode
from .topics import assign_topics
from .types import Digest, Entry, Fetched, RunReport, SourceResult, Story

if TYPE_CHECKING:  # the mailer and the publisher load when used: a refresh's parse phase is leaner
    from .deliver import DeliveryReport, Mailer, MailerFactory

log = logging.getLogger("aggregator")


def utc_now() -> datetime:
    return datetime.now(UTC)


def default_mailer_factory(config: Config, subscription: DigestConfig) -> Mailer:
    """`deliver.default_mailer_factory`, imported when a digest is sent (SMTP, CSS inlining)."""
    from .deliver import default_mailer_factory as factory

    return factory(config, subscription)


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


def _store_entries(
    deps: Deps, name: str, entries: list[Entry] | list[Encoded], now: datetime, **extra: object
) -> SourceResult:
    rows = [e if isinstance(e, Encoded) else encode(e) for e in entries]
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    for status in deps.store.upsert_encoded(rows, now):
        counts[status] += 1
    return SourceResult(source=name, **counts, **extra)  # type: ignore[arg-type]


def refresh_source_local(config: Config, deps: Deps, source: SourceConfig, now: datetime) -> SourceResult:
    docs, skipped = read_local(config, source)
    entries, warnings, bad = entries_from_docs(config, source, docs, now)
    skipped = [*skipped, *bad]
    if not entries and skipped:
        return SourceResult(
            source.name, failed=True, error=f"no readable article ({skipped[0]})", skipped=tuple(skipped)
        )
    return _store_entries(deps, source.name, entries, now, warnings=tuple(warnings), skipped=tuple(skipped))


def _health_policy(config: Config, source: SourceConfig) -> HealthPolicy:
    return HealthPolicy(
        warn_after_failures=config.fetch.warn_after_failures,
        max_backoff=timedelta(hours=config.fetch.max_backoff_hours),
        min_interval=timedelta(minutes=source.min_interval_minutes),
    )


def _remote_failure(
    deps: Deps,
    source: SourceConfig,
    state: SourceState,
    policy: HealthPolicy,
    now: datetime,
    error: str,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    moved: str | None = None,
) -> SourceResult:
    """Record a failed fetch or parse: stored entries and validators stay; the source backs off."""
    new = health.after_failure(
        state, now=now, error=error, policy=policy, status=status, headers=headers, permanent_redirect=moved
    )
    deps.store.put_source_state(new)
    lasting = health.should_warn(new, policy)
    # A single failure is usually a blip: it is logged quietly and warned about once it lasts.
    log.log(
        logging.WARNING if lasting else logging.INFO,
        "%s: %s (%d failure(s) in a row; next try %s)",
        source.name,
        new.last_error,
        new.consecutive_failures,
        new.next_attempt.isoformat() if new.next_attempt else "after `aggregator sources enable`",
    )
    return SourceResult(
        source.name,
        failed=True,
        error=new.last_error,
        consecutive_failures=new.consecutive_failures,
        lasting=lasting,
        deferred_until=new.next_attempt,
        moved_to=moved,
    )


def _record_remote(
    config: Config,
    deps: Deps,
    source: SourceConfig,
    state: SourceState,
    got: Fetched | FetchError,
    now: datetime,
    parsed: Parsed | None = None,
) -> SourceResult:
    """Store one remote result (parsing it unless `parsed` is given) and update the source's health."""
    policy = _health_policy(config, source)
    if isinstance(got, FetchError):
        hops = getattr(got, "redirects", ())
        return _remote_failure(
            deps,
            source,
            state,
            policy,
            now,
            str(got),
            status=got.status,
            headers=getattr(got, "headers", None),
            moved=permanent_redirect(hops),
        )
    moved = permanent_redirect(got.redirects)
    if moved:
        log.warning("%s: permanently moved to %s; update its url in feeds.yaml", source.name, moved)
    fetched = got

    def succeeded(etag: str | None, last_modified: str | None, soon: bool = False) -> None:
        deps.store.put_source_state(
            health.after_success(
                state,
                now=now,
                headers=fetched.headers,
                policy=policy,
                etag=etag,
                last_modified=last_modified,
                permanent_redirect=moved,
            ),
            soon=soon,
        )

    if got.content is None:  # 304: nothing to parse, nothing changes; written with the next 304s
        succeeded(
            got.headers.get("etag") or state.etag, got.headers.get("last-modified") or state.last_modified, soon=True
        )
        return SourceResult(source.name, not_modified=True, unchanged=state.entry_count, moved_to=moved)
    entries, warnings, bad, sigs = parsed if parsed is not None else parse_fetched(config, source, got, now)
    if bad:
        return _remote_failure(deps, source, state, policy, now, bad[0], moved=moved)
    for w in warnings:
        log.warning("%s: %s", source.name, w)
    # One transaction per source: entries, signatures and the new validators land together or
    # not at all (a failed ingest keeps the old validators, so the feed is fetched in full again).
    with deps.store.transaction():
        result = _store_entries(deps, source.name, entries, now, warnings=tuple(warnings), moved_to=moved)
        if sigs:
            deps.store.put_dedupe_signatures(sigs)
        succeeded(got.etag, got.last_modified)
    return result


def _not_fetched(config: Config, source: SourceConfig, state: SourceState) -> SourceResult:
    """A remote source skipped in this run: disabled, or not due yet (backoff, Retry-After, max-age)."""
    policy = _health_policy(config, source)
    if state.disabled:
        return SourceResult(
            source.name,
            failed=True,
            error=state.last_error or "disabled",
            consecutive_failures=state.consecutive_failures,
            lasting=True,
            unchanged=state.entry_count,
        )
    if state.consecutive_failures:  # still broken: say so, and when the next try is
        return SourceResult(
            source.name,
            failed=True,
            error=f"{state.last_error} (backing off)",
            consecutive_failures=state.consecutive_failures,
            lasting=health.should_warn(state, policy),
            deferred_until=state.next_attempt,
            unchanged=state.entry_count,
        )
    return SourceResult(source.name, unchanged=state.entry_count, deferred_until=state.next_attempt)


Progress = Callable[[SourceResult, int, int], None]


def refresh(config: Config, deps: Deps, *, force: bool = False, progress: Progress | None = None) -> RunReport:
    """Read every source, store new and changed entries, rebuild stories, write the feeds.

    Remote sources that are backing off or cached (`next_attempt` in the future) are skipped
    unless `force`; disabled ones (410 Gone) are skipped until `aggregator sources enable`.
    `progress(result, done, total)` is called after each source.
    """
    now = deps.clock()
    retag_stored(config, deps, now)
    results: dict[str, SourceResult] = {}
    remote: list[tuple[SourceConfig, SourceState]] = []
    enabled = [s for s in config.sources if s.enabled]

    def done(result: SourceResult) -> None:
        results[result.source] = result
        if progress is not None:
            progress(result, len(results), len(enabled))

    states = deps.store.get_source_states(s.name for s in enabled if s.is_remote)
    for source in enabled:
        if source.is_remote:
            state = states[source.name]
            if state.disabled or not (force or health.is_due(state, now)):
                done(_not_fetched(config, source, state))
            else:
                remote.append((source, state))
            continue
        try:
            done(refresh_source_local(config, deps, source, now))
        except (AggregatorError, OSError, ValueError) as exc:
            done(SourceResult(source.name, failed=True, error=str(exc)))
    # Sources that failed last time start first, so their possible deadlines overlap healthy fetches.
    remote.sort(key=lambda job: -job[1].consecutive_failures)
    # Parsing is CPU work per document: a big refresh hands the fetched bytes to worker processes
    # (feedparser is single-threaded) and stores each result here as it comes back: one writer.
    # Sources without validators always send a body: if many do, start the workers right away.
    unconditional = sum(1 for _, st in remote if not (st.etag or st.last_modified))
    # The workers get what parsing reads of the config as plain data (ParseConfig, ParseSource).
    with DocPool(ParseConfig.of(config), parse_fetched, jobs=len(remote), warm=unconditional >= MIN_JOBS) as pool:
        # Fetch no further ahead than the parsers can take: the other feeds are requested as they catch up.
        for i, got in deps.fetcher.fetch_iter(remote, ahead=pool.max_pending):
            source, state = remote[i]
            if isinstance(got, Fetched) and got.content is not None:
                pool.submit((source, state, got), ParseSource.of(source), got, now, state.entry_count == 0)
            else:
                done(_record_remote(config, deps, source, state, got, now))
            for (src, st, doc), parsed in pool.drain():
                done(_record_remote(config, deps, src, st, doc, now, parsed))
        for (src, st, doc), parsed in pool.drain(block=True):
            done(_record_remote(config, deps, src, st, doc, now, parsed))
    deps.store.flush_source_states()  # the last 304s' states
    # Nothing new since the last publish (the usual unchanged re-poll): the outputs are current.
    kept = None if force else _publish_stamp.unchanged(config, deps.store)
    if kept is not None:
        outputs = kept
    else:
        # Stories rebuilt from the store: every body is normalize's nh3 output (publish.content_html).
        from .publish import publish_all  # feedgen and lxml load after the parse phase

        outputs = [str(p) for p in publish_all(config, rebuild_stories(config, deps), clean_html=True)]
        _publish_stamp.remember(config, deps.store, outputs)
    ordered = tuple(results[s.name] for s in config.sources if s.name in results)
    return RunReport(results=ordered, outputs=tuple(outputs))


_TOPICS_STATE_KEY = "topic-rules"


def retag_stored(config: Config, deps: Deps, now: datetime) -> int:
    """Re-tag stored entries when the topic rules in feeds.yaml changed since the last run.

    Topics are assigned at ingest; without this, an entry whose feed answers 304 (or that left
    its feed) would keep the old rules' topics for ever. Runs before ingest, so a first run on an
    empty store costs nothing. Returns the number of entries whose topics changed.
    """
    rules = {key: rule.model_dump(mode="json") for key, rule in sorted(config.topics.items())}
    stamp = hashlib.sha256(json.dumps(rules, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    if deps.store.get_dedupe_state(_TOPICS_STATE_KEY) == stamp:
        return 0
    changed = []
    for entry in deps.store.iter_entries():
        topics = assign_topics(entry, config.topics)
        if topics != entry.topics:
            changed.append(dataclasses.replace(entry, topics=topics))
    with deps.store.transaction():
        if changed:
            deps.store.upsert_entries(changed, now)
        deps.store.set_dedupe_state(_TOPICS_STATE_KEY, stamp)
    if changed:
        log.info("topic rules changed: re-tagged %d stored entries", len(changed))
    return len(changed)


def _cluster_stored(config: Config, deps: Deps, *, until: datetime | None = None) -> Clustering:
    """Cluster the stored entries, keeping stored story assignments.

    Works from the entries without their bodies (most of a stored entry): clustering loads the
    texts of the few it compares or must hash, and only the signatures it needs. The stories
    hold those body-less entries; callers load the bodies of the stories they render.
    """
    store = deps.store
    entries: list[Entry] = []
    lengths: dict[str, int] = {}
    for entry, length in store.iter_entry_heads(until=until):
        entries.append(entry)
        lengths[entry.id] = length
    links = store.story_links()
    state = store.get_dedupe_state(DEDUPE_STATE_KEY)
    needed, since = signature_horizon(entries, links, state, config.dedupe)
    # Rows for every entry, keyed by the entries' own id strings (not a second copy of each); the
    # stored signatures are streamed into them (as Signature objects they cost twice the memory).
    sigs = SignatureRows(e.id for e in entries) if needed else SignatureRows()
    if needed:
        sigs.load(store.iter_dedupe_signatures(since=since))
    bodies = Bodies(lengths, store.entry_texts)
    return cluster(entries, config.dedupe, links=links, signatures=sigs, state=state, bodies=bodies)


def rebuild_stories(config: Config, deps: Deps) -> list[Story]:
    """Assign new entries to stories (existing assignments stay) and store why each one joined.

    Returns every story, newest first. The members of the stories `publish_all` renders (the
    feed's window, each topic's, and with `feed.archive` all) are whole entries; the others'
    carry no body (content_html, content_text and summary empty), so a big store is never held
    in memory whole.
    """
    result = _cluster_stored(config, deps)
    with deps.store.transaction():
        if result.signatures:
            deps.store.put_dedupe_signatures({k: (s.basis, s.body, s.title) for k, s in result.signatures.items()})
        if result.changed:
            deps.store.put_story_links(result.changed)
        deps.store.set_dedupe_state(DEDUPE_STATE_KEY, fingerprint(config.dedupe))
    stories = result.stories
    if config.feed.archive:
        rendered = {s.id for s in stories}
    else:  # the same selection as publish.render_all
        from .publish import select_window

        rendered = {s.id for s in select_window(config, stories)}
        for key in config.topics:
            rendered.update(s.id for s in select_window(config, [s for s in stories if key in s.topics]))
    whole = deps.store.get_entries(m.id for s in stories if s.id in rendered for m in s.members)
    return [
        Story(s.id, whole.get(s.primary.id, s.primary), tuple(whole.get(o.id, o) for o in s.others))
        if s.id in rendered
        else s
        for s in stories
    ]


def stories_in_window(config: Config, deps: Deps, start: datetime, end: datetime) -> list[Story]:
    """Stories whose first member was first seen in [start, end): late copies don't resend a story.

    Members first seen after `end` are left out, so a past window shows what was known then.
    """
    stories = _cluster_stored(config, deps, until=end).stories
    chosen = [s for s in stories if s.first_seen and start <= s.first_seen < end]
    whole = deps.store.get_entries(m.id for s in chosen for m in s.members)
    return [
        Story(s.id, whole.get(s.primary.id, s.primary), tuple(whole.get(o.id, o) for o in s.others)) for s in chosen
    ]


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
