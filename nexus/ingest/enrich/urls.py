"""Where a page view came from: host and path of the page, UTM campaign tags, and the referrer's class.

Choices:
- Hosts are lower-case without port, user info or trailing dot. A page path is kept as sent
  (percent-encoding included), without query or fragment; "" becomes "/" on an absolute URL.
- Campaign tags come from the query string only (not the fragment); names match case-insensitively,
  values are percent- and plus-decoded and stripped, and the first non-empty occurrence of a repeated
  tag wins. Ad click ids fill what UTM tags leave empty: `gclid` (Google Ads) → google / cpc,
  `msclkid` (Microsoft Ads) → bing / cpc, `fbclid` → facebook / social — Facebook adds fbclid to
  every outbound link, organic posts included, so it does not mean "paid".
- Referrer classes, in order: no referrer, or one without a host (`about:blank`) → "direct"; the
  page's own host or a parent or child of it (`blog.example.com` ↔ `example.com`) → "internal"; a
  domain in `_DOMAIN_CLASSES`, or any subdomain of one (`l.facebook.com`) → its class; a brand in
  `_BRAND_CLASSES` under any country suffix, bare or behind `www.`/`m.` (`www.google.co.uk`,
  `yandex.ru`) → its class; else "other". Only the referrer is classified: a campaign's
  `utm_medium=email` overriding it is the pipeline's choice, not this module's.
- Hacker News counts as social, as in GA4's default channel groups. Android apps send
  `android-app://<package>` referrers; the Gmail and Google Search apps are in the table too.
"""

from __future__ import annotations

import functools
from urllib.parse import parse_qsl, urlsplit

import msgspec

# Longer strings are not hostnames (DNS caps names at 253), nor worth a cache entry.
_MAX_HOST = 253
_MAX_CACHED = 1024


class Campaign(msgspec.Struct, frozen=True, gc=False):
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_term: str
    utm_content: str


class Referrer(msgspec.Struct, frozen=True, gc=False):
    domain: str
    referrer_class: str


NO_CAMPAIGN = Campaign(utm_source="", utm_medium="", utm_campaign="", utm_term="", utm_content="")
DIRECT = Referrer(domain="", referrer_class="direct")

_UTM_TAGS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# click id → (source, medium), used only where the URL has no utm_source / utm_medium of its own.
_CLICK_IDS = {
    "gclid": ("google", "cpc"),
    "msclkid": ("bing", "cpc"),
    "fbclid": ("facebook", "social"),
}
_MARKERS = ("utm_", *_CLICK_IDS)

_DOMAIN_CLASSES = {
    # search
    "bing.com": "search",
    "duckduckgo.com": "search",
    "search.yahoo.com": "search",
    "search.brave.com": "search",
    "ecosia.org": "search",
    "qwant.com": "search",
    "startpage.com": "search",
    "kagi.com": "search",
    "search.naver.com": "search",
    "seznam.cz": "search",
    "perplexity.ai": "search",
    "com.google.android.googlequicksearchbox": "search",
    # social
    "facebook.com": "social",
    "fb.me": "social",
    "instagram.com": "social",
    "threads.net": "social",
    "t.co": "social",
    "twitter.com": "social",
    "x.com": "social",
    "linkedin.com": "social",
    "lnkd.in": "social",
    "reddit.com": "social",
    "youtube.com": "social",
    "youtu.be": "social",
    "tiktok.com": "social",
    "pinterest.com": "social",
    "news.ycombinator.com": "social",
    "bsky.app": "social",
    "mastodon.social": "social",
    "tumblr.com": "social",
    "quora.com": "social",
    "vk.com": "social",
    "weibo.com": "social",
    "discord.com": "social",
    "t.me": "social",
    "web.whatsapp.com": "social",
    "com.linkedin.android": "social",
    "com.reddit.frontpage": "social",
    # email: webmail front ends; mail sent from desktop clients arrives with no referrer at all
    "mail.google.com": "email",
    "inbox.google.com": "email",
    "com.google.android.gm": "email",
    "outlook.live.com": "email",
    "outlook.office.com": "email",
    "outlook.office365.com": "email",
    "mail.yahoo.com": "email",
    "mail.aol.com": "email",
    "mail.proton.me": "email",
    "mail.zoho.com": "email",
    "mail.yandex.ru": "email",
    "e.mail.ru": "email",
}

# Brands that run their site under many country suffixes (google.de, google.com.br, yahoo.co.jp).
# Matched only as the site itself, so docs.google.com or finance.yahoo.com stay "other".
_BRAND_CLASSES = {
    "google": "search",
    "yahoo": "search",
    "yandex": "search",
    "baidu": "search",
    "naver": "search",
    "pinterest": "social",
}
_BRAND_PREFIXES = frozenset({"www", "m"})


def split_url(url: str) -> tuple[str, str]:
    """(host, path) of a page URL; ("", "") when it cannot be parsed, host "" for a relative URL."""
    return (_split_url_cached if len(url) <= _MAX_CACHED else _split_url)(url)


def campaign_from_url(url: str) -> Campaign:
    """The UTM tags of a landing-page URL, with ad click ids filling empty source and medium."""
    return (_campaign_cached if len(url) <= _MAX_CACHED else _campaign)(url)


def classify_referrer(referrer: str, page_host: str) -> Referrer:
    """The referrer's domain (without `www.`) and class: search, social, email, direct, internal, other."""
    if len(referrer) + len(page_host) > _MAX_CACHED:
        return _classify_referrer(referrer, page_host)
    return _classify_referrer_cached(referrer, page_host)


def cache_clear() -> None:
    """Forget every parsed URL and classified referrer (for benchmarks and tests of the cold path)."""
    for cached in (_split_url_cached, _campaign_cached, _classify_referrer_cached, _classify_domain):
        cached.cache_clear()


def _split_url(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url.strip())
        host = _clean_host(parts.hostname)
    except ValueError:  # e.g. an unbalanced "[" in an IPv6 host, or a non-numeric port
        return "", ""
    path = parts.path
    if host and not path:
        path = "/"
    return host, path


def _campaign(url: str) -> Campaign:
    query = url.partition("#")[0].partition("?")[2]
    # Most page views carry no campaign: skip parsing unless a tag or click id can be present.
    lowered = query.lower()
    if not any(marker in lowered for marker in _MARKERS):
        return NO_CAMPAIGN
    found: dict[str, str] = {}
    for name, value in parse_qsl(query):
        name = name.lower()
        value = value.strip()
        if value and name not in found and (name in _UTM_TAGS or name in _CLICK_IDS):
            found[name] = value
    source, medium = found.get("utm_source", ""), found.get("utm_medium", "")
    for click_id, (click_source, click_medium) in _CLICK_IDS.items():
        if click_id in found:
            source, medium = source or click_source, medium or click_medium
            break
    if not (source or medium or any(tag in found for tag in _UTM_TAGS)):
        return NO_CAMPAIGN
    return Campaign(
        utm_source=source,
        utm_medium=medium,
        utm_campaign=found.get("utm_campaign", ""),
        utm_term=found.get("utm_term", ""),
        utm_content=found.get("utm_content", ""),
    )


def _classify_referrer(referrer: str, page_host: str) -> Referrer:
    referrer = referrer.strip()
    if not referrer:
        return DIRECT
    if "//" not in referrer:
        _, colon, rest = referrer.partition("/")[0].partition(":")
        if colon and not rest.isdigit():  # about:blank, data:…, android intents: no host to name
            return DIRECT
        # Sent without a scheme ("google.com/search"), it still names a host.
        referrer = "//" + referrer
    try:
        domain = _clean_host(urlsplit(referrer).hostname)
    except ValueError:
        return DIRECT
    if not domain or len(domain) > _MAX_HOST:
        return DIRECT
    domain = domain.removeprefix("www.")
    page = _clean_host(page_host).removeprefix("www.")
    if page and (domain == page or _is_subdomain(domain, page) or _is_subdomain(page, domain)):
        return Referrer(domain=domain, referrer_class="internal")
    return _classify_domain(domain)


# Whole URLs are cached, not only their parts: a site has few pages, and browsers' default referrer
# policy (strict-origin-when-cross-origin) reduces external referrers to a few origins, so the same
# strings come back all day. A hit costs ~0.1 µs; parsing one costs 1-6 µs, which alone would keep
# the ingest path under its 300k events/s target. Longer strings are parsed but not kept, so a
# flood of unique huge URLs cannot fill memory.
_split_url_cached = functools.lru_cache(maxsize=32768)(_split_url)
_campaign_cached = functools.lru_cache(maxsize=32768)(_campaign)
_classify_referrer_cached = functools.lru_cache(maxsize=32768)(_classify_referrer)


# Also keyed on the domain alone: many referrer URLs of one domain share one classification.
@functools.lru_cache(maxsize=16384)
def _classify_domain(domain: str) -> Referrer:
    labels = domain.split(".")
    # Longest suffix first, so mail.google.com is email before anything could call it search.
    for start in range(len(labels) - 1):
        referrer_class = _DOMAIN_CLASSES.get(".".join(labels[start:]))
        if referrer_class is not None:
            return Referrer(domain=domain, referrer_class=referrer_class)
    if len(labels) > 2 and labels[0] in _BRAND_PREFIXES:
        labels = labels[1:]
    referrer_class = _BRAND_CLASSES.get(labels[0])
    if referrer_class is not None and _is_country_suffix(labels[1:]):
        return Referrer(domain=domain, referrer_class=referrer_class)
    return Referrer(domain=domain, referrer_class="other")


def _is_country_suffix(labels: list[str]) -> bool:
    """Whether the labels look like a public suffix a brand uses: "com", "de", "co.uk", "com.br"."""
    return 1 <= len(labels) <= 2 and all(0 < len(label) <= 3 for label in labels)


def _is_subdomain(host: str, parent: str) -> bool:
    # A bare suffix ("com") is nobody's parent: it would make every .com referrer internal.
    return "." in parent and host.endswith("." + parent)


def _clean_host(host: str | None) -> str:
    return (host or "").strip().lower().rstrip(".")
