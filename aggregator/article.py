"""Article extraction from scraped news pages saved as plain text (EN + ZH).

Pure: text in, ArticleFields out. The page is a sequence of lines; we drop boilerplate lines,
find the title, the date (only in places where pages put dates, never a whole-page fuzzy search)
and the author lines, and keep the rest as paragraphs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from ._dates import FoundDate, find_date
from .types import DatePrecision

_BOILERPLATE = [
    r"^(上一[条篇页]|下一[条篇页])\s*[:：]",
    r"^(previous|next)\s*(post|article|story|news)?\s*[:：]",
    r"^(关闭|打印|返回|返回顶部|close|print|back to top|top)$",
    r"(点击|浏览|阅读)(次数|量)?\s*[:：]\s*[\[\(（]?\s*\d*\s*[\]\)）]?",
    r"^(views?|hits?)\s*[:：]?\s*\d*$",
    r"^copyright\b|©|版权所有|all rights reserved",
    r"ICP备|ICP证|公网安备",
    r"^(address|地址|zip|邮编|tel|电话|e-?mail|邮箱)\s*[:：]",
    r"^link to this article\s*[:：]",
    r"^(reprint statement|转载请注明|本文来源|来源[:：].*转载)",
    r"^(related posts?|related (news|articles?)|相关(新闻|文章|阅读)|推荐阅读)\s*[:：]?$",
    r"^(share( this)?( on)?|分享到)\s*[:：]?",
    r"^(subscribe|订阅)\b",
    r"^(home|首页)\s*([>›»/|]|$)",
    r"^[^\w]*$",
]
_BOILER_RE = [re.compile(p, re.I) for p in _BOILERPLATE]
_NAV_SEP = re.compile(r"\s*[|｜]\s*|\s{2,}")
_IMAGE_NAME = re.compile(r"^\s*[\w\-.]+\.(?:jpe?g|png|gif|webp|bmp)(?=\S)", re.I)
_AUTHOR_RE = re.compile(
    r"^(draft|revision|editor|edited by|author|reporter|writer|photo|by|"
    r"编辑|责任编辑|审核|作者|记者|撰稿|初审|复审|终审|摄影|通讯员)\s*[:：]?\s*(?P<who>.+)$",
    re.I,
)
_LABEL_ONLY = re.compile(r"^(topics?|date|views?|tags?|category|栏目|日期|发布时间)\s*[:：]?$", re.I)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_DOMAIN_RE = re.compile(r"\b((?:[a-z0-9-]+\.)+(?:edu\.cn|com\.cn|gov\.cn|org\.cn|ac\.cn|cn|com|org|net|edu))\b", re.I)
_SITE_PATTERNS = [
    re.compile(
        r"copyright\s*[:：]?\s*©?\s*(?:\d{4}\s*)?(?P<site>[A-Z][\w .&'-]{2,80}?)\s+(?:all rights|版权|\d)", re.I
    ),
    re.compile(r"source for reprinting\s*[:：]\s*(?P<site>[^,，\n]{2,60})", re.I),
    re.compile(r"^(?:来源|source)\s*[:：]\s*(?P<site>\S.{1,60})$", re.I),
]


@dataclass(frozen=True)
class ArticleFields:
    title: str | None
    paragraphs: tuple[str, ...]
    published: datetime | None = None
    precision: DatePrecision = DatePrecision.NONE
    provenance: str | None = None
    authors: tuple[str, ...] = ()
    site_name: str | None = None
    site_domain: str | None = None
    language: str = "en"
    dropped: tuple[str, ...] = field(default=(), repr=False)


def is_boilerplate(line: str, extra: list[re.Pattern[str]] | None = None) -> bool:
    s = line.strip()
    if any(r.search(s) for r in _BOILER_RE):
        return True
    if extra and any(r.search(s) for r in extra):
        return True
    # A navigation bar: several short items separated by '|' or runs of spaces.
    parts = [p for p in _NAV_SEP.split(s) if p]
    return len(parts) >= 2 and all(len(p) <= 16 for p in parts) and not s.endswith((".", "。"))


def language_of(text: str) -> str:
    letters = sum(ch.isalpha() for ch in text[:5000]) or 1
    return "zh" if len(_CJK.findall(text[:5000])) / letters > 0.3 else "en"


def _is_headline(line: str) -> bool:
    s = line.strip()
    if _CJK.search(s):
        return 6 <= len(s) <= 120 and not s.endswith(("。", "；"))
    words = s.split()
    return (4 <= len(words) <= 40 and s[0].isupper()) or (s[0] in "“\"'‘" and len(words) >= 4)


def _strip_quotes(s: str) -> str:
    pairs = {"“": "”", '"': '"', "‘": "’", "'": "'", "「": "」", "《": "》"}
    if len(s) > 2 and s[0] in pairs and s[-1] == pairs[s[0]]:
        return s[1:-1].strip()
    return s


def extract_article(
    text: str, *, tz: tzinfo, fetched_at: datetime, extra_boilerplate: tuple[str, ...] = ()
) -> ArticleFields:
    """Extract title, date, authors, site and clean paragraphs from a plain-text news page."""
    extra = [re.compile(p, re.I) for p in extra_boilerplate]
    raw_lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in raw_lines if ln]
    dropped: list[str] = []

    # Date first: it anchors the title (pages put the title right above the date line).
    found: FoundDate | None = find_date(lines, tz=tz, fetched_at=fetched_at)

    title_idx: int | None = None
    search_until = (
        found.line_index if found and found.line_index is not None and found.line_index < 15 else min(len(lines), 15)
    )
    candidates = [i for i in range(search_until) if not is_boilerplate(lines[i], extra) and _is_headline(lines[i])]
    if found and found.line_index is not None and found.line_index < 15 and candidates:
        title_idx = candidates[-1]
    elif candidates:
        # The first headline-like line followed by a longer paragraph.
        title_idx = candidates[0]
    title = _strip_quotes(lines[title_idx]) if title_idx is not None else None

    authors: list[str] = []
    site_name = None
    for pat in _SITE_PATTERNS:
        for ln in lines:
            m = pat.search(ln)
            if m:
                site_name = m.group("site").strip(" .,:")
                break
        if site_name:
            break
    domain = None
    for ln in lines:
        if re.search(r"copyright|©|版权", ln, re.I):
            m = _DOMAIN_RE.search(ln)
            if m:
                domain = m.group(1).lower()
                break

    paragraphs: list[str] = []
    skip_value = False
    for i, ln in enumerate(lines):
        if title_idx is not None and i <= title_idx:
            if i < title_idx:
                dropped.append(ln)
            continue
        if found and i in found.consumed:
            continue
        if skip_value:
            skip_value = False
            dropped.append(ln)
            continue
        if _LABEL_ONLY.match(ln):
            skip_value = True  # the label's value is the next line ("Date" / "March 18,2024")
            dropped.append(ln)
            continue
        if title and _strip_quotes(ln) == title:
            continue
        if is_boilerplate(ln, extra):
            dropped.append(ln)
            continue
        m = _AUTHOR_RE.match(ln)
        if m and len(ln) < 80:
            authors.append(f"{m.group(1).strip()}: {m.group('who').strip()}")
            continue
        ln = _IMAGE_NAME.sub("", ln).strip()
        if ln:
            paragraphs.append(ln)

    lang = language_of("\n".join([title or "", *paragraphs]))
    return ArticleFields(
        title=title,
        paragraphs=tuple(paragraphs),
        published=found.value if found else None,
        precision=found.precision if found else DatePrecision.NONE,
        provenance=found.provenance if found else None,
        authors=tuple(authors),
        site_name=site_name,
        site_domain=domain,
        language=lang,
        dropped=tuple(dropped),
    )
