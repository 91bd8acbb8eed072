"""EDGE: digests -> email messages -> delivery (SMTP or an .eml outbox), driven by the ledger.

`build_message` is pure and deterministic (Message-ID and MIME boundary derive from the
subscription, period and recipient), so the same digest gives the same bytes apart from Date.
`deliver_rows` sends ledger rows one by one and records each outcome before the next send.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote, urlsplit

from .config import Config, DigestConfig, SmtpConfig
from .errors import DeliveryError
from .ledger import Ledger, LedgerRow, Status
from .publish import write_atomic
from .types import Digest

# -- messages ---------------------------------------------------------------------------------


def message_id(subscription: str, period_start: datetime, period_end: datetime, recipient: str, domain: str) -> str:
    """Deterministic Message-ID per (subscription, period, recipient): a resend is recognisable,
    and a client that de-duplicates by Message-ID shows a crash-resend once."""
    key = f"{subscription}\x1f{period_start.isoformat()}\x1f{period_end.isoformat()}\x1f{recipient.lower()}"
    return f"<digest-{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def list_id(config: Config, subscription: str) -> str:
    """RFC 2919 List-Id: `"Title" <name.host>`, one list per subscription."""
    host = urlsplit(config.base_url).hostname or "localhost"
    return f"{config.title} <{subscription}.{host}>"


def unsubscribe_mailto(sender: str, subscription: str) -> str:
    """The fallback unsubscribe address when no URL is configured: mail the sender."""
    return f"mailto:{sender}?subject={quote(f'unsubscribe {subscription}')}"


def build_message(
    digest: Digest,
    *,
    sender: str,
    recipient: str,
    msg_id: str,
    date: datetime,
    list_id: str | None = None,
    unsubscribe: str | None = None,
) -> EmailMessage:
    """multipart/alternative: text first, HTML second (clients show the last part they can).

    The boundary is derived from the Message-ID: the default one is random, which would make
    two renders of the same digest differ.
    """
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = digest.subject
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = msg_id
    if list_id:
        msg["List-Id"] = list_id
    if unsubscribe:
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        if unsubscribe.lower().startswith("https://"):
            # RFC 8058 one-click: only meaningful for an https URL that accepts a POST.
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(digest.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(digest.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # EmailMessage adds it to every part; only the top level needs it
    msg.set_boundary("=_alt_" + hashlib.sha256(msg_id.encode()).hexdigest()[:24])
    return msg


def domain_of(address: str) -> str:
    try:
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


# -- mailers ----------------------------------------------------------------------------------


class SendError(DeliveryError):
    """One message was not delivered.

    permanent: the server refused it for good (5xx): record and never retry.
    stop_batch: the connection or login failed, so the other messages would fail the same way:
    stop now instead of hammering the server (no retry storm), retry all after the backoff.
    """

    def __init__(self, message: str, *, permanent: bool = False, stop_batch: bool = False) -> None:
        super().__init__(message, permanent=permanent)
        self.stop_batch = stop_batch


class Mailer(Protocol):
    """Sends ready-made message bytes to one recipient; raises SendError when it could not."""

    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None: ...
    def close(self) -> None: ...


class FileMailer:
    """Writes each message as an .eml file into an outbox directory (the embedded default)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def path_for(self, message_id: str) -> Path:
        return self.outbox / f"{message_id.strip('<>').split('@')[0]}.eml"

    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        try:
            write_atomic(self.path_for(message_id), data)
        except OSError as exc:
            raise SendError(f"cannot write to outbox {self.outbox}: {exc}", stop_batch=True) from exc

    def close(self) -> None:
        pass


def _reply(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {body}".strip()


def _classified(code: int, text: bytes | str, what: str) -> SendError:
    # RFC 5321: 4yz transient, 5yz permanent. Anything else is treated as transient.
    return SendError(f"{what}: {_reply(code, text)}", permanent=500 <= code < 600)


class SmtpMailer:
    """SMTP with none/STARTTLS/implicit TLS and optional AUTH. One connection per batch, reopened
    after a disconnect. Credentials are read from the environment variables named in the config."""

    def __init__(
        self,
        cfg: SmtpConfig,
        *,
        env: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.env = os.environ if env is None else env
        self.ssl_context = ssl_context or ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.conn: smtplib.SMTP | None = None
        self.where = f"{cfg.host}:{cfg.port}"

    def _credentials(self) -> tuple[str, str] | None:
        if not self.cfg.username_env or not self.cfg.password_env:
            return None
        values = []
        for key, name in (("username_env", self.cfg.username_env), ("password_env", self.cfg.password_env)):
            value = self.env.get(name)
            if not value:
                raise SendError(
                    f"SMTP credentials: environment variable {name} (smtp.{key}) is not set", stop_batch=True
                )
            values.append(value)
        return values[0], values[1]

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        creds = self._credentials()
        conn: smtplib.SMTP | None = None
        try:
            if cfg.security == "tls":
                conn = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=self.ssl_context)
            else:
                conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            conn.ehlo()
            if cfg.security == "starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if creds:
                self._login(conn, *creds)
        except smtplib.SMTPAuthenticationError as exc:
            self._drop(conn)
            raise SendError(
                f"SMTP authentication failed at {self.where} as {creds[0] if creds else '?'!r}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)} (check the variables {cfg.username_env}, {cfg.password_env})",
                stop_batch=True,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._drop(conn)
            raise SendError(f"SMTP server at {self.where} does not support {exc}", stop_batch=True) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop(conn)
            raise SendError(
                f"SMTP server at {self.where} refused the session: {_reply(exc.smtp_code, exc.smtp_error)}",
                stop_batch=True,
            ) from exc
        except ssl.SSLError as exc:
            self._drop(conn)
            raise SendError(f"TLS with {self.where} failed: {exc}", stop_batch=True) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, unreachable, timeout, disconnect
            self._drop(conn)
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc) or type(exc).__name__
            raise SendError(f"cannot connect to SMTP server {self.where}: {reason}", stop_batch=True) from exc
        return conn

    @staticmethod
    def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
        # One mechanism, one try: smtplib.login() falls through PLAIN -> LOGIN on a 535, which
        # doubles the failed logins a server counts (and some servers answer LOGIN oddly).
        if "plain" in conn.esmtp_features.get("auth", "").lower().split():
            conn.user, conn.password = username, password
            conn.auth("PLAIN", conn.auth_plain)
        else:
            conn.login(username, password)

    @staticmethod
    def _drop(conn: smtplib.SMTP | None) -> None:
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def send(self, sender: str, recipient: str, data: bytes, message_id: str) -> None:
        if self.conn is None:
            self.conn = self._connect()
        try:
            # One recipient per transaction: each recipient has its own message and ledger row.
            self.conn.sendmail(sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, (450, b"recipient refused"))
            raise _classified(code, text, f"recipient {recipient} refused") from exc
        except smtplib.SMTPSenderRefused as exc:
            raise _classified(exc.smtp_code, exc.smtp_error, f"sender {sender} refused") from exc
        except smtplib.SMTPDataError as exc:
            raise _classified(exc.smtp_code, exc.smtp_error, "message refused after DATA") from exc
        except smtplib.SMTPServerDisconnected as exc:
            # No 250 after the data: the server did not take responsibility; retry (same bytes).
            self._drop(self.conn)
            self.conn = None
            raise SendError(f"SMTP server {self.where} disconnected while sending: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            self._drop(self.conn)
            self.conn = None
            raise _classified(exc.smtp_code, exc.smtp_error, "SMTP error") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop(self.conn)
            self.conn = None
            reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc) or type(exc).__name__
            raise SendError(f"SMTP connection to {self.where} failed while sending: {reason}") from exc

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                self._drop(self.conn)
            self.conn = None


MailerFactory = Callable[[Config, DigestConfig], Mailer]


def default_mailer_factory(config: Config, subscription: DigestConfig) -> Mailer:
    """`delivery: smtp` -> SmtpMailer(config.smtp); `delivery: file` -> .eml files in `outbox`."""
    if subscription.delivery == "smtp":
        ca = config.resolve(config.smtp.ca_file) if config.smtp.ca_file else None
        return SmtpMailer(config.smtp, ca_file=ca)
    return FileMailer(config.resolve(subscription.outbox))


# -- the ledger-driven send loop --------------------------------------------------------------

Action = Literal["sent", "already-sent", "retry-later", "failed", "already-failed", "waiting", "dry-run"]


@dataclass(frozen=True)
class RecipientResult:
    """What happened to one recipient's copy in one call."""

    recipient: str
    message_id: str
    status: Status  # the ledger status after the call
    action: Action  # what this call did
    attempts: int
    error: str | None = None
    next_attempt: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """One subscription and period: per-recipient outcomes, in the configured recipient order."""

    subscription: str
    period_start: datetime
    period_end: datetime
    item_count: int | None  # None when every copy was rendered by an earlier call
    results: tuple[RecipientResult, ...]
    skipped_empty: bool = False  # no stories and send_empty is off: nothing recorded or sent
    error: str | None = None  # a batch-level problem (login, connection) that stopped sending

    def _with(self, *statuses: str) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.results if r.status in statuses)

    @property
    def sent(self) -> tuple[RecipientResult, ...]:
        return self._with("sent")

    @property
    def pending(self) -> tuple[RecipientResult, ...]:
        return self._with("pending")

    @property
    def failed(self) -> tuple[RecipientResult, ...]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        """Every recipient's copy was accepted (now or earlier)."""
        return all(r.status == "sent" for r in self.results)


def backoff(cfg: SmtpConfig, attempts: int) -> timedelta:
    """Delay before the next try after `attempts` failed tries: base * 2**(attempts-1), capped."""
    return timedelta(seconds=min(cfg.retry_base_seconds * 2 ** max(attempts - 1, 0), cfg.retry_max_seconds))


def result_of(row: LedgerRow, action: Action) -> RecipientResult:
    return RecipientResult(
        recipient=row.recipient,
        message_id=row.message_id,
        status=row.status,
        action=action,
        attempts=row.attempts,
        error=row.last_error,
        next_attempt=row.next_attempt,
    )


def deliver_rows(
    ledger: Ledger,
    mailer: Mailer,
    rows: Sequence[LedgerRow],
    *,
    sender: str,
    now: datetime,
    policy: SmtpConfig,
) -> tuple[dict[str, RecipientResult], str | None]:
    """Send due rows in order; every outcome is committed before the next message goes out.

    Returns results by recipient and a batch-level error, if one stopped the batch (the rows not
    tried then stay pending with that error and the same backoff). A crash between the server's
    acceptance and `mark_sent` is the one place where a message can go out twice (same bytes).
    """
    results: dict[str, RecipientResult] = {}
    batch_error: str | None = None
    for row in rows:
        if batch_error is None:
            try:
                mailer.send(sender, row.recipient, row.message, row.message_id)
            except SendError as exc:
                error = str(exc)
                if exc.stop_batch:
                    batch_error = error
                _record_failure(ledger, row, error, exc.permanent, now, policy)
            else:
                ledger.mark_sent(row, now)
        else:
            # Not tried: the server is unreachable or rejects our login. Same backoff as the rest.
            _record_failure(ledger, row, batch_error, False, now, policy)
        fresh = ledger.get(row.subscription, row.period_start, row.recipient)
        assert fresh is not None
        action: Action = {"sent": "sent", "pending": "retry-later", "failed": "failed"}[fresh.status]  # type: ignore[assignment]
        results[row.recipient] = result_of(fresh, action)
    return results, batch_error


def _record_failure(
    ledger: Ledger, row: LedgerRow, error: str, permanent: bool, now: datetime, policy: SmtpConfig
) -> None:
    attempts = row.attempts + 1
    if permanent:
        ledger.mark_failed(row, error)
    elif attempts >= policy.max_attempts:
        ledger.mark_failed(row, f"gave up after {attempts} attempts; last error: {error}")
    else:
        ledger.mark_retry(row, error, now + backoff(policy, attempts))
