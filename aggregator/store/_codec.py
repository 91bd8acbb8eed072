"""Entry <-> JSON for the store. Datetimes as ISO 8601 UTC strings."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any, NamedTuple

from ..types import DatePrecision, Entry, FeedMeta


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# first_seen is owned by the store's column, not the payload.
_FIELDS = tuple(f.name for f in fields(Entry) if f.name != "first_seen")
_FEED_FIELDS = tuple(f.name for f in fields(FeedMeta))


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, DatePrecision):
        return o.value
    raise TypeError(type(o))


# Built once: json.dumps with any non-default option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=_default)


def entry_to_json(entry: Entry) -> str:
    # Field by field, not dataclasses.asdict: that deep-copies every value and costs more than
    # the JSON encoding itself. The output is the same (tuples encode as lists either way), and
    # must stay byte for byte what it was: the store compares payloads to tell "unchanged".
    values = entry.__dict__
    data: dict[str, Any] = {name: values[name] for name in _FIELDS}
    for name in ("published", "updated"):
        if data[name] is not None:
            data[name] = data[name].isoformat()
    data["feed"] = {name: getattr(entry.feed, name) for name in _FEED_FIELDS}  # its datetime: _default
    return _ENCODER.encode(data)


class Encoded(NamedTuple):
    """An entry as the store writes it: its JSON payload and the columns kept beside it.

    The parse workers send these back instead of Entries: a string pickles and unpickles for
    next to nothing, and the JSON encoding (~40 µs an entry) runs in the workers, not in the
    one process that stores.
    """

    id: str
    source: str
    payload: str
    content_hash: str
    canonical_url: str | None
    dated_feed: bool  # the origin feed has an `updated` (which the store may keep as first stored)


def encode(entry: Entry) -> Encoded:
    return Encoded(
        entry.id,
        entry.source,
        entry_to_json(entry),
        entry.content_hash,
        entry.canonical_url,
        entry.feed.updated is not None,
    )


def keep_source_updated(payload: str, stored: str) -> str:
    """`stored` when `payload` differs from it only by its origin feed's `updated`, else `payload`.

    A feed's <updated> moves whenever any item is added; copying it onto every stored entry
    would mark them all changed and re-date their atom:source, so readers re-fetch items that
    did not change. The value is the feed's state when this entry was copied (as in RFC 4287's
    atom:source), refreshed only when the entry itself changes.
    """
    before = json.loads(stored).get("feed") or {}
    data = json.loads(payload)
    feed = data.get("feed") or {}
    if before.get("id") != feed.get("id") or not before.get("updated"):
        return payload
    feed["updated"] = datetime.fromisoformat(before["updated"]).isoformat()
    return stored if _ENCODER.encode(data) == stored else payload


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
