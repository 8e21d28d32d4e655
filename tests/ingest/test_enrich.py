"""Ingest enrichment: geo from IP, device from user agent, campaign and referrer from URLs, IP anonymisation.

Countries come from the GeoLite2 data bundled in the installed geoip2fast wheel; the addresses below
sit in large, long-held allocations (Google DNS, Deutsche Telekom's 91.0.0.0/10, the University of
Tokyo's 133/8, NIC.br, the WIDE project) so a data refresh should not move them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nexus.errors import InvalidConfig
from nexus.ingest.enrich import geo, ip, urls, useragent
from nexus.ingest.enrich.geo import Geo
from nexus.ingest.enrich.urls import Campaign, Referrer
from nexus.ingest.enrich.useragent import Device

# --- geo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),
        ("91.0.0.1", "DE"),
        ("133.11.0.1", "JP"),
        ("200.160.2.3", "BR"),
        ("2001:4860:4860::8888", "US"),
        ("2001:200::1", "JP"),
        ("::ffff:8.8.8.8", "US"),  # IPv4-mapped, as a dual-stack socket reports it
        (" 8.8.8.8 ", "US"),
    ],
)
def test_public_addresses_have_their_country(address: str, country: str) -> None:
    assert geo.lookup(address) == Geo(country=country, region="", city="")


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "127.0.0.1",
        "192.168.1.10",
        "172.16.5.4",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.1.1",
        "192.0.2.1",  # documentation
        "::1",
        "fe80::1",
        "fc00::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "",
        "garbage",
        "8.8",  # inet_aton would read this as 8.0.0.8
        "999.1.1.1",
        "1.2.3.4" * 100,
    ],
)
def test_private_reserved_and_invalid_addresses_have_no_geo(address: str) -> None:
    assert geo.lookup(address) == geo.EMPTY


def test_geo_database_loads_once_across_threads_and_leaves_the_environment_alone() -> None:
    # Given a fresh interpreter without PYTHONWARNINGS (geoip2fast sets it on import),
    # When 16 threads look up at once on the cold database,
    # Then all agree, one database was loaded, and the environment is as it was.
    program = textwrap.dedent(
        """
        import os, threading
        os.environ.pop("PYTHONWARNINGS", None)
        from nexus.ingest.enrich import geo
        databases, results = [], []
        def work():
            results.append(geo.lookup("8.8.8.8").country)
            databases.append(id(geo._database.get()))
        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads: thread.start()
        for thread in threads: thread.join()
        print(sorted(set(results)), len(set(databases)), "PYTHONWARNINGS" in os.environ)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['US'] 1 False"


@pytest.fixture(scope="module")
def city_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small MaxMind City database, written the way MaxMind lays theirs out (IPv4 inside IPv6)."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    london = {"country": {"iso_code": "GB"}, "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
              "city": {"names": {"en": "London"}}}
    writer.insert_network(IPSet(["81.2.69.0/24"]), london)
    writer.insert_network(IPSet(["2001:218::/32"]), {"country": {"iso_code": "JP"}})  # country only
    writer.insert_network(IPSet(["10.0.0.0/8"]), london)  # private: never looked up, whatever the file says
    writer.insert_network(IPSet(["5.0.0.0/8"]), {"continent": {"code": "EU"}})  # no country
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer.to_db_file(str(path))
    return str(path)


@pytest.mark.parametrize(("address", "place"), [
    ("81.2.69.160", Geo(country="GB", region="England", city="London")),
    ("::ffff:81.2.69.1", Geo(country="GB", region="England", city="London")),
    ("2001:218::1", Geo(country="JP", region="", city="")),
    ("10.1.2.3", geo.EMPTY),
    ("5.1.2.3", geo.EMPTY),
    ("8.8.8.8", geo.EMPTY),  # not in this file: the bundled data is not consulted
    ("garbage", geo.EMPTY),
])
def test_an_operator_database_gives_country_region_and_city(city_database: str, address: str, place: Geo) -> None:
    assert geo.database_lookup(city_database)(address) == place


def test_the_pipeline_stores_what_the_configured_database_says(city_database: str) -> None:
    from datetime import datetime, timezone

    from nexus.ingest import pipeline, wire

    message = wire.decode_message(b'{"type": "track", "event": "e", "userId": "u", "messageId": "m",'
                                  b' "context": {"ip": "81.2.69.7"}}', 0)
    source = pipeline.Source(project_id=1, received_at=datetime.now(timezone.utc))
    columns = pipeline.process([message], source, pipeline.Rules(locate=geo.database_lookup(city_database))).columns
    assert (columns["country"], columns["region"], columns["city"]) == (["GB"], ["England"], ["London"])
    bundled = pipeline.process([message], source, pipeline.Rules()).columns
    assert (bundled["country"], bundled["region"], bundled["city"]) == (["GB"], [""], [""])


@pytest.mark.parametrize("content", [None, b"not a maxmind database"])
def test_an_unreadable_database_is_a_configuration_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "city.mmdb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidConfig, match=f"NEXUS_GEOIP_DATABASE: {path} is not a readable MaxMind database"):
        geo.database_lookup(str(path))


# --- user agent --------------------------------------------------------------------------------

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (CHROME_WINDOWS, Device("Chrome", "124", "Windows", "10", "desktop", False)),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
            Device("Safari", "17", "iOS", "17", "mobile", False),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/16.6 Mobile/15E148 Safari/604.1",
            Device("Safari", "16", "iOS", "16", "tablet", False),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.6367.82 Mobile Safari/537.36",
            Device("Chrome", "124", "Android", "14", "mobile", False),
        ),
        (
            # An Android tablet: no "Mobile" token.
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36",
            Device("Chrome", "124", "Android", "13", "tablet", False),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            Device("Firefox", "125", "Linux", "", "desktop", False),
        ),
        (
            CHROME_WINDOWS + " Edg/124.0.2478.67",
            Device("Edge", "124", "Windows", "10", "desktop", False),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.4.1 Safari/605.1.15",
            Device("Safari", "17", "Mac OS X", "10", "desktop", False),
        ),
        (
            # Cubot is a phone maker, not a bot.
            "Mozilla/5.0 (Linux; Android 9; CUBOT KING KONG) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Mobile Safari/537.36",
            Device("Chrome", "124", "Android", "9", "mobile", False),
        ),
        (
            "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "76.0.3809.146/6.0 TV Safari/537.36",
            Device("Safari", "", "Tizen", "6", "", False),
        ),
    ],
)
def test_browsers_and_devices(agent: str, device: Device) -> None:
    assert useragent.parse(agent) == device


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Device("Googlebot", "2", "", "", "bot", True),
        ),
        ("curl/8.4.0", Device("curl", "8", "", "", "bot", True)),
        ("python-requests/2.31.0", Device("Python Requests", "2", "", "", "bot", True)),
        ("python-httpx/0.27.0", Device("", "", "", "", "bot", True)),  # unknown to ua-parser
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/124.0.0.0 Safari/537.36",
            Device("HeadlessChrome", "124", "Linux", "", "bot", True),
        ),
        (
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            Device("FacebookBot", "1", "", "", "bot", True),
        ),
    ],
)
def test_bots(agent: str, device: Device) -> None:
    assert useragent.parse(agent) == device


@pytest.mark.parametrize("agent", ["", "   "])
def test_empty_user_agent_is_empty_device(agent: str) -> None:
    assert useragent.parse(agent) == useragent.EMPTY
    assert Device("", "", "", "", "", False) == useragent.EMPTY


def test_parsed_agents_are_cached_and_long_ones_capped() -> None:
    assert useragent.parse(CHROME_WINDOWS) is useragent.parse(CHROME_WINDOWS)
    padded = CHROME_WINDOWS + " x" * 50_000
    assert useragent.parse(padded) == useragent.parse(CHROME_WINDOWS)


# --- urls --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "path"),
    [
        ("https://Example.com:8080/a/b?utm_source=x#top", "example.com", "/a/b"),
        ("https://example.com", "example.com", "/"),
        ("https://user:secret@EXAMPLE.com./p%20q", "example.com", "/p%20q"),
        ("https://[2001:db8::1]:8443/x", "2001:db8::1", "/x"),
        ("/pricing?plan=pro", "", "/pricing"),
        ("http://[::1", "", ""),
        ("", "", ""),
    ],
)
def test_split_url(url: str, host: str, path: str) -> None:
    assert urls.split_url(url) == (host, path)


@pytest.mark.parametrize(
    ("url", "campaign"),
    [
        (
            "https://e.com/?utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_term=shoes"
            "&utm_content=hero",
            Campaign("newsletter", "email", "spring", "shoes", "hero"),
        ),
        (
            "https://e.com/p?utm_source=news%20letter&utm_campaign=spring+sale%21&utm_medium=e%2Dmail",
            Campaign("news letter", "e-mail", "spring sale!", "", ""),
        ),
        # Repeated tag: the first non-empty value wins; names are case-insensitive.
        ("https://e.com/?utm_source=&UTM_Source=first&utm_source=second", Campaign("first", "", "", "", "")),
        # The fragment is not part of the query, and tags in it are not read.
        ("https://e.com/?utm_source=a#utm_medium=b", Campaign("a", "", "", "", "")),
        ("https://e.com/#/page?utm_source=spa", urls.NO_CAMPAIGN),
        ("https://e.com/pricing", urls.NO_CAMPAIGN),
        ("https://e.com/?q=utm", urls.NO_CAMPAIGN),
        ("https://e.com/?gclid=Cj0KCQ", Campaign("google", "cpc", "", "", "")),
        ("https://e.com/?msclkid=abc&utm_campaign=brand", Campaign("bing", "cpc", "brand", "", "")),
        ("https://e.com/?fbclid=IwAR", Campaign("facebook", "social", "", "", "")),
        # UTM tags beat click ids; click ids only fill what is missing.
        ("https://e.com/?gclid=x&utm_source=adwords", Campaign("adwords", "cpc", "", "", "")),
        ("https://e.com/?utm_source=fb&utm_medium=paid&fbclid=x", Campaign("fb", "paid", "", "", "")),
        ("", urls.NO_CAMPAIGN),
    ],
)
def test_campaign_from_url(url: str, campaign: Campaign) -> None:
    assert urls.campaign_from_url(url) == campaign


@pytest.mark.parametrize(
    ("referrer", "page_host", "expected"),
    [
        ("", "example.com", Referrer("", "direct")),
        ("about:blank", "example.com", Referrer("", "direct")),
        ("https://example.com/pricing", "example.com", Referrer("example.com", "internal")),
        ("https://www.example.com/", "example.com", Referrer("example.com", "internal")),
        ("https://example.com/", "www.example.com", Referrer("example.com", "internal")),
        ("https://app.example.com/", "example.com", Referrer("app.example.com", "internal")),
        ("https://www.google.com/", "example.com", Referrer("google.com", "search")),
        ("https://www.google.co.uk/", "example.com", Referrer("google.co.uk", "search")),
        ("https://www.google.com.br/search?q=x", "example.com", Referrer("google.com.br", "search")),
        ("https://yandex.ru/", "example.com", Referrer("yandex.ru", "search")),
        ("https://m.baidu.com/", "example.com", Referrer("m.baidu.com", "search")),
        ("https://www.bing.com/", "example.com", Referrer("bing.com", "search")),
        ("https://duckduckgo.com/", "example.com", Referrer("duckduckgo.com", "search")),
        ("https://uk.search.yahoo.com/", "example.com", Referrer("uk.search.yahoo.com", "search")),
        ("https://www.ecosia.org/", "example.com", Referrer("ecosia.org", "search")),
        ("google.de/search", "example.com", Referrer("google.de", "search")),
        ("https://l.facebook.com/l.php?u=x", "example.com", Referrer("l.facebook.com", "social")),
        ("https://t.co/abc", "example.com", Referrer("t.co", "social")),
        ("https://x.com/someone", "example.com", Referrer("x.com", "social")),
        ("https://www.linkedin.com/feed/", "example.com", Referrer("linkedin.com", "social")),
        ("https://lnkd.in/abc", "example.com", Referrer("lnkd.in", "social")),
        ("https://out.reddit.com/t3_x", "example.com", Referrer("out.reddit.com", "social")),
        ("https://news.ycombinator.com/item?id=1", "example.com", Referrer("news.ycombinator.com", "social")),
        ("https://www.pinterest.de/", "example.com", Referrer("pinterest.de", "social")),
        ("https://mail.google.com/mail/u/0/", "example.com", Referrer("mail.google.com", "email")),
        ("https://outlook.live.com/mail/0/", "example.com", Referrer("outlook.live.com", "email")),
        ("https://mail.yahoo.com/d/folders/1", "example.com", Referrer("mail.yahoo.com", "email")),
        ("android-app://com.google.android.gm/", "example.com", Referrer("com.google.android.gm", "email")),
        ("https://docs.google.com/document/d/1", "example.com", Referrer("docs.google.com", "other")),
        ("https://finance.yahoo.com/", "example.com", Referrer("finance.yahoo.com", "other")),
        ("https://box.com/", "example.com", Referrer("box.com", "other")),  # not x.com
        ("https://google.example.org/", "example.com", Referrer("google.example.org", "other")),
        ("https://github.com/nexus", "example.com", Referrer("github.com", "other")),
        # A bare suffix is nobody's parent domain.
        ("https://com/", "example.com", Referrer("com", "other")),
        # Google's own site: its search referrers are internal there.
        ("https://www.google.com/", "google.com", Referrer("google.com", "internal")),
    ],
)
def test_classify_referrer(referrer: str, page_host: str, expected: Referrer) -> None:
    assert urls.classify_referrer(referrer, page_host) == expected


# --- ip ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "mode", "stored"),
    [
        ("203.0.113.77", "truncate", "203.0.113.0"),
        ("::ffff:203.0.113.77", "truncate", "203.0.113.0"),
        ("2001:db8:1:2::5", "truncate", "2001:db8:1::"),
        ("2001:DB8:ABCD:FFFF:1:2:3:4", "truncate", "2001:db8:abcd::"),
        ("203.0.113.77", "full", "203.0.113.77"),
        ("2001:DB8::1", "full", "2001:db8::1"),
        ("::ffff:203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "none", ""),
        ("2001:db8::1", "none", ""),
    ],
)
def test_anonymize(address: str, mode: ip.Mode, stored: str) -> None:
    assert ip.anonymize(address, mode) == stored


@pytest.mark.parametrize("mode", ["truncate", "hash", "full", "none"])
@pytest.mark.parametrize("address", ["", "garbage", "8.8", "300.1.1.1", "1.2.3.4" * 20])
def test_invalid_addresses_are_not_stored(address: str, mode: ip.Mode) -> None:
    assert ip.anonymize(address, mode, b"salt") == ""


def test_hash_is_keyed_blake2b_of_the_address_bytes() -> None:
    v4 = hashlib.blake2b(bytes([203, 0, 113, 77]), key=b"salt", digest_size=16).hexdigest()
    v6 = hashlib.blake2b(
        bytes.fromhex("20010db8" + "00" * 11 + "01"), key=b"salt", digest_size=16
    ).hexdigest()
    assert ip.anonymize("203.0.113.77", "hash", b"salt") == v4
    assert ip.anonymize("::ffff:203.0.113.77", "hash", b"salt") == v4
    assert ip.anonymize("2001:db8::1", "hash", b"salt") == v6
    assert ip.anonymize("2001:0DB8:0:0::1", "hash", b"salt") == v6
    assert len(v4) == 32
    assert ip.anonymize("203.0.113.77", "hash", b"pepper") != v4


def test_hash_accepts_salts_longer_than_the_blake2b_key() -> None:
    salt = b"s" * 100
    key = hashlib.blake2b(salt).digest()
    expected = hashlib.blake2b(bytes([203, 0, 113, 77]), key=key, digest_size=16).hexdigest()
    assert ip.anonymize("203.0.113.77", "hash", salt) == expected


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="IP mode"):
        ip.anonymize("203.0.113.77", "mask")  # type: ignore[arg-type]
