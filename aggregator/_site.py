"""The site a page comes from: its name and domain, as the page itself shows them.

Only where sites print themselves: the copyright line, a reprint notice naming the site, the
page title's suffix ("Title | Site"), a banner or tagline; the domain from footer lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._lines import norm_key

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

TITLE_SITE_SEP = re.compile(r"\s+[-–—|｜]\s+|\s*[_｜]\s*")


def site_from_copyright(line: str) -> str | None:
    """The owner named in a copyright line ("Copyright © 2025 X. All rights reserved" -> "X")."""
    if not _COPYRIGHT_LEAD.match(line):
        return None  # a footer line without a copyright mark names no owner
    rest = _COPYRIGHT_LEAD.sub("", line, count=1)
    rest = _COPYRIGHT_STOP.sub("", rest).strip(" :：-–—©")
    if not rest and "版权所有" in line:
        before = line.split("版权所有")[0]
        rest = re.sub(r"^.*?(?:copyright|©)\s*[:：]?\s*(?:\d{4}\s*)?", "", before, flags=re.I).strip(" :：-–—©|")
    if 2 <= len(rest) <= 80 and not rest.isdigit():
        return rest
    return None


def site_name_of(texts: Sequence[str], reasons: Sequence[str], title: str | None, *, head: int = 60) -> str | None:
    """The site's name as the page shows it, or None. `reasons` are the lines' boilerplate classes."""
    for text, reason in zip(texts, reasons, strict=True):
        if reason == "copyright line":
            site = site_from_copyright(text)
            if site:
                return site
    for text in texts:
        for pat in _SITE_IN_TEXT[:2]:
            m = pat.search(text)
            if m:
                return m.group("site").strip(" .,:：")
    if title:
        nt = norm_key(title)
        for text in texts:
            parts = TITLE_SITE_SEP.split(text)
            if len(parts) >= 2 and norm_key(parts[0]) == nt and 2 <= len(parts[-1]) <= 60:
                return parts[-1].strip()
    for text in texts[:head]:
        for pat in _SITE_IN_TEXT[2:]:
            m = pat.search(text)
            if m:
                return m.group("site").strip(" .,:：")
    return None


def domain_of(texts: Sequence[str], reasons: Sequence[str]) -> str | None:
    """A domain printed in the copyright line, else in another boilerplate line (footer, banner)."""
    ordered = [t for t, r in zip(texts, reasons, strict=True) if r == "copyright line"]
    ordered += [t for t, r in zip(texts, reasons, strict=True) if r and r != "copyright line"]
    for text in ordered:
        m = _DOMAIN.search(text)
        if m:
            return m.group(1).lower()
    return None
