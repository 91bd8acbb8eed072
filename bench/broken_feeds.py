"""How much does a share of broken servers slow a refresh? Target: at most one request deadline.

    python -m bench.broken_feeds                     # 200 feeds, 10 % broken, fetch.timeout 5 s
    python -m bench.broken_feeds --feeds 500 --broken 0.2 --timeout 3

Every feed has its own loopback host (127.0.0.2, 127.0.0.3, ...: all of 127/8 is loopback on
Linux), so the per-host limit behaves as with real feeds, and answers after `--latency-ms`.
A broken server either accepts the connection and never answers, or sends its headers and
then one byte per second (no single read ever times out; only the total deadline stops it).

Two full `refresh` runs through the pipeline with default fetch settings except `timeout`,
each on a fresh database: all servers healthy, then the same run with the broken share.
Prints both times and the difference, and writes bench/results/broken_feeds.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import yaml

from aggregator.config import load_config
from aggregator.pipeline import make_deps, refresh

HERE = Path(__file__).resolve().parent


_SENTENCE = (
    "rare earth neodymium praseodymium dysprosium terbium magnet mine refinery university industry "
    "laboratory patent licence startup export quota price tonne supply chain recycling catalyst "
    "alloy smelter province ministry agreement partnership research centre students graduates "
    "investment capacity output quarter contract battery motor turbine vehicle policy tariff"
)
WORDS = _SENTENCE.split()


def feed_body(i: int, items: int = 10) -> bytes:
    """Ten distinct stories per feed (random words, seeded by feed), so dedupe sees real variety."""
    rng = random.Random(i)
    entries = "".join(
        f"<item><title>{' '.join(rng.choices(WORDS, k=8))}</title><link>https://f{i}.example.com/{k}</link>"
        f"<guid>f{i}-{k}</guid><description>{' '.join(rng.choices(WORDS, k=120))}</description></item>"
        for k in range(items)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
        f"<link>https://f{i}.example.com/</link>{entries}</channel></rss>"
    ).encode()


class Servers:
    """One asyncio loop in a thread; one listening socket per loopback host."""

    def __init__(self, n: int, latency: float) -> None:
        self.n = n
        self.latency = latency
        self.broken: dict[str, str] = {}  # host -> "stall" | "drip"
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def host(self, i: int) -> str:
        return f"127.0.{(i + 2) // 256}.{(i + 2) % 256}"

    def __enter__(self) -> Servers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        time.sleep(0.1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _start(self) -> None:
        probe = socket.socket()
        probe.bind((self.host(0), 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.servers = [
            await asyncio.start_server(self._handle, self.host(i), self.port, backlog=64) for i in range(self.n)
        ]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            host = writer.get_extra_info("sockname")[0]
            mode = self.broken.get(host)
            if mode == "stall":
                await self.stop.wait()
                return
            i = int(head.split(b" ", 2)[1].strip(b"/").split(b".")[0][1:])
            body = feed_body(i)
            await asyncio.sleep(self.latency)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if mode == "drip":
                for byte in body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    try:
                        await asyncio.wait_for(self.stop.wait(), 1.0)
                        return
                    except TimeoutError:
                        pass
            else:
                writer.write(body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def one_run(servers: Servers, workdir: Path, timeout: float, label: str) -> dict[str, object]:
    project = workdir / label
    project.mkdir()
    sources = [
        {"name": f"feed-{i:04d}", "url": f"http://{servers.host(i)}:{servers.port}/f{i}.xml"} for i in range(servers.n)
    ]
    data = {
        "base_url": "https://news.example.org/",
        "sources": sources,
        "fetch": {"allow_private_addresses": True, "timeout": timeout},
    }
    (project / "feeds.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(project / "feeds.yaml")
    deps = make_deps(config)
    last_result = [0.0]

    def progress(_result: object, _done: int, _total: int) -> None:
        last_result[0] = time.monotonic()

    try:
        started = time.monotonic()
        report = refresh(config, deps, progress=progress)
        elapsed = time.monotonic() - started
    finally:
        deps.close()
    failed = [r for r in report.results if r.failed]
    return {
        # fetch + parse + store of every source (results are recorded as they arrive)
        "sources_seconds": round(last_result[0] - started, 2),
        # ... plus dedupe over the whole store and publishing the feeds
        "seconds": round(elapsed, 2),
        "sources": len(report.results),
        "failed": len(failed),
        "new_entries": sum(r.new for r in report.results),
        "errors": sorted({(r.error or "").split(" (")[0] for r in failed}),
    }


def _median(runs: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--broken", type=float, default=0.10, help="share of servers that stall")
    ap.add_argument("--timeout", type=float, default=5.0, help="fetch.timeout, the total deadline per request")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="answer delay of a healthy server")
    ap.add_argument("--repeat", type=int, default=3, help="healthy/broken pairs; medians are reported")
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()

    picks = random.Random(args.seed).sample(range(args.feeds), round(args.feeds * args.broken))
    healthy_runs: list[dict[str, object]] = []
    broken_runs: list[dict[str, object]] = []
    with Servers(args.feeds, args.latency_ms / 1000) as servers, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.repeat):
            servers.broken = {}
            healthy_runs.append(one_run(servers, Path(tmp), args.timeout, f"healthy-{n}"))
            servers.broken = {servers.host(i): ("stall" if k % 2 == 0 else "drip") for k, i in enumerate(picks)}
            broken_runs.append(one_run(servers, Path(tmp), args.timeout, f"broken-{n}"))
    h_src, h_all = _median(healthy_runs, "sources_seconds"), _median(healthy_runs, "seconds")
    b_src, b_all = _median(broken_runs, "sources_seconds"), _median(broken_runs, "seconds")
    extra, extra_total = b_src - h_src, b_all - h_all
    result = {
        "feeds": args.feeds,
        "broken_servers": len(picks),
        "timeout_s": args.timeout,
        "latency_ms": args.latency_ms,
        "healthy_runs": healthy_runs,
        "broken_runs": broken_runs,
        "median_seconds": {
            "healthy_sources": h_src,
            "healthy_total": h_all,
            "broken_sources": b_src,
            "broken_total": b_all,
        },
        "extra_seconds_sources": round(extra, 2),
        "extra_seconds_total": round(extra_total, 2),
        # The fetch-side figure; dedupe and publishing run after it and do not depend on failures.
        "within_one_deadline": extra <= args.timeout,
    }
    out = HERE / "results" / "broken_feeds.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    b = broken_runs[-1]
    print(
        f"{args.feeds} feeds, {len(picks)} broken (stall / 1 byte per s), fetch.timeout {args.timeout:g} s, "
        f"default concurrency and per_host; median of {args.repeat}, seconds for\n"
        f"all sources fetched+stored / whole refresh (+ dedupe and publishing)\n"
        f"  all healthy: {h_src:6.2f} / {h_all:6.2f}\n"
        f"  broken:      {b_src:6.2f} / {b_all:6.2f}  ({b['failed']} failed: {', '.join(b['errors'])})\n"  # type: ignore[arg-type]
        f"  extra:       {extra:6.2f} / {extra_total:6.2f}  (budget: one deadline = {args.timeout:g} s) -> "
        f"{'OK' if result['within_one_deadline'] else 'OVER'}"
    )


if __name__ == "__main__":
    main()
