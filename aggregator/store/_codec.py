"""Entry <-> JSON for the store. Datetimes as ISO 8601 UTC strings."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from ..types import DatePrecision, Entry, FeedMeta


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def entry_to_json(entry: Entry) -> str:
    data = asdict(entry)
    data.pop("first_seen", None)  # owned by the store's column, not the payload

    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, DatePrecision):
            return o.value
        raise TypeError(type(o))

    return json.dumps(data, default=default, ensure_ascii=False, sort_keys=True)


def entry_from_json(payload: str, first_seen: str | None) -> Entry:
    d = json.loads(payload)
    feed = d.pop("feed", None) or {}
    return Entry(
        **{
            **d,
            "published": _dt(d.get("published")),
            "updated": _dt(d.get("updated")),
            "date_precision": DatePrecision(d.get("date_precision", "none")),
            "authors": tuple(d.get("authors") or ()),
            "topics": tuple(d.get("topics") or ()),
            "first_seen": _dt(first_seen),
        },
        feed=FeedMeta(
            id=feed.get("id"), title=feed.get("title"), link=feed.get("link"), updated=_dt(feed.get("updated"))
        ),
    )
