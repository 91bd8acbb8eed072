"""Line classes of scraped news pages (EN + ZH): boilerplate, metadata labels, bylines, images.

Pure and table-driven: each pattern has a name (shown in `dropped` reasons) and says whether it
starts the page footer. Once a footer line follows the body, everything after it is footer too,
except metadata (bylines, date labels), which is read and not shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.I
MAX_BOILERPLATE_LINE = 600


@dataclass(frozen=True)
class Rule:
    """A named line pattern; `footer` rules end the article body."""

    name: str
    pattern: re.Pattern[str]
    footer: bool  # a line of this kind after the body starts the footer


def _r(name: str, pattern: str, *, footer: bool = False) -> Rule:
    return Rule(name, re.compile(pattern, _I), footer)


_SOCIAL = (
    r"facebook|twitter|x|linkedin|wechat|weixin|weibo|微信|微博|qq|qzone|qq空间|email|e-mail|whatsapp|telegram"
    r"|reddit|豆瓣|print|打印|copy link|复制链接|朋友圈|tumblr|pinterest|line|vk"
)
# Words of a print/close bar ("【打印】【关闭】", "Print | Close"): fixed words only, so that the
# repeated bar pattern below stays linear.
_BAR_WORDS = (
    r"关闭|关闭窗口|关闭本页|打印|打印本页|打印此页|打印文章|返回|返回顶部|返回列表|返回首页|回到顶部|收藏|收藏本页|加入收藏|推荐|"
    r"close|close window|print|print this page|print page|back|go back|back to top|top|go to top|return|bookmark|"
    r"纠错|我要纠错|report an error|corrections?"
)
# A line that is nothing but one navigation action.
_SHORT_ACTIONS = (
    _BAR_WORDS
    + r"|to top|back to [\w ]{2,20}|font size[:：]?(?: a)*|text size[:：]?(?: a)*|[\[【]?\s*大\s*中\s*小\s*[\]】]?|"
    r"menu|skip to content|skip to main content|toggle navigation|search|搜索|登录|注册|login|log in|sign in|register|"
    r"english|中文|中文版|english version|简体|繁体|en|cn|more|更多|more\s*>+|更多\s*>+|查看更多|read more|阅读全文|展开全文"
)

RULES: tuple[Rule, ...] = (
    _r(
        "prev/next link",
        r"^(?:[«‹<]\s*)?(?:上一[条篇页个则]|下一[条篇页个则]|前一篇|后一篇|previous|prev|next)"
        r"(?:\s*(?:post|article|story|news|item|page|entry|one))?\s*(?:[:：>»›]|$)",
        footer=True,
    ),
    _r(
        "prev/next link",
        r"(?:上一[条篇]|previous (?:post|article)).{0,200}(?:下一[条篇]|next (?:post|article))",
        footer=True,
    ),
    _r(
        "close/print bar",
        r"^(?:(?:[\[【(（]\s*)?(?:" + _BAR_WORDS + r")(?:\s*[\]】)）])?(?:[\s|｜/]+|$|(?=[\[【(（])))+$",
        footer=True,
    ),
    _r("font size bar", r"(?:字号|字体)\s*[:：]?\s*[\[【(（]?\s*(?:大|中|小)"),
    _r(
        "view counter",
        r"^[\[【(（]?\s*(?:点击|浏览|阅读|访问)(?:次数|数|量|率)?\s*[:：]?\s*[\[\(（【]?\s*[\d,]*\s*[\]\)）】]?\s*次?\s*[\]】)）]?$",
    ),
    _r(
        "view counter",
        r"^(?:views?|hits?|reads?|page ?views|visits|clicks?|浏览量|阅读数)\s*[:：]?\s*[\d,]*\s*(?:times)?$",
    ),
    _r("view counter", r"^[\d,]+\s*(?:views?|hits?|reads?|次浏览|次阅读|人阅读)$"),
    _r(
        "share line",
        r"^(?:share(?:\s+(?:this|on|to|via|it))*(?:\s+(?:article|story|post|page|news))?|分享到|分享至|分享|一键分享)"
        r"\s*(?:[:：].*|(?:[\s|｜/,，\-–—]+(?:" + _SOCIAL + r"))*)$",
        footer=True,
    ),
    _r("share line", r"^(?:(?:" + _SOCIAL + r")(?:\s*[|｜/,，·]\s*|\s+|$)){3,}$", footer=True),
    _r(
        "subscribe line",
        r"^(?:(?:subscribe|sign up for|follow us|join our (?:newsletter|mailing list))\b|订阅|关注我们|扫一扫|扫码关注|"
        r"微信扫一扫|长按识别|长按二维码|欢迎关注).{0,100}$",
        footer=True,
    ),
    _r(
        "related links",
        r"^(?:related(?:\s+(?:posts?|news|articles?|stories|links|reading|content|items))?|you (?:may|might) also like|"
        r"more (?:news|stories|articles|from [\w ]{1,40})|read (?:more|next)|see also|recommended(?: for you)?|"
        r"popular (?:posts|news|articles)|latest (?:news|posts|articles)|top stories|"
        r"相关(?:新闻|文章|阅读|链接|推荐|报道)|推荐阅读|延伸阅读|热点新闻|热门(?:文章|新闻|推荐)|最新(?:新闻|文章|动态)|更多(?:新闻|阅读)|"
        r"猜你喜欢|图片新闻|相关附件|附件下载|附件|attachments?|downloads?)\s*[:：>»]*$",
        footer=True,
    ),
    # Inside the body: teasers for other stories and ad markers.
    _r(
        "link teaser",
        r"^(?:read more|also read|read also|see also|related(?: story| article| news)?|recommended|more on this|"
        r"相关阅读|延伸阅读|推荐阅读|相关新闻|相关报道|阅读更多)\s*[:：]\s*\S.{0,120}$",
    ),
    _r("advertisement", r"^(?:advertisement|advert|sponsored content|ad|广告|推广)$"),
    _r(
        "copyright line",
        r"copyright\s*(?:[:：]|©|\(c\)|\d{4})|©|\(c\)\s*(?:\d{4}|[A-Z])|版权所有|all rights reserved|"
        r"ICP\s*备|ICP\s*证|公网安备|备案号|技术支持\s*[:：]|^(?:site |website )?(?:powered|designed|developed|hosted) by\b.{0,60}$",
        footer=True,
    ),
    _r(
        "site links",
        r"^(?:网站地图|site ?map|privacy(?: policy)?|terms(?: of (?:use|service))?|accessibility|隐私政策|免责条款|"
        r"友情链接|相关链接|links|useful links|quick links)\s*[:：]?$|您是第\s*\d+\s*位访客|总?访问量\s*[:：]|"
        r"^(?:扫描|扫)(?:二维码|码).{0,20}$|^(?:手机版|移动版|电脑版)$",
        footer=True,
    ),
    _r(
        "cookie notice",
        r"^(?=.{0,300}$)(?:.*\b(?:this|our) (?:web)?site\b.*\bcookies?\b|.*\bcookies?\b.*\b(?:consent|accept all|"
        r"cookie (?:settings|policy|preferences)|your (?:browser|experience)))",
        footer=True,
    ),
    _r(
        "address line",
        r"^(?:address|add|地址|通讯地址|校址|zip|zip code|postcode|post code|postal code|邮编|邮政编码|tel|phone|telephone|"
        r"fax|电话|联系电话|传真|e-?mail|邮箱|电子邮箱|联系我们|contact us|contacts?|联系方式|hotline|热线|"
        r"(?:media|press|news)\s+(?:contacts?|enquiries|inquiries|office)|for (?:more information|media enquiries))\s*[:：]",
        footer=True,
    ),
    _r(
        "link-to-article line",
        r"^(?:link to this (?:article|page|post)|permalink|article link|original link|source link|本文链接|原文链接|"
        r"文章链接|原文地址|本文地址|本文网址|url)\s*[:：]",
        footer=True,
    ),
    _r(
        "reprint notice",
        r"^(?:reprint(?:ed)?(?:\s+statement)?|republish(?:ing)?|转载请注明|转载声明|版权声明|免责声明|disclaimer|声明)\s*[:：]|"
        r"转载请注明|未经.{0,12}(?:授权|许可|同意).{0,12}(?:转载|使用|复制)|source for reprinting|"
        r"(?:may|must) not be (?:reproduced|reprinted|republished)|reprinted with permission",
        footer=True,
    ),
    _r(
        "breadcrumb",
        r"^(?:home|homepage|首页|主页|网站首页|学校首页)\s*(?:[>›»/|]|&gt;|-\s)|"
        r"^(?:当前位置|您的位置|你的位置|您现在的位置|您当前的位置|所在位置|位置|current location|current position|"
        r"you are here|location)\s*[:：]",
    ),
    _r("breadcrumb", r"^[^<>›»]{1,24}(?:\s*[>›»]\s*[^<>›»]{1,40}){2,}$"),
    _r(
        "tag line",
        r"^(?:tags?|tagged|keywords?|key words|关键词|关键字|标签|topics?|categor(?:y|ies)|filed under|posted in|栏目|分类)"
        r"\s*[:：]",
    ),
    _r(
        "comments line",
        r"^(?:leave a (?:comment|reply)|post a comment|add (?:a )?comment|comments?\s*(?:[(（]\d+[)）]|[:：]\s*\d*)?|"
        r"\d+\s+comments?|no comments(?: yet)?|发表评论|我要评论|网友评论|评论\s*[(（]?\d*[)）]?)$",
        footer=True,
    ),
    # Government and archive pages list document fields above the title: "索引号：...", "发布机构：...".
    _r(
        "document field",
        r"^[\u4e00-\u9fff]{1,5}(?:号|机构|机关|单位|分类|类别|日期|时间|有效性|主题词|文号|字号)\s*[:：]\s*\S",
    ),
    _r("press release banner", r"^(?:for immediate release|news release|press release|新闻稿|通稿)\s*[:：]?$"),
    # "Posted 3 hours ago" / "2小时前": a time relative to an unknown moment is no date at all.
    _r(
        "relative time",
        r"^(?:(?:posted|published|updated|发布于|更新于)\s*)?(?:(?:\d+|an?|one)\s+(?:seconds?|minutes?|mins?|hours?|hrs?|days?|"
        r"weeks?|months?|years?)\s+ago|just now|yesterday|today|\d+\s*(?:秒|分钟|小时|天|周|个月|年)前|刚刚|昨天|今天)$",
    ),
    _r("short action", r"^(?:" + _SHORT_ACTIONS + r")$"),
    _r("image placeholder", r"^[\[【(（]?\s*(?:图片|image|photo|picture|img|video|视频)\s*[\]】)）]?$"),
    _r("no words", r"^[\W_]*$"),
)

# "Topics" / "• Date" / "浏览" alone on a line: a metadata label whose value is the next line.
LABEL_ONLY = re.compile(
    r"^(?P<label>topics?|categor(?:y|ies)|column|section|tags?|keywords?|date|time|published|posted|updated|views?|hits?|"
    r"source|author|authors|editor|editors|reporter|photo|photos|by|栏目|分类|标签|关键词|日期|时间|发布时间|发布日期|"
    r"来源|作者|编辑|责任编辑|记者|摄影|浏览|浏览次数|点击|点击数|阅读|阅读量)\s*[:：]?$",
    _I,
)
AUTHOR_LABELS = {"author", "authors", "editor", "editors", "reporter", "photo", "photos", "by", "作者", "编辑"}
AUTHOR_LABELS |= {"责任编辑", "记者", "摄影"}

# Byline labels. Those ending in "by" (and the Chinese ones without a colon) need no colon.
# Plain alternatives only (no "|" inside a group): BYLINE sorts them longest first.
_BYLINE = (
    r"draft(?:ed)?(?: by)?|revision|revised by|editor|editors|edited by|chief editor|executive editor|responsible editor|"
    r"editor in charge|author|authors|reporter|reporters|correspondent|writer|written by|words|text|story|story by|"
    r"photo|photos|photo by|photos by|photography|photographer|images?|translator|translated by|translation|"
    r"proofreader|proofreading|proofread|reviewer|reviewed by|contributor|contributed by|contributing writer|reported by|"
    r"posted by|submitted by|compiled by|by|"
    r"编辑|责任编辑|责编|主编|审核|审校|审稿|校对|作者|文字|文/图|图/文|文|图|图片|摄影|摄|记者|撰稿|撰文|"
    r"初审|复审|终审|本报记者|本报通讯员|特约记者|见习记者|通讯员|翻译|译者|排版|美编|采写|整理|文字编辑|图片编辑|视频"
)
BYLINE = re.compile(
    r"^(?P<open>[(（\[【])?\s*(?P<label>"
    + "|".join(sorted(_BYLINE.split("|"), key=len, reverse=True))  # "photo by" before "photo"
    + r")\s*(?P<colon>[:：|｜]\s*|(?<=by)\s+|\s+(?=\S))(?P<who>.+?)\s*(?(open)[)）\]】])$",
    _I,
)
# A line made of several metadata fields: "作者：张三  来源：新华网  发布时间：2025-05-20".
_FIELD_LABELS = (
    r"作者|来源|编辑|责任编辑|审核|摄影|记者|通讯员|发布时间|发布日期|发表时间|更新时间|日期|时间|点击|点击数|点击量|浏览|浏览次数|"
    r"阅读|阅读量|字号|发布者|发布人|author|source|editor|date|time|published|posted|updated|views?|hits?|clicks?|publisher"
)
# Fields of a metadata line: split on runs of spaces, bars, and before a label after one space
# ("发布时间：2025-10-10 作者：陈明").
FIELD_SPLIT = re.compile(
    r"\s{2,}|\s*[|｜]\s*|\u3000+|(?<=[)）\]】])\s*(?=[(（\[【])|\s+(?=(?:" + _FIELD_LABELS + r")\s*[:：])", _I
)
SOURCE_FIELD = re.compile(
    r"^[(（\[【]?\s*(?:来源|稿件来源|信息来源|本文来源|文章来源|新闻来源|source|供稿|供稿单位|from|publisher|发布者|发布人|发布单位|"
    r"录入|录入者|上传者|posted by)\s*[:：]\s*(?P<src>.+?)[)）\]】]?$",
    _I,
)

_IMAGE_EXT = r"\.(?:jpe?g|png|gif|webp|bmp|tiff?|svg|heic)"
# "1.jpgProf. YANG ...": a file name glued to the caption. The caption stays, the name goes.
IMAGE_NAME = re.compile(
    r"(?:(?<=^)|(?<=[\s.。!?！？:：]))[\w\-()（）\u4e00-\u9fff]{1,80}?"
    + _IMAGE_EXT
    + r"(?=[^\w.]|[A-Z\u4e00-\u9fff]|$)",
    _I,
)
IMAGE_ONLY = re.compile(r"^(?:[\w\-()（）\u4e00-\u9fff]{1,80}?" + _IMAGE_EXT + r"\s*)+$", _I)


def classify_boilerplate(line: str, extra: tuple[re.Pattern[str], ...] = ()) -> Rule | None:
    """The boilerplate rule a line matches, or None for a content line."""
    if len(line) > MAX_BOILERPLATE_LINE:
        return None  # menus, footers and counters are short; a long line is content (or junk)
    for rule in RULES:
        if rule.pattern.search(line):
            return rule
    for pattern in extra:
        if pattern.search(line):
            return Rule("source boilerplate pattern", pattern, False)
    if _is_nav_bar(line):
        return Rule("navigation bar", re.compile(""), False)
    return None


_NAV_SEP = re.compile(r"\s*[|｜]\s*|\s{2,}|\u3000+|\s+/\s+|\s*·\s*")


def _is_nav_bar(line: str) -> bool:
    """Several short items separated by '|' or runs of spaces: a menu, not a sentence."""
    parts = [p for p in _NAV_SEP.split(line) if p]
    if len(parts) < 2 or line.rstrip().endswith((".", "。", "!", "?", "！", "？")):
        return False
    if any(re.search(r"\d{4}", p) for p in parts):
        return False  # a metadata line with a date, read by the date finder
    return all(len(p) <= 16 for p in parts) and (len(parts) >= 3 or "|" in line or "｜" in line or "  " in line)
