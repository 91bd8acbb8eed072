"""Remote feeds against real HTTP servers on 127.0.0.1: every way a server can misbehave.

One threaded pytest-httpserver plays many feeds. A `Feeds` object decides, per path and per
phase, what each one answers, so a test can first ingest good feeds and then break them.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.cli import main
from aggregator.config import Config, FetchConfig, SourceConfig
from aggregator.fetch import HttpFetcher
from aggregator.pipeline import Deps, make_deps, refresh
from aggregator.store import SQLiteStore
from aggregator.store.base import SourceState
from aggregator.store.sqlite import STATE_GROUP
from aggregator.types import Fetched

from .conftest import Clock

TIMEOUT = 1.5  # fetch.timeout in these tests: the total deadline a stalled server runs into
MAX_BYTES = 200_000


def rss(name: str, n: int = 2) -> bytes:
    items = "".join(
        f"<item><title>{name} story {i}</title><link>https://news.example.com/{name}/{i}</link>"
        f"<guid>{name}-{i}</guid><description>Rare earth news number {i} from {name}.</description></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{name}</title>'
        f"<link>https://news.example.com/{name}/</link>{items}</channel></rss>"
    ).encode()


RSS_HEADERS = {"Content-Type": "application/rss+xml; charset=utf-8"}
Handler = Callable[[Request], Response]


class Feeds:
    """Path -> handler, swappable between phases; also counts requests per path."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.handlers: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.release = threading.Event()  # set at teardown so stalled handlers return
        server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)

    def _dispatch(self, request: Request) -> Response:
        self.requests.append(request)
        handler = self.handlers.get(request.path)
        return handler(request) if handler else Response("no such feed", status=404)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # -- canned behaviours ---------------------------------------------------------------
    def ok(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.handlers[path] = lambda _r: Response(body, headers={**RSS_HEADERS, **(headers or {})})

    def status(self, path: str, code: int, headers: dict[str, str] | None = None) -> None:
        self.handlers[path] = lambda _r: Response(f"status {code}", status=code, headers=headers or {})

    def redirect(self, path: str, code: int, target: str) -> None:
        self.handlers[path] = lambda _r: Response("", status=code, headers={"Location": target})

    def never_answers(self, path: str) -> None:
        def stall(_r: Request) -> Response:
            self.release.wait(30)
            return Response("too late")

        self.handlers[path] = stall

    def drip(self, path: str, interval: float = 1.0) -> None:
        """Headers at once, then one byte per `interval` seconds: no single read ever times out."""

        def slow() -> Iterator[bytes]:
            for byte in rss("drip", 50):
                if self.release.wait(interval):
                    return
                yield bytes([byte])

        self.handlers[path] = lambda _r: Response(slow(), headers=RSS_HEADERS)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    # One server for the module: stopping a werkzeug server costs half a second each time.
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    if srv.is_running():
        srv.stop()


@pytest.fixture
def feeds(server: HTTPServer) -> Iterator[Feeds]:
    f = Feeds(server)
    yield f
    f.release.set()
    server.clear()


def fetch_cfg(**over: Any) -> dict[str, Any]:
    return {
        "allow_private_addresses": True,
        "timeout": TIMEOUT,
        "connect_timeout": 1,
        "per_host": 32,  # every test feed lives on 127.0.0.1
        "max_bytes": MAX_BYTES,
        **over,
    }


def run(cfg: Config, clock: Clock, **kw: Any) -> dict[str, Any]:
    d = make_deps(cfg, clock=clock)
    try:
        report = refresh(cfg, d, **kw)
        states = {s.name: d.store.get_source_state(s.name) for s in cfg.sources}
    finally:
        d.close()
    return {"results": {r.source: r for r in report.results}, "states": states}


GZIP_BOMB = gzip.compress(b"\0" * 20_000_000, compresslevel=9)  # ~20 KB on the wire, 100x the cap
BROTLI_BOMB = brotli.compress(b"\0" * 20_000_000, quality=5)


def test_each_failure_ends_as_documented_and_entries_survive(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock
) -> None:
    names = [
        "ok", "moved301", "moved302", "moved308", "loop", "missing", "gone", "limited", "broken",
        "unavailable", "never", "drip", "oversize", "gzipbomb", "brotlibomb", "html", "malformed", "truncated",
        "gbk", "wrongcharset",
    ]  # fmt: skip
    for name in names:
        feeds.ok(f"/{name}.xml", rss(name))
    cfg = write_config(
        sources=[{"name": n, "url": feeds.url(f"/{n}.xml")} for n in names], fetch=fetch_cfg(concurrency=32)
    )
    first = run(cfg, clock)
    assert all(not r.failed and r.new == 2 for r in first["results"].values()), first["results"]

    # Phase 2: the same URLs misbehave. The clock moves on by a day so nothing is still cached.
    clock.now += timedelta(days=1)
    feeds.ok("/ok.xml", rss("ok", 3))
    feeds.ok("/new-home.xml", rss("moved", 2))
    feeds.redirect("/moved301.xml", 301, feeds.url("/new-home.xml"))
    feeds.redirect("/moved302.xml", 302, "/new-home.xml")
    feeds.redirect("/moved308.xml", 308, feeds.url("/new-home.xml"))
    feeds.redirect("/loop.xml", 302, "/loop2.xml")
    feeds.redirect("/loop2.xml", 302, "/loop.xml")
    feeds.status("/missing.xml", 404)
    feeds.status("/gone.xml", 410)
    feeds.status("/limited.xml", 429, {"Retry-After": "7200"})
    feeds.status("/broken.xml", 500)
    feeds.status("/unavailable.xml", 503, {"Retry-After": format_datetime(clock.now + timedelta(hours=3), True)})
    feeds.never_answers("/never.xml")
    feeds.drip("/drip.xml")
    feeds.ok("/oversize.xml", b"<!-- " + b"x" * (MAX_BYTES * 2) + b" -->" + rss("oversize"))
    feeds.ok("/gzipbomb.xml", GZIP_BOMB, {"Content-Encoding": "gzip"})
    feeds.ok("/brotlibomb.xml", BROTLI_BOMB, {"Content-Encoding": "br"})
    feeds.handlers["/html.xml"] = lambda _r: Response(
        "<html><body><h1>Welcome</h1></body></html>", mimetype="text/html"
    )
    feeds.ok("/malformed.xml", rss("malformed").replace(b"story 0", b"story & 0"))
    feeds.ok("/truncated.xml", rss("truncated")[:60])

    def chinese(name: str) -> bytes:
        return rss(name, 3).replace(b"story", "稀土新闻".encode()).replace(b' encoding="utf-8"', b"")

    gbk, utf8 = chinese("gbk").decode().encode("gb18030"), chinese("wrongcharset")
    feeds.handlers["/gbk.xml"] = lambda _r: Response(gbk, headers={"Content-Type": "application/xml"})  # no charset
    feeds.handlers["/wrongcharset.xml"] = lambda _r: Response(
        utf8,
        headers={"Content-Type": "text/xml; charset=iso-8859-1"},  # UTF-8 bytes, header says Latin-1
    )

    started = time.monotonic()
    second = run(cfg, clock)
    elapsed = time.monotonic() - started
    res, states = second["results"], second["states"]

    # The two stalled servers ran into the total deadline together, not one after the other.
    assert elapsed < TIMEOUT + 1.5, elapsed
    assert res["ok"].new == 1 and not res["ok"].failed
    assert res["moved301"].moved_to == feeds.url("/new-home.xml") and not res["moved301"].failed
    assert states["moved301"].redirected_to == feeds.url("/new-home.xml")
    assert res["moved308"].moved_to == feeds.url("/new-home.xml")
    assert res["moved302"].moved_to is None and not res["moved302"].failed  # temporary: not reported
    assert "redirect loop" in (res["loop"].error or "")
    assert "HTTP 404" in (res["missing"].error or "")
    assert res["gone"].failed and states["gone"].disabled and "disabled" in (res["gone"].error or "")
    assert states["limited"].next_attempt == clock.now + timedelta(hours=2)  # Retry-After: 7200
    assert states["unavailable"].next_attempt == clock.now + timedelta(hours=3)  # Retry-After: HTTP date
    assert "HTTP 500" in (res["broken"].error or "")
    assert states["broken"].next_attempt == clock.now + timedelta(minutes=15)  # first backoff step
    for stalled in ("never", "drip"):
        assert "total deadline" in (res[stalled].error or ""), res[stalled].error
    for big in ("oversize", "gzipbomb", "brotlibomb"):
        assert "max_bytes" in (res[big].error or ""), res[big].error
    assert "not a feed" in (res["html"].error or "")
    assert not res["malformed"].failed and res["malformed"].warnings  # recoverable bozo: kept, warned
    assert "malformed feed" in (res["truncated"].error or "")
    for name in ("gbk", "wrongcharset"):
        assert not res[name].failed and res[name].new == 1, res[name]
    for name in names:
        if res[name].failed:
            assert states[name].consecutive_failures == 1 and states[name].last_error
            assert "\n" not in (states[name].last_error or "")
    # Nothing stored was deleted by a failed fetch.
    d = make_deps(cfg, clock=clock)
    try:
        by_source: dict[str, int] = {}
        for e in d.store.iter_entries():
            by_source[e.source] = by_source.get(e.source, 0) + 1
    finally:
        d.close()
    assert all(by_source[n] >= 2 for n in names), by_source
    d = make_deps(cfg, clock=clock)
    try:
        titles = {e.title for e in d.store.iter_entries() if e.source in ("gbk", "wrongcharset")}
    finally:
        d.close()
    assert {"gbk 稀土新闻 2", "wrongcharset 稀土新闻 2"} <= titles, titles


def test_second_refresh_is_conditional_gets_304_and_parses_nothing(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = "Wed, 18 Nov 2026 08:00:00 GMT"

    def conditional(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"' or request.headers.get("If-Modified-Since") == stamp:
            return Response(status=304)
        return Response(rss("cond"), headers={**RSS_HEADERS, "ETag": '"v1"', "Last-Modified": stamp})

    feeds.handlers["/cond.xml"] = conditional
    cfg = write_config(sources=[{"name": "cond", "url": feeds.url("/cond.xml")}], fetch=fetch_cfg())
    first = run(cfg, clock)
    assert first["results"]["cond"].new == 2
    assert first["states"]["cond"].etag == '"v1"' and first["states"]["cond"].last_modified == stamp

    import aggregator.ingest as ingest

    parsed: list[Fetched] = []
    real = ingest.parse_document
    monkeypatch.setattr(ingest, "parse_document", lambda doc, **kw: parsed.append(doc) or real(doc, **kw))
    clock.now += timedelta(hours=1)
    second = run(cfg, clock)
    request = feeds.hits("/cond.xml")[-1]
    assert request.headers["If-None-Match"] == '"v1"' and request.headers["If-Modified-Since"] == stamp
    assert second["results"]["cond"].not_modified and second["results"]["cond"].unchanged == 2
    assert parsed == []
    assert second["states"]["cond"].last_success == clock.now


def test_validators_are_stored_only_after_a_successful_ingest(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock
) -> None:
    feeds.handlers["/f.xml"] = lambda _r: Response(
        "<html>maintenance</html>", mimetype="text/html", headers={"ETag": '"x"'}
    )
    cfg = write_config(sources=[{"name": "f", "url": feeds.url("/f.xml")}], fetch=fetch_cfg())
    first = run(cfg, clock)
    assert first["results"]["f"].failed and first["states"]["f"].etag is None
    clock.now += timedelta(hours=1)
    feeds.ok("/f.xml", rss("f"))
    run(cfg, clock)
    assert "If-None-Match" not in feeds.hits("/f.xml")[-1].headers


def test_backoff_skips_until_due_and_warns_only_when_failure_lasts(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    feeds.status("/down.xml", 500)
    feeds.ok("/up.xml", rss("up"))
    cfg = write_config(
        sources=[{"name": "down", "url": feeds.url("/down.xml")}, {"name": "up", "url": feeds.url("/up.xml")}],
        fetch=fetch_cfg(warn_after_failures=3, max_backoff_hours=1),
    )
    lasting = []
    for _ in range(3):
        caplog.clear()
        out = run(cfg, clock)
        lasting.append(out["results"]["down"].lasting)
        warned = [r for r in caplog.records if r.levelname == "WARNING" and "down" in r.getMessage()]
        assert bool(warned) == out["results"]["down"].lasting
        # Before the backoff runs out the source is not asked again, and still reported as failing.
        hits = len(feeds.hits("/down.xml"))
        again = run(cfg, clock)
        assert len(feeds.hits("/down.xml")) == hits and again["results"]["down"].failed
        clock.now = out["states"]["down"].next_attempt or clock.now
    assert lasting == [False, False, True]
    assert out["states"]["down"].consecutive_failures == 3
    assert out["states"]["down"].next_attempt == clock.now  # 15 min, 30 min, then capped at 1 h
    assert not out["results"]["up"].failed


def test_gone_disables_until_enabled(feeds: Feeds, write_config: Callable[..., Config], clock: Clock) -> None:
    feeds.status("/g.xml", 410)
    cfg = write_config(sources=[{"name": "g", "url": feeds.url("/g.xml")}], fetch=fetch_cfg())
    run(cfg, clock)
    clock.now += timedelta(days=3)
    out = run(cfg, clock)
    assert len(feeds.hits("/g.xml")) == 1  # never asked again
    assert out["results"]["g"].failed and "sources enable g" in (out["results"]["g"].error or "")
    runner = CliRunner()
    r = runner.invoke(main, ["-c", cfg.config_path, "sources"])
    assert r.exit_code == 0 and "disabled" in r.output, r.output
    r = runner.invoke(main, ["-c", cfg.config_path, "sources", "enable", "g"])
    assert r.exit_code == 0, r.output
    feeds.ok("/g.xml", rss("g"))
    out = run(cfg, clock)
    assert out["results"]["g"].new == 2


def test_cache_control_max_age_delays_next_fetch(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock
) -> None:
    feeds.ok("/c.xml", rss("c"), {"Cache-Control": "public, max-age=1800"})
    cfg = write_config(sources=[{"name": "c", "url": feeds.url("/c.xml")}], fetch=fetch_cfg())
    first = run(cfg, clock)
    assert first["states"]["c"].next_attempt == clock.now + timedelta(minutes=30)
    clock.now += timedelta(minutes=10)
    second = run(cfg, clock)
    assert len(feeds.hits("/c.xml")) == 1 and not second["results"]["c"].failed
    assert second["results"]["c"].deferred_until == first["states"]["c"].next_attempt
    run(cfg, clock, force=True)
    assert len(feeds.hits("/c.xml")) == 2


def test_compressed_feeds_decode(feeds: Feeds) -> None:
    body = rss("z", 3)
    feeds.ok("/gz.xml", gzip.compress(body), {"Content-Encoding": "gzip"})
    feeds.ok("/br.xml", brotli.compress(body), {"Content-Encoding": "br"})
    import zlib

    feeds.ok("/deflate.xml", zlib.compress(body), {"Content-Encoding": "deflate"})
    fetcher = HttpFetcher(FetchConfig(**fetch_cfg()))
    for path in ("/gz.xml", "/br.xml", "/deflate.xml"):
        got = fetcher.fetch(SourceConfig(name="z", url=feeds.url(path)), SourceState("z"))
        assert got.content == body, path
    ua = feeds.requests[0].headers["User-Agent"]
    assert ua.startswith("aggregator/")


def test_too_many_redirects_and_bad_scheme(feeds: Feeds) -> None:
    for i in range(7):
        feeds.redirect(f"/r{i}", 302, f"/r{i + 1}")
    feeds.ok("/r7", rss("r"))
    feeds.redirect("/file", 302, "file:///etc/passwd")
    fetcher = HttpFetcher(FetchConfig(**fetch_cfg()))
    got = fetcher.fetch_many(
        [
            (SourceConfig(name="many", url=feeds.url("/r0")), SourceState("many")),
            (SourceConfig(name="five", url=feeds.url("/r2")), SourceState("five")),
            (SourceConfig(name="file", url=feeds.url("/file")), SourceState("file")),
        ]
    )
    assert "too many redirects" in str(got[0])
    assert isinstance(got[1], Fetched) and got[1].content == rss("r") and len(got[1].redirects) == 5
    assert "non-http(s)" in str(got[2])


# -- SSRF guard ----------------------------------------------------------------------------


def test_private_addresses_are_refused_by_default() -> None:
    assert FetchConfig().allow_private_addresses is False
    assert Config.model_fields["fetch"].default_factory().allow_private_addresses is False  # type: ignore[misc]


def test_loopback_name_is_checked_on_the_resolved_address(feeds: Feeds) -> None:
    """`localhost` is a name: the guard resolves it and refuses 127.0.0.1 before connecting."""
    feeds.ok("/feed.xml", rss("x"))
    fetcher = HttpFetcher(FetchConfig(timeout=TIMEOUT))
    url = feeds.url("/feed.xml").replace("127.0.0.1", "localhost")
    got = fetcher.fetch_many([(SourceConfig(name="x", url=url), SourceState("x"))])[0]
    assert "refused to connect to localhost" in str(got) and "loopback" in str(got)
    assert feeds.requests == []  # nothing reached the server


def test_redirect_to_private_address_is_refused(feeds: Feeds) -> None:
    """A public-looking server (127.0.0.2, trusted for this test) redirects to 127.0.0.1."""
    public = HTTPServer(host="127.0.0.2", port=0)
    public.expect_request("/feed.xml").respond_with_response(
        Response("", status=302, headers={"Location": feeds.url("/admin")})
    )
    public.start()
    try:
        feeds.ok("/admin", rss("secret"))
        fetcher = HttpFetcher(FetchConfig(timeout=TIMEOUT), trusted_networks=[ipaddress.ip_network("127.0.0.2/32")])
        url = public.url_for("/feed.xml")
        got = fetcher.fetch_many([(SourceConfig(name="p", url=url), SourceState("p"))])[0]
    finally:
        public.clear()
        public.stop()
    assert "refused to connect to 127.0.0.1" in str(got), got
    assert feeds.requests == []


def test_sources_command_shows_health(feeds: Feeds, write_config: Callable[..., Config], clock: Clock) -> None:
    feeds.ok("/a.xml", rss("a"))
    feeds.status("/b.xml", 500)
    cfg = write_config(
        sources=[
            {"name": "seeds", "path": "seeds/*.txt"},
            {"name": "a", "url": feeds.url("/a.xml")},
            {"name": "b", "url": feeds.url("/b.xml")},
            {"name": "c", "url": feeds.url("/c.xml")},
        ],
        fetch=fetch_cfg(),
    )
    d: Deps = make_deps(cfg, clock=clock)
    try:
        refresh(cfg, d)
    finally:
        d.close()
    r = CliRunner().invoke(main, ["-c", cfg.config_path, "sources"])
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.output.splitlines()[1:] if line.strip()}
    assert "ok" in lines["a"]
    assert "retrying (1x)" in lines["b"] and "HTTP 500" in r.output
    assert "HTTP 404" in r.output  # c
    assert "local" in lines["seeds"]


def test_cli_refresh_prints_plain_progress_lines_and_force_refetches(
    feeds: Feeds, write_config: Callable[..., Config]
) -> None:
    feeds.ok("/a.xml", rss("a"), {"Cache-Control": "max-age=3600"})
    cfg = write_config(sources=[{"name": "a", "url": feeds.url("/a.xml")}], fetch=fetch_cfg())
    runner = CliRunner()
    r = runner.invoke(main, ["-c", cfg.config_path, "refresh"])
    assert r.exit_code == 0, r.output
    assert "[1/1] a: 2 new, 0 updated; ok" in r.output  # not a terminal: one plain line per source
    r = runner.invoke(main, ["-c", cfg.config_path, "refresh"])
    assert "not due until" in r.output and len(feeds.hits("/a.xml")) == 1
    r = runner.invoke(main, ["-c", cfg.config_path, "refresh", "--force"])
    assert r.exit_code == 0 and len(feeds.hits("/a.xml")) == 2


def test_user_agent_from_config(feeds: Feeds, tmp_path: Path) -> None:
    feeds.ok("/a.xml", rss("a"))
    fetcher = HttpFetcher(FetchConfig(**fetch_cfg(user_agent="custom-bot/1.0")))
    fetcher.fetch(SourceConfig(name="a", url=feeds.url("/a.xml")), SourceState("a"))
    assert feeds.requests[0].headers["User-Agent"] == "custom-bot/1.0"


def test_more_stalled_servers_than_slots_cost_one_deadline(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock
) -> None:
    """Four stalled servers, two slots: stalled requests hand their slot on, so no second deadline."""
    for i in range(4):
        feeds.never_answers(f"/stall{i}.xml")
    for i in range(4):
        feeds.ok(f"/fine{i}.xml", rss(f"fine{i}"))
    sources = [{"name": f"stall{i}", "url": feeds.url(f"/stall{i}.xml")} for i in range(4)]
    sources += [{"name": f"fine{i}", "url": feeds.url(f"/fine{i}.xml")} for i in range(4)]
    cfg = write_config(sources=sources, fetch=fetch_cfg(concurrency=2, connect_timeout=0.3))
    started = time.monotonic()
    out = run(cfg, clock)
    elapsed = time.monotonic() - started
    assert all(out["results"][f"fine{i}"].new == 2 for i in range(4))
    assert all(out["results"][f"stall{i}"].failed for i in range(4))
    assert elapsed < TIMEOUT + 1.2, elapsed  # two rounds of deadlines would take 2 * TIMEOUT


@pytest.mark.parametrize(("concurrency", "per_host", "expected"), [(8, 1, 1), (2, 8, 2), (8, 8, 6)])
def test_concurrency_and_per_host_limits(feeds: Feeds, concurrency: int, per_host: int, expected: int) -> None:
    """Six feeds on one host: at most `per_host` requests to it at once, `concurrency` overall."""
    lock = threading.Lock()
    active, peak = [0], [0]

    def slow(_r: Request) -> Response:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return Response(rss("p"), headers=RSS_HEADERS)

    for i in range(6):
        feeds.handlers[f"/p{i}.xml"] = slow
    fetcher = HttpFetcher(FetchConfig(**fetch_cfg(concurrency=concurrency, per_host=per_host)))
    jobs = [(SourceConfig(name=f"p{i}", url=feeds.url(f"/p{i}.xml")), SourceState(f"p{i}")) for i in range(6)]
    assert all(isinstance(r, Fetched) for r in fetcher.fetch_many(jobs))
    assert min(expected, 2) <= peak[0] <= expected  # the limit holds, and requests do overlap


class KeepAliveServer:
    """A stdlib HTTP/1.1 server that keeps connections open (werkzeug's test server closes each
    one). Answers: /feedN.xml 200 with an ETag (304 when it matches), /moved.xml 302 to /feed0.xml,
    /closing* 200 and then closes the connection without saying so, /slow* 200 after 0.3 s,
    anything else 404 with a short page. Records (client port, path, status) per request."""

    def __init__(self) -> None:
        log: list[tuple[int, str, int]] = []
        self.log = log

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                etag = '"' + self.path.strip("/") + '"'
                if self.path.startswith("/feed"):
                    status, body, headers = 200, rss(self.path), {"ETag": etag}
                    if self.headers.get("If-None-Match") == etag:
                        status, body = 304, b""
                elif self.path.startswith("/closing"):  # closes after answering, unannounced
                    status, body, headers = 200, rss(self.path), {}
                    self.close_connection = True
                elif self.path.startswith("/slow"):
                    time.sleep(0.3)
                    status, body, headers = 200, rss(self.path), {}
                elif self.path == "/moved.xml":
                    status, body, headers = 302, b"moved", {"Location": "/feed0.xml"}
                else:
                    status, body, headers = 404, b"<html>not here</html>", {}
                log.append((self.client_address[1], self.path, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> KeepAliveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_connections_are_reused_for_304s_redirects_and_error_pages() -> None:
    """Three keep-alive servers, four feeds each, two slots: one connection per server.

    A fresh TCP (and TLS) handshake per feed makes polling a host with many feeds slower. A
    connection used to be dropped after every 304, redirect or error page (their bodies were
    never read to the end), and as soon as it went idle while others were busy (the idle cap).
    """
    with KeepAliveServer() as a, KeepAliveServer() as b, KeepAliveServer() as c:
        servers = (a, b, c)
        fetcher = HttpFetcher(FetchConfig(**fetch_cfg(concurrency=2, per_host=1)))
        sources = [SourceConfig(name=f"f{i}", url=servers[i % 3].url(f"/feed{i}.xml")) for i in range(12)]
        first = fetcher.fetch_many([(s, SourceState(s.name)) for s in sources])
        assert all(isinstance(r, Fetched) and r.status == 200 for r in first)
        jobs = [(s, SourceState(s.name, etag=r.etag)) for s, r in zip(sources, first, strict=True)]
        jobs += [
            (SourceConfig(name="moved", url=a.url("/moved.xml")), SourceState("moved", etag='"feed0.xml"')),
            (SourceConfig(name="missing", url=b.url("/missing.xml")), SourceState("missing")),
        ]
        for srv in servers:
            srv.log.clear()
        second = fetcher.fetch_many(jobs)
    assert [getattr(r, "status", None) for r in second] == [304] * 13 + [404]
    for srv in servers:
        assert len({port for port, _, _ in srv.log}) == 1, srv.log


def test_leaving_fetch_iter_early_cancels_requests_in_flight(feeds: Feeds) -> None:
    """A caller that stops after the first result does not wait for stalled servers' deadlines."""
    feeds.ok("/fast.xml", rss("fast"))
    for i in range(3):
        feeds.never_answers(f"/stuck{i}.xml")
    fetcher = HttpFetcher(FetchConfig(**fetch_cfg(timeout=60)))
    jobs = [(SourceConfig(name="fast", url=feeds.url("/fast.xml")), SourceState("fast"))]
    jobs += [(SourceConfig(name=f"s{i}", url=feeds.url(f"/stuck{i}.xml")), SourceState(f"s{i}")) for i in range(3)]
    started = time.monotonic()
    results = fetcher.fetch_iter(jobs)
    first = next(results)
    results.close()  # what leaving a for loop early does
    assert first[0] == 0 and isinstance(first[1], Fetched)
    assert time.monotonic() - started < 30  # not the 60 s deadline of the stalled requests
    # The fetcher is usable again afterwards.
    assert fetcher.fetch(*jobs[0]).content == rss("fast")


def test_a_kept_connection_the_server_closed_is_not_reused() -> None:
    """A server may close an idle keep-alive connection at any time; the next request to it
    must open a new one instead of failing with "server disconnected"."""
    with KeepAliveServer() as a, KeepAliveServer() as b:
        fetcher = HttpFetcher(FetchConfig(**fetch_cfg(concurrency=1)))
        urls = [a.url("/closing1.xml"), b.url("/slow.xml"), a.url("/closing2.xml")]
        got = fetcher.fetch_many(
            [(SourceConfig(name=f"s{i}", url=u), SourceState(f"s{i}")) for i, u in enumerate(urls)]
        )
    assert all(isinstance(r, Fetched) and r.status == 200 for r in got), got
    assert len({port for port, _, _ in a.log}) == 2


@pytest.mark.parametrize(
    ("host", "why"),
    [("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("127.1", "loopback"), ("0.0.0.0", "unspecified")],
)
def test_address_hosts_are_checked_without_a_lookup_and_odd_forms_after_one(feeds: Feeds, host: str, why: str) -> None:
    """An address host is checked as it stands (no lookup); shorthand forms such as 127.1 are not
    addresses to Python, so they are looked up and the address they stand for is checked."""
    feeds.ok("/feed.xml", rss("x"))
    fetcher = HttpFetcher(FetchConfig(timeout=TIMEOUT))
    url = feeds.url("/feed.xml").replace("127.0.0.1", host)
    got = fetcher.fetch_many([(SourceConfig(name="x", url=url), SourceState("x"))])[0]
    assert "refused to connect to" in str(got) and why in str(got), got
    assert feeds.requests == []


def test_idle_connections_beyond_the_keep_alive_cap_are_closed() -> None:
    """Concurrency 1 keeps at most 2 connections open: after feeds on five servers, one after
    another, only the last two servers' connections are reused (no socket per host piling up)."""
    servers = [KeepAliveServer() for _ in range(5)]
    for srv in servers:
        srv.__enter__()
    try:
        fetcher = HttpFetcher(FetchConfig(**fetch_cfg(concurrency=1, per_host=1)))
        sources = [SourceConfig(name=f"f{i}", url=srv.url(f"/feed{i}.xml")) for i, srv in enumerate(servers)]
        sources += [SourceConfig(name=f"g{i}", url=servers[i].url(f"/feed{i}.xml")) for i in (4, 3, 0)]
        got = fetcher.fetch_many([(s, SourceState(s.name)) for s in sources])
    finally:
        for srv in servers:
            srv.__exit__()
    assert all(isinstance(r, Fetched) and r.status == 200 for r in got), got
    # The second round finds the last two servers' connections kept and the first one's gone.
    assert [len({port for port, _, _ in srv.log}) for srv in servers] == [2, 1, 1, 1, 1]


def test_an_unchanged_re_poll_records_every_source_before_refresh_returns(
    feeds: Feeds, write_config: Callable[..., Config], clock: Clock
) -> None:
    """304s are recorded in groups; the last, partial group is written before refresh returns,
    so another process (`aggregator sources`, a second refresh) sees every feed's last poll."""
    n = 21  # one full group of 16 and a partial one

    def conditional(name: str) -> Handler:
        def answer(r: Request) -> Response:
            if r.headers.get("If-None-Match") == f'"{name}"':
                return Response(status=304)
            return Response(rss(name), headers={**RSS_HEADERS, "ETag": f'"{name}"'})

        return answer

    for i in range(n):
        feeds.handlers[f"/f{i}.xml"] = conditional(f"f{i}")
    cfg = write_config(sources=[{"name": f"f{i}", "url": feeds.url(f"/f{i}.xml")} for i in range(n)], fetch=fetch_cfg())
    run(cfg, clock)
    clock.now += timedelta(hours=2)
    d = make_deps(cfg, clock=clock)
    try:
        report = refresh(cfg, d)
        # Read through a second connection while the first is still open, as another process would.
        other = SQLiteStore(cfg.database_path)
        try:
            states = other.all_source_states()
        finally:
            other.close()
    finally:
        d.close()
    assert all(r.not_modified for r in report.results)
    assert len(states) == n
    assert all(s.last_success == clock.now and s.etag == f'"{s.name}"' for s in states), states


def test_held_source_states_are_written_in_groups_and_before_any_read(tmp_path: Path) -> None:
    """States written with soon=True reach the file a group at a time (a killed run loses at
    most one group), and the writing store itself always reads what it was given."""
    path = tmp_path / "s.db"
    store, other = SQLiteStore(path), SQLiteStore(path)
    try:
        for i in range(STATE_GROUP - 1):
            store.put_source_state(SourceState(f"s{i}", etag=f'"{i}"'), soon=True)
        assert other.all_source_states() == []  # held back, not lost:
        assert store.get_source_state("s0").etag == '"0"'  # a read writes them first
        assert len(other.all_source_states()) == STATE_GROUP - 1
        for i in range(STATE_GROUP):
            store.put_source_state(SourceState(f"t{i}", etag="new"), soon=True)
        assert len(other.all_source_states()) == 2 * STATE_GROUP - 1  # a full group is written at once
        store.put_source_state(SourceState("s1", etag="later"), soon=True)
        with store.transaction():  # any transaction writes held states before its own writes
            pass
        assert other.get_source_state("s1").etag == "later"
        store.put_source_state(SourceState("s2", etag="last"), soon=True)
    finally:
        store.close()  # closing writes what is still held
        other.close()
    reopened = SQLiteStore(path)
    try:
        assert reopened.get_source_state("s2").etag == "last"
        assert reopened.get_source_states(["s2", "nobody"])["nobody"] == SourceState("nobody")
    finally:
        reopened.close()
