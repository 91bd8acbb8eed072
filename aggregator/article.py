"""Article extraction from scraped news pages saved as plain text (EN + ZH).

Pure: text in, ArticleFields out. A page is a sequence of lines. We

1. clean each line (odd spaces, bullets) and re-join lines a scraper hard-wrapped;
2. classify lines: boilerplate (see `_boilerplate.py`), metadata labels, bylines, date lines,
   image file names, content;
3. pick the title: a headline-like line near the top that the article body follows, preferring
   one with a date or byline between it and the body (that is how news pages are laid out);
4. keep the body from the title down to the footer (the first prev/next, related, share,
   copyright... line after the body), dropping repeated title lines and glued image names;
5. find the date only where pages put dates (`_dates.py`), the bylines, the site name and domain
   from the banner/footer/copyright lines, and the language from the kept text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from ._boilerplate import (
    AUTHOR_LABELS,
    BYLINE,
    FIELD_SPLIT,
    IMAGE_NAME,
    IMAGE_ONLY,
    LABEL_ONLY,
    SOURCE_FIELD,
    classify_boilerplate,
)
from ._dates import LABEL_RE as DATE_LABEL
from ._dates import LONG_LINE, FoundDate, find_date, mostly_date, parse_date_text, yearless_date
from ._lines import (
    CJK,
    CLOSERS,
    TERMINAL,
    WORD,
    cjk_count,
    is_headline,
    is_prose,
    is_subtitle,
    language_of,
    norm_key,
    prepare_lines,
    title_case_share,
)
from ._site import TITLE_SITE_SEP, domain_of, site_name_of
from .types import DatePrecision

_QUOTES = {"“": "”", '"': '"', "‘": "’", "'": "'", "「": "」", "『": "』", "《": "》"}
_TITLE_LABEL = re.compile(r"^(?:title|headline|标题|题目)\s*[:：]\s*", re.I)
_NAME_LIKE = re.compile(
    r"^(?:the\s+)?[A-Z][\w.'’-]*(?:,?\s+(?:[A-Z][\w.'’-]*|de|van|von|der|den|du|da|la|le|and|of|the|for|at|in|&)){0,9}$"
)

_POSTED = re.compile(
    r"^(?:posted|published|written|updated|filed|发布于|发表于)\s*(?:on\s+)?"
    r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day\s*,?\s*)?",  # "Posted on Tuesday, <date> by ..."
    re.I,
)
_PICTURE_LABELS = {"photo", "photos", "image", "images", "图", "图片", "摄", "摄影", "photo by", "photos by"}
_NO_COLON_OK = {"by", "记者", "通讯员", "文/图", "图/文", "摄", "文", "本报记者", "本报通讯员", "特约记者", "见习记者"}
TITLE_SCAN_LINES = 60  # titles sit near the top; mid-body headings must not compete


@dataclass(frozen=True)
class ArticleFields:
    """What the extractor found on one page. `dropped` lists removed lines with the reason."""

    title: str | None
    paragraphs: tuple[str, ...]
    published: datetime | None = None
    precision: DatePrecision = DatePrecision.NONE
    provenance: str | None = None
    authors: tuple[str, ...] = ()
    site_name: str | None = None
    site_domain: str | None = None
    language: str = "en"
    dropped: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass
class _Line:
    text: str
    kind: str = "text"  # text | boiler | label | value | byline | date | image
    reason: str = ""
    footer: bool = False
    authors: tuple[str, ...] = ()
    label: str = ""


def _byline(segment: str) -> str | None:
    """'Editor: Sun Lirong' -> the byline as the page writes it, or None."""
    if len(segment) > 80:
        return None
    m = BYLINE.match(segment)
    if not m:
        return None
    label, who = m.group("label").strip(), m.group("who").strip(" :：,，;；")
    colon = m.group("colon").strip()
    if not who or len(who) > 60 or re.search(r"\d{4}", who):
        return None
    if not CJK.search(who):
        words = len(WORD.findall(who))
        # A caption ("Photo: The new tanks. (Photo by ...)") is not a credit: credits are short names.
        if words > (5 if label.lower() in _PICTURE_LABELS else 10) or re.search(r"\b[a-z]{3,}[.!?]\s+\S", who):
            return None
    elif label in _PICTURE_LABELS and (len(who) > 12 or re.search(r"[，。！？]", who)):
        return None
    if not colon:
        if label.lower() not in _NO_COLON_OK and not label.lower().endswith(" by"):
            return None
        if CJK.search(who):
            if len(who) > 20:
                return None
        elif not _NAME_LIKE.match(re.sub(r"\s*[(（][^()（）]*[)）]\s*$", "", who).rstrip(".")):
            return None  # "Li Hongyang (People's Daily Online)": the name before the outlet
    if label.lower().endswith("by") and not colon:
        return f"{label} {who}"
    return f"{label}{'：' if CJK.search(label) else ': '}{who}"


def _metadata_fields(line: str) -> tuple[list[str], bool] | None:
    """Bylines in a metadata line; None unless every field is metadata (byline/source/date/counter)."""
    parts = [p.strip() for p in FIELD_SPLIT.split(line) if p and p.strip()]
    if not parts:
        return None
    authors: list[str] = []
    has_date = False
    unknown = 0  # e.g. the publication's name in "By X | China Daily | 2025-08-20"
    for p in parts:
        b = _byline(p)
        if b:
            authors.append(b)
            continue
        if SOURCE_FIELD.match(p):
            continue
        parsed = parse_date_text(p, UTC)  # only the shape matters here
        undated = _POSTED.sub("", p.replace(parsed.matched, " ").strip(" ,|")) if parsed else ""
        dated_byline = _byline(undated.strip(" ,|")) if parsed else None
        if dated_byline:  # "By Li Hongyang (People's Daily Online) 09:07, November 03, 2025"
            authors.append(dated_byline)
            has_date = True
            continue
        if parsed and mostly_date(p, parsed.matched):
            has_date = True
            continue
        rule = classify_boilerplate(p)
        if rule and rule.name in ("view counter", "font size bar", "close/print bar", "relative time"):
            continue
        if len(parts) >= 3 and unknown == 0 and len(WORD.findall(p)) <= 4 and cjk_count(p) <= 12:
            unknown += 1
            continue
        return _whole_line_date(line)
    if unknown and not (authors and has_date):
        return _whole_line_date(line)
    return authors, has_date


def _whole_line_date(line: str) -> tuple[list[str], bool] | None:
    """A line that is a date and a few words ("Event date: 2027-03-01"), read as one field."""
    parsed = parse_date_text(line, UTC)
    return ([], True) if parsed and mostly_date(line, parsed.matched) else None


def _classify(lines: list[str], extra: tuple[re.Pattern[str], ...]) -> list[_Line]:
    out = [_Line(s) for s in lines]
    for i, ln in enumerate(out):
        s = ln.text
        if ln.kind == "value":
            continue
        m = LABEL_ONLY.match(s)
        if m:
            ln.kind, ln.label = "label", m.group("label").lower()
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt and len(nxt.text) <= 80 and not LABEL_ONLY.match(nxt.text) and not is_prose(nxt.text):
                nxt.kind, nxt.label = "value", ln.label
                if ln.label in AUTHOR_LABELS:
                    nxt.authors = (f"{m.group('label')}{'：' if CJK.search(m.group('label')) else ': '}{nxt.text}",)
            continue
        if len(s) <= LONG_LINE:
            fields = _metadata_fields(s)
            if fields is not None and (fields[0] or fields[1] or SOURCE_FIELD.match(s)):
                ln.kind, ln.authors = ("byline" if fields[0] else "date"), tuple(fields[0])
                ln.reason = "metadata line"
                continue
            label = DATE_LABEL.match(s)
            if label and label.group("colon") and parse_date_text(s[label.end() :], UTC, at_start=True):
                ln.kind, ln.reason = "date", "date field"
                continue
            if yearless_date(s):  # "Nov. 5" under a headline: laid out as a date, whatever its year
                ln.kind, ln.reason = "date", "date line without a year"
                continue
        if IMAGE_ONLY.match(s):
            ln.kind, ln.reason = "image", "image file name"
            continue
        rule = classify_boilerplate(s, extra)
        if rule:
            ln.kind, ln.reason, ln.footer = "boiler", rule.name, rule.footer
    return out


def _strip_title(s: str) -> str:
    s = _TITLE_LABEL.sub("", s).strip()
    if len(s) > 2 and s[0] in _QUOTES and s[-1] == _QUOTES[s[0]] and s.count(s[0]) <= 2:
        s = s[1:-1].strip()
    return s


def _choose_title(lines: list[_Line]) -> int | None:
    prose_idx = [i for i, ln in enumerate(lines) if ln.kind == "text" and is_prose(ln.text)]
    limit = min(len(lines), TITLE_SCAN_LINES, prose_idx[1] if len(prose_idx) > 1 else len(lines))
    norms = [norm_key(ln.text) for ln in lines]
    best: tuple[int, int] | None = None  # (rank, -index)
    fallback_near_date: int | None = None
    first_candidate: int | None = None
    for i in range(limit):
        ln = lines[i]
        if ln.kind != "text" or not is_headline(_strip_title(ln.text)) or _labelled_date(ln.text):
            continue  # "Time: 2025-11-4 ..." is a metadata line, not a headline
        if _captioned_image(ln.text):
            continue  # "图1.png签约仪式现场": a picture's caption, not the headline
        if _in_field_block(lines, i):
            continue  # "报告人：王教授" among "报告时间：…", "报告地点：…": fields of a notice
        first_candidate = first_candidate if first_candidate is not None else i
        meta_between = False
        anchored = False
        lead_in = False  # one salutation/lead-in line ("各有关单位：") may sit between title and body
        for j in range(i + 1, len(lines)):
            k = lines[j].kind
            if k in ("date", "byline", "label", "value"):
                meta_between = True
                continue
            if k in ("boiler", "image") or _captioned_image(lines[j].text):
                continue  # a picture (and its caption) may sit between the headline and the body
            anchored = is_prose(lines[j].text)
            if (
                not anchored
                and not lead_in
                and (lines[j].text.endswith((":", "：", ",", "，")) or is_subtitle(lines[j].text))
            ):
                lead_in = True
                continue
            break
        if meta_between and fallback_near_date is None:
            fallback_near_date = i
        n = norms[i]
        repeated = len(n) >= 8 and any(
            j != i and n in norms[j] and len(norms[j]) < len(n) + 60 for j in range(len(lines))
        )
        rank = (2 if meta_between else 1) if anchored else 0
        if repeated and (anchored or meta_between):
            rank += 2
        if rank and (best is None or (rank, -i) > best):
            best = (rank, -i)
    if best:
        return _before_deck(lines, -best[1])
    if fallback_near_date is not None:
        return fallback_near_date
    above = _line_above_first_date(lines, limit)
    if above is not None:
        return above  # "Lab opens." / "Graduation 2025" over a date line: the layout says title
    if first_candidate is not None:
        return first_candidate
    # Last resort (a lowercase or oddly shaped title): the first short line right above the body.
    for i in range(min(limit, prose_idx[0] if prose_idx else limit)):
        s = lines[i].text
        shaped = lines[i].kind == "text" and not is_prose(s) and len(s) <= 200 and not s.endswith(TERMINAL)
        if shaped and (len(WORD.findall(s)) >= 3 or cjk_count(s) >= 5) and not parse_date_text(s, UTC):
            return i
    return None


def _captioned_image(s: str) -> bool:
    """A line that opens with an image file name glued to its caption."""
    return IMAGE_NAME.match(s) is not None


_FIELD_LINE = re.compile(r"^[\w ]{1,12}[:：]\s*\S")


def _in_field_block(lines: list[_Line], i: int) -> bool:
    """A "label: value" line next to another one: a block of fields, not a headline."""
    if not _FIELD_LINE.match(lines[i].text):
        return False
    return any(0 <= j < len(lines) and _FIELD_LINE.match(lines[j].text) for j in (i - 1, i + 1))


def _labelled_date(s: str) -> bool:
    return any(m.group("colon") and parse_date_text(s[m.end() :], UTC, at_start=True) for m in DATE_LABEL.finditer(s))


def _line_above_first_date(lines: list[_Line], limit: int) -> int | None:
    """The content line directly above the first date/byline line, if it is short enough to be a title."""
    for j in range(limit):
        if lines[j].kind in ("date", "byline"):
            i = j - 1
            while i >= 0 and lines[i].kind == "boiler":
                i -= 1
            if i < 0 or lines[i].kind != "text":
                return None
            s = lines[i].text
            words, c = len(WORD.findall(s)), cjk_count(s)
            ok = (2 <= words <= 25 or c >= 4) and len(s) <= 250 and not parse_date_text(s, UTC)
            return i if ok and not s.endswith(("。", ",", "，", ":", "：")) else None
    return None


def _before_deck(lines: list[_Line], i: int) -> int:
    """A sentence-case line under a Title Case headline is its deck: the headline is the title."""
    j = i - 1  # directly above: a banner with a menu between is not a headline over its deck
    if j < 0 or lines[j].kind != "text" or not is_headline(lines[j].text) or cjk_count(lines[i].text):
        return i
    if title_case_share(lines[j].text) >= 0.6 and title_case_share(lines[i].text) < 0.4:
        return j
    return i


def _trailing_junk(s: str) -> bool:
    """A short line without sentence punctuation ("Campus map", "Was this page useful? Yes No")."""
    return not s.rstrip(CLOSERS).endswith(TERMINAL) and len(WORD.findall(s)) < 9 and cjk_count(s) < 20


def extract_article(
    text: str, *, tz: tzinfo, fetched_at: datetime, extra_boilerplate: tuple[str, ...] = ()
) -> ArticleFields:
    """Extract title, date, authors, site and clean paragraphs from a plain-text news page."""
    extra = tuple(re.compile(p, re.I) for p in extra_boilerplate)
    lines = _classify(prepare_lines(text.replace("\r\n", "\n").replace("\r", "\n")), extra)
    dropped: list[tuple[str, str]] = []

    t = _choose_title(lines)
    title = _strip_title(lines[t].text) if t is not None else None
    title_norm = norm_key(title) if title else ""
    for ln in lines[: t or 0]:
        dropped.append((ln.text, "page header"))

    kept: list[int] = []
    paragraphs: list[str] = []
    seen: set[str] = set()
    in_footer = False
    start = t + 1 if t is not None else 0
    for i in range(start, len(lines)):
        ln = lines[i]
        if ln.kind != "text":
            if ln.kind == "boiler" and ln.footer and kept:
                in_footer = True
            if ln.kind not in ("date", "byline", "label", "value"):
                dropped.append((ln.text, ln.reason or ln.kind))
            continue
        if in_footer:
            dropped.append((ln.text, "page footer"))
            continue
        s = IMAGE_NAME.sub("", ln.text).strip()
        n = norm_key(s)
        if not n:
            dropped.append((ln.text, "image file name"))
            continue
        if n == title_norm:
            dropped.append((ln.text, "repeated title"))
            continue
        if title_norm and n.startswith(title_norm) and len(n) - len(title_norm) <= 30 and TITLE_SITE_SEP.search(s):
            dropped.append((ln.text, "repeated title with site name"))
            continue
        lead_in = s.endswith((":", "：")) or is_subtitle(s)  # "各有关单位：" opens a notice
        if not kept and not lead_in and not is_prose(s) and len(WORD.findall(s)) < 4 and cjk_count(s) < 10:
            dropped.append((ln.text, "short line between title and body"))
            continue
        if n in seen:
            dropped.append((ln.text, "repeated paragraph"))
            continue
        seen.add(n)
        kept.append(i)
        paragraphs.append(s)

    # Short unpunctuated lines after the last real paragraph are footer we have no rule for
    # (link lists, "【纠错】", department tags): a body ends with a sentence.
    last_prose = max((n for n, i in enumerate(kept) if is_prose(lines[i].text)), default=None)
    if last_prose is not None:
        while len(kept) > last_prose + 1 and _trailing_junk(paragraphs[-1]):
            dropped.append((paragraphs.pop(), "short line after the body"))
            kept.pop()
    # The header runs down to the first real paragraph (a short kept line does not end it).
    first_body = next((i for i in kept if is_prose(lines[i].text)), kept[0] if kept else len(lines))
    last_body = kept[-1] if kept else (t if t is not None else -1)
    article_text = "\n".join([title or "", *paragraphs])
    metadata = frozenset(i for i, ln in enumerate(lines) if ln.kind != "text" and len(ln.text) <= LONG_LINE)
    found: FoundDate = find_date(
        [ln.text for ln in lines],
        tz=tz,
        fetched_at=fetched_at,
        header=range(min(first_body, TITLE_SCAN_LINES)),
        trailer=range(last_body + 1, len(lines)),
        metadata_lines=metadata,
        dated_metadata=frozenset(i for i, ln in enumerate(lines) if ln.kind in ("date", "byline")),
        opening=kept[:2],
        article_text=article_text,
    )
    authors: list[str] = []
    for i, ln in enumerate(lines):
        if ln.authors and (t is None or i > t or ln.kind == "byline"):
            authors.extend(a for a in ln.authors if a not in authors)
    if not authors:
        # A byline line inside the kept text ("Editor: Sun Lirong" as the last paragraph).
        for i in list(kept):
            b = _byline(lines[i].text)
            if b and (i == kept[-1] or i == kept[0]) and len(lines[i].text) <= 80:
                authors.append(b)
                idx = kept.index(i)
                kept.pop(idx)
                paragraphs.pop(idx)
    return ArticleFields(
        title=title,
        paragraphs=tuple(paragraphs),
        published=found.value,
        precision=found.precision,
        provenance=found.provenance,
        authors=tuple(authors),
        site_name=site_name_of([ln.text for ln in lines], [ln.reason for ln in lines], title),
        site_domain=domain_of([ln.text for ln in lines], [ln.reason if ln.kind == "boiler" else "" for ln in lines]),
        language=language_of(article_text),
        dropped=tuple(dropped),
    )
