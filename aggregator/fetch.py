"""EDGE: remote feeds over HTTP -> Fetched. Conditional GET; errors become FetchError."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from . import __version__
from .config import FetchConfig, SourceConfig
from .errors import FetchError
from .store.base import SourceState
from .types import Fetched

USER_AGENT = f"aggregator/{__version__} (feed aggregator; +https://example.invalid/aggregator)"


class HttpFetcher:
    """Fetches feeds with httpx. One client per run; a worker pool for concurrency."""

    def __init__(self, config: FetchConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            follow_redirects=True,
            max_redirects=5,
            headers={
                "User-Agent": config.user_agent or USER_AGENT,
                "Accept": "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8",
            },
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, source: SourceConfig, state: SourceState) -> Fetched:
        assert source.url is not None
        headers = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        try:
            with self.client.stream("GET", source.url, headers=headers) as resp:
                if resp.status_code == 304:
                    return Fetched(
                        source.name, str(resp.url), None, 304, dict(resp.headers), state.etag, state.last_modified
                    )
                if resp.status_code >= 400:
                    raise FetchError(
                        f"HTTP {resp.status_code} from {source.url}",
                        status=resp.status_code,
                        permanent=resp.status_code == 410,
                    )
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self.config.max_bytes:
                        raise FetchError(f"response larger than {self.config.max_bytes} bytes from {source.url}")
                return Fetched(
                    source.name,
                    str(resp.url),
                    bytes(body),
                    resp.status_code,
                    dict(resp.headers),
                    resp.headers.get("etag"),
                    resp.headers.get("last-modified"),
                )
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__} fetching {source.url}: {exc}") from exc

    def fetch_many(self, jobs: Sequence[tuple[SourceConfig, SourceState]]) -> list[Fetched | FetchError]:
        def one(job: tuple[SourceConfig, SourceState]) -> Fetched | FetchError:
            try:
                return self.fetch(*job)
            except FetchError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=max(1, min(self.config.concurrency, len(jobs) or 1))) as pool:
            return list(pool.map(one, jobs))
