"""The sent-digest ledger: one row per (subscription, period, recipient), written before sending.

The row holds the exact message bytes and its Message-ID, so a retry or a restart after a crash
re-sends the same message, never a re-rendered one. States:

    pending --accepted--> sent
    pending --4xx/refused/timeout--> pending (attempts+1, next_attempt = now + backoff)
    pending --5xx, or too many attempts--> failed (last_error = the server's reply)

Exactly once as far as SMTP allows: the only window for a duplicate is between the server's
acceptance and the `mark_sent` commit; a crash there re-sends that one message, with the same
Message-ID, so a client that de-duplicates by Message-ID shows it once.

The SQL lives here (over the `digest_ledger` table created by store/sqlite.py) so the store
protocol stays about entries; a PostgreSQL store would bring its own ledger with this interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from .store import SQLiteStore

Status = Literal["pending", "sent", "failed"]

_COLS = (
    "subscription, period_start, period_end, recipient, message_id, status, attempts, last_error,"
    " next_attempt, message, created_at, sent_at"
)


@dataclass(frozen=True)
class LedgerRow:
    """One digest for one recipient and one period, and what became of it."""

    subscription: str
    period_start: datetime
    period_end: datetime
    recipient: str
    message_id: str
    status: Status
    attempts: int
    last_error: str | None
    next_attempt: datetime | None
    message: bytes
    created_at: datetime
    sent_at: datetime | None

    @property
    def key(self) -> tuple[str, datetime, str]:
        return (self.subscription, self.period_start, self.recipient)

    def due(self, now: datetime) -> bool:
        """A pending row whose backoff has run out (or that was never tried)."""
        return self.status == "pending" and (self.next_attempt is None or self.next_attempt <= now)


def _iso(dt: datetime | None) -> str | None:
    # Stored as UTC ISO strings: they sort in time order, so MAX() and ORDER BY work on text.
    return dt.astimezone(UTC).isoformat() if dt else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


def _row(r: tuple[object, ...]) -> LedgerRow:
    return LedgerRow(
        subscription=str(r[0]),
        period_start=datetime.fromisoformat(str(r[1])),
        period_end=datetime.fromisoformat(str(r[2])),
        recipient=str(r[3]),
        message_id=str(r[4]),
        status=str(r[5]),  # type: ignore[arg-type]
        attempts=int(r[6]),  # type: ignore[call-overload]
        last_error=None if r[7] is None else str(r[7]),
        next_attempt=_dt(None if r[8] is None else str(r[8])),
        message=bytes(r[9]) if r[9] is not None else b"",  # type: ignore[call-overload]
        created_at=datetime.fromisoformat(str(r[10])),
        sent_at=_dt(None if r[11] is None else str(r[11])),
    )


class Ledger:
    """Reads and writes `digest_ledger`. Every write is its own committed transaction."""

    def __init__(self, store: SQLiteStore) -> None:
        self.db = store.db
        self.store = store

    def get(self, subscription: str, period_start: datetime, recipient: str) -> LedgerRow | None:
        r = self.db.execute(
            f"SELECT {_COLS} FROM digest_ledger WHERE subscription=? AND period_start=? AND recipient=?",
            (subscription, _iso(period_start), recipient),
        ).fetchone()
        return _row(r) if r else None

    def record(
        self,
        *,
        subscription: str,
        period_start: datetime,
        period_end: datetime,
        recipient: str,
        message_id: str,
        message: bytes,
        now: datetime,
    ) -> LedgerRow:
        """Write (or replace) a pending row with the message to send. Committed before any sending.

        Replacing is for a pending/failed row of the same start whose period grew (the next
        scheduled digest covers it); callers never replace a sent row.
        """
        with self.store.transaction():
            self.db.execute(
                f"INSERT OR REPLACE INTO digest_ledger({_COLS}) VALUES (?,?,?,?,?,'pending',0,NULL,NULL,?,?,NULL)",
                (
                    subscription,
                    _iso(period_start),
                    _iso(period_end),
                    recipient,
                    message_id,
                    message,
                    _iso(now),
                ),
            )
        row = self.get(subscription, period_start, recipient)
        assert row is not None
        return row

    def _update(self, row: LedgerRow, sql: str, args: tuple[object, ...]) -> None:
        with self.store.transaction():
            self.db.execute(
                f"UPDATE digest_ledger SET {sql} WHERE subscription=? AND period_start=? AND recipient=?",
                (*args, row.subscription, _iso(row.period_start), row.recipient),
            )

    def mark_sent(self, row: LedgerRow, now: datetime) -> None:
        """The server accepted the message: never send this row again."""
        self._update(
            row,
            "status='sent', attempts=attempts+1, sent_at=?, next_attempt=NULL, last_error=NULL",
            (_iso(now),),
        )

    def mark_retry(self, row: LedgerRow, error: str, next_attempt: datetime) -> None:
        """A temporary failure: stays pending, tried again at `next_attempt`."""
        self._update(
            row, "status='pending', attempts=attempts+1, last_error=?, next_attempt=?", (error, _iso(next_attempt))
        )

    def mark_failed(self, row: LedgerRow, error: str) -> None:
        """A permanent failure (5xx, or retries exhausted): reported, never retried."""
        self._update(row, "status='failed', attempts=attempts+1, last_error=?, next_attempt=NULL", (error,))

    def rows(self, subscription: str | None = None) -> list[LedgerRow]:
        """Every row, newest period first, then by recipient (for `digest --list`)."""
        sql, args = f"SELECT {_COLS} FROM digest_ledger", tuple[str, ...]()
        if subscription:
            sql, args = sql + " WHERE subscription=?", (subscription,)
        return [_row(r) for r in self.db.execute(sql + " ORDER BY period_start DESC, subscription, recipient", args)]

    def pending(self, subscription: str | None = None) -> Iterator[LedgerRow]:
        """Pending rows, oldest period first."""
        sql, args = f"SELECT {_COLS} FROM digest_ledger WHERE status='pending'", tuple[str, ...]()
        if subscription:
            sql, args = sql + " AND subscription=?", (subscription,)
        for r in self.db.execute(sql + " ORDER BY period_start, subscription, recipient", args).fetchall():
            yield _row(r)

    def first_period_start(self, subscription: str) -> datetime | None:
        """Start of the earliest recorded period (sent or not)."""
        r = self.db.execute(
            "SELECT MIN(period_start) FROM digest_ledger WHERE subscription=?", (subscription,)
        ).fetchone()
        return _dt(r[0]) if r and r[0] else None

    def last_sent_period_end(self, subscription: str) -> datetime | None:
        """End of the latest period of which at least one recipient's copy was accepted."""
        r = self.db.execute(
            "SELECT MAX(period_end) FROM digest_ledger WHERE subscription=? AND status='sent'", (subscription,)
        ).fetchone()
        return _dt(r[0]) if r and r[0] else None
