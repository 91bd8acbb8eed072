"""EDGE: remote feeds over HTTP -> Fetched. Failures come back as FetchError values, never raised.

How a request is bounded (each a `fetch:` key):
- `timeout`: a wall-clock deadline for the whole request (connect, redirects, headers, body),
  enforced with anyio.fail_after, so a server that sends one byte per second is cut off too;
- `connect_timeout`: per TCP connect;
- `max_bytes`: the *decoded* body size, counted while decompressing (see _body.py);
- at most 5 redirects, http/https only, loops detected;
- `concurrency` requests in flight at once (a request still running after SLOW_AFTER seconds
  hands its slot on, see _Run.fetch_all), at most `per_host` to one host name;
- the SSRF guard (_netguard.py) checks every resolved address at connect time, redirect hops too.

The requests run on an anyio event loop in a helper thread (a blocking portal), so the caller
can parse and store each result while the other requests are still in flight. One coroutine
starts them all and hands each result to the caller's thread through a queue: starting every
request from the caller's thread cost a thread hop per request.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import anyio._backends._asyncio  # (see below)
import anyio.from_thread
import httpcore
import httpx

from . import __version__
from ._body import ACCEPT_ENCODING, BodyTooLargeError, BoundedBody, UnsupportedEncodingError
from ._netguard import AddressPolicy, BlockedAddressError, GuardedBackend, IPNetwork
from .config import FetchConfig, SourceConfig
from .errors import FetchError
from .store.base import SourceState
from .types import Fetched

# anyio's asyncio backend (and asyncio with it, ~25 ms) is imported with this module rather than
# lazily by the first refresh's event loop, where it delayed the first request.

USER_AGENT = f"aggregator/{__version__} (feed aggregator; +https://example.invalid/aggregator)"
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/feed+json,"
    " application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
MAX_REDIRECTS = 5
# A feed request to a working server is done in well under this (typically 0.1-1 s); one still
# running is probably stalled and stops holding a concurrency slot (see _Run.fetch_all).
SLOW_AFTER = 2.0
_REDIRECTS = {301, 302, 303, 307, 308}
# Open connections (busy and idle) kept per concurrency slot, so a host's next feed reuses one.
# Not more: httpcore's pool scans every connection (quadratically) at each request's start and
# end, and with many distinct hosts an idle connection is rarely used again within a run.
KEEPALIVE_PER_SLOT = 2

Job = tuple[SourceConfig, SourceState]
Result = Fetched | FetchError


class HttpStatusError(FetchError):
    """The server answered with an error status. Carries the headers (Retry-After) and hops."""

    def __init__(
        self, message: str, *, status: int, headers: dict[str, str], redirects: tuple[tuple[int, str], ...] = ()
    ) -> None:
        super().__init__(message, status=status, permanent=status == 410)
        self.headers = headers
        self.redirects = redirects


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping made linear in the number of connections.

    httpcore 1.0 runs `_assign_requests_to_connections` at every request's start and end, and
    for each idle connection it counts all connections again (a list built and thrown away) and
    polls its socket: quadratic, most of the fetch loop's own time in a run of 304s with a few
    dozen keep-alive connections. The same policy in one pass: drop closed connections, close
    idle ones beyond `max_keepalive_connections`, then give each queued request an available
    connection to its origin, a new one, or the place of an idle one. Expiry (keep-alive time
    over, or the server closed it) is checked on the connection about to be reused, not on every
    idle one each time: an expired one is never used, and the cap bounds those left open.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        left = len(self._connections)  # httpcore compares the live list's length, shrinking as it goes
        for conn in self._connections:
            if conn.is_closed():
                left -= 1
            elif conn.is_idle() and left > self._max_keepalive_connections:
                left -= 1
                closing.append(conn)
            else:
                kept.append(conn)
        for request in self._requests:
            if request.is_queued():
                self._assign(request, kept, closing)
        self._connections = kept
        return closing

    def _assign(
        self,
        request: Any,
        kept: list[httpcore.AsyncConnectionInterface],
        closing: list[httpcore.AsyncConnectionInterface],
    ) -> None:
        origin = request.request.url.origin
        for conn in list(kept):
            if conn.can_handle_request(origin) and conn.is_available():
                if not conn.has_expired():
                    request.assign_to_connection(conn)
                    return
                kept.remove(conn)
                closing.append(conn)
        if len(kept) >= self._max_connections:
            idle = next((c for c in kept if c.is_idle()), None)
            if idle is None:
                return  # stays queued until a connection frees up
            kept.remove(idle)
            closing.append(idle)
        conn = self.create_connection(origin)
        kept.append(conn)
        request.assign_to_connection(conn)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool swapped for one using the guarded backend.

    httpx does not expose httpcore's `network_backend` argument, so the pool is replaced after
    construction (the transport only ever reaches its pool through `_pool`).
    """

    def __init__(self, config: FetchConfig, policy: AddressPolicy, tls: ssl.SSLContext | None) -> None:
        # The context given here only serves httpx's own pool, replaced below: a bare one is
        # enough (loading the CA bundle costs ~60 ms).
        super().__init__(verify=tls or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), trust_env=False)
        self._pool = _Pool(
            # None in a run without https sources: a redirect to https then gets httpcore's own
            # verifying context (the same CA bundle), made for that connection.
            ssl_context=tls,
            # No pool cap: the limits in _Run bound the requests, and a stalled request that
            # handed its slot on must not block the pool for the others.
            max_connections=None,
            # httpcore 1.0 compares this with *all* its connections, busy ones included, so a
            # cap of `concurrency` closed every connection as it went idle: no keep-alive at all
            # in a busy run. Room for idle connections beside the busy ones keeps them reusable.
            max_keepalive_connections=KEEPALIVE_PER_SLOT * config.concurrency,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )


class _Run:
    """One refresh run's client and limits; lives on the portal's event loop."""

    def __init__(self, config: FetchConfig, policy: AddressPolicy, tls: ssl.SSLContext | None) -> None:
        self.config = config
        self.client = httpx.AsyncClient(
            transport=_GuardedTransport(config, policy, tls),
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            follow_redirects=False,  # followed by hand: each hop is checked and recorded
            trust_env=False,  # a proxy from the environment would hide the target from the guard
            headers={
                "User-Agent": config.user_agent or USER_AGENT,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
        )
        self.scope = anyio.CancelScope()
        self.unclaimed = 0  # results delivered and not yet taken by the caller (see fetch_all's `ahead`)
        self._wake: anyio.Event | None = None

    def took(self) -> None:
        """The caller took a result: room for another request when it fetches `ahead`."""
        self.unclaimed -= 1
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        await self.client.aclose()

    def cancel(self) -> None:
        self.scope.cancel()

    @property
    def slow_after(self) -> float:
        """After this long a request gives its global slot back (see fetch_all)."""
        return min(SLOW_AFTER, self.config.timeout / 4)

    async def fetch_all(
        self, jobs: Sequence[Job], deliver: Callable[[tuple[int, Result]], None], ahead: int | None = None
    ) -> None:
        """Fetch every job, `deliver` each (index, result) as it finishes. Cancelled by cancel().

        Jobs start in their order, as far as the limits allow: at most `per_host` requests to a
        host at once (a host's further jobs wait without holding a global slot), and at most
        `concurrency` holding a global slot. A request still running after `slow_after` is most
        likely stalled: it keeps its socket and runs into its own deadline, but gives its slot
        back. Without this, `concurrency` stalled servers would hold every slot and each further
        batch of stalls would add a whole deadline to the run. Open sockets stay bounded: by
        `concurrency` plus the stalled requests (at most one per source).

        `ahead`: a request starts only while the requests holding a slot plus the bodies not yet
        taken (see took) are fewer than `concurrency + ahead`, so a slow caller (parsing) makes the
        fetching wait instead of piling every feed's body up in memory. Results without a body
        (304, errors) are small and do not count: taking them costs no thread hop.
        """
        cfg = self.config
        waiting: dict[str, deque[int]] = {}  # host -> its jobs not started yet, in order
        for i, (source, _) in enumerate(jobs):
            assert source.url is not None
            waiting.setdefault((urlsplit(source.url).hostname or "").lower(), deque()).append(i)
        # Hosts with a free host slot and a job waiting, keyed by that job's index: the next job
        # to start is always the earliest one its host allows.
        ready = [(q[0], host) for host, q in waiting.items()]
        heapq.heapify(ready)
        busy = dict.fromkeys(waiting, 0)  # host -> requests in flight, stalled ones included
        holding: dict[int, float] = {}  # job -> start time, for requests holding a global slot
        left = len(jobs)
        wake = self._wake = anyio.Event()
        window = None if ahead is None else cfg.concurrency + max(ahead, 0)

        async def one(i: int, host: str) -> None:
            try:
                result = await self._bounded_get(*jobs[i])
            finally:  # also when cancelled
                holding.pop(i, None)
                busy[host] -= 1
                if busy[host] == cfg.per_host - 1 and waiting[host]:
                    heapq.heappush(ready, (waiting[host][0], host))
                wake.set()
            if _has_body(result):
                self.unclaimed += 1
            deliver((i, result))

        with self.scope:
            async with anyio.create_task_group() as tg:
                while left:
                    now = anyio.current_time()
                    # Requests still running after slow_after hand their slot on (oldest first).
                    for i, started in list(holding.items()):
                        if now - started < self.slow_after:
                            break
                        del holding[i]
                    while (
                        ready
                        and len(holding) < cfg.concurrency
                        and (window is None or len(holding) + self.unclaimed < window)
                    ):
                        _, host = heapq.heappop(ready)
                        i = waiting[host].popleft()
                        busy[host] += 1
                        holding[i] = now
                        left -= 1
                        tg.start_soon(one, i, host)
                        if waiting[host] and busy[host] < cfg.per_host:
                            heapq.heappush(ready, (waiting[host][0], host))
                    if not left:
                        break
                    # Sleep until a request ends, or until the oldest slot holder counts as stalled.
                    wake = self._wake = anyio.Event()
                    delay = None
                    if ready and holding:
                        delay = next(iter(holding.values())) + self.slow_after - now
                    with anyio.move_on_after(delay):
                        await wake.wait()

    async def _bounded_get(self, source: SourceConfig, state: SourceState) -> Fetched | FetchError:
        try:
            with anyio.fail_after(self.config.timeout):
                return await self._get(source, state)
        except TimeoutError:
            return FetchError(
                f"no complete response within {self.config.timeout:g} s (fetch.timeout, the total deadline)"
            )
        except FetchError as exc:
            return exc
        except BlockedAddressError as exc:
            return FetchError(str(exc), permanent=True)
        except httpx.HTTPError as exc:
            return FetchError(_describe(exc, self.config))
        except Exception as exc:  # one odd server must not end the run: report it as this source's error
            return FetchError(f"unexpected {type(exc).__name__}: {exc}")

    async def _get(self, source: SourceConfig, state: SourceState) -> Fetched:
        assert source.url is not None
        url = source.url
        seen = [url]
        hops: list[tuple[int, str]] = []
        headers: dict[str, str] = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        while True:
            request = self.client.build_request("GET", url, headers=headers)
            resp = await self.client.send(request, stream=True)
            try:
                status = resp.status_code
                resp_headers = dict(resp.headers)
                if status in _REDIRECTS and resp.headers.get("location"):
                    await _drain(resp)
                    url = _next_hop(url, resp.headers["location"], seen, hops, status)
                    continue
                if status == 304:
                    await _drain(resp)
                    return Fetched(
                        source.name,
                        url,
                        None,
                        304,
                        resp_headers,
                        state.etag,
                        state.last_modified,
                        redirects=tuple(hops),
                    )
                if not 200 <= status < 300:
                    await _drain(resp)
                    reason = resp.reason_phrase or ""
                    raise HttpStatusError(
                        f"HTTP {status} {reason}".rstrip() + f" from {url}",
                        status=status,
                        headers=resp_headers,
                        redirects=tuple(hops),
                    )
                body = await self._read_body(resp)
                return Fetched(
                    source.name,
                    url,
                    body,
                    status,
                    resp_headers,
                    resp.headers.get("etag"),
                    resp.headers.get("last-modified"),
                    redirects=tuple(hops),
                )
            finally:
                await resp.aclose()

    async def _read_body(self, resp: httpx.Response) -> bytes:
        limit = self.config.max_bytes
        encoding = resp.headers.get("content-encoding")
        declared = resp.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"response body is {int(declared):,} bytes, over fetch.max_bytes ({limit:,})")
        try:
            body = BoundedBody(encoding, limit)
            async for chunk in resp.aiter_raw():
                body.feed(chunk)
        except BodyTooLargeError as exc:
            raise FetchError(f"{exc} (fetch.max_bytes); stopped reading") from exc
        except (UnsupportedEncodingError, ValueError) as exc:
            raise FetchError(str(exc)) from exc
        return body.result()


def _has_body(result: Result) -> bool:
    return isinstance(result, Fetched) and result.content is not None


# A body this small is read to its end rather than dropped, so the connection stays reusable.
DRAIN_MAX = 64 * 1024


async def _drain(resp: httpx.Response) -> None:
    """Read a small unwanted body (304, redirect, error page) so the connection can be reused.

    httpcore keeps a connection only when the previous response was read to its end; closing
    it earlier throws the connection away. Bodies of unknown or large size are not worth it.
    """
    declared = resp.headers.get("content-length", "")
    if resp.status_code == 304 or (declared.isdigit() and int(declared) <= DRAIN_MAX):
        async for _ in resp.aiter_raw():
            pass


def _next_hop(url: str, location: str, seen: list[str], hops: list[tuple[int, str]], status: int) -> str:
    """Check one redirect and return its target. Raises FetchError for loops, limits, schemes."""
    target = urljoin(url, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"redirect from {url} to a non-http(s) URL refused: {target}")
    if target in seen:
        raise FetchError("redirect loop: " + " -> ".join([*seen[seen.index(target) :], target]))
    if len(hops) >= MAX_REDIRECTS:
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}), last to {target}")
    seen.append(target)
    hops.append((status, target))
    return target


def _describe(exc: httpx.HTTPError, config: FetchConfig) -> str:
    """One readable line for an httpx error."""
    where = ""
    with contextlib.suppress(RuntimeError):  # .request is unset on errors raised before sending
        where = f" ({exc.request.url.host})"
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connection timed out after {config.connect_timeout:g} s{where}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"server stopped sending for {config.timeout:g} s{where}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect{where}: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"broken HTTP response{where}: {detail}"
    return f"{type(exc).__name__}{where}: {detail}"


def permanent_redirect(redirects: Sequence[tuple[int, str]]) -> str | None:
    """The new address when every hop was permanent (301/308); else None (temporary moves)."""
    if redirects and all(status in (301, 308) for status, _ in redirects):
        return redirects[-1][1]
    return None


class HttpFetcher:
    """Fetches feeds concurrently. Results are values: Fetched, or FetchError for that source."""

    def __init__(self, config: FetchConfig, *, trusted_networks: Iterable[IPNetwork] = ()) -> None:
        self.config = config
        self.policy = AddressPolicy(allow_private=config.allow_private_addresses, trusted=trusted_networks)
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        """Nothing to release: each run opens and closes its own client."""

    def fetch(self, source: SourceConfig, state: SourceState) -> Fetched:
        """Fetch one source; raises FetchError."""
        got = self.fetch_many([(source, state)])[0]
        if isinstance(got, FetchError):
            raise got
        return got

    def fetch_many(self, jobs: Sequence[Job]) -> list[Result]:
        """Fetch every job; results in the order of `jobs`."""
        out: list[Result | None] = [None] * len(jobs)
        for i, got in self.fetch_iter(jobs):
            out[i] = got
        return [r for r in out if r is not None]

    def fetch_iter(self, jobs: Sequence[Job], *, ahead: int | None = None) -> Iterator[tuple[int, Result]]:
        """Yield (index into jobs, result) as each request finishes, fastest first.

        `ahead`: fetch no further ahead of the caller than that (see _Run.fetch_all): at most
        `concurrency + ahead` bodies are held however slowly the caller takes them.
        Leaving the loop early cancels the requests still in flight.
        """
        if not jobs:
            return
        tls = self._tls_context(jobs)
        results: queue.SimpleQueue[tuple[int, Result] | None] = queue.SimpleQueue()
        with anyio.from_thread.start_blocking_portal() as portal:
            run = portal.call(self._open, tls)
            done = portal.start_task_soon(self._fetch_all, run, jobs, results, ahead)
            try:
                for _ in jobs:
                    got = results.get()
                    if got is None:  # fetch_all ended early: only by an error, raised here
                        done.result()
                        raise RuntimeError("the fetch loop ended before every result was delivered")
                    if ahead is not None and _has_body(got[1]):
                        portal.call(run.took)
                    # No reference is kept: a body is freed once the caller has parsed it.
                    yield got
                done.result()
            finally:
                if not done.done():
                    portal.call(run.cancel)
                    with contextlib.suppress(Exception):
                        done.result()
                portal.call(run.aclose)

    def _tls_context(self, jobs: Sequence[Job]) -> ssl.SSLContext | None:
        """One verifying TLS context for all runs (loading the CA bundle costs ~60 ms), made
        the first time a run has an https source."""
        if self._tls is None and any((src.url or "").lower().startswith("https:") for src, _ in jobs):
            self._tls = httpx.create_ssl_context()
        return self._tls

    async def _open(self, tls: ssl.SSLContext | None) -> _Run:
        return _Run(self.config, self.policy, tls)

    @staticmethod
    async def _fetch_all(
        run: _Run, jobs: Sequence[Job], results: queue.SimpleQueue[tuple[int, Result] | None], ahead: int | None
    ) -> None:
        try:
            await run.fetch_all(jobs, results.put, ahead)
        finally:
            results.put(None)  # wakes the caller if the loop ended without every result
