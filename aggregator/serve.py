"""EDGE: serve the output directory (feeds, topics/, archive/, digests) over HTTP.

Starlette + uvicorn. Every response carries a strong, content-based ETag and Last-Modified; a
matching If-None-Match (or, without one, an If-Modified-Since at or after the file's time) gets
304. gzip is negotiated here rather than by GZipMiddleware: the middleware keeps the identity
ETag on the compressed body, and a strong ETag must differ between two representations, so the
gzip variant gets its own tag (`"<hash>-gzip"`) and is compressed once per file version,
deterministically (mtime 0). Only regular, non-hidden files below the output directory are
served; `..`, absolute, backslash and NUL paths, symlinks leading out, and temp files get 404.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, AbstractContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# Content types by suffix; feeds first. JSON Feed has its own type (jsonfeed.org, 1.1).
CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".eml": "message/rfc822",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
FEED_JSON_TYPE = "application/feed+json"
CACHE_CONTROL = "public, max-age=300"  # feeds change at most every refresh; 5 min of staleness is fine
_COMPRESSIBLE = ("text/", "application/atom+xml", "application/xml", "application/json", "application/feed+json")
_MIN_GZIP_BYTES = 512  # below this gzip's header costs more than it saves
_CACHE_FILES = 64  # file versions kept in memory (bytes + gzip bytes + tags)

# A hook started with the server and stopped with it (e.g. the refresh/digest scheduler).
ServeHook = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class _Representation:
    body: bytes
    gz: bytes | None  # gzip variant, None when not worth it
    etag: str  # strong, quoted
    gz_etag: str
    last_modified: datetime
    content_type: str


def content_type_for(path: Path) -> str:
    """Content-Type for a served file (feed.json is a JSON Feed)."""
    if path.name == "feed.json" or path.name.endswith(".feed.json"):
        return FEED_JSON_TYPE
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def safe_path(root: Path, url_path: str) -> Path | None:
    """Map a decoded URL path to a regular file under root, or None (-> 404).

    Refuses `..` and `.` segments, empty segments (`//` would make an absolute path), backslashes,
    NUL, hidden names (temp files are `.name.tmp`), and anything whose real path leaves root.
    A directory maps to its index.html.
    """
    if "\\" in url_path or "\x00" in url_path:
        return None
    parts = url_path.split("/")
    if parts and parts[-1] == "":
        parts = [*parts[:-1], "index.html"]
    if not parts or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    real_root = root.resolve()
    try:
        candidate = real_root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if candidate.is_dir():
        candidate = candidate / "index.html"
    if not candidate.is_relative_to(real_root) or not candidate.is_file():
        return None
    return candidate


class FileCache:
    """Reads a file once per version (inode, size, mtime) and keeps its tags and gzip body."""

    def __init__(self, size: int = _CACHE_FILES) -> None:
        self._items: OrderedDict[tuple[str, int, int, int], _Representation] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, path: Path) -> _Representation:
        # Open first and stat the open file: a concurrent atomic replace cannot pair the old
        # file's stat with the new file's bytes.
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
            body = f.read()
        rep = _make_representation(path, body, st.st_mtime)
        with self._lock:
            self._items[key] = rep
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return rep


def _make_representation(path: Path, body: bytes, mtime: float) -> _Representation:
    ctype = content_type_for(path)
    digest = hashlib.sha256(body).hexdigest()[:32]
    gz = None
    if len(body) >= _MIN_GZIP_BYTES and ctype.startswith(_COMPRESSIBLE):
        gz = gzip.compress(body, compresslevel=6, mtime=0)  # mtime=0: same bytes every time
    return _Representation(
        body=body,
        gz=gz,
        etag=f'"{digest}"',
        gz_etag=f'"{digest}-gzip"',
        last_modified=datetime.fromtimestamp(int(mtime), UTC),  # HTTP dates have whole seconds
        content_type=ctype,
    )


def _accepts_gzip(header: str) -> bool:
    """True unless gzip is absent or refused with q=0 (RFC 9110 12.5.3)."""
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.replace(" ", "").lower()
            if q.startswith("q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


def _etag_matches(if_none_match: str, tags: Iterable[str]) -> bool:
    """Weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored; `*` matches any."""
    wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in wanted or any(t in wanted for t in tags)


def _not_modified(request: Request, rep: _Representation, etag: str) -> bool:
    """RFC 9110 13.2.2: If-None-Match wins; If-Modified-Since counts only without it."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        # Only the selected variant's tag: a cache keeps one response per Accept-Encoding (Vary).
        return _etag_matches(inm, (etag,))
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return rep.last_modified <= since
    return False


def create_app(output_dir: Path, *, hooks: Iterable[ServeHook] = ()) -> Starlette:
    """The ASGI app serving output_dir read-only. `hooks` run for the server's lifetime."""
    root = Path(output_dir)
    cache = FileCache()
    hook_list = list(hooks)

    def serve_file(request: Request) -> Response:
        # A sync endpoint: Starlette runs it in its thread pool, so file reads do not block the loop.
        path = safe_path(root, request.path_params.get("path", ""))
        if path is None:
            return PlainTextResponse("Not Found\n", status_code=404)
        try:
            rep = cache.get(path)
        except OSError:
            return PlainTextResponse("Not Found\n", status_code=404)
        use_gz = rep.gz is not None and _accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = rep.gz_etag if use_gz else rep.etag
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(rep.last_modified, usegmt=True),
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        }
        if rep.gz is not None:
            headers["Vary"] = "Accept-Encoding"
        if _not_modified(request, rep, etag):
            return Response(status_code=304, headers=headers)
        body = rep.gz if use_gz and rep.gz is not None else rep.body
        if use_gz:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = rep.content_type
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=headers)
        return Response(body, status_code=200, headers=headers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        with ExitStack() as stack:
            for hook in hook_list:
                stack.enter_context(hook())
            yield

    lifespan_cm: Callable[[Starlette], AbstractAsyncContextManager[Any]] = lifespan
    return Starlette(
        routes=[Route("/{path:path}", serve_file, methods=["GET", "HEAD"])],
        lifespan=lifespan_cm,
    )


def run(output_dir: Path, *, host: str = "127.0.0.1", port: int = 8080, hooks: Iterable[ServeHook] = ()) -> None:
    """Serve output_dir until interrupted (Ctrl-C / SIGTERM)."""
    import uvicorn

    uvicorn.run(create_app(output_dir, hooks=hooks), host=host, port=port, log_level="info", server_header=False)
