"""The command line: a thin click layer over the pipeline.

Every AggregatorError becomes one message on stderr and its exit code (2 for config errors).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from . import __version__
from .config import Config, load_config
from .errors import AggregatorError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AggregatorError as exc:
            for line in str(exc).splitlines():  # a config error lists every problem, one a line
                click.echo(f"error: {line}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


class Ctx:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    default="feeds.yaml",
    show_default=True,
    envvar="AGGREGATOR_CONFIG",
    type=click.Path(dir_okay=False),
    help="Path to feeds.yaml (env AGGREGATOR_CONFIG).",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_path: str) -> None:
    """Merge rare-earth and university–industry news feeds and local article pages into one
    deduplicated Atom feed and weekly email digests."""
    ctx.obj = Ctx(config_path)


@main.command()
@pass_ctx
@handle_errors
def validate(ctx: Ctx) -> None:
    """Check feeds.yaml and report problems without running anything."""
    config = ctx.config
    local = sum(1 for s in config.sources if not s.is_remote)
    click.echo(
        f"{ctx.config_path}: OK — {len(config.sources)} sources ({local} local, {len(config.sources) - local} remote), "
        f"{len(config.topics)} topics, {len(config.digests)} digests"
    )


def _when(dt: datetime | None, config: Config) -> str:
    """A stored UTC time shown in the configured time zone."""
    return dt.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%d %H:%M") if dt else "-"


def _result_summary(r: Any, config: Config) -> str:
    """One-line status of a SourceResult for the table and the progress lines."""
    if r.failed:
        if r.lasting:
            return click.style(f"FAILED: {r.error}", fg="red")
        retry = f", retry after {_when(r.deferred_until, config)}" if r.deferred_until else ""
        return click.style(f"failed ({r.consecutive_failures}x{retry}): {r.error}", fg="yellow")
    if r.deferred_until and not (r.new or r.updated):
        return f"not due until {_when(r.deferred_until, config)}"
    if r.not_modified:
        return "not modified (304)"
    return "ok"


@main.command()
@click.option(
    "--force",
    is_flag=True,
    help="Also fetch remote sources that are backing off or cached (not disabled ones), and re-publish"
    " the feeds even when nothing changed.",
)
@pass_ctx
@handle_errors
def refresh(ctx: Ctx, force: bool) -> None:
    """Read every source, normalise, deduplicate, store, and write the Atom feeds.

    On a terminal a progress bar runs; otherwise one line per source goes to stderr. A failure
    shows in red only once it has lasted `fetch.warn_after_failures` runs (see `sources`).
    """
    from .pipeline import make_deps
    from .pipeline import refresh as run_refresh

    config = ctx.config
    deps = make_deps(config)
    total = sum(1 for s in config.sources if s.enabled)
    bar: Any = None
    if sys.stderr.isatty() and total > 1:
        bar = click.progressbar(length=total, label="refreshing", file=sys.stderr, show_pos=True)
        bar.__enter__()

    def progress(r: Any, done: int, total: int) -> None:
        if bar is not None:
            bar.update(1)
            return
        counts = f"{r.new} new, {r.updated} updated" if not r.failed else ""
        status = click.unstyle(_result_summary(r, config))
        click.echo(f"[{done}/{total}] {r.source}: {counts + '; ' if counts else ''}{status}", err=True)

    try:
        report = run_refresh(config, deps, force=force, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        deps.close()
    width = max((len(r.source) for r in report.results), default=6)
    click.echo(f"{'source':<{width}}  {'new':>4} {'upd':>4} {'same':>4}  status")
    for r in report.results:
        click.echo(f"{r.source:<{width}}  {r.new:>4} {r.updated:>4} {r.unchanged:>4}  {_result_summary(r, config)}")
        if r.moved_to:
            click.echo(f"{'':<{width}}  moved permanently to {r.moved_to}: update its url in feeds.yaml")
        for w in r.warnings:
            click.echo(f"{'':<{width}}  warning: {w}")
        for s in r.skipped if not r.failed else r.skipped[1:]:
            click.echo(f"{'':<{width}}  skipped: {s}")
    click.echo("outputs:")
    for p in report.outputs:
        click.echo(f"  {_shown_path(p)}")
    if report.failed:
        passing = sum(1 for r in report.failed if r.consecutive_failures and not r.lasting)
        note = f" ({passing} for the first time or two: retried with backoff)" if passing else ""
        click.echo(
            f"{len(report.failed)} of {len(report.results)} sources failed{note}; the others were processed.",
            err=True,
        )


def _shown_path(path: str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _parse_when(value: str | None, tz: ZoneInfo, *, end: bool = False) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from exc
    if len(value) <= 10 and end:
        dt = datetime.combine(dt.date(), time.max)  # --until 2026-11-20 includes that whole day
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


@main.command()
@click.option("--since", help="Start of the window (first-seen time), YYYY-MM-DD[THH:MM]; default 7 days ago.")
@click.option("--until", help="End of the window (exclusive), default now.")
@click.option("--topic", "topics", multiple=True, help="Only these topic keys (repeatable). Default: all.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Directory for digest.html, digest.txt, digest.eml (one-off digests and --dry-run).",
)
@click.option(
    "--max-per-topic",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many stories per topic.",
)
@click.option(
    "--to", "recipient", default="reader@localhost", show_default=True, help="Recipient written into digest.eml."
)
@click.option(
    "--subscription", "-s", "subscription", help="A subscription from feeds.yaml `digests:` (default for --send: all)."
)
@click.option("--send", is_flag=True, help="Deliver the subscriptions' digests (SMTP or outbox) through the ledger.")
@click.option("--dry-run", is_flag=True, help="With --send: render and show what would be sent; send nothing.")
@click.option("--list", "list_", is_flag=True, help="List the ledger: what was sent when, to whom, and its status.")
@pass_ctx
@handle_errors
def digest(
    ctx: Ctx,
    since: str | None,
    until: str | None,
    topics: tuple[str, ...],
    out_dir: str | None,
    max_per_topic: int,
    recipient: str,
    subscription: str | None,
    send: bool,
    dry_run: bool,
    list_: bool,
) -> None:
    """Write a one-off digest, or send the subscriptions' digests exactly once.

    \b
    One-off:  aggregator digest --out DIR [--since D] [--until D] [--topic K] [-s NAME]
    Send:     aggregator digest --send [-s NAME] [--since D --until D] [--dry-run]
    Ledger:   aggregator digest --list [-s NAME]

    --send first re-sends pending copies whose retry time has come, then sends each
    subscription's digest for the window since its last sent digest (first time: 7 days).
    Exit status 1 when a copy failed or is still pending.
    """
    from .pipeline import default_window, make_deps

    config = ctx.config
    subs = config.digests
    if subscription is not None:
        subs = tuple(d for d in config.digests if d.name == subscription)
        if not subs:
            known = ", ".join(d.name for d in config.digests) or "(none in feeds.yaml)"
            raise click.BadParameter(
                f"unknown subscription {subscription!r}; known: {known}", param_hint="--subscription"
            )
    unknown = [t for t in topics if t not in config.topics]
    if unknown:
        raise click.BadParameter(
            f"unknown topic(s): {', '.join(unknown)}; known: {', '.join(sorted(config.topics))}", param_hint="--topic"
        )
    if list_:
        _digest_list(config, subscription)
        return
    if dry_run and not send:
        send = True  # --dry-run alone means "show what --send would do"
    if send and topics:
        raise click.BadParameter("a subscription's topics come from feeds.yaml", param_hint="--topic")
    if send and not subs:
        raise click.UsageError("feeds.yaml has no `digests:` subscriptions to send")
    if not send and out_dir is None:
        raise click.UsageError("give --out DIR for a one-off digest, or --send to deliver subscriptions")
    tz = ZoneInfo(config.timezone)
    deps = make_deps(config)
    try:
        now = deps.clock()
        start_opt = _parse_when(since, tz)
        end_opt = _parse_when(until, tz, end=True)
        if send and dry_run:
            _digest_send(config, deps, subs, start_opt, end_opt, now, dry_run=True, out_dir=out_dir)
            return
        if send:
            from .lock import instance_lock

            # One sender at a time: the daemon and a manual --send must not race on the ledger.
            with instance_lock(config, "digest --send"):
                ok = _digest_send(config, deps, subs, start_opt, end_opt, now, dry_run=False, out_dir=out_dir)
            if not ok:
                sys.exit(1)
            return
        start, end = default_window(now)
        _digest_one_off(
            config,
            deps,
            subs[0] if subscription else None,
            start_opt or start,
            end_opt or end,
            now,
            topics=topics,
            max_per_topic=max_per_topic,
            recipient=recipient,
            out_dir=Path(out_dir or "."),
        )
    finally:
        deps.close()


def _digest_one_off(
    config: Config,
    deps: Any,
    sub: Any,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    topics: tuple[str, ...],
    max_per_topic: int,
    recipient: str,
    out_dir: Path,
) -> None:
    from .config import DigestConfig
    from .digest_send import render_copies
    from .pipeline import write_digest_files

    # One rendering path for one-off and scheduled digests: an ad-hoc subscription when none is named.
    if sub is None:
        sub = DigestConfig(name="one-off", recipients=(recipient,), topics=topics, max_items_per_topic=max_per_topic)
    elif topics:
        sub = sub.model_copy(update={"topics": topics})
    count, copies = render_copies(config, deps, sub, start, end, now, (recipient,))
    paths = write_digest_files(copies[0].digest, out_dir, copies[0].data)
    click.echo(f"{count} stories, {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC")
    for p in paths:
        click.echo(f"  {p}")


def _digest_send(
    config: Config,
    deps: Any,
    subs: tuple[Any, ...],
    start_opt: datetime | None,
    end_opt: datetime | None,
    now: datetime,
    *,
    dry_run: bool,
    out_dir: str | None,
) -> bool:
    """Retry due pending copies, then send each subscription's period. True when nothing is left."""
    from .digest_send import render_copies
    from .pipeline import retry_pending, scheduled_window, send_digest

    ok = True
    for sub in subs:
        start, end = scheduled_window(deps, sub, now)
        start, end = start_opt or start, end_opt or end
        if dry_run:
            count, copies = render_copies(config, deps, sub, start, end, now)
            click.echo(f"{sub.name}: {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC, {count} stories (dry run)")
            if count == 0 and not sub.send_empty:
                click.echo("  nothing new: would send nothing")
                continue
            for c in copies:
                click.echo(f"  would send to {c.recipient}: {c.subject} {c.message_id} ({len(c.data)} bytes)")
            if out_dir and copies:
                for c in copies:
                    path = Path(out_dir) / f"{sub.name}-{c.recipient}.eml"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(c.data)
                    click.echo(f"  {path}")
            continue
        for report in retry_pending(config, deps, sub.name):
            ok = _echo_report(report, retry=True) and ok
        ok = _echo_report(send_digest(config, deps, sub, start, end)) and ok
    return ok


def _echo_report(report: Any, *, retry: bool = False) -> bool:
    what = "retry of" if retry else "digest"
    count = "" if report.item_count is None else f", {report.item_count} stories"
    click.echo(
        f"{report.subscription}: {what} {report.period_start:%Y-%m-%d %H:%M} – {report.period_end:%Y-%m-%d %H:%M} UTC{count}"
    )
    if report.skipped_empty:
        click.echo("  nothing new: nothing sent (the next digest's window starts at the same time)")
        return True
    for r in report.results:
        line = f"  {r.recipient}: {r.action}"
        if r.status == "pending" and r.next_attempt:
            line += f" (attempt {r.attempts}, next try after {r.next_attempt:%Y-%m-%d %H:%M} UTC)"
        if r.error and r.status != "sent":
            line += f" — {r.error}"
        click.echo(click.style(line, fg="red") if r.status == "failed" else line)
    if report.error:
        click.echo(f"error: {report.error}", err=True)
    if not report.ok:
        click.echo(
            f"{report.subscription}: {len(report.sent)} delivered, {len(report.pending)} pending, "
            f"{len(report.failed)} failed",
            err=True,
        )
    return bool(report.ok)


def _digest_list(config: Config, subscription: str | None) -> None:
    from .ledger import Ledger
    from .store import SQLiteStore

    store = SQLiteStore(config.database_path)
    try:
        rows = Ledger(store).rows(subscription)
    finally:
        store.close()
    if not rows:
        click.echo("no digests recorded yet")
        return
    tz = ZoneInfo(config.timezone)
    click.echo(f"times in {config.timezone}")
    click.echo(f"{'subscription':<14} {'period':<35} {'recipient':<28} {'status':<8} {'tries':>5}  when")
    for r in rows:
        period = f"{r.period_start.astimezone(tz):%Y-%m-%d %H:%M} → {r.period_end.astimezone(tz):%Y-%m-%d %H:%M}"
        if r.status == "sent" and r.sent_at:
            when = f"sent {r.sent_at.astimezone(tz):%Y-%m-%d %H:%M}"
        elif r.status == "pending":
            when = f"next try {r.next_attempt.astimezone(tz):%Y-%m-%d %H:%M}" if r.next_attempt else "not tried yet"
        else:
            when = ""
        click.echo(f"{r.subscription:<14} {period:<35} {r.recipient:<28} {r.status:<8} {r.attempts:>5}  {when}")
        if r.last_error and r.status != "sent":
            click.echo(f"{'':<14} {'':<35} {r.last_error}")


@main.command()
@click.argument("entry_id", required=False)
@click.option(
    "--file",
    "file_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Extract this page now (nothing is stored) instead of showing a stored entry.",
)
@click.option("--source", "source_name", help="With --file: use this source's overrides (site name, timezone...).")
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
@pass_ctx
@handle_errors
def show(ctx: Ctx, entry_id: str | None, file_path: str | None, source_name: str | None, as_json: bool) -> None:
    """Print what was extracted for an entry (id or unique id prefix), with the published date's
    precision and where in the page it was found. With --file, extract a page without storing it."""
    from .store import SQLiteStore

    config = ctx.config
    if (entry_id is None) == (file_path is None):
        raise click.UsageError("give an ENTRY_ID or --file PATH (one of them)")
    if file_path is not None:
        entries = _extract_file(config, Path(file_path), source_name)
    else:
        assert entry_id is not None
        store = SQLiteStore(config.database_path)
        try:
            entries = store.find_entries(entry_id)
        finally:
            store.close()
        if len(entries) != 1:
            raise AggregatorError(
                f"{len(entries)} entries match id {entry_id!r}" + ("; give more characters" if entries else "")
            )
    for n, e in enumerate(entries):
        tz = ZoneInfo(_source_tz(config, e.source))
        if as_json:
            click.echo(json.dumps(_entry_fields(e, tz), ensure_ascii=False, indent=2))
            continue
        if n:
            click.echo("\n" + "-" * 60)
        click.echo(f"id:         {e.id}")
        click.echo(f"source:     {e.source} ({e.location})")
        click.echo(f"title:      {e.title}")
        click.echo(f"published:  {_shown_date(e, tz)} [precision: {e.date_precision.value}]")
        click.echo(f"date from:  {e.date_provenance or '-'}")
        click.echo(f"site:       {e.site_name or '-'} ({e.site_domain or '-'})")
        click.echo(f"authors:    {'; '.join(e.authors) or '-'}")
        click.echo(f"language:   {e.language or '-'}")
        click.echo(f"topics:     {', '.join(e.topics) or '-'}")
        click.echo(f"link:       {e.link or '-'}")
        click.echo(f"first seen: {e.first_seen.isoformat() if e.first_seen else '-'}")
        click.echo("")
        click.echo(e.content_text)


def _source_tz(config: Config, source: str) -> str:
    for s in config.sources:
        if s.name == source and s.timezone:
            return s.timezone
    return config.timezone


def _shown_date(e: Any, tz: ZoneInfo) -> str:
    """The published date as the page meant it: local clock time, a day, or unknown."""
    if e.published is None:
        return "unknown"
    local = e.published.astimezone(tz)
    if e.date_precision.value == "minute":
        return f"{local:%Y-%m-%d %H:%M} {tz.key} ({e.published.isoformat()})"
    note = " (year inferred)" if e.date_precision.value == "inferred-year" else ""
    return f"{local:%Y-%m-%d}{note} ({tz.key})"


def _entry_fields(e: Any, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": e.id,
        "source": e.source,
        "location": e.location,
        "title": e.title,
        "published": e.published.isoformat() if e.published else None,
        "published_local": e.published.astimezone(tz).isoformat() if e.published else None,
        "precision": e.date_precision.value,
        "date_provenance": e.date_provenance,
        "site_name": e.site_name,
        "site_domain": e.site_domain,
        "authors": list(e.authors),
        "language": e.language,
        "topics": list(e.topics),
        "link": e.link,
        "text": e.content_text,
    }


def _extract_file(config: Config, path: Path, source_name: str | None) -> list[Any]:
    """Parse and normalise one page or feed file as a local source would, without storing it."""
    import dataclasses

    from .errors import ParseError
    from .local import MAX_FILE_BYTES, kind_of
    from .normalize import normalize
    from .parse import parse_document
    from .pipeline import utc_now
    from .topics import assign_topics
    from .types import Fetched

    source = None
    if source_name is not None:
        try:
            source = config.source(source_name)
        except KeyError:
            raise click.BadParameter(f"no source named {source_name!r}", param_hint="--source") from None
    if path.stat().st_size > MAX_FILE_BYTES:
        raise AggregatorError(f"{path}: over the {MAX_FILE_BYTES}-byte cap")
    now = utc_now()  # the CLI is the edge: the fetch time of a preview is now
    doc = Fetched(
        source=source.name if source else "preview", location=path.name, content=path.read_bytes(), kind=kind_of(path)
    )
    tz = ZoneInfo((source.timezone if source else None) or config.timezone)
    try:
        items, _ = parse_document(
            doc,
            tz=tz,
            fetched_at=now,
            site_name=source.site_name if source else None,
            extra_boilerplate=source.boilerplate if source else (),
        )
    except ParseError as exc:
        raise AggregatorError(f"{path}: {exc}") from exc
    entries = [normalize(item, fetched_at=now) for item in items]
    return [dataclasses.replace(e, topics=assign_topics(e, config.topics)) for e in entries]


@main.command()
@click.argument("entry_id")
@pass_ctx
@handle_errors
def explain(ctx: Ctx, entry_id: str) -> None:
    """Why entries were merged: the story of an entry (id, unique prefix, or the story's Atom id),
    each member's merge rule and score as stored, the evidence behind it, and each member's topic
    scores with matched terms."""
    from .dedupe import explain_story, primary_key
    from .publish import story_uri
    from .store import SQLiteStore
    from .topics import score_entry

    config = ctx.config
    store = SQLiteStore(config.database_path)
    try:
        links = store.story_links()
        if entry_id.startswith("urn:uuid:"):  # an Atom entry id, as a feed reader shows it
            found = {sid for sid in {v.story_id for v in links.values()} if story_uri(config, sid) == entry_id}
            entry_id = found.pop() if found else entry_id
        matches = store.find_entries(entry_id)
        if len(matches) != 1:
            raise AggregatorError(
                f"{len(matches)} entries match id {entry_id!r}"
                + ("; give more characters" if matches else "; run `aggregator refresh` first?")
            )
        if matches[0].id not in links:
            raise AggregatorError(f"entry {matches[0].id} has no story yet; run `aggregator refresh`")
        story_id = links[matches[0].id].story_id
        entries = {e.id: e for e in store.iter_entries()}
    finally:
        store.close()
    why = explain_story(story_id, entries, links, config.dedupe)
    primary = min((m.entry for m in why), key=primary_key(config.dedupe.priority)).id
    count = f"{len(why)} entr{'y' if len(why) == 1 else 'ies'}"
    click.echo(f"story {story_id}: {count}; Atom id {story_uri(config, story_id)}")
    for m in why:
        e, link, ev = m.entry, m.link, m.evidence
        click.echo("")
        click.echo(f"* {e.id}  [{e.source}]  {e.title}" + ("  (published)" if e.id == primary else ""))
        published = e.published.date().isoformat() if e.published else "unknown"
        click.echo(f"    published {published}; first seen {e.first_seen.isoformat() if e.first_seen else '-'}")
        if link.matched_with:
            click.echo(f"    merged by: {link.rule}, score {link.score:.3f}, matched with {link.matched_with}")
        else:
            click.echo(f"    merged by: {link.rule} (the story's first entry)")
        if ev is not None:
            days = "-" if ev.days_apart is None else f"{ev.days_apart:g}"
            nums = "-" if ev.numbers is None else f"{ev.numbers:.2f}"
            click.echo(
                f"    evidence: text containment {ev.containment:.2f}, jaccard {ev.jaccard:.2f}, title {ev.title:.2f},"
                f" shorter text {ev.size} shingles, days apart {days}, numbers agree {nums}"
            )
            click.echo(f"    today's verdict: {ev.rule or 'no merge'} ({ev.reason})")
        for t in score_entry(e, config.topics):
            terms = ", ".join(f"{term} {w:g}" for term, w in t.matched) or "no terms matched"
            state = "assigned" if t.assigned else (f"vetoed by {t.excluded_by!r}" if t.excluded_by else "not assigned")
            click.echo(f"    topic {t.topic}: score {t.score:g} ({state}): {terms}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--schedule", is_flag=True, help="Also run the refresh/digest schedule while serving.")
@pass_ctx
@handle_errors
def serve(ctx: Ctx, host: str, port: int, schedule: bool) -> None:
    """Serve the output directory (feeds, topics/, archive/, digests) over HTTP with ETags and 304s."""
    from . import serve as serving

    config = ctx.config
    hooks: list[serving.ServeHook] = []
    if schedule:
        # Hook for the scheduler: aggregator.schedule.serve_hook(config) returns a context
        # manager factory that starts the schedule with the server and stops it on shutdown.
        try:
            from .schedule import serve_hook  # type: ignore[attr-defined, unused-ignore]
        except ImportError as exc:
            raise AggregatorError("--schedule is not available: aggregator.schedule has no serve_hook") from exc
        hooks.append(serve_hook(config))
    out = config.output_path
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"serving {out} on http://{host}:{port}/ (Ctrl-C to stop)")
    serving.run(out, host=host, port=port, hooks=hooks)


@main.command()
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Log verbosity (stderr); info gives one line per job run.",
)
@pass_ctx
@handle_errors
def schedule(ctx: Ctx, log_level: str) -> None:
    """Run the scheduler in the foreground: refresh every N minutes, digests on their schedules.

    Sends each digest period exactly once: at start, and at each scheduled time, the ledger says
    what is due (a period missed while down is caught up once, per `schedule.catch_up`). Holds the
    single-instance lock: a second daemon or `digest --send` exits with status 3. Stops cleanly on
    SIGTERM or Ctrl-C, after the running job. Schedule changes in feeds.yaml apply at next start.
    """
    from .schedule import configure_logging, run_daemon

    config = ctx.config
    configure_logging(log_level)
    sys.exit(run_daemon(config))


@main.command()
@pass_ctx
@handle_errors
def status(ctx: Ctx) -> None:
    """Show whether the scheduler runs, each job's next run time, and the last digest sent."""
    from .pipeline import utc_now
    from .schedule import status_lines

    for line in status_lines(ctx.config, utc_now()):
        click.echo(line)


# -- sources and OPML ------------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.pass_context
@handle_errors
def sources(cctx: click.Context) -> None:
    """Show every source's health: status, last success, failures, next try, last error."""
    if cctx.invoked_subcommand is not None:
        return
    from datetime import timedelta

    from .health import HealthPolicy, status_label
    from .pipeline import utc_now
    from .store import SQLiteStore

    config = cctx.find_object(Ctx).config  # type: ignore[union-attr]
    store = SQLiteStore(config.database_path)
    try:
        states = {s.name: store.get_source_state(s.name) for s in config.sources}
    finally:
        store.close()
    now = utc_now()
    width = max(len(s.name) for s in config.sources)
    click.echo(f"{'source':<{width}}  {'status':<16} {'last success':<16}  {'next try':<16}  entries")
    for src in config.sources:
        st = states[src.name]
        if not src.is_remote:
            label = "local" + ("" if src.enabled else " (off)")
        elif not src.enabled:
            label = "off (enabled: false)"
        else:
            policy = HealthPolicy(
                warn_after_failures=config.fetch.warn_after_failures,
                max_backoff=timedelta(hours=config.fetch.max_backoff_hours),
            )
            label = status_label(st, now, policy)
        nxt = _when(st.next_attempt, config) if st.next_attempt and st.next_attempt > now else "-"
        line = f"{src.name:<{width}}  {label:<16} {_when(st.last_success, config):<16}  {nxt:<16}  {st.entry_count}"
        click.echo(click.style(line, fg="red") if st.disabled or label.startswith("failing") else line)
        if st.last_error and src.is_remote:
            click.echo(f"{'':<{width}}  last error: {st.last_error}")
        if st.redirected_to:
            click.echo(f"{'':<{width}}  moved permanently to {st.redirected_to}: update its url in feeds.yaml")


@sources.command("enable")
@click.argument("name")
@pass_ctx
@handle_errors
def sources_enable(ctx: Ctx, name: str) -> None:
    """Re-enable a source disabled by 410 Gone and forget its failures."""
    from .health import enable
    from .store import SQLiteStore

    config = ctx.config
    if name not in {s.name for s in config.sources if s.is_remote}:
        raise AggregatorError(f"no remote source named {name!r} in {ctx.config_path}")
    store = SQLiteStore(config.database_path)
    try:
        store.put_source_state(enable(store.get_source_state(name)))
    finally:
        store.close()
    click.echo(f"{name}: enabled; it is fetched on the next refresh")


@main.group()
def opml() -> None:
    """Import feeds from an OPML subscription list, or export the remote sources as OPML."""


@opml.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--write", is_flag=True, help="Append the new sources to feeds.yaml (default: print their YAML).")
@pass_ctx
@handle_errors
def opml_import(ctx: Ctx, file: str, write: bool) -> None:
    """Read FILE (OPML) and add its feeds as sources; already configured URLs are skipped.

    Without --write the new `sources:` entries are printed for review; with --write they are
    appended to the end of the `sources:` list in feeds.yaml (comments kept) and the result is
    validated before it replaces the file.
    """
    from .opml import append_to_config, new_sources, read_opml, sources_yaml
    from .publish import write_atomic

    config = ctx.config
    feeds = read_opml(Path(file).read_bytes(), where=file)
    entries, notes = new_sources(config.sources, feeds)
    for note in notes:
        click.echo(note, err=True)
    if not entries:
        click.echo("nothing to add", err=True)
        return
    if not write:
        click.echo(sources_yaml(entries), nl=False)
        click.echo(f"{len(entries)} new source(s); run again with --write to append them to feeds.yaml", err=True)
        return
    path = Path(ctx.config_path)
    updated = append_to_config(path.read_text(encoding="utf-8"), entries)
    check = path.with_name(f".{path.name}.opml-check")
    check.write_text(updated, encoding="utf-8")
    try:
        load_config(check)  # the merged file must validate before it replaces the real one
    finally:
        check.unlink(missing_ok=True)
    write_atomic(path, updated.encode("utf-8"))
    click.echo(f"added {len(entries)} source(s) to {path}")


@opml.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@pass_ctx
@handle_errors
def opml_export(ctx: Ctx, out: str | None) -> None:
    """Write every remote source as OPML 2.0."""
    from .opml import export_opml
    from .pipeline import utc_now

    data = export_opml(ctx.config.title, ctx.config.sources, utc_now())
    if out:
        Path(out).write_bytes(data)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(data.decode("utf-8"), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
