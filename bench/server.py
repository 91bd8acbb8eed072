"""Loopback HTTP server for a benchmark corpus: latency, validators, 304s and injected faults.

    python -m bench.server bench/corpus/c200 --latency-ms 50 --timeout 600

Feeds are served at http://<host>:<port>/<path> where host and path come from the corpus
manifest; the hosts are loopback addresses 127.0.0.1..127.0.0.N (all of 127/8 is loopback on
Linux), so a client's per-host connection limit sees many hosts, as with real feeds.

- every response waits `latency` seconds first (a round trip to a far server);
- strong ETag and Last-Modified on every feed; If-None-Match / If-Modified-Since give 304;
- faults for a deterministic subset of feeds: HTTP 500, a stall longer than any client timeout,
  or a body cut short (Content-Length promises more than is sent);
- GET /_stats returns counters (status codes, bytes, requests per feed) as JSON, and
  POST /_reset zeroes them;
- the server stops by itself after `timeout` seconds, so a crashed runner never leaves it behind.

In-process use (tests): `with CorpusServer(corpus_dir, latency=0.0) as srv: srv.url_for(row)`;
`fault_map={feed index: "error500" | "stall" | "truncate"}` picks the faulty feeds by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
import zlib
from collections import Counter
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .corpus import BASE_DATE


def _fault_for(index: int, faults: dict[str, float]) -> str | None:
    """Deterministic: the same feed gets the same fault on every run (by a hash of its index)."""
    roll = (zlib.crc32(f"fault-{index}".encode()) % 10_000) / 10_000
    edge = 0.0
    for name in ("error500", "stall", "truncate"):
        edge += faults.get(name, 0.0)
        if roll < edge:
            return name
    return None


class _Feed:
    __slots__ = ("body", "etag", "fault", "last_modified", "modified_at")

    def __init__(self, body: bytes, index: int, fault: str | None) -> None:
        self.body = body
        self.etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        self.modified_at = BASE_DATE.replace(day=1 + index % 28)
        self.last_modified = format_datetime(self.modified_at, usegmt=True)
        self.fault = fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


class CorpusServer:
    """Serves one corpus directory on one port across several loopback addresses."""

    def __init__(
        self,
        corpus_dir: Path,
        *,
        latency: float = 0.0,
        faults: dict[str, float] | None = None,
        stall_seconds: float = 120.0,
        timeout: float = 900.0,
        port: int = 0,
        fault_map: dict[int, str] | None = None,
    ) -> None:
        self.corpus_dir = Path(corpus_dir)
        self.manifest = json.loads((self.corpus_dir / "manifest.json").read_text(encoding="utf-8"))
        self.latency = latency
        self.stall_seconds = stall_seconds
        self.timeout = timeout
        self.faults = faults or {}
        self.feeds: dict[str, _Feed] = {}
        for row in self.manifest["feeds"]:
            body = (self.corpus_dir / "feeds" / row["path"]).read_bytes()
            fault = (fault_map or {}).get(row["index"]) or _fault_for(row["index"], self.faults)
            self.feeds["/" + row["path"]] = _Feed(body, row["index"], fault)
        self.hosts = sorted(
            {row["host"] for row in self.manifest["feeds"]}, key=lambda h: [int(x) for x in h.split(".")]
        )
        self.stats: Counter[str] = Counter()
        self.per_feed: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.port = port
        self._start()

    # -- lifecycle ----------------------------------------------------------------------------
    def _start(self) -> None:
        handler = _make_handler(self)
        for host in self.hosts:
            srv = _Server((host, self.port), handler)
            if not self.port:
                self.port = srv.server_address[1]
            self._servers.append(srv)
        for srv in self._servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        # The watchdog: stop after `timeout` seconds whatever the caller does.
        threading.Thread(target=self._watchdog, daemon=True).start()

    def _watchdog(self) -> None:
        if not self._stop.wait(self.timeout):
            self.close()

    def close(self) -> None:
        self._stop.set()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers.clear()

    def __enter__(self) -> CorpusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self) -> None:
        """Block until the watchdog (or close) stops the server."""
        self._stop.wait()

    # -- helpers ------------------------------------------------------------------------------
    def url_for(self, row: dict[str, Any]) -> str:
        return f"http://{row['host']}:{self.port}/{row['path']}"

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"stats": dict(self.stats), "per_feed": dict(self.per_feed)}

    def reset(self) -> None:
        with self.lock:
            self.stats.clear()
            self.per_feed.clear()

    def count(self, key: str, path: str | None = None, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n
            if path is not None:
                self.per_feed[path] += 1


def _make_handler(server: CorpusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
        disable_nagle_algorithm = True  # TCP_NODELAY, as nginx and most servers set it

        def log_message(self, format: str, *args: Any) -> None:  # quiet: thousands of requests
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path == "/_reset":
                server.reset()
                self._send(204)
            else:
                self._send(404)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if self.path == "/_stats":
                self._send(200, json.dumps(server.snapshot()).encode(), {"Content-Type": "application/json"})
                return
            feed = server.feeds.get(self.path.split("?", 1)[0])
            if server.latency:
                time.sleep(server.latency)
            if feed is None:
                server.count("404")
                self._send(404, b"not found")
                return
            if feed.fault == "error500":
                server.count("500", self.path)
                self._send(500, b"internal error", {"Content-Type": "text/plain"})
                return
            if feed.fault == "stall":
                server.count("stall", self.path)
                server._stop.wait(server.stall_seconds)
                self.close_connection = True
                return
            if self._not_modified(feed):
                server.count("304", self.path)
                self._send(304, b"", {"ETag": feed.etag, "Last-Modified": feed.last_modified})
                return
            headers = {
                "Content-Type": "application/atom+xml" if self.path.endswith(".atom") else "application/rss+xml",
                "ETag": feed.etag,
                "Last-Modified": feed.last_modified,
            }
            if feed.fault == "truncate":
                server.count("truncated", self.path)
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body[: len(feed.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            server.count("200", self.path)
            server.count("bytes", None, len(feed.body))
            self._send(200, feed.body, headers)

        def _not_modified(self, feed: _Feed) -> bool:
            inm = self.headers.get("If-None-Match")
            if inm is not None:
                return feed.etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
            ims = self.headers.get("If-Modified-Since")
            if ims:
                try:
                    return parsedate_to_datetime(ims) >= feed.modified_at
                except (TypeError, ValueError):
                    return False
            return False

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=900.0, help="stop by itself after this many seconds")
    ap.add_argument("--error500", type=float, default=0.0, help="fraction of feeds answering 500")
    ap.add_argument("--stall", type=float, default=0.0, help="fraction of feeds that never answer")
    ap.add_argument("--truncate", type=float, default=0.0, help="fraction of feeds cut short")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = CorpusServer(
        a.corpus,
        latency=a.latency_ms / 1000,
        faults={"error500": a.error500, "stall": a.stall, "truncate": a.truncate},
        timeout=a.timeout,
        port=a.port,
    )
    # The runner reads this line to learn the port.
    print(json.dumps({"port": srv.port, "hosts": srv.hosts}), flush=True)
    try:
        srv.wait()
    except KeyboardInterrupt:
        srv.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
