"""Scheduled digests, one period of one subscription: stories -> messages -> ledger -> mailer.

`pipeline.send_digest` and `pipeline.retry_pending` are the public entry points; this module
holds their steps so pipeline.py stays a readable list of stages.

Order per call (the exactly-once protocol, see ledger.py):
1. render every recipient's message that the ledger does not hold yet;
2. commit those rows as `pending`, with the Message-ID and the exact bytes;
3. send each due pending row, committing its outcome before the next send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .config import Config, DigestConfig
from .deliver import (
    DeliveryReport,
    RecipientResult,
    build_message,
    deliver_rows,
    domain_of,
    list_id,
    message_id,
    result_of,
    unsubscribe_mailto,
)
from .digest import build_context, render_digest
from .ledger import Ledger, LedgerRow
from .types import Digest

if TYPE_CHECKING:
    from .pipeline import Deps


@dataclass(frozen=True)
class RenderedCopy:
    """One recipient's finished message."""

    recipient: str
    message_id: str
    subject: str
    data: bytes
    digest: Digest  # the rendered HTML and text, for `digest --out`


def render_copies(
    config: Config,
    deps: Deps,
    subscription: DigestConfig,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    recipients: tuple[str, ...] | None = None,
) -> tuple[int, list[RenderedCopy]]:
    """Render the period's digest for each recipient (the footer names the recipient).

    Returns the story count and the messages. Pure apart from reading the store.
    """
    from .pipeline import stories_in_window

    stories = stories_in_window(config, deps, period_start, period_end)
    sender = config.smtp.sender
    unsubscribe = subscription.unsubscribe_url or unsubscribe_mailto(sender, subscription.name)
    base = build_context(
        config,
        stories,
        start=period_start,
        end=period_end,
        topics=subscription.topics,
        max_per_topic=subscription.max_items_per_topic,
        subscription=subscription.name,
        unsubscribe=unsubscribe,
    )
    copies = []
    for recipient in recipients if recipients is not None else subscription.recipients:
        digest = render_digest({**base, "recipient": recipient}, subscription.subject)
        mid = message_id(subscription.name, period_start, period_end, recipient, domain_of(sender))
        msg = build_message(
            digest,
            sender=sender,
            recipient=recipient,
            msg_id=mid,
            date=now,
            list_id=list_id(config, subscription.name),
            unsubscribe=unsubscribe,
        )
        copies.append(RenderedCopy(recipient, mid, digest.subject, msg.as_bytes(), digest))
    return int(base["count"]), copies  # type: ignore[call-overload]


def send_period(
    config: Config, deps: Deps, subscription: DigestConfig, period_start: datetime, period_end: datetime
) -> DeliveryReport:
    """See `pipeline.send_digest`."""
    now = deps.clock()
    ledger = Ledger(deps.store)
    name = subscription.name
    existing = {r: ledger.get(name, period_start, r) for r in subscription.recipients}
    # A row of the same start but another end is replaced when it never reached the server: the
    # new period covers the old one (the next scheduled digest after an outage). A sent row is
    # never replaced or sent again.
    need = tuple(
        r for r, row in existing.items() if row is None or (row.status != "sent" and row.period_end != period_end)
    )
    count: int | None = None  # known only when this call rendered the digest
    if need:
        count, copies = render_copies(config, deps, subscription, period_start, period_end, now, need)
        if count == 0 and not subscription.send_empty and all(row is None for row in existing.values()):
            return DeliveryReport(name, period_start, period_end, 0, (), skipped_empty=True)
        for c in copies:
            ledger.record(
                subscription=name,
                period_start=period_start,
                period_end=period_end,
                recipient=c.recipient,
                message_id=c.message_id,
                message=c.data,
                now=now,
            )
    rows = [ledger.get(name, period_start, r) for r in subscription.recipients]
    results: dict[str, RecipientResult] = {}
    due: list[LedgerRow] = []
    for row in rows:
        assert row is not None
        if row.period_end != period_end:  # sent earlier for a different end: never again
            results[row.recipient] = RecipientResult(
                row.recipient,
                row.message_id,
                row.status,
                "already-sent",
                row.attempts,
                error=f"a digest for the period starting {period_start.isoformat()} "
                f"(ending {row.period_end.isoformat()}) was already sent",
            )
        elif row.due(now):
            due.append(row)
        elif row.status == "sent":
            results[row.recipient] = result_of(row, "already-sent")
        elif row.status == "failed":
            results[row.recipient] = result_of(row, "already-failed")
        else:
            results[row.recipient] = result_of(row, "waiting")
    batch_error = None
    if due:
        sent, batch_error = _send_rows(config, deps, subscription, due, now)
        results.update(sent)
    ordered = tuple(results[r] for r in subscription.recipients)
    return DeliveryReport(name, period_start, period_end, count, ordered, error=batch_error)


def _send_rows(
    config: Config, deps: Deps, subscription: DigestConfig, rows: list[LedgerRow], now: datetime
) -> tuple[dict[str, RecipientResult], str | None]:
    mailer = deps.mailer_factory(config, subscription)
    try:
        return deliver_rows(Ledger(deps.store), mailer, rows, sender=config.smtp.sender, now=now, policy=config.smtp)
    finally:
        mailer.close()


def retry_due(config: Config, deps: Deps, subscription: str | None = None) -> list[DeliveryReport]:
    """See `pipeline.retry_pending`. Rows of a subscription no longer in feeds.yaml are left alone."""
    now = deps.clock()
    ledger = Ledger(deps.store)
    subs = {d.name: d for d in config.digests}
    groups: dict[tuple[str, datetime, datetime], list[LedgerRow]] = {}
    for row in ledger.pending(subscription):
        if row.due(now) and row.subscription in subs:
            groups.setdefault((row.subscription, row.period_start, row.period_end), []).append(row)
    reports = []
    for (name, start, end), rows in groups.items():
        results, batch_error = _send_rows(config, deps, subs[name], rows, now)
        reports.append(
            DeliveryReport(
                name,
                start,
                end,
                None,
                tuple(results[r.recipient] for r in rows),
                error=batch_error,
            )
        )
    return reports
