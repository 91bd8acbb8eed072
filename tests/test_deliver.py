"""Acceptance: digests over a REAL SMTP server (aiosmtpd on 127.0.0.1).

For every failure mode the test states what was delivered, what is pending, that nothing was
lost and nothing was sent twice.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest

from aggregator.config import Config
from aggregator.deliver import DeliveryReport
from aggregator.ledger import Ledger
from aggregator.pipeline import Deps, last_sent_period_end, make_deps, retry_pending, send_digest

from .conftest import Clock
from .mailtools import Recorder, entry, free_port, make_tls, smtp_server

A, B = "alice@example.org", "bob@example.net"
RETRY = 60.0  # retry_base_seconds in these tests


@pytest.fixture
def mk(write_config: Callable[..., Config], clock: Clock) -> Iterator[Callable[..., tuple[Config, Deps]]]:
    """Write feeds.yaml with one smtp subscription for A and B, store three stories, open deps."""
    opened: list[Deps] = []

    def make(port: int, recipients: tuple[str, ...] = (A, B), **smtp: object) -> tuple[Config, Deps]:
        config = write_config(
            digests=[
                {
                    "name": "weekly",
                    "recipients": list(recipients),
                    "topics": ["rare-earth"],
                    "delivery": "smtp",
                    "subject": "{title}: {count} stories, {start} – {end}",
                    "unsubscribe_url": "https://news.example.org/unsubscribe?list=weekly",
                }
            ],
            smtp={
                "host": "127.0.0.1",
                "port": port,
                "sender": "digest@news.example.org",
                "timeout": 2,
                "retry_base_seconds": RETRY,
                **smtp,
            },
        )
        deps = make_deps(config, clock=clock)
        opened.append(deps)
        deps.store.upsert_entries([entry(1), entry(2), entry(3)], clock.now - timedelta(days=1))
        return config, deps

    yield make
    for d in opened:
        d.close()


def send(config: Config, deps: Deps, clock: Clock) -> DeliveryReport:
    return send_digest(config, deps, config.digests[0], clock.now - timedelta(days=7), clock.now)


def statuses(deps: Deps) -> dict[str, str]:
    return {r.recipient: r.status for r in Ledger(deps.store).rows()}


def check_message(msg: EmailMessage, recipient: str) -> None:
    """multipart/alternative with text then HTML, UTF-8, and every header the issue lists."""
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    for header in ("Date", "From", "To", "Subject", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert msg[header], header
    assert msg["To"] == recipient
    assert msg["From"] == "digest@news.example.org"
    assert msg["List-Unsubscribe"] == "<https://news.example.org/unsubscribe?list=weekly>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"].endswith("<weekly.news.example.org>")
    assert "=?utf-8?" in msg.as_string().split("\n\n")[0]  # the en dash in the Subject is encoded
    assert "3 stories" in str(msg["Subject"]) and "–" in str(msg["Subject"])
    text = parts[0].get_content()
    html = parts[1].get_content()
    assert "Rare earth story number 2" in text and "Rare earth story number 2" in html
    assert recipient in text and recipient in html  # the footer says why you receive it


def test_plain_smtp_delivers_each_recipient_once(mk, clock: Clock) -> None:
    rec = Recorder()
    with smtp_server(rec) as port:
        config, deps = mk(port)
        report = send(config, deps, clock)
        assert report.ok and [r.action for r in report.results] == ["sent", "sent"]
        assert report.item_count == 3
        again = send(config, deps, clock)  # idempotent: nothing already accepted goes out again
        assert [r.action for r in again.results] == ["already-sent", "already-sent"]
    assert [r.rcpt_tos for r in rec.received] == [[A], [B]]
    for r in rec.received:
        assert r.mail_from == "digest@news.example.org"
        check_message(r.message, r.rcpt_tos[0])
    assert statuses(deps) == {A: "sent", B: "sent"}
    assert last_sent_period_end(deps.store, "weekly") == clock.now


def test_starttls_and_auth_with_credentials_from_environment(mk, clock: Clock, tmp_path, monkeypatch) -> None:
    tls = make_tls(tmp_path)
    rec = Recorder()
    monkeypatch.setenv("TEST_SMTP_USER", "digest-bot")
    monkeypatch.setenv("TEST_SMTP_PASS", "s3cret")
    with smtp_server(
        rec,
        tls_context=tls.server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=rec.authenticator("digest-bot", "s3cret"),
    ) as port:
        config, deps = mk(
            port,
            security="starttls",
            username_env="TEST_SMTP_USER",
            password_env="TEST_SMTP_PASS",
            ca_file=str(tls.ca_file),
        )
        report = send(config, deps, clock)
    assert report.ok, report
    assert rec.logins == ["digest-bot"]  # one connection, one login, two messages
    assert len(rec.received) == 2
    check_message(rec.received[0].message, A)
    assert "s3cret" not in config.model_dump_json()  # the secret never is in the config


def test_implicit_tls(mk, clock: Clock, tmp_path) -> None:
    tls = make_tls(tmp_path)
    rec = Recorder()
    with smtp_server(rec, ssl_context=tls.server_context) as port:
        config, deps = mk(port, security="tls", ca_file=str(tls.ca_file))
        report = send(config, deps, clock)
    assert report.ok and len(rec.received) == 2


def test_wrong_password_is_a_clear_error_without_retry_storm(mk, clock: Clock, tmp_path, monkeypatch) -> None:
    tls = make_tls(tmp_path)
    rec = Recorder()
    monkeypatch.setenv("TEST_SMTP_USER", "digest-bot")
    monkeypatch.setenv("TEST_SMTP_PASS", "wrong")
    auth = rec.authenticator("digest-bot", "s3cret")
    with smtp_server(rec, tls_context=tls.server_context, auth_required=True, authenticator=auth) as port:
        config, deps = mk(
            port,
            security="starttls",
            username_env="TEST_SMTP_USER",
            password_env="TEST_SMTP_PASS",
            ca_file=str(tls.ca_file),
        )
        report = send(config, deps, clock)
        assert report.error and "authentication failed" in report.error and "535" in report.error
        assert "TEST_SMTP_PASS" in report.error  # tells the user where the password comes from
        assert rec.login_tries == 1  # one login for the batch, not one per recipient
        assert [r.status for r in report.results] == ["pending", "pending"]
        assert all(r.next_attempt == clock.now + timedelta(seconds=RETRY) for r in report.results)
        # Called again before the backoff has run out: no new login attempt at all.
        again = send(config, deps, clock)
        assert [r.action for r in again.results] == ["waiting", "waiting"] and rec.login_tries == 1
        # The password is fixed; after the backoff the pending copies go out, once.
        monkeypatch.setenv("TEST_SMTP_PASS", "s3cret")
        clock.now += timedelta(seconds=RETRY)
        fixed = send(config, deps, clock)
    assert fixed.ok and rec.login_tries == 2
    assert sorted(r.rcpt_tos[0] for r in rec.received) == [A, B]


def test_missing_credential_variable_is_named(mk, clock: Clock, monkeypatch) -> None:
    monkeypatch.delenv("TEST_SMTP_USER", raising=False)
    monkeypatch.delenv("TEST_SMTP_PASS", raising=False)
    rec = Recorder()
    with smtp_server(rec) as port:
        config, deps = mk(port, username_env="TEST_SMTP_USER", password_env="TEST_SMTP_PASS")
        report = send(config, deps, clock)
    assert report.error and "TEST_SMTP_USER" in report.error and "not set" in report.error
    assert rec.received == [] and statuses(deps) == {A: "pending", B: "pending"}


def test_server_down_keeps_everything_pending_then_delivers_once(mk, clock: Clock) -> None:
    port = free_port()  # nothing listens there yet
    rec = Recorder()
    config, deps = mk(port)
    report = send(config, deps, clock)
    assert report.error and "cannot connect" in report.error
    assert statuses(deps) == {A: "pending", B: "pending"}
    assert last_sent_period_end(deps.store, "weekly") is None  # the next window still starts earlier
    with smtp_server(rec, port=port):
        assert send(config, deps, clock).results[0].action == "waiting"  # backoff not over
        clock.now += timedelta(seconds=RETRY)
        later = send(config, deps, clock)
        assert later.ok
        send(config, deps, clock)  # and again: nothing more
    assert sorted(r.rcpt_tos[0] for r in rec.received) == [A, B]  # nothing lost, nothing twice


def test_451_for_one_recipient_is_retried_with_backoff(mk, clock: Clock) -> None:
    rec = Recorder(rcpt_replies={B: "451 4.7.1 greylisted, try again later"})
    with smtp_server(rec) as port:
        config, deps = mk(port)
        report = send(config, deps, clock)
        assert [r.status for r in report.results] == ["sent", "pending"]
        bob = report.results[1]
        assert bob.error and "451" in bob.error and "greylisted" in bob.error
        assert bob.next_attempt == clock.now + timedelta(seconds=RETRY)
        # Still greylisted at the first retry: the next wait doubles.
        clock.now += timedelta(seconds=RETRY)
        second = retry_pending(config, deps)
        assert [r.next_attempt for r in second[0].results] == [clock.now + timedelta(seconds=2 * RETRY)]
        rec.rcpt_replies.clear()
        clock.now += timedelta(seconds=2 * RETRY)
        third = retry_pending(config, deps)
        assert [r.action for r in third[0].results] == ["sent"]
        assert third[0].results[0].attempts == 3
    assert [r.rcpt_tos[0] for r in rec.received] == [A, B]
    assert rec.to(B)[0].message_id == bob.message_id  # the same message, not a re-render


def test_550_for_one_of_two_recipients_is_recorded_and_others_proceed(mk, clock: Clock) -> None:
    rec = Recorder(rcpt_replies={A: "550 5.1.1 <alice@example.org>: mailbox unavailable"})
    with smtp_server(rec) as port:
        config, deps = mk(port)
        period = (clock.now - timedelta(days=7), clock.now)
        report = send(config, deps, clock)
        assert [r.status for r in report.results] == ["failed", "sent"]
        assert report.failed[0].error and "550 5.1.1" in report.failed[0].error
        assert "mailbox unavailable" in report.failed[0].error  # the server's own reply is kept
        assert not report.ok
        clock.now += timedelta(days=1)
        assert retry_pending(config, deps) == []  # a permanent failure is never retried
        again = send_digest(config, deps, config.digests[0], *period)
        assert [r.action for r in again.results] == ["already-failed", "already-sent"]
    assert [r.rcpt_tos for r in rec.received] == [[B]]
    assert last_sent_period_end(deps.store, "weekly") is not None  # Bob got it: the period counts


def test_disconnect_during_data_stays_pending_and_is_resent_once(mk, clock: Clock) -> None:
    rec = Recorder(drop_in_data={A})
    with smtp_server(rec) as port:
        config, deps = mk(port)
        report = send(config, deps, clock)
        # Alice's line dropped before the 250: pending. Bob's copy went over a new connection.
        assert [r.status for r in report.results] == ["pending", "sent"]
        assert report.results[0].error and "disconnected" in report.results[0].error
        clock.now += timedelta(seconds=RETRY)
        assert retry_pending(config, deps)[0].results[0].action == "sent"
    assert sorted(r.rcpt_tos[0] for r in rec.received) == [A, B]
    assert len({r.message_id for r in rec.received}) == 2


def test_timeout_when_the_server_never_answers(mk, clock: Clock) -> None:
    """A server that accepts the connection and says nothing: the send gives up after `timeout`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        config, deps = mk(listener.getsockname()[1], timeout=0.3)
        report = send(config, deps, clock)
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        listener.close()
    assert report.error and "timed out" in report.error
    assert statuses(deps) == {A: "pending", B: "pending"}


def test_gives_up_after_max_attempts(mk, clock: Clock) -> None:
    rec = Recorder(rcpt_replies={A: "452 4.2.2 mailbox full"})
    with smtp_server(rec) as port:
        config, deps = mk(port, recipients=(A,), max_attempts=2, retry_max_seconds=RETRY)
        assert send(config, deps, clock).results[0].status == "pending"
        clock.now += timedelta(seconds=RETRY)
        final = retry_pending(config, deps)[0].results[0]
    assert final.status == "failed" and final.error and "gave up after 2 attempts" in final.error
    assert "452 4.2.2 mailbox full" in final.error
