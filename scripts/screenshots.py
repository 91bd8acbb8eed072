"""`make screenshots`: render the HTML digest of the seed articles in headless Chromium at phone
(375 px) and desktop (800 px) widths, light and dark, into docs/ for the README.

Deterministic input: the seeds in a temporary project, a fixed clock, file delivery off.
"""

from __future__ import annotations

import email
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config  # noqa: E402
from aggregator.digest_send import render_copies  # noqa: E402
from aggregator.pipeline import make_deps, refresh  # noqa: E402
from scripts.headless import Chromium  # noqa: E402

NOW = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday 08:00 in Asia/Shanghai
SHOTS = [(375, False), (375, True), (800, False), (800, True)]


def sample_html(workdir: Path) -> str:
    """The HTML part of the sample subscription's digest over the seeds."""
    shutil.copytree(ROOT / "seeds", workdir / "seeds")
    data = yaml.safe_load((ROOT / "feeds.yaml").read_text(encoding="utf-8"))
    data["sources"] = [{"name": "seeds", "path": "seeds/*.txt"}]
    data["digests"] = [
        {
            "name": "weekly",
            "recipients": ["subscriber@example.org"],
            "topics": list(data.get("topics", {})),
            "unsubscribe_url": "https://news.example.org/aggregator/unsubscribe?list=weekly",
        }
    ]
    (workdir / "feeds.yaml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    config = load_config(workdir / "feeds.yaml")
    deps = make_deps(config, clock=lambda: NOW - timedelta(days=1))
    try:
        refresh(config, deps)
        _, copies = render_copies(config, deps, config.digests[0], NOW - timedelta(days=7), NOW, NOW)
    finally:
        deps.close()
    msg = email.message_from_bytes(copies[0].data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    return str(html.get_content())


def main(out: Path = ROOT / "docs") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "digest.html"
        page.write_text(sample_html(Path(tmp)), encoding="utf-8")
        with Chromium() as browser:
            for width, dark in SHOTS:
                shot = browser.shoot(page, width, dark=dark, height=600)
                if shot.scroll_width > shot.client_width:
                    raise SystemExit(f"horizontal overflow at {width}px: {shot.scroll_width}px wide")
                path = out / f"digest-{width}-{'dark' if dark else 'light'}.png"
                path.write_bytes(shot.png)
                written.append(path)
                print(f"{path.relative_to(ROOT)}  {width}x{shot.scroll_height}")
    return written


if __name__ == "__main__":
    main()
