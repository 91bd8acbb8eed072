"""`serve`: real HTTP requests to a uvicorn server on 127.0.0.1 (ephemeral port, in a thread)."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
import uvicorn
import yaml
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config, load_config
from aggregator.publish import publish_all, write_atomic
from aggregator.serve import create_app, safe_path

from .conftest import SEEDS, shipped_config_data
from .test_publish import make_entry, stories_of


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Server:
    """uvicorn in a thread on a socket we bound ourselves, so the port is known before it starts."""

    def __init__(self, root: Path) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(root), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()

    def request(self, path: str, method: str = "GET", **headers: str) -> Reply:
        """Send the path exactly as given: http.client does not normalise `..` or decode `%2e`."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
            resp = conn.getresponse()
            body = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        finally:
            conn.close()


def make_site(config: Config) -> Path:
    """The output directory after a publish, plus things that must never be served."""
    stories = stories_of([make_entry(i) for i in range(30)])
    publish_all(config, stories)
    out = config.output_path
    write_atomic(out / "digest" / "digest.html", b"<!doctype html><title>digest</title>")
    (out / ".feed.atom.abc.tmp").write_bytes(b"half a feed")
    (out.parent / "secret.txt").write_text("outside the output directory")
    (out / "link-out.txt").symlink_to(out.parent / "secret.txt")
    return out


@pytest.fixture(scope="module")
def module_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """One project for the read-only tests of this module: a server start per test is slow."""
    root = tmp_path_factory.mktemp("serve")
    shutil.copytree(SEEDS, root / "seeds")
    data = shipped_config_data()
    data["sources"] = [{"name": "seeds", "path": "seeds/*.txt"}]
    (root / "feeds.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(root / "feeds.yaml")


@pytest.fixture(scope="module")
def site(module_config: Config) -> Path:
    return make_site(module_config)


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[Server]:
    with Server(site) as s:
        yield s


def test_get_feed_with_validators(server: Server, site: Path) -> None:
    r = server.request("/feed.atom")
    assert r.status == 200
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert r.body == (site / "feed.atom").read_bytes()
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")  # strong
    mtime = datetime.fromtimestamp(int((site / "feed.atom").stat().st_mtime), UTC)
    assert parsedate_to_datetime(r.headers["last-modified"]) == mtime
    assert r.headers["x-content-type-options"] == "nosniff"
    # The same bytes give the same tag: it is derived from the content, not from the file's time.
    assert server.request("/feed.atom").headers["etag"] == etag


def test_if_none_match_gives_304(server: Server) -> None:
    etag = server.request("/feed.atom").headers["etag"]
    r = server.request("/feed.atom", If_None_Match=etag)
    assert r.status == 304 and r.body == b"" and r.headers["etag"] == etag
    assert server.request("/feed.atom", If_None_Match=f'"other", W/{etag}').status == 304  # list, weak compare
    assert server.request("/feed.atom", If_None_Match='"something-else"').status == 200


def test_if_modified_since(server: Server) -> None:
    first = server.request("/feed.atom")
    last_modified = first.headers["last-modified"]
    assert server.request("/feed.atom", If_Modified_Since=last_modified).status == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(seconds=1), usegmt=True)
    assert server.request("/feed.atom", If_Modified_Since=earlier).status == 200
    assert server.request("/feed.atom", If_Modified_Since="not a date").status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    r = server.request("/feed.atom", If_None_Match='"stale"', If_Modified_Since=last_modified)
    assert r.status == 200


def test_gzip_when_asked(server: Server, site: Path) -> None:
    plain = server.request("/feed.atom")
    r = server.request("/feed.atom", Accept_Encoding="gzip, deflate")
    assert r.status == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in r.headers["vary"].lower()
    assert gzip.decompress(r.body) == (site / "feed.atom").read_bytes()
    assert len(r.body) < len(plain.body)
    assert r.headers["etag"] != plain.headers["etag"]  # two representations, two strong tags
    assert server.request("/feed.atom", Accept_Encoding="gzip", If_None_Match=r.headers["etag"]).status == 304
    assert server.request("/feed.atom", Accept_Encoding="gzip;q=0").headers.get("content-encoding") is None
    assert "content-encoding" not in plain.headers


def test_head(server: Server, site: Path) -> None:
    get = server.request("/feed.atom")
    r = server.request("/feed.atom", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.headers["etag"] == get.headers["etag"]
    assert int(r.headers["content-length"]) == (site / "feed.atom").stat().st_size
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert server.request("/feed.atom", method="HEAD", If_None_Match=get.headers["etag"]).status == 304


def test_other_files_and_types(server: Server) -> None:
    r = server.request("/feed.json")
    assert r.status == 200 and r.headers["content-type"] == "application/feed+json"
    r = server.request("/topics/rare-earth.atom")
    assert r.status == 200 and r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    r = server.request("/")  # the feeds' alternate link: the index page
    assert r.status == 200 and b'href="feed.atom"' in r.body
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    r = server.request("/digest/digest.html")
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert server.request("/feed.atom", method="POST").status == 405


TRAVERSALS = [
    "/../secret.txt",
    "/topics/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/topics/..%2F..%2Fsecret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/link-out.txt",
    "/.feed.atom.abc.tmp",
    "/missing.atom",
    "/topics/",
    "/feed.atom%00.txt",
]


def test_nothing_outside_the_output_directory(server: Server) -> None:
    for path in TRAVERSALS:
        r = server.request(path)
        assert r.status == 404, path
        assert b"outside the output directory" not in r.body


def test_a_new_build_changes_the_etag(config: Config) -> None:
    with Server(make_site(config)) as server:
        old = server.request("/feed.atom")
        publish_all(config, stories_of([make_entry(i) for i in range(31)]))
        r = server.request("/feed.atom", If_None_Match=old.headers["etag"])
        assert r.status == 200 and r.headers["etag"] != old.headers["etag"]
        assert b"Rare earth story 30" in r.body


def test_safe_path_unit(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text("x")
    (tmp_path / "f.atom").write_text("x")
    assert safe_path(tmp_path, "f.atom") == (tmp_path / "f.atom").resolve()
    assert safe_path(tmp_path, "a/") == (tmp_path / "a" / "index.html").resolve()
    assert safe_path(tmp_path, "a") == (tmp_path / "a" / "index.html").resolve()
    for bad in ("../x", "a/../f.atom", "/etc/passwd", "a//f", ".hidden", "a\\..\\f.atom", "f.atom\x00"):
        assert safe_path(tmp_path, bad) is None, bad


def test_serve_command_help() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--schedule"):
        assert option in result.output


def test_serve_command_serves_the_configured_output(site: Path, module_config: Config) -> None:
    """The real command in a subprocess: it listens, serves feed.atom, and stops on SIGTERM."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "-c", module_config.config_path, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/feed.atom")
                resp = conn.getresponse()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.05)
        assert resp.status == 200
        assert resp.read() == (site / "feed.atom").read_bytes()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode in (0, -15)
