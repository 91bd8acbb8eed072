"""EDGE: digests -> email messages -> delivery (file outbox; SMTP follows the same Mailer protocol)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

from .publish import write_atomic
from .types import Digest


def message_id(subscription: str, period_start: datetime, recipient: str, domain: str) -> str:
    """Deterministic Message-ID per (subscription, period, recipient): a resend is recognisable."""
    key = f"{subscription}\x1f{period_start.isoformat()}\x1f{recipient.lower()}"
    return f"<digest-{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


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
    """multipart/alternative: text first, HTML second (clients show the last part they can)."""
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = digest.subject
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = msg_id
    msg["MIME-Version"] = "1.0"
    if list_id:
        msg["List-Id"] = list_id
    if unsubscribe:
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        if unsubscribe.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(digest.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(digest.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def domain_of(address: str) -> str:
    try:
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


class Mailer(Protocol):
    def send(self, msg: EmailMessage) -> None: ...


class FileMailer:
    """Writes each message as an .eml file into an outbox directory (the embedded default)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def path_for(self, msg: EmailMessage) -> Path:
        mid = str(msg["Message-ID"]).strip("<>").split("@")[0]
        return self.outbox / f"{mid}.eml"

    def send(self, msg: EmailMessage) -> None:
        write_atomic(self.path_for(msg), msg.as_bytes())
