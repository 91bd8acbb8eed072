"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

No browser download and no websocket library: Debian's `chromium` and the standard library.
Used by `make screenshots` and by the digest's no-horizontal-overflow test.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The flags the project uses for every headless run: no network chatter, no profile reuse.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """The Chromium binary, or None. CHROMIUM overrides the search."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class PageShot:
    png: bytes
    scroll_width: int  # document width; > viewport width means horizontal overflow
    client_width: int  # the viewport's layout width
    scroll_height: int
    dark: bool  # what the page saw for prefers-color-scheme: dark


class Chromium:
    """One headless browser; `shoot` renders a local file at a width in light or dark mode."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        binary = binary or find_chromium()
        if not binary:
            raise FileNotFoundError("chromium not found (apt-get install chromium, or set CHROMIUM)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="digest-chromium-")
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()

        def wire_fds() -> None:  # the child reads commands on fd 3 and writes replies on fd 4
            # Move both ends out of the way first: either pipe end may itself be fd 3 or 4.
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(res_w)
        self.w = cmd_w
        self.r = res_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise ConnectionError("chromium exited")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def shoot(self, page: Path, width: int, *, dark: bool = False, height: int = 900) -> PageShot:
        """Render `page` in a fresh tab `width` CSS px wide; a full-height PNG and the page's sizes."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
                s,
            )
            scheme = "dark" if dark else "light"
            self.call(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}, s
            )
            self.call("Page.enable", {}, s)
            self.call("Page.navigate", {"url": page.resolve().as_uri()}, s)
            self.wait_event("Page.loadEventFired", s)
            expr = (
                "JSON.stringify({sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth,"
                " sh: document.documentElement.scrollHeight,"
                " dark: matchMedia('(prefers-color-scheme: dark)').matches})"
            )
            sizes = json.loads(
                self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, s)["result"]["value"]
            )
            shot = self.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": sizes["sh"], "scale": 1},
                },
                s,
            )
        finally:
            self.call("Target.closeTarget", {"targetId": target})
        return PageShot(base64.b64decode(shot["data"]), sizes["sw"], sizes["cw"], sizes["sh"], sizes["dark"])

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.w, self.r):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
