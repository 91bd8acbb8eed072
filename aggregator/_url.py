"""URL canonicalisation: one spelling per article, tracking parameters removed."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from w3lib.url import canonicalize_url, url_query_cleaner

# Query parameters that identify a campaign or a click, not a page.
TRACKING_PARAMS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id", "utm_name",
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid", "_hsenc", "_hsmi",
    "spm", "from", "share_token", "ref_src", "s_cid",
)  # fmt: skip


def absolute_http_url(link: str | None, base: str | None = None) -> str | None:
    """Resolve `link` against `base`; keep it only if the result is an absolute http(s) URL."""
    if not link:
        return None
    link = link.strip()
    resolved = urljoin(base, link) if base and base.startswith(("http://", "https://")) else link
    parts = urlsplit(resolved)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return resolved


def canonical_url(url: str | None) -> str | None:
    """Lower-case scheme/host, sorted query without tracking parameters, no fragment."""
    if not url:
        return None
    cleaned = url_query_cleaner(url, TRACKING_PARAMS, remove=True, keep_fragments=False)
    canon = canonicalize_url(cleaned, keep_fragments=False)
    parts = urlsplit(canon)
    host = parts.netloc.lower().removeprefix("www.")
    if (host.endswith(":80") and parts.scheme == "http") or (host.endswith(":443") and parts.scheme == "https"):
        host = host.rsplit(":", 1)[0]
    path = parts.path.rstrip("/") or "/"
    # http and https are the same article: the canonical form is scheme-less.
    return f"//{host}{path}" + (f"?{parts.query}" if parts.query else "")
