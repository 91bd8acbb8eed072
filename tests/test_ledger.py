"""The sent-digest ledger: windows, idempotence, crash recovery, the CLI's --send and --list."""

from __future__ import annotations

import email
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config
from aggregator.ledger import Ledger
from aggregator.pipeline import Deps, last_sent_period_end, make_deps, scheduled_window, send_digest

from .conftest import ROOT, Clock
from .mailtools import Recorder, entry, free_port, smtp_server

A, B, C = "alice@example.org", "bob@example.net", "carol@example.com"


@pytest.fixture
def mk(write_config: Callable[..., Config], clock: Clock) -> Iterator[Callable[..., tuple[Config, Deps]]]:
    opened: list[Deps] = []

    def make(delivery: str = "file", port: int = 25, recipients: tuple[str, ...] = (A, B)) -> tuple[Config, Deps]:
        config = write_config(
            digests=[
                {
                    "name": "weekly",
                    "recipients": list(recipients),
                    "topics": ["rare-earth"],
                    "delivery": delivery,
                    "outbox": "outbox",
                }
            ],
            smtp={"host": "127.0.0.1", "port": port, "sender": "digest@news.example.org", "timeout": 2},
        )
        deps = make_deps(config, clock=clock)
        opened.append(deps)
        return config, deps

    yield make
    for d in opened:
        d.close()


def test_first_window_is_seven_days_then_from_the_last_sent_digest(mk, clock: Clock) -> None:
    config, deps = mk()
    sub = config.digests[0]
    assert last_sent_period_end(deps.store, "weekly") is None
    assert scheduled_window(deps, sub, clock.now) == (clock.now - timedelta(days=7), clock.now)
    deps.store.upsert_entries([entry(1)], clock.now - timedelta(days=2))
    assert send_digest(config, deps, sub, *scheduled_window(deps, sub, clock.now)).ok
    first_end = clock.now
    # A back-dated item (published a month ago) first seen after the digest went out: it is in
    # the next digest, because windows are by first-seen time.
    clock.now += timedelta(days=7)
    deps.store.upsert_entries([entry(2, published=first_end - timedelta(days=30))], first_end + timedelta(minutes=1))
    start, end = scheduled_window(deps, sub, clock.now)
    assert (start, end) == (first_end, clock.now)
    report = send_digest(config, deps, sub, start, end)
    assert report.ok and report.item_count == 1
    outbox = config.resolve("outbox")
    second = [p for p in outbox.glob("*.eml") if "story number 2" in p.read_text()]
    assert len(second) == 2  # one per recipient, and story 1 is not repeated in them
    assert all("story number 1" not in p.read_text() for p in second)


def test_file_delivery_is_idempotent(mk, clock: Clock) -> None:
    config, deps = mk()
    deps.store.upsert_entries([entry(1)], clock.now - timedelta(days=1))
    sub = config.digests[0]
    start = clock.now - timedelta(days=7)
    assert send_digest(config, deps, sub, start, clock.now).ok
    outbox = config.resolve("outbox")
    files = {p.name: p.read_bytes() for p in outbox.glob("*.eml")}
    assert len(files) == 2
    for p in outbox.glob("*.eml"):
        p.unlink()
    clock.now += timedelta(hours=1)  # a second run later the same day, for the same period
    again = send_digest(config, deps, sub, start, clock.now - timedelta(hours=1))
    assert [r.action for r in again.results] == ["already-sent", "already-sent"]
    assert list(outbox.glob("*.eml")) == []  # nothing written again


def test_empty_period_sends_nothing_and_records_nothing(mk, clock: Clock) -> None:
    config, deps = mk()
    report = send_digest(config, deps, config.digests[0], clock.now - timedelta(days=7), clock.now)
    assert report.skipped_empty and report.results == ()
    assert Ledger(deps.store).rows() == []


def test_outage_then_next_digest_covers_the_pending_one_without_overlap(mk, clock: Clock) -> None:
    """Week 1 never reached the server. Week 2's window starts at the last *sent* digest, i.e. at
    week 1's start: the pending week-1 copies are replaced by one digest covering both weeks."""
    config, deps = mk(delivery="smtp", port=free_port())
    sub = config.digests[0]
    deps.store.upsert_entries([entry(1)], clock.now - timedelta(days=1))
    week1 = send_digest(config, deps, sub, *scheduled_window(deps, sub, clock.now))
    assert [r.status for r in week1.results] == ["pending", "pending"]
    clock.now += timedelta(days=7)
    deps.store.upsert_entries([entry(2)], clock.now - timedelta(days=1))
    rec = Recorder()
    with smtp_server(rec, port=config.smtp.port):
        start, end = scheduled_window(deps, sub, clock.now)
        assert start == week1.period_start
        week2 = send_digest(config, deps, sub, start, end)
    assert week2.ok and week2.item_count == 2
    assert len(rec.received) == 2  # one per recipient: both weeks in one message
    assert {r.message_id for r in rec.received}.isdisjoint({r.message_id for r in week1.results})
    rows = Ledger(deps.store).rows()
    assert [(r.status, r.period_end) for r in rows] == [("sent", end), ("sent", end)]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timedelta
    from aggregator.config import load_config
    from aggregator.deliver import SmtpMailer
    from aggregator.pipeline import make_deps, send_digest

    config = load_config(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    victim = sys.argv[3]

    class KilledAfterAcceptance(SmtpMailer):
        def send(self, sender, recipient, data, message_id):
            super().send(sender, recipient, data, message_id)  # the server said 250
            if recipient == victim:
                os.kill(os.getpid(), signal.SIGKILL)  # before the ledger hears of it

    deps = make_deps(config, clock=lambda: now, mailer_factory=lambda c, s: KilledAfterAcceptance(c.smtp))
    send_digest(config, deps, config.digests[0], now - timedelta(days=7), now)
    """
)


def test_killed_between_acceptance_and_ledger_update_resends_only_that_message(mk, clock: Clock, project: Path) -> None:
    """The documented worst case: the one message accepted just before the kill goes out a second
    time, byte for byte, with the same Message-ID. Nothing else is sent twice, nothing is lost."""
    rec = Recorder()
    with smtp_server(rec) as port:
        config, deps = mk(delivery="smtp", port=port, recipients=(A, B, C))
        deps.store.upsert_entries([entry(1), entry(2)], clock.now - timedelta(days=1))
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(project / "feeds.yaml"), clock.now.isoformat(), B],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
        assert child.returncode == -9, child.stderr.decode()
        rows = {r.recipient: r for r in Ledger(deps.store).rows()}
        assert (rows[A].status, rows[B].status, rows[C].status) == ("sent", "pending", "pending")
        assert [r.rcpt_tos[0] for r in rec.received] == [A, B]  # B was accepted, unknown to the ledger
        # Restart: the same call again.
        report = send_digest(config, deps, config.digests[0], clock.now - timedelta(days=7), clock.now)
    assert [r.action for r in report.results] == ["already-sent", "sent", "sent"]
    assert [r.rcpt_tos[0] for r in rec.received] == [A, B, B, C]
    first_b, second_b = rec.to(B)
    assert first_b.data == second_b.data and first_b.message_id == rows[B].message_id
    assert len(rec.to(A)) == 1 and len(rec.to(C)) == 1


def test_cli_send_list_and_dry_run(project: Path, write_config: Callable[..., Config]) -> None:
    """Through the command line, with the real clock: file delivery into the outbox."""
    config = write_config(
        digests=[{"name": "weekly", "recipients": [A, B], "topics": ["rare-earth"], "outbox": "outbox"}]
    )
    store_deps = make_deps(config)
    store_deps.store.upsert_entries([entry(1), entry(2)], datetime.now(UTC) - timedelta(days=1))
    store_deps.close()
    runner = CliRunner()
    cfg = ["-c", str(project / "feeds.yaml")]

    dry = runner.invoke(main, [*cfg, "digest", "--dry-run", "-s", "weekly"])
    assert dry.exit_code == 0, dry.output
    assert "would send to alice@example.org" in dry.output and "2 stories" in dry.output
    assert not (project / "outbox").exists()

    empty = runner.invoke(main, [*cfg, "digest", "--list"])
    assert "no digests recorded yet" in empty.output

    sent = runner.invoke(main, [*cfg, "digest", "--send"])
    assert sent.exit_code == 0, sent.output
    assert "alice@example.org: sent" in sent.output and "bob@example.net: sent" in sent.output
    emls = sorted((project / "outbox").glob("*.eml"))
    assert len(emls) == 2
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"

    listed = runner.invoke(main, [*cfg, "digest", "--list"])
    assert listed.exit_code == 0
    lines = [ln for ln in listed.output.splitlines() if ln.startswith("weekly")]
    assert len(lines) == 2 and all(" sent " in ln for ln in lines)

    again = runner.invoke(main, [*cfg, "digest", "--send"])  # nothing new since: nothing sent
    assert again.exit_code == 0 and "nothing new" in again.output
    assert len(list((project / "outbox").glob("*.eml"))) == 2

    bad = runner.invoke(main, [*cfg, "digest", "--send", "-s", "nope"])
    assert bad.exit_code == 2 and "unknown subscription 'nope'" in bad.output


def test_cli_send_failure_exits_nonzero_with_the_reason(project: Path, write_config: Callable[..., Config]) -> None:
    port = free_port()
    config = write_config(
        digests=[{"name": "weekly", "recipients": [A], "delivery": "smtp"}],
        smtp={"host": "127.0.0.1", "port": port, "timeout": 1},
    )
    d = make_deps(config)
    d.store.upsert_entries([entry(1)], datetime.now(UTC) - timedelta(days=1))
    d.close()
    result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "digest", "--send"])
    assert result.exit_code == 1
    assert "cannot connect to SMTP server" in result.output and "1 pending" in result.output
    listed = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "digest", "--list"])
    assert "pending" in listed.output and "next try" in listed.output


def test_cli_send_refuses_while_another_sender_holds_the_lock(
    project: Path, write_config: Callable[..., Config]
) -> None:
    config = write_config(digests=[{"name": "weekly", "recipients": [A], "outbox": "outbox"}])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from aggregator.config import load_config; from aggregator.lock import instance_lock\n"
            "with instance_lock(load_config(sys.argv[1]), 'schedule'):\n"
            "    print('held', flush=True); time.sleep(30)",
            str(project / "feeds.yaml"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        result = CliRunner().invoke(main, ["-c", str(project / "feeds.yaml"), "digest", "--send"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 3 and "schedule" in result.output
    assert not config.resolve("outbox").exists()
