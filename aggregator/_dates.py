"""Finding a page's publication date in the places news pages put it.

We look only where dates live: a date line near the top, a labelled field (`Date: ...`,
`发布时间：...`, or a `Date` label with the value on the next line), and an "On August 16"
dateline at the start of the body. A whole-page fuzzy search is deliberately absent: it
turns "2023 Academic Conference" or a phone number into a publication date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from .types import DatePrecision

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MON = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_TIME = r"(?:[ T]+(?P<H>\d{1,2})[:：](?P<M>\d{2})(?::\d{2})?)?"
_PATTERNS = [
    re.compile(r"(?P<y>(?:19|20)\d{2})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日" + _TIME),
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)" + _TIME),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})[/.](?P<m>\d{1,2})[/.](?P<y>(?:19|20)\d{2})(?!\d)" + _TIME),
    re.compile(r"\b" + _MON + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\s*,?\s*(?P<y>(?:19|20)\d{2})\b" + _TIME, re.I),
    re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+" + _MON + r",?\s*(?P<y>(?:19|20)\d{2})\b" + _TIME, re.I),
]
_LABEL = re.compile(
    r"^(?:date|published|posted|posted on|release date|发布时间|发布日期|日期|时间|更新时间)\s*[:：]?\s*(?P<rest>.*)$",
    re.I,
)
_DATELINE = re.compile(r"^(?:on\s+)" + _MON + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\b", re.I)
_ZH_DATELINE = re.compile(r"^(?:\S{0,12}?)(?P<m>\d{1,2})月(?P<d>\d{1,2})日")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")
_NOISE = re.compile(
    r"(点击|浏览|阅读)[:：]?\s*[\[\(（]?\s*\d*\s*[\]\)）]?|views?\s*[:：]?\s*\d*|作者[:：].*|来源[:：].*", re.I
)

HEAD_LINES = 20  # date lines live in the page header


@dataclass(frozen=True)
class FoundDate:
    value: datetime | None
    precision: DatePrecision
    provenance: str
    line_index: int | None = None
    consumed: frozenset[int] = field(default_factory=frozenset)


def _month(name: str) -> int:
    return _MONTHS[name.lower().rstrip(".")[:3]]


def _build(m: re.Match[str], tz: tzinfo) -> tuple[datetime, DatePrecision] | None:
    g = m.groupdict()
    try:
        month = _month(g["mon"]) if g.get("mon") else int(g["m"])
        day, year = int(g["d"]), int(g["y"])
        if g.get("H") is not None:
            local = datetime(year, month, day, int(g["H"]), int(g["M"]), tzinfo=tz)
            return local.astimezone(UTC), DatePrecision.MINUTE
        return datetime(year, month, day, tzinfo=tz).astimezone(UTC), DatePrecision.DAY
    except (ValueError, KeyError):
        return None


def parse_date_text(text: str, tz: tzinfo) -> tuple[datetime, DatePrecision, str] | None:
    """Parse one explicit date (with year) from a short piece of text."""
    for pat in _PATTERNS:
        m = pat.search(text)
        if m:
            built = _build(m, tz)
            if built:
                return built[0], built[1], m.group(0).strip()
    return None


def _is_mostly_date(line: str, matched: str) -> bool:
    rest = _NOISE.sub("", line.replace(matched, "")).strip(" |-·/[]()：:")
    return len(rest) <= 12


def find_date(lines: list[str], *, tz: tzinfo, fetched_at: datetime) -> FoundDate | None:
    """Find the publication date of a page given as non-empty stripped lines."""
    latest = fetched_at + timedelta(days=1)  # a date in the future of the fetch is not a publication date

    def ok(value: datetime) -> bool:
        return value <= latest

    # 1. Labelled fields anywhere ("Date: 2025-11-04", or "Date" then the value on the next line).
    for i, ln in enumerate(lines):
        m = _LABEL.match(ln)
        if not m:
            continue
        rest, consumed = m.group("rest"), {i}
        if not rest and i + 1 < len(lines):
            rest, consumed = lines[i + 1], {i, i + 1}
        parsed = parse_date_text(rest, tz)
        if parsed and ok(parsed[0]):
            return FoundDate(parsed[0], parsed[1], f"labelled field {ln!r} (line {i + 1})", i, frozenset(consumed))

    # 2. A line near the top that is mostly a date (with a time, view counter, author...).
    for i, ln in enumerate(lines[:HEAD_LINES]):
        parsed = parse_date_text(ln, tz)
        if parsed and _is_mostly_date(ln, parsed[2]) and ok(parsed[0]):
            return FoundDate(parsed[0], parsed[1], f"date line {ln!r} (line {i + 1})", i, frozenset({i}))

    # 3. A dateline opening a body paragraph: "On August 16, ..." / "8月16日，..." (no year).
    body_text = "\n".join(lines)
    for i, ln in enumerate(lines[:HEAD_LINES]):
        m = _DATELINE.match(ln)
        zm = None if m else _ZH_DATELINE.match(ln)
        if not (m or zm):
            continue
        if m:
            month = _month(m.group("mon"))
            day = int(m.group("d"))
        else:
            assert zm is not None
            month, day = int(zm.group("m")), int(zm.group("d"))
        snippet = (m or zm).group(0)  # type: ignore[union-attr]
        years = {int(y) for y in _YEAR.findall(body_text) if int(y) <= fetched_at.year}
        if len(years) == 1:
            year = years.pop()
            try:
                value = datetime(year, month, day, tzinfo=tz).astimezone(UTC)
            except ValueError:
                return None
            if ok(value):
                return FoundDate(
                    value,
                    DatePrecision.INFERRED_YEAR,
                    f"dateline {snippet!r} (line {i + 1}); year {year} is the only year the text mentions",
                    None,
                )
        return FoundDate(
            None,
            DatePrecision.NONE,
            f"dateline {snippet!r} (line {i + 1}) has no year and the text gives no single year",
            None,
        )
    return None
