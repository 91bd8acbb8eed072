"""Lines of a scraped page: cleaning, re-joining hard-wrapped text, and what a line looks like.

Pure helpers shared by the article extractor and the site detector: is a line prose (a body
paragraph), a headline, Chinese or English.
"""

from __future__ import annotations

import re

from ._boilerplate import classify_boilerplate

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
WORD = re.compile(r"[A-Za-z0-9][\w'’.-]*")
_ODD_SPACE = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
_BULLET = re.compile(r"^(?:[•·●○◆◇■□▪▫►▶➤»◎★☆]|[-*>+](?=\s))\s*")
TERMINAL = tuple(".!?。！？…")
CLOSERS = "\"'”’」』）)]】"
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^<>]{0,200}>")
PROSE_WORDS = 20  # an English line this long is a paragraph, whatever its punctuation
PROSE_WORDS_PUNCT = 8  # ...or this long and ending like a sentence
PROSE_CJK = 40  # Chinese characters, likewise
PROSE_CJK_PUNCT = 15
WRAP_MIN, WRAP_MAX = 55, 100  # line widths of text wrapped at a fixed column (72, 76, 80...)


def cjk_count(s: str) -> int:
    """Number of Chinese characters in a string."""
    return len(CJK.findall(s))


def language_of(text: str) -> str:
    """'zh' when Chinese characters outnumber English words, else 'en'."""
    sample = text[:20000]
    return "zh" if cjk_count(sample) > len(LATIN_WORD.findall(sample)) else "en"


def is_prose(s: str) -> bool:
    """A line that reads as a body paragraph rather than a heading, menu or label."""
    c = cjk_count(s)
    end = s.rstrip(CLOSERS)
    if c and c >= len(LATIN_WORD.findall(s)):
        return c >= PROSE_CJK or (c >= PROSE_CJK_PUNCT and end.endswith(TERMINAL))
    words = len(WORD.findall(s))
    return words >= PROSE_WORDS or (words >= PROSE_WORDS_PUNCT and end.endswith(TERMINAL))


def is_headline(s: str) -> bool:
    """A line shaped like a news headline (EN or ZH)."""
    if len(s) > 250 or s.endswith((",", "，", "、", ":", "：", ";", "；")) or is_subtitle(s):
        return False
    c = cjk_count(s)
    words = len(WORD.findall(s))
    if c >= 4 and c >= words:
        return 5 <= len(s) <= 100 and not s.endswith("。")
    if not 3 <= words <= 40:
        return False
    # Markup in a title is text, but its look must not decide: judge the visible words.
    visible = _TAG.sub(" ", _SCRIPT.sub(" ", s)).strip(" \"'“‘「《([")
    first = next((ch for ch in visible if ch.isalnum()), "")
    alpha = LATIN_WORD.findall(visible)
    capitalised = sum(w[0].isupper() for w in alpha)
    if not first or (first.isalpha() and not first.isupper() and capitalised * 2 < len(alpha)):
        return False
    end = s.rstrip(CLOSERS)
    return not end.endswith(".") or end.endswith(("..", "Co.", "Ltd.", "Inc.", "U.S.", "Corp."))


def is_subtitle(s: str) -> bool:
    """A subtitle line under the headline, opened by a dash ("——记我校稀土冶金团队")."""
    return s.startswith(("——", "—", "--", "– ", "- "))


def _clean_line(raw: str) -> str:
    s = _ZERO_WIDTH.sub("", _ODD_SPACE.sub(" ", raw)).strip()
    prev = None
    while prev != s:
        prev, s = s, _BULLET.sub("", s).strip()
    return s


def _joins(prev: str, nxt: str) -> bool:
    """A scraper hard-wrapped one sentence over two lines."""
    if prev.endswith(("，", "、")) and CJK.match(nxt):
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


def prepare_lines(text: str) -> list[str]:
    """Non-empty cleaned lines of a page, hard-wrapped sentences re-joined."""
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
            sep = "" if CJK.match(s) else " "
            out[-1] = out[-1] + sep + s
        else:
            out.append(s)
    return out


def norm_key(s: str) -> str:
    """A comparison key: letters and digits only, lowercased (for repeated-title checks)."""
    return re.sub(r"[\W_]+", "", s).lower()


def title_case_share(s: str) -> float:
    """Share of the longer English words that are capitalised (1.0 for Title Case)."""
    words = [w for w in LATIN_WORD.findall(s) if len(w) > 3]  # "of", "and", "the" are lowercase in titles
    return sum(w[0].isupper() for w in words) / len(words) if words else 0.0
