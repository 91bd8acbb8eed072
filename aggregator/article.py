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
from ._dates import LONG_LINE, FoundDate, find_date, mostly_date, parse_date_text
from .types import DatePrecision

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")
_ODD_SPACE = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_BULLET = re.compile(r"^(?:[•·●○◆◇■□▪▫►▶➤»◎★☆]|[-*>+](?=\s))\s*")
_TERMINAL = tuple(".!?。！？…")
_CLOSERS = "\"'”’」』）)]】"
_QUOTES = {"“": "”", '"': '"', "‘": "’", "'": "'", "「": "」", "『": "』", "《": "》"}
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^<>]{0,200}>")
_TITLE_LABEL = re.compile(r"^(?:title|headline|标题|题目)\s*[:：]\s*", re.I)
_NAME_LIKE = re.compile(
    r"^[A-Z][\w.'’-]*(?:,?\s+(?:[A-Z][\w.'’-]*|de|van|von|der|den|du|da|la|le|and|of|the|for|at|in|&)){0,9}$"
)
_PICTURE_LABELS = {"photo", "photos", "image", "images", "图", "图片", "摄", "摄影", "photo by", "photos by"}
_NO_COLON_OK = {"by", "记者", "通讯员", "文/图", "图/文", "摄", "文", "本报记者", "本报通讯员", "特约记者", "见习记者"}
# A domain as pages print it (footer, banner); the TLD list keeps "Ave.,Ganzhou.Jiangxi" out.
_DOMAIN = re.compile(
    r"(?<![@\w.-])(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:com|cn|org|net|edu|gov|int|info|io|news|co|uk|us|de|fr|jp|kr|hk|tw|mo|sg|au|ca|in|ru|eu|biz|mil|ac|top|xyz|site|online))"
    r"(?![\w-])",
    re.I,
)
_COPYRIGHT_LEAD = re.compile(
    r"^.*?(?:copyright|版权所有|©|\(c\))\s*(?:[:：]\s*)?(?:©|\(c\))?\s*(?:\d{4}(?:\s*[-–—~]\s*\d{4})?\s*[,，]?)?\s*",
    re.I,
)
_COPYRIGHT_STOP = re.compile(
    r"\s*(?:all rights reserved|版权所有|保留所有权利|\.(?=\s|$)|[。|｜,，;；]|\s{2,}|\d{4}|地址|address|电话|tel\b|icp|"
    r"(?<![@\w.-])(?:https?://)?[a-z0-9-]+\.[a-z0-9.-]+\.[a-z]{2,}).*$",
    re.I,
)
_SITE_IN_TEXT = [
    # "Please indicate the source for reprinting: Alloy Wiki, thanks"
    re.compile(r"source for reprinting\s*[:：]\s*(?P<site>[^,，.。\n]{2,60})", re.I),
    re.compile(r"转载请注明(?:来源|出处)\s*[:：]\s*(?P<site>[^,，.。;；\n]{2,40})"),
    # "News and events from USTB about research, ..."
    re.compile(
        r"^(?:news|stories|updates|the latest news)(?: and \w+)? (?:from|of) (?P<site>[A-Z][\w&.'’ -]{1,60}?) (?:about|on|for|covering)\b",
        re.I,
    ),
    re.compile(r"^welcome to (?:the )?(?P<site>[A-Z][\w&.'’ -]{2,60}?)(?:[!.。]|$)", re.I),
    re.compile(r"^(?:[(（][^)）]{0,12}[)）])?(?P<site>[\u4e00-\u9fff]{2,30}(?:新闻网|新闻中心|官方网站|官网))$"),
]
_TITLE_SITE_SEP = re.compile(r"\s+[-–—|｜]\s+|\s*[_｜]\s*")

PROSE_WORDS = 20  # an English line this long is a paragraph, whatever its punctuation
PROSE_WORDS_PUNCT = 8  # ...or this long and ending like a sentence
PROSE_CJK = 40
PROSE_CJK_PUNCT = 15
TITLE_SCAN_LINES = 60
WRAP_MIN, WRAP_MAX = (
    55,
    100,
)  # line widths of text wrapped at a fixed column (72, 76, 80...)  # titles sit near the top; mid-body headings must not compete


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


def cjk_count(s: str) -> int:
    return len(_CJK.findall(s))


def language_of(text: str) -> str:
    """'zh' when Chinese characters outnumber English words, else 'en'."""
    sample = text[:20000]
    return "zh" if cjk_count(sample) > len(_LATIN_WORD.findall(sample)) else "en"


def is_prose(s: str) -> bool:
    """A line that reads as a body paragraph rather than a heading, menu or label."""
    c = cjk_count(s)
    end = s.rstrip(_CLOSERS)
    if c and c >= len(_LATIN_WORD.findall(s)):
        return c >= PROSE_CJK or (c >= PROSE_CJK_PUNCT and end.endswith(_TERMINAL))
    words = len(_WORD.findall(s))
    return words >= PROSE_WORDS or (words >= PROSE_WORDS_PUNCT and end.endswith(_TERMINAL))


def is_headline(s: str) -> bool:
    """A line shaped like a news headline (EN or ZH)."""
    if len(s) > 250 or s.endswith((",", "，", "、", ":", "：", ";", "；")):
        return False
    c = cjk_count(s)
    words = len(_WORD.findall(s))
    if c >= 4 and c >= words:
        return 5 <= len(s) <= 100 and not s.endswith("。")
    if not 3 <= words <= 40:
        return False
    # Markup in a title is text, but its look must not decide: judge the visible words.
    visible = _TAG.sub(" ", _SCRIPT.sub(" ", s)).strip(" \"'“‘「《([")
    first = next((ch for ch in visible if ch.isalnum()), "")
    alpha = _LATIN_WORD.findall(visible)
    capitalised = sum(w[0].isupper() for w in alpha)
    if not first or (first.isalpha() and not first.isupper() and capitalised * 2 < len(alpha)):
        return False
    end = s.rstrip(_CLOSERS)
    return not end.endswith(".") or end.endswith(("..", "Co.", "Ltd.", "Inc.", "U.S.", "Corp."))


def _clean_line(raw: str) -> str:
    s = _ZERO_WIDTH.sub("", _ODD_SPACE.sub(" ", raw)).strip()
    prev = None
    while prev != s:
        prev, s = s, _BULLET.sub("", s).strip()
    return s


def _joins(prev: str, nxt: str) -> bool:
    """A scraper hard-wrapped one sentence over two lines."""
    if prev.endswith(("，", "、")) and _CJK.match(nxt):
        return True
    if not nxt[:1].islower() or not nxt[:1].isascii():
        return False
    return prev.endswith(",") or (prev[-1:].islower() and len(prev) >= 40)


def _hard_wrapped(block: list[str]) -> bool:
    """A blank-line-separated block whose lines were cut at a fixed width (e-mail style)."""
    if len(block) < 2 or any(classify_boilerplate(s) for s in block):
        return False
    body = block[:-1]
    if all(cjk_count(s) * 2 > len(s) for s in block):
        return min(map(len, body)) >= 15 and max(map(len, body)) - min(map(len, body)) <= 3
    return all(WRAP_MIN <= len(s) <= WRAP_MAX for s in body) and len(block[-1]) <= WRAP_MAX


def _prepare(text: str) -> list[str]:
    blocks: list[list[str]] = [[]]
    for raw in text.split("\n"):
        s = _clean_line(raw)
        if s:
            blocks[-1].append(s)
        elif blocks[-1]:
            blocks.append([])
    lines: list[str] = []
    for block in blocks:
        if _hard_wrapped(block):
            cjk = cjk_count(block[0]) * 2 > len(block[0])
            lines.append(("" if cjk else " ").join(block))
        else:
            lines.extend(block)
    out: list[str] = []
    for s in lines:
        if out and _joins(out[-1], s) and classify_boilerplate(out[-1]) is None:
            sep = "" if _CJK.match(s) else " "
            out[-1] = out[-1] + sep + s
        else:
            out.append(s)
    return out


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
    if not _CJK.search(who):
        words = len(_WORD.findall(who))
        # A caption ("Photo: The new tanks. (Photo by ...)") is not a credit: credits are short names.
        if words > (5 if label.lower() in _PICTURE_LABELS else 10) or re.search(r"\b[a-z]{3,}[.!?]\s+\S", who):
            return None
    elif label in _PICTURE_LABELS and (len(who) > 12 or re.search(r"[，。！？]", who)):
        return None
    if not colon:
        if label.lower() not in _NO_COLON_OK and not label.lower().endswith(" by"):
            return None
        if _CJK.search(who):
            if len(who) > 20:
                return None
        elif not _NAME_LIKE.match(who.rstrip(".")):
            return None
    if label.lower().endswith("by") and not colon:
        return f"{label} {who}"
    return f"{label}{'：' if _CJK.search(label) else ': '}{who}"


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
        if parsed and mostly_date(p, parsed.matched):
            has_date = True
            continue
        rule = classify_boilerplate(p)
        if rule and rule.name in ("view counter", "font size bar", "close/print bar", "relative time"):
            continue
        if len(parts) >= 3 and unknown == 0 and len(_WORD.findall(p)) <= 4 and cjk_count(p) <= 12:
            unknown += 1
            continue
        return _whole_line_date(line)
    if unknown and not (authors and has_date):
        return _whole_line_date(line)
    return authors, has_date


def _whole_line_date(line: str) -> tuple[list[str], bool] | None:
    """ "Event date: 2027-03-01": a line that is a date and a few words, read as one field."""
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
                    nxt.authors = (f"{m.group('label')}{'：' if _CJK.search(m.group('label')) else ': '}{nxt.text}",)
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
        if IMAGE_ONLY.match(s):
            ln.kind, ln.reason = "image", "image file name"
            continue
        rule = classify_boilerplate(s, extra)
        if rule:
            ln.kind, ln.reason, ln.footer = "boiler", rule.name, rule.footer
    return out


def _norm(s: str) -> str:
    return re.sub(r"[\W_]+", "", s).lower()


def _strip_title(s: str) -> str:
    s = _TITLE_LABEL.sub("", s).strip()
    if len(s) > 2 and s[0] in _QUOTES and s[-1] == _QUOTES[s[0]] and s.count(s[0]) <= 2:
        s = s[1:-1].strip()
    return s


def _choose_title(lines: list[_Line]) -> int | None:
    prose_idx = [i for i, ln in enumerate(lines) if ln.kind == "text" and is_prose(ln.text)]
    limit = min(len(lines), TITLE_SCAN_LINES, prose_idx[1] if len(prose_idx) > 1 else len(lines))
    norms = [_norm(ln.text) for ln in lines]
    best: tuple[int, int] | None = None  # (rank, -index)
    fallback_near_date: int | None = None
    first_candidate: int | None = None
    for i in range(limit):
        ln = lines[i]
        if ln.kind != "text" or not is_headline(_strip_title(ln.text)) or parse_date_text(ln.text, UTC):
            continue  # a line with a full date is a metadata line, not a headline
        first_candidate = first_candidate if first_candidate is not None else i
        meta_between = False
        anchored = False
        lead_in = False  # one salutation/lead-in line ("各有关单位：") may sit between title and body
        for j in range(i + 1, len(lines)):
            k = lines[j].kind
            if k in ("date", "byline", "label", "value"):
                meta_between = True
                continue
            if k in ("boiler", "image"):
                continue
            anchored = is_prose(lines[j].text)
            if not anchored and not lead_in and lines[j].text.endswith((":", "：", ",", "，")):
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
    if first_candidate is not None:
        return first_candidate
    # Last resort (a lowercase or oddly shaped title): the first short line right above the body.
    for i in range(min(limit, prose_idx[0] if prose_idx else limit)):
        s = lines[i].text
        shaped = lines[i].kind == "text" and not is_prose(s) and len(s) <= 200 and not s.endswith(_TERMINAL)
        if shaped and (len(_WORD.findall(s)) >= 3 or cjk_count(s) >= 5) and not parse_date_text(s, UTC):
            return i
    return None


def _title_case_share(s: str) -> float:
    words = [w for w in _LATIN_WORD.findall(s) if len(w) > 3]  # "of", "and", "the" are lowercase in titles
    return sum(w[0].isupper() for w in words) / len(words) if words else 0.0


def _before_deck(lines: list[_Line], i: int) -> int:
    """A sentence-case line under a Title Case headline is its deck: the headline is the title."""
    j = i - 1
    while j >= 0 and lines[j].kind in ("boiler", "image"):
        j -= 1
    if j < 0 or lines[j].kind != "text" or not is_headline(lines[j].text) or cjk_count(lines[i].text):
        return i
    if _title_case_share(lines[j].text) >= 0.6 and _title_case_share(lines[i].text) < 0.4:
        return j
    return i


def _site_from_copyright(line: str) -> str | None:
    rest = _COPYRIGHT_LEAD.sub("", line, count=1)
    rest = _COPYRIGHT_STOP.sub("", rest).strip(" :：-–—©")
    if not rest and "版权所有" in line:
        before = line.split("版权所有")[0]
        rest = re.sub(r"^.*?(?:copyright|©)\s*[:：]?\s*(?:\d{4}\s*)?", "", before, flags=re.I).strip(" :：-–—©|")
    if 2 <= len(rest) <= 80 and not rest.isdigit():
        return rest
    return None


def _site(lines: list[_Line], title: str | None) -> str | None:
    for ln in lines:
        if ln.reason == "copyright line":
            site = _site_from_copyright(ln.text)
            if site:
                return site
    for ln in lines:
        for pat in _SITE_IN_TEXT[:2]:
            m = pat.search(ln.text)
            if m:
                return m.group("site").strip(" .,:：")
    if title:
        nt = _norm(title)
        for ln in lines:
            parts = _TITLE_SITE_SEP.split(ln.text)
            if len(parts) >= 2 and _norm(parts[0]) == nt and 2 <= len(parts[-1]) <= 60:
                return parts[-1].strip()
    for ln in lines[:TITLE_SCAN_LINES]:
        for pat in _SITE_IN_TEXT[2:]:
            m = pat.search(ln.text)
            if m:
                return m.group("site").strip(" .,:：")
    return None


def _domain(lines: list[_Line]) -> str | None:
    ordered = [ln for ln in lines if ln.reason == "copyright line"]
    ordered += [ln for ln in lines if ln.kind == "boiler" and ln.reason != "copyright line"]
    for ln in ordered:
        m = _DOMAIN.search(ln.text)
        if m:
            return m.group(1).lower()
    return None


def extract_article(
    text: str, *, tz: tzinfo, fetched_at: datetime, extra_boilerplate: tuple[str, ...] = ()
) -> ArticleFields:
    """Extract title, date, authors, site and clean paragraphs from a plain-text news page."""
    extra = tuple(re.compile(p, re.I) for p in extra_boilerplate)
    lines = _classify(_prepare(text.replace("\r\n", "\n").replace("\r", "\n")), extra)
    dropped: list[tuple[str, str]] = []

    t = _choose_title(lines)
    title = _strip_title(lines[t].text) if t is not None else None
    title_norm = _norm(title) if title else ""
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
        n = _norm(s)
        if not n:
            dropped.append((ln.text, "image file name"))
            continue
        if n == title_norm:
            dropped.append((ln.text, "repeated title"))
            continue
        if title_norm and n.startswith(title_norm) and len(n) - len(title_norm) <= 30 and _TITLE_SITE_SEP.search(s):
            dropped.append((ln.text, "repeated title with site name"))
            continue
        lead_in = s.endswith((":", "："))  # "各有关单位：" opens a notice
        if not kept and not lead_in and not is_prose(s) and len(_WORD.findall(s)) < 4 and cjk_count(s) < 10:
            dropped.append((ln.text, "short line between title and body"))
            continue
        if n in seen:
            dropped.append((ln.text, "repeated paragraph"))
            continue
        seen.add(n)
        kept.append(i)
        paragraphs.append(s)

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
        site_name=_site(lines, title),
        site_domain=_domain(lines),
        language=language_of(article_text),
        dropped=tuple(dropped),
    )
