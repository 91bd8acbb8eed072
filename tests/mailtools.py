"""Test helpers for the digest mailer: a real aiosmtpd server on 127.0.0.1 that records what it
accepted and can be told to misbehave, a TLS certificate authority, and stored entries."""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from aggregator.types import DatePrecision, Entry


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Recorder:
    """aiosmtpd handler: records accepted messages; scripted refusals per recipient."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient -> "451 ..." / "550 ..."
    drop_in_data: set[str] = field(default_factory=set)  # recipients whose DATA ends in a hang-up
    login_tries: int = 0
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if set(envelope.rcpt_tos) & self.drop_in_data:
            self.drop_in_data -= set(envelope.rcpt_tos)  # once: the retry gets through
            assert server.transport is not None
            server.transport.close()  # the line drops before the 250: the client must not count it
            return "421 closing"
        assert isinstance(envelope.content, bytes)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"

    def authenticator(self, username: str, password: str) -> Any:
        def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
            self.login_tries += 1
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            ok = auth_data.login.decode() == username and auth_data.password.decode() == password
            if ok:
                self.logins.append(username)
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535

        return check

    def to(self, recipient: str) -> list[Received]:
        return [r for r in self.received if recipient in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(recorder: Recorder, port: int | None = None, **kwargs: Any) -> Iterator[int]:
    """A real SMTP server on 127.0.0.1 for the duration of the block; yields its port."""
    port = port or free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass
class Tls:
    """A throwaway CA and a certificate for 127.0.0.1."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_tls(directory: Path) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(ca_file, ctx)


def entry(
    n: int,
    *,
    title: str | None = None,
    topics: tuple[str, ...] = ("rare-earth",),
    published: datetime | None = None,
    precision: DatePrecision = DatePrecision.DAY,
    link: str | None = "default",
    source: str = "seeds",
    site: str | None = "Example News",
    summary: str | None = None,
) -> Entry:
    """A stored-shape entry; first_seen comes from the store's upsert time."""
    return Entry(
        id=f"entry-{n:03d}",
        source=source,
        title=title or f"Rare earth story number {n}",
        link=f"https://news.example.com/story/{n}" if link == "default" else link,
        canonical_url=None,
        content_html="",
        content_text=summary or f"Body of rare earth story {n}.",
        summary=summary or f"Summary of rare earth story {n}: neodymium output rose.",
        content_hash=f"hash-{n}",
        published=published,
        updated=None,
        date_precision=precision if published else DatePrecision.NONE,
        site_name=site,
        topics=topics,
    )


def at(now: datetime, **delta: float) -> datetime:
    return now + timedelta(**delta)
