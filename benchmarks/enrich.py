"""Benchmark of ingest enrichment: events/s of each enricher, cold and warm cache, on one core.

200,000 synthetic events draw from ~2,000 user agents, ~20,000 IPs, ~360 pages and a mix of
referrers, each with a skewed (Zipf-like) popularity, as real traffic has; 8% of page views land
with UTM tags and 4% with an ad click id unique to the click. Every pass first decodes the events
from JSON with msgspec, so the strings the enrichers see are fresh objects as in the API (their
hashes not yet computed); decoding is not in the enrichers' times but is reported as the ceiling
they race: Segment JSON decoding itself. The peer row is ua-parser without its Rust accelerator,
per user agent it has not seen.

Cold: every cache cleared (the GeoIP data and the UA parser already loaded; their one-time load is
its own column), so each distinct key is a miss once. Warm: the same events again, caches full.
Usage: python benchmarks/enrich.py [events]
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import msgspec

from nexus.ingest.enrich import geo, ip, urls, useragent

SEED = 20240618


class Event(msgspec.Struct):
    ip: str
    user_agent: str
    url: str
    referrer: str


def _zipf_choices(rng: random.Random, population: list[str], count: int, skew: float) -> list[str]:
    weights = [1 / (rank + 1) ** skew for rank in range(len(population))]
    return rng.choices(population, weights=weights, k=count)


def _user_agents(rng: random.Random) -> list[str]:
    blink = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.{b}.{p}"
    webkit = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{o}.{p}"
    templates = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + blink + " Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + blink + " Safari/537.36 Edg/{v}.0.{p}.{b}",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " + webkit + " Safari/605.1.15",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " + blink + " Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS {o}_{p} like Mac OS X) " + webkit + " Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS {o}_{p} like Mac OS X) " + webkit + " Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android {a}; SM-G99{p}B) " + blink + " Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android {a}; Pixel {p}) " + blink + " Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android {a}; SM-X{p}10) " + blink + " Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.{p}",
        "Mozilla/5.0 (Android {a}; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.{p}",
        "Mozilla/5.0 (compatible; Googlebot/2.{p}; +http://www.google.com/bot.html)",
        "curl/8.{p}.{b}",
        "python-requests/2.{v}.{p}",
    ]
    agents: set[str] = set()
    while len(agents) < 2000:
        template = rng.choice(templates)
        agents.add(
            template.format(
                v=rng.randint(100, 126),
                b=rng.randint(3000, 6500),
                p=rng.randint(0, 9),
                o=rng.randint(14, 17),
                a=rng.randint(9, 14),
            )
        )
    ordered = sorted(agents)
    rng.shuffle(ordered)
    return ordered


def _ips(rng: random.Random) -> list[str]:
    addresses = [
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(18_000)
    ]
    addresses += [
        f"2a0{rng.randint(0, 9)}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}" for _ in range(2_000)
    ]
    rng.shuffle(addresses)
    return addresses


def _pages(rng: random.Random, count: int) -> list[str]:
    """Page URLs: ~360 pages, some landings tagged by 12 campaigns, some with a unique ad click id."""
    paths = ["/", "/pricing", "/docs", "/blog", "/signup", "/login", "/features", "/about"]
    paths += [f"/blog/post-{n}" for n in range(200)] + [f"/docs/page-{n}" for n in range(150)]
    pages = _zipf_choices(rng, [f"https://www.example.com{path}" for path in paths], count, 1.0)
    campaigns = [
        f"?utm_source={source}&utm_medium={medium}&utm_campaign=spring%20sale%20{n}"
        for n, (source, medium) in enumerate(
            [("newsletter", "email"), ("google", "cpc"), ("twitter", "social"), ("partner", "referral")] * 3
        )
    ]
    for index, roll in enumerate(rng.random() for _ in range(count)):
        if roll < 0.08:
            pages[index] += rng.choice(campaigns)
        elif roll < 0.11:  # every ad click carries its own id, so these never repeat
            pages[index] += f"?gclid=Cj0KCQjw{rng.getrandbits(96):024x}"
        elif roll < 0.12:
            pages[index] += f"?fbclid=IwAR{rng.getrandbits(96):024x}"
    return pages


def _referrers(rng: random.Random, pages: list[str]) -> list[str]:
    """35% none, 35% internal (a page URL), the rest external origins, a few full external URLs."""
    external = (
        ["https://www.google.com/"] * 10
        + [
            "https://www.google.co.uk/",
            "https://www.google.de/",
            "https://www.bing.com/",
            "https://duckduckgo.com/",
        ]
        + [
            "https://t.co/",
            "https://l.facebook.com/",
            "https://www.linkedin.com/",
            "https://news.ycombinator.com/",
        ]
        + ["https://mail.google.com/", "android-app://com.google.android.gm/"]
    )
    blogs = [f"https://blog{n}.example.org/posts/{n * 7}" for n in range(300)]
    referrers = []
    for _ in pages:
        roll = rng.random()
        if roll < 0.35:
            referrers.append("")
        elif roll < 0.70:
            referrers.append(rng.choice(pages).partition("?")[0])
        elif roll < 0.94:
            referrers.append(rng.choice(external))
        else:
            referrers.append(rng.choice(blogs))
    return referrers


def _events_json(count: int) -> bytes:
    rng = random.Random(SEED)
    agents = _zipf_choices(rng, _user_agents(rng), count, 1.0)
    addresses = _zipf_choices(rng, _ips(rng), count, 0.5)
    pages = _pages(rng, count)
    referrers = _referrers(rng, pages)
    events = [Event(*fields) for fields in zip(addresses, agents, pages, referrers, strict=True)]
    return msgspec.json.encode(events)


def _enrich_urls(event: Event) -> None:
    host, _ = urls.split_url(event.url)
    urls.campaign_from_url(event.url)
    urls.classify_referrer(event.referrer, host)


def _enrich_all(event: Event) -> None:
    host, _ = urls.split_url(event.url)
    geo.lookup(event.ip)
    useragent.parse(event.user_agent)
    urls.campaign_from_url(event.url)
    urls.classify_referrer(event.referrer, host)
    ip.anonymize(event.ip, "truncate")


ENRICHERS: dict[str, Callable[[Event], object]] = {
    "geo.lookup": lambda event: geo.lookup(event.ip),
    "useragent.parse": lambda event: useragent.parse(event.user_agent),
    "urls (split, campaign, referrer)": _enrich_urls,
    "ip.anonymize truncate": lambda event: ip.anonymize(event.ip, "truncate"),
    "ip.anonymize hash": lambda event: ip.anonymize(event.ip, "hash", b"daily-salt"),
    "all together (truncate)": _enrich_all,
}


def _clear_caches() -> None:
    geo.cache_clear()
    useragent.cache_clear()
    urls.cache_clear()
    ip.cache_clear()


def _rate(enrich: Callable[[Event], object], events: list[Event]) -> float:
    started = time.perf_counter()
    for event in events:
        enrich(event)
    return len(events) / (time.perf_counter() - started)


def _decode(payload: bytes) -> tuple[list[Event], float]:
    started = time.perf_counter()
    events = msgspec.json.decode(payload, type=list[Event])
    return events, len(events) / (time.perf_counter() - started)


def _load_times() -> dict[str, float]:
    started = time.perf_counter()
    geo._load()
    geo_seconds = time.perf_counter() - started
    started = time.perf_counter()
    useragent._load()
    ua_seconds = time.perf_counter() - started
    return {"geo.lookup": geo_seconds, "useragent.parse": ua_seconds}


def _pure_python_ua_rate(agents: list[str]) -> float:
    """Cold parses/s of ua-parser's pure-Python resolver: the cost without the ua-parser-rs extra."""
    from ua_parser import Domain, load_builtins
    from ua_parser.basic import Resolver

    resolver = Resolver(load_builtins())
    started = time.perf_counter()
    for agent in agents:
        resolver(agent, Domain.ALL)
    return len(agents) / (time.perf_counter() - started)


def main(count: int = 200_000) -> None:
    payload = _events_json(count)
    loads = _load_times()
    sample, decode_rate = _decode(payload)
    distinct = {
        "geo.lookup": len({event.ip for event in sample}),
        "useragent.parse": len({event.user_agent for event in sample}),
        "urls (split, campaign, referrer)": len({event.url for event in sample})
        + len({(event.referrer, event.url.partition("?")[0]) for event in sample}),
    }
    distinct["ip.anonymize truncate"] = distinct["ip.anonymize hash"] = distinct["geo.lookup"]

    rows = []
    for name, enrich in ENRICHERS.items():
        _clear_caches()
        cold = _rate(enrich, _decode(payload)[0])
        warm = _rate(enrich, _decode(payload)[0])
        rows.append((name, cold, warm, distinct.get(name), loads.get(name)))

    print(
        f"{count:,} events; {distinct['useragent.parse']:,} distinct user agents, "
        f"{distinct['geo.lookup']:,} distinct IPs; one core, Python {sys.version.split()[0]}"
    )
    print()
    headers = ("cold events/s", "warm events/s", "distinct keys", "one-time load")
    print(f"| {'enricher':34} | " + " | ".join(f"{header:>13}" for header in headers) + " |")
    print(f"|{'-' * 36}|{'-' * 15}|{'-' * 15}|{'-' * 15}|{'-' * 15}|")
    for name, cold, warm, keys, load in rows:
        keys_text = f"{keys:,}" if keys is not None else ""
        load_text = f"{load * 1000:,.0f} ms" if load is not None else ""
        print(f"| {name:34} | {cold:13,.0f} | {warm:13,.0f} | {keys_text:>13} | {load_text:>13} |")
    print(
        f"| {'ceiling: msgspec decode of events':34} | {decode_rate:13,.0f} | {'':13} | {'':13} | {'':13} |"
    )
    agents = sorted({event.user_agent for event in sample})[:300]
    peer = _pure_python_ua_rate(agents)
    print(f"| {'peer: ua-parser pure-Python, miss':34} | {peer:13,.0f} | {'':13} | {'':13} | {'':13} |")
    print()
    together = rows[-1][2]
    verdict = "meets" if together >= 300_000 else "MISSES"
    print(f"All enrichers together, warm: {together:,.0f} events/s — {verdict} the 300,000 events/s target.")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
