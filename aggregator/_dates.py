"""Finding a page's publication date in the places news pages put it.

We look only where dates live, in this order:

1. a labelled field (`Date: 2025-11-04`, `发布时间：2026-05-20 09:00`, `Posted on March 3, 2025`,
   or a `Date` label with its value on the next line) in a short metadata line;
2. a line in the page header or in the trailing metadata block that is mostly a date
   (`2026年03月10日 15:38  点击:[]`);
3. a dateline opening the first body paragraphs (`On August 16, ...`, `8月16日，...`,
   `BEIJING, March 3 (Xinhua) --`). Without a year there, the year is inferred only when the
   article text mentions exactly one year; otherwise the date stays unknown.

A whole-page fuzzy search is deliberately absent: it turns "2023 Academic Conference" or a
phone number into a publication date. Nothing here ever falls back to the fetch time, and a
date after the fetch time is rejected (a typo or an event announcement, not a publication).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from html.parser import HTMLParser

from .types import DatePrecision

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MON = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_Y = r"(?P<y>(?:19|20)\d{2})"
# Zone abbreviations with one meaning (CST, IST and the like are ambiguous: China or US Central,
# India or Ireland; those dates are read in the source's time zone instead).
_ZONE_NAMES = {
    "EST": -5, "EDT": -4, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8,
    "HST": -10, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "HKT": 8, "SGT": 8,
    "JST": 9, "KST": 9, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}  # fmt: skip
_ZONE_NAME = "|".join(sorted(_ZONE_NAMES, key=len, reverse=True))  # longest first

# Clock time after a date: "15:38", "T09:00:00", ", 3:05 pm", "15时38分"; an optional UTC offset.
_TIME = (
    r"(?:(?:\s*(?:星期[一二三四五六日天]|周[一二三四五六日]|\(?(?i:mon|tue|wed|thu|fri|sat|sun)[a-zA-Z]*\.?\)?,?))?"
    r"(?:\s*|T|\s*,\s*|\s+at\s+|\s+[-–]\s+)(?P<H>[01]?\d|2[0-3])\s*[:：时]\s*(?P<M>[0-5]\d)(?:\s*分)?(?:[:：][0-5]\d(?:\.\d+)?)?"
    r"(?:\s*(?P<ampm>[aApP])(?:\.[mM]\.|\.?[mM]\b))?"
    r"(?:\s*\(?(?P<off>Z|[+-](?:[01]\d):?[0-5]\d|(?-i:"
    + _ZONE_NAME
    + r")|(?:UTC|GMT)(?:\s*[+-]\s*\d{1,2}(?::?\d{2})?)?)(?![\w+-])\)?)?)?"  # "+08:00", "(UTC+8)"
)
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("zh", re.compile(_Y + r"\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]" + _TIME)),
    ("ymd", re.compile(r"(?<![\d.])" + _Y + r"(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?![\d.])" + _TIME)),
    ("dmy", re.compile(r"(?<![\d./-])(?P<d>\d{1,2})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)" + _Y + r"(?!\d)" + _TIME)),
    ("mdy", re.compile(r"\b" + _MON + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\s*,?\s*" + _Y + r"\b" + _TIME, re.I)),
    ("dmy-name", re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+" + _MON + r",?\s*" + _Y + r"\b" + _TIME, re.I)),
    # "09:07, November 03, 2025": the clock time first
    (
        "time-mdy",
        re.compile(
            r"(?<![\d:])(?P<H>[01]?\d|2[0-3]):(?P<M>[0-5]\d)(?:\s*(?P<ampm>[ap])\.?m\.?)?,?\s+"
            + _MON
            + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\s*,?\s*"
            + _Y
            + r"\b",
            re.I,
        ),
    ),
]
_WEEKDAY = re.compile(
    r"^\s*(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?|星期[一二三四五六日天]|周[一二三四五六日])\s*",
    re.I,
)
# Labels whose value is the publication date; "updated" labels count only when nothing else does.
_PUBLISHED_LABELS = (
    r"date|dated|published(?:\s+on)?|publish(?:ed)?\s+date|publication\s+date|posted(?:\s+on)?|release\s+date"
    r"|released(?:\s+on)?|issued(?:\s+on)?|time|发布时间|发布日期|发表时间|发表日期|发稿时间|发文日期|日期|时间"
    r"|上传时间|录入时间|创建时间|发布|发表于|发布于"
)
_UPDATED_LABELS = r"updated(?:\s+on)?|last\s+updated|modified|更新时间|更新日期|修改时间"
LABEL_RE = re.compile(
    r"(?:^|(?<=[\s|｜\[【(（•·,，;；]))(?P<label>"
    + _PUBLISHED_LABELS
    + "|"
    + _UPDATED_LABELS
    + r")\s*(?P<colon>[:：])?\s*",
    re.I,
)
_UPDATED_RE = re.compile(r"^(?:" + _UPDATED_LABELS + r")$", re.I)
# The other fields of a metadata line, removed before judging whether a line is "mostly a date".
_NOISE = re.compile(
    r"(?:点击|浏览|阅读|访问)(?:次数|数|量)?\s*[:：]?\s*[\[\(（【]?\s*\d*\s*[\]\)）】]?"
    r"|\b(?:views?|hits?|reads?|clicks?)\s*[:：]?\s*\d*|\d+\s*(?:views?|hits?|reads?)\b"
    r"|(?:作者|来源|编辑|责任编辑|供稿|审核|摄影|通讯员|记者|source|author|editor|by|from)\s*[:：]\s*\S*(?:\s\S+)?"
    r"|\bby\s+[A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*){0,3}"
    r"|[\[【(（]?\s*(?:字号|字体)\s*[:：]?.*$|\b(?:am|pm)\b|(?:北京时间|beijing time)"
    r"|[(（][^()（）]{1,40}[)）]"  # "(People's Daily Online)", "(Xinhua)"
    r"|\b(?:updated|posted|published)?\s*(?:\d+|an?)\s+(?:minutes?|hours?|days?|weeks?)\s+ago\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b",
    re.I,
)
_SEPARATORS = re.compile(r"[\s|｜\-–—·•/\[\]()（）【】:：,，]+")  # what is left around a date's fields
_HANZI = re.compile(r"[\u3400-\u9fff]")
_WEEKDAY_ZH = re.compile(r"星期[一二三四五六日天]|周[一二三四五六日]")
_YEAR = re.compile(r"(?<![\d.,])((?:19|20)\d{2})(?![\d%])")
_DATELINES = [
    # "On August 16, ...", "On Monday, March 3rd, 2025 ..."
    re.compile(
        r"^(?:on|in|from)\s+(?:the\s+(?:morning|afternoon|evening|night)\s+of\s+)?"
        r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
        + _MON
        + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\b(?:\s*,?\s*(?P<y>(?:19|20)\d{2})\b)?",
        re.I,
    ),
    # "BEIJING, March 3 (Xinhua) --", "GANZHOU, Aug. 16 —", "SYDNEY, Australia, June 3, 2025 /PRNewswire/ --"
    re.compile(
        r"^[A-Z][A-Z .'-]{1,30},\s*(?:[A-Z][A-Za-z .'-]{1,30},\s*)?(?i:" + _MON + r")\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?"
        r"(?:\s*,?\s*(?P<y>(?:19|20)\d{2}))?\s*(?:/[^/\n]{1,40}/\s*)?(?:\(|--|—|–|-)",
    ),
    # "Aug. 16 -- The ministry ..."
    re.compile(
        r"^(?i:" + _MON + r")\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:\s*,\s*(?P<y>(?:19|20)\d{2}))?\s*(?:--|—|–)",
    ),
    # "8月16日，…", "本报讯 8月16日上午，…", "（记者 张三）2024年3月9日，…"
    re.compile(
        r"^(?:[（(][^（）()]{0,20}[）)])?\s*(?:本报讯|[^\s，。]{0,10}?讯|[^\s，。]{0,10}?电)?\s*[（(]?[^（）()，。]{0,12}?[）)]?\s*"
        r"(?:(?P<y>(?:19|20)\d{2})\s*年\s*)?(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日"
    ),
]

# A date line without a year ("Nov. 5", "Wednesday, 5 November 10:30", "11月5日 15:38"): the whole
# line, apart from a weekday, a clock time and metadata noise. Read only in the page header and the
# trailing block, and its year only inferred as for datelines (`_with_inferred_year`).
_CLOCK = r"(?:\s*,?\s*(?:at\s+)?(?:[01]?\d|2[0-3])\s*[:：时]\s*[0-5]\d(?:\s*分)?(?:\s*[ap]\.?m\.?)?)?"
_YEARLESS = [
    re.compile(r"^" + _MON + r"\s*(?P<d>\d{1,2})(?:st|nd|rd|th)?\b" + _CLOCK, re.I),
    re.compile(r"^(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+" + _MON + r"(?![a-z])" + _CLOCK, re.I),
    re.compile(r"^(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]" + _CLOCK),
]

# A wire dateline with its agency and dash, or a Chinese one ("新华社南昌11月5日电（记者 张三）").
_DATELINE_LEAD = re.compile(
    r"^(?:[A-Z][A-Z .'-]{1,30},\s*(?:[A-Z][A-Za-z .'-]{1,30},\s*)?(?i:" + _MON.replace("?P<mon>", "?:") + r")\s*\d{1,2}"
    r"(?:st|nd|rd|th)?(?:\s*,?\s*(?:19|20)\d{2})?\s*(?:/[^/\n]{1,40}/\s*)?(?:\([^()]{1,40}\)\s*)?(?:--|—|–|-)"
    r"|(?:新华社|中新社|中新网|本报|人民网)[^\s，。]{0,16}?[讯电](?:[（(][^）)]{0,20}[）)])?)\s*"
)


def without_dateline(text: str) -> str:
    """`text` without a leading wire dateline: what a title made from the first words should skip."""
    return _DATELINE_LEAD.sub("", text, count=1)


LONG_LINE = 400  # only the start of a line is searched: dates sit at the start of metadata lines


@dataclass(frozen=True)
class ParsedDate:
    """One explicit date read from text."""

    value: datetime  # aware UTC
    precision: DatePrecision
    matched: str  # the text that was read as a date
    note: str = ""  # how an ambiguous form was read


@dataclass(frozen=True)
class FoundDate:
    """The outcome of the date search: a value (or None), its precision and where it came from."""

    value: datetime | None
    precision: DatePrecision
    provenance: str
    consumed: frozenset[int] = field(default_factory=frozenset)  # line indices that were date metadata


def _month(name: str) -> int:
    return _MONTHS[name.lower().rstrip(".")[:3]]


def _offset(text: str) -> tzinfo | None:
    t = text.upper().replace(" ", "")
    if t in ("Z", "UTC", "GMT"):
        return UTC
    if t in _ZONE_NAMES:
        return timezone(timedelta(hours=_ZONE_NAMES[t]))
    m = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", t)
    if not m:
        return None
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    return timezone(delta if m.group(1) == "+" else -delta)


def _build(kind: str, m: re.Match[str], tz: tzinfo) -> ParsedDate | None:
    g = m.groupdict()
    note = ""
    try:
        month = _month(g["mon"]) if g.get("mon") else int(g["m"])
        day, year = int(g["d"]), int(g["y"])
        if kind == "dmy" and month > 12 >= day:
            day, month, note = month, day, " (read as month/day/year)"
        elif kind == "dmy" and day <= 12 and month <= 12 and day != month:
            note = " (read as day/month/year)"
        if g.get("H") is not None:
            hour = int(g["H"])
            if g.get("ampm"):
                hour = hour % 12 + (12 if g["ampm"].lower() == "p" else 0)
            zone = _offset(g["off"]) if g.get("off") else None
            local = datetime(year, month, day, hour, int(g["M"]), tzinfo=zone or tz)
            return ParsedDate(local.astimezone(UTC), DatePrecision.MINUTE, m.group(0).strip(), note)
        local = datetime(year, month, day, tzinfo=tz)
        return ParsedDate(local.astimezone(UTC), DatePrecision.DAY, m.group(0).strip(), note)
    except (ValueError, KeyError, OverflowError):
        return None


def parse_date_text(text: str, tz: tzinfo, *, at_start: bool = False) -> ParsedDate | None:
    """Parse the first explicit date (with a year) in a short piece of text.

    Local times are in `tz` unless the text carries an offset. With `at_start`, the date must
    open the text (after an optional weekday), as in the value of a `Date:` label.
    """
    text = text[:LONG_LINE]
    if at_start:
        text = _WEEKDAY.sub("", text, count=1)
    best: tuple[int, ParsedDate] | None = None
    for kind, pat in _PATTERNS:
        for m in pat.finditer(text):
            if at_start and m.start() > 2:
                break
            built = _build(kind, m, tz)
            if built and (best is None or m.start() < best[0]):
                best = (m.start(), built)
            break
    return best[1] if best else None


def mostly_date(line: str, matched: str) -> bool:
    """True when a line is a date plus metadata noise (views, author, source), not prose."""
    if len(line) > LONG_LINE:
        return False
    rest = _NOISE.sub(" ", line.replace(matched, " "))
    rest = LABEL_RE.sub(" ", rest)
    rest = _SEPARATORS.sub("", rest)
    # Five Chinese characters left are words ("2025年11月4日稀土价格行情" is a headline); a weekday is not.
    return len(rest) <= 12 and len(_HANZI.findall(_WEEKDAY_ZH.sub("", rest))) < 5


def yearless_date(line: str) -> tuple[int, int, str] | None:
    """(month, day, matched) when a short line is only a date without a year ("Nov. 5")."""
    if len(line) > 80:
        return None
    text = _WEEKDAY.sub("", line.strip(), count=1)
    for pat in _YEARLESS:
        m = pat.match(text)
        if not m:
            continue
        rest = _NOISE.sub(" ", text[m.end() :])
        if _SEPARATORS.sub("", LABEL_RE.sub(" ", rest).replace(".", "")):
            return None  # "May 4th Movement", "March 18 workshop": words follow the date
        g = m.groupdict()
        month = _month(g["mon"]) if g.get("mon") else int(g["m"])
        try:
            datetime(2000, month, int(g["d"]))  # validates month/day (2000 is a leap year)
        except ValueError:
            return None
        return month, int(g["d"]), m.group(0).strip()
    return None


def years_in(text: str, *, until: int) -> set[int]:
    """Distinct plausible years (1900..until) written in a text."""
    return {int(y) for y in _YEAR.findall(text) if 1900 <= int(y) <= until}


def find_date(
    lines: Sequence[str],
    *,
    tz: tzinfo,
    fetched_at: datetime,
    header: range,
    trailer: range,
    metadata_lines: frozenset[int],
    dated_metadata: frozenset[int] = frozenset(),
    opening: Sequence[int],
    article_text: str,
) -> FoundDate:
    """Find the publication date of a page.

    `lines` are the page's non-empty lines; `header` and `trailer` are the index ranges before
    the body and after its last paragraph; `metadata_lines` are short non-prose lines anywhere,
    `dated_metadata` those made only of metadata fields with a date (source | date | hits);
    `opening` are the indices of the first body paragraphs; `article_text` is the kept title and
    body (for year evidence, never the boilerplate around it).
    """
    rejected: list[str] = []

    def ok(p: ParsedDate, where: str) -> bool:
        if p.value > fetched_at:
            rejected.append(f"{p.matched!r} in {where} is after the fetch time")
            return False
        return True

    # 1. Labelled fields in metadata lines.
    updated: FoundDate | None = None
    for i in sorted(metadata_lines | set(header) | set(trailer)):
        ln = lines[i]
        if len(ln) > LONG_LINE:
            continue
        for m in LABEL_RE.finditer(ln):
            rest = ln[m.end() :]
            consumed = {i}
            if not rest.strip() and i + 1 < len(lines):
                rest, consumed = lines[i + 1], {i, i + 1}
            elif not m.group("colon") and m.start() > 0:
                continue  # "time" inside a sentence is not a label
            parsed = parse_date_text(rest, tz, at_start=True)
            where = f"labelled field {ln.strip()!r} (line {i + 1})"
            if len(consumed) == 2:
                where = f"labelled field {ln.strip()!r} with value {rest.strip()!r} (lines {i + 1}-{i + 2})"
            if parsed and ok(parsed, where):
                found = FoundDate(parsed.value, parsed.precision, where + parsed.note, frozenset(consumed))
                if _UPDATED_RE.match(m.group("label").strip()):
                    updated = updated or found
                    continue
                return found

    # 2. A line in the header or the trailing block that is mostly a date.
    for zone, name in ((header, "page header"), (trailer, "metadata after the body")):
        for i in zone:
            ln = lines[i]
            parsed = parse_date_text(ln, tz)
            if parsed and (i in dated_metadata or mostly_date(ln, parsed.matched)):
                where = f"date line {ln.strip()!r} in the {name} (line {i + 1})"
                if ok(parsed, where):
                    return FoundDate(parsed.value, parsed.precision, where + parsed.note, frozenset({i}))
    if updated:
        return updated

    # 3. A dateline opening the body.
    unknown: FoundDate | None = None  # a date without a year whose year could not be inferred
    for i in opening:
        ln = lines[i]
        dl = next((m for m in (pat.match(ln) for pat in _DATELINES) if m), None)
        if dl:
            found = _from_dateline(dl, i, tz=tz, fetched_at=fetched_at, article_text=article_text)
            if found.value is not None or dl.group("y"):
                return found
            unknown = found
            break

    # 4. A date line without a year in the header or the trailing block.
    for zone, name in ((header, "page header"), (trailer, "metadata after the body")):
        for i in zone:
            md = yearless_date(lines[i])
            if md:
                where = f"date line {lines[i].strip()!r} in the {name} (line {i + 1})"
                found = _with_inferred_year(
                    md[0], md[1], where, tz=tz, fetched_at=fetched_at, article_text=article_text
                )
                if found.value is not None:
                    return dataclasses.replace(found, consumed=frozenset({i}))
                unknown = unknown or found
    if unknown:
        return unknown

    why = "no labelled date, date line or dateline found"
    if rejected:
        why += "; ignored " + "; ".join(rejected)
    return FoundDate(None, DatePrecision.NONE, why)


def _from_dateline(m: re.Match[str], i: int, *, tz: tzinfo, fetched_at: datetime, article_text: str) -> FoundDate:
    g = m.groupdict()
    snippet = m.group(0).strip()
    where = f"dateline {snippet!r} (line {i + 1})"
    try:
        month = _month(g["mon"]) if g.get("mon") else int(g["m"])
        day = int(g["d"])
        if g.get("y"):
            value = datetime(int(g["y"]), month, day, tzinfo=tz).astimezone(UTC)
            if value <= fetched_at:
                return FoundDate(value, DatePrecision.DAY, where)
            return FoundDate(None, DatePrecision.NONE, f"{where} is after the fetch time")
        datetime(2000, month, day)  # validates month/day (2000 is a leap year)
    except (ValueError, KeyError):
        return FoundDate(None, DatePrecision.NONE, f"{where} is not a valid date")
    return _with_inferred_year(month, day, where, tz=tz, fetched_at=fetched_at, article_text=article_text)


def _with_inferred_year(
    month: int, day: int, where: str, *, tz: tzinfo, fetched_at: datetime, article_text: str
) -> FoundDate:
    """A month and day without a year: dated only when the article text mentions exactly one year."""
    years = years_in(article_text, until=fetched_at.year)
    if len(years) != 1:
        said = "no year" if not years else f"several years ({', '.join(map(str, sorted(years)))})"
        return FoundDate(None, DatePrecision.NONE, f"{where} has no year and the text mentions {said}")
    year = years.pop()
    try:
        value = datetime(year, month, day, tzinfo=tz).astimezone(UTC)
    except ValueError:
        return FoundDate(None, DatePrecision.NONE, f"{where}: {year} has no such day")
    if value > fetched_at:
        return FoundDate(None, DatePrecision.NONE, f"{where} with the year {year} would be after the fetch time")
    return FoundDate(
        value,
        DatePrecision.INFERRED_YEAR,
        f"{where}; year {year} inferred: it is the only year the article text mentions",
    )


# -- HTML pages: dates from metadata and markup only ---------------------------------------------

_META_PUBLISHED = (
    "article:published_time", "og:published_time", "article:published", "published_time", "datepublished",
    "pubdate", "publishdate", "publish-date", "publish_date", "publication_date", "publicationdate", "dc.date",
    "dc.date.issued", "dc.date.created", "dcterms.issued", "dcterms.created", "dcterms.date", "citation_publication_date",
    "citation_date", "parsely-pub-date", "sailthru.date", "firstpublishedtime", "contentdate", "date",
)  # fmt: skip
_META_UPDATED = ("article:modified_time", "og:updated_time", "datemodified", "dc.date.modified", "dcterms.modified")
_JSONLD_PUBLISHED = re.compile(r'"datePublished"\s*:\s*"([^"]{6,40})"')


class _MarkupDates(HTMLParser):
    """Collects <meta> date fields, <time datetime> and JSON-LD datePublished of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.times: list[str] = []
        self.jsonld: list[str] = []
        self._in_jsonld = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or a.get("itemprop") or a.get("http-equiv") or "").lower()
            if key and a.get("content"):
                self.meta.setdefault(key.strip(), a["content"].strip())
        elif tag == "time" and a.get("datetime"):
            self.times.append(a["datetime"].strip())
        elif a.get("itemprop", "").lower() == "datepublished" and (a.get("content") or a.get("datetime")):
            self.meta.setdefault("datepublished", (a.get("content") or a.get("datetime") or "").strip())
        elif tag == "script" and "ld+json" in a.get("type", "").lower():
            self._in_jsonld = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_jsonld = False

    def handle_data(self, data: str) -> None:
        if self._in_jsonld:
            self.jsonld.append(data)


def find_markup_date(page: str, *, tz: tzinfo, fetched_at: datetime) -> FoundDate | None:
    """The publication date an HTML page declares in its metadata or markup, or None.

    Looked up, in order: <meta> published fields (article:published_time, pubdate, DC.date...),
    JSON-LD datePublished, <time datetime>, then <meta> modified fields. Never the page text.
    """
    collector = _MarkupDates()
    try:
        collector.feed(page[:2_000_000])
        collector.close()
    except (AssertionError, ValueError):  # pragma: no cover - html.parser is lenient
        return None
    candidates: list[tuple[str, str]] = [
        (f"<meta {key}>", collector.meta[key]) for key in _META_PUBLISHED if key in collector.meta
    ]
    candidates += [("JSON-LD datePublished", m) for m in _JSONLD_PUBLISHED.findall("".join(collector.jsonld))]
    candidates += [("<time datetime>", t) for t in collector.times[:1]]
    candidates += [(f"<meta {key}>", collector.meta[key]) for key in _META_UPDATED if key in collector.meta]
    for where, raw in candidates:
        parsed = parse_date_text(raw, tz, at_start=True)
        if parsed is None or parsed.value > fetched_at:
            continue
        precision = parsed.precision
        if precision == DatePrecision.MINUTE and re.search(
            r"(?:T|\s)00:00(?::00(?:\.0+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?$", raw
        ):
            # A date padded with midnight says nothing about the time of day.
            day = parse_date_text(raw[:10], tz, at_start=True)
            if day:
                parsed, precision = day, DatePrecision.DAY
        return FoundDate(parsed.value, precision, f"HTML metadata {where} = {raw!r}")
    return None
