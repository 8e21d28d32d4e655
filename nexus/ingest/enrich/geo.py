"""Where an IP address is: country (ISO 3166-1 alpha-2), region and city.

By default from GeoIP2Fast's bundled data: the `geoip2fast-ipv6.dat.gz` file that ships inside the
`geoip2fast` wheel, MaxMind GeoLite2-Country (IPv4 and IPv6) converted by GeoIP2Fast, so lookups need no
network and no account. It knows countries only, so `region` and `city` stay "". The data is as old as
the installed wheel (1.2.2: GeoLite2 of 2024-06-18).

An operator who wants regions and cities, or current data, points NEXUS_GEOIP_DATABASE at a MaxMind
database file (`.mmdb`: GeoLite2-City, GeoIP2-City, or a Country edition; MaxMind updates them weekly),
read with MaxMind's own `maxminddb` reader (`database_lookup`). Region is the first subdivision's English
name (a state, a province), city the city's English name.

The code is MIT, but the data is MaxMind's, under the GeoLite2 EULA (which builds on CC BY-SA 4.0):
it asks for attribution ("This product includes GeoLite2 data created by MaxMind, available from
https://www.maxmind.com"), for data kept up to date, and forbids locating specific people with it.

Private, loopback, link-local, shared (CGNAT), documentation and other non-global addresses, invalid
strings and addresses the data does not cover give `EMPTY`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import maxminddb
import msgspec

from nexus.errors import InvalidConfig

from nexus.ingest.enrich.ip import MAX_LENGTH
from nexus.ingest.enrich.lazy import Lazy
from nexus.ingest.enrich.ip import parse as parse_ip

# IPv4 and IPv6 in one file: ~0.1 s and ~50 MB of memory to load, once per process.
_DATA_FILE = "geoip2fast-ipv6.dat.gz"


class Geo(msgspec.Struct, frozen=True, gc=False):
    # gc=False: only strings inside, so the cycle collector need never scan them.
    country: str
    region: str
    city: str


EMPTY = Geo(country="", region="", city="")
Locate = Callable[[str], Geo]  # an IP address (text) to its place
# "--": GeoIP2Fast's answer for reserved and unknown networks. "EU": GeoLite2 knows only the
# continent of some networks, and "EU" is the European Union's reserved code, not a country.
# Kosovo's XK is kept: not ISO-assigned, but the code everyone (CLDR, MaxMind, the EU) uses.
_NOT_COUNTRIES = frozenset({"--", "EU"})

def _open() -> Any:
    # Importing geoip2fast sets PYTHONWARNINGS and PYTHONIOENCODING in os.environ, which every
    # subprocess we start later would inherit; put them back as they were.
    saved = {name: os.environ.get(name) for name in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    from geoip2fast import geoip2fast as library

    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    # Loading calls get_mem_usage() twice, which forks `ps` only to print a figure we never show;
    # forking from a threaded server is a cost and a hazard we do not need.
    library.get_mem_usage = lambda: 0.0
    # GeoIP2Fast keeps its tables in module globals, so a second instance with another file would
    # silently replace this one's data: there is exactly one per process, here.
    return library.GeoIP2Fast(geoip2fast_data_file=_DATA_FILE)


_database: Lazy[Any] = Lazy(_open)  # the process's one GeoIP2Fast database, loaded on first use


def lookup(ip: str) -> Geo:
    """The location of `ip` (IPv4 or IPv6) in the bundled data, or `EMPTY` when it is not a public,
    known address."""
    return EMPTY if len(ip) > MAX_LENGTH else _lookup(ip)


def cache_clear() -> None:
    """Forget every looked-up address (for benchmarks and tests of the cold path)."""
    _lookup.cache_clear()


# Sized for the distinct visitors of a busy hour; a miss costs ~10 µs, a hit well under 1 µs.
@functools.lru_cache(maxsize=65536)
def _lookup(ip: str) -> Geo:
    address = _public(ip)
    if address is None:
        return EMPTY
    result = _database.get().lookup(address)
    return _place(result.country_code if not result.is_private else "", "", "")


def database_lookup(path: str) -> Locate:
    """Lookups in the MaxMind database file at `path`; InvalidConfig if it cannot be read as one."""
    try:
        reader = maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidConfig(f"NEXUS_GEOIP_DATABASE: {path} is not a readable MaxMind database ({reason})") from None

    @functools.lru_cache(maxsize=65536)
    def locate(ip: str) -> Geo:
        address = _public(ip)
        record = reader.get(address) if address is not None else None
        if not isinstance(record, dict):
            return EMPTY
        subdivisions = record.get("subdivisions") or [{}]
        return _place(_get(record, "country", "iso_code"), _get(subdivisions[0], "names", "en"),
                      _get(record, "city", "names", "en"))

    return lambda ip: EMPTY if len(ip) > MAX_LENGTH else locate(ip)


def _public(ip: str) -> str | None:
    """The address in canonical form when it is a global one, else None."""
    address = parse_ip(ip)
    return str(address) if address is not None and address.is_global else None


def _get(record: Any, *path: str) -> str:
    for name in path:
        record = record.get(name) if isinstance(record, dict) else None
    return record if isinstance(record, str) else ""


_places: dict[tuple[str, str, str], Geo] = {}


def _place(country: str, region: str, city: str) -> Geo:
    """One Geo per distinct place rather than one per cached address (a few thousand, not 65,536)."""
    if len(country) != 2 or country in _NOT_COUNTRIES:
        return EMPTY
    key = (country, region, city)
    return _places.get(key) or _places.setdefault(key, Geo(country=country, region=region, city=city))
