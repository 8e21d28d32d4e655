"""Client IP addresses: strict parsing and the anonymisation applied before an IP is stored.

Modes, per project:
- `truncate`: the network, not the host — IPv4 keeps its /24 (`203.0.113.77` → `203.0.113.0`), IPv6
  its /48 (`2001:db8:1:2::5` → `2001:db8:1::`), the granularity Google Analytics and Matomo use.
- `hash`: a keyed BLAKE2b digest (16 bytes, hex) of the address bytes, so equal addresses still match
  within one salt but cannot be read back; rotate the salt to unlink periods. Salts longer than
  BLAKE2b's 64-byte key limit are first hashed down to 64 bytes.
- `full`: the address itself, in canonical text (lower-case, compressed IPv6, mapped IPv4 unwrapped).
- `none`: nothing is stored.

An IPv4 address that reached us as IPv4-mapped IPv6 (`::ffff:203.0.113.77`, what dual-stack sockets
report) is treated as the IPv4 address it is, so one client gets one truncation and one hash whichever
socket it came through. An invalid IP gives "" in every mode.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from typing import Literal

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Mode = Literal["truncate", "hash", "full", "none"]

_MODES = frozenset({"truncate", "hash", "full", "none"})
# The longest address text, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", is 45 characters; the
# margin admits a zone ("%eth0"). Anything longer is not an address, and must not fill a cache.
MAX_LENGTH = 64
_V4_KEEP = 0xFFFF_FF00  # /24
_V6_KEEP = ((1 << 48) - 1) << 80  # /48
_BLAKE2B_MAX_KEY = 64


def parse(ip: str) -> Address | None:
    """The address, or None when `ip` is not one; IPv4-mapped IPv6 comes back as IPv4.

    Strict on purpose: `socket.inet_aton` (which some GeoIP libraries use) accepts `"8.8"` and `"1"`
    as addresses, and a typo should give no geo rather than a confident wrong one.
    """
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def anonymize(ip: str, mode: Mode, salt: bytes = b"") -> str:
    """`ip` as the project's IP mode stores it; "" for an invalid IP or mode `none`."""
    if mode not in _MODES:
        raise ValueError(f"IP mode must be truncate, hash, full or none, not {mode!r}")
    if mode == "none" or len(ip) > MAX_LENGTH:
        return ""
    return _anonymize(ip, mode, salt)


def cache_clear() -> None:
    """Forget every anonymised address (for benchmarks and tests of the cold path)."""
    _anonymize.cache_clear()


# Cached because a busy client sends many events from one address, and parsing plus hashing costs
# several microseconds — more than the rest of the event's enrichment.
@functools.lru_cache(maxsize=65536)
def _anonymize(ip: str, mode: Mode, salt: bytes) -> str:
    address = parse(ip)
    if address is None:
        return ""
    if mode == "full":
        return str(address)
    if mode == "hash":
        key = salt if len(salt) <= _BLAKE2B_MAX_KEY else hashlib.blake2b(salt).digest()
        return hashlib.blake2b(address.packed, key=key, digest_size=16).hexdigest()
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(address) & _V4_KEEP))
    return str(ipaddress.IPv6Address(int(address) & _V6_KEEP))
