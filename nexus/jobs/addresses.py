"""Which addresses a schedule's webhook may reach. A project's admin key writes the URL, so unless the operator
allows it (NEXUS_WEBHOOK_PRIVATE_ADDRESSES=1), a webhook may only reach public addresses: never loopback,
private, link-local (cloud metadata services), shared or reserved ones, which would let the key probe the
operator's own network. The host is resolved when the schedule is saved and again at every delivery, and
the delivery connects to the addresses that were checked, so a name that resolves elsewhere later gets nowhere.
"""

from __future__ import annotations

import ipaddress
import socket

from nexus.errors import NexusError


class Unreachable(NexusError):
    """The host does not resolve, or resolves to an address a webhook may not reach. `may_pass` when the
    resolver only failed for now."""

    def __init__(self, message: str, may_pass: bool = False):
        super().__init__(message)
        self.may_pass = may_pass


def reachable(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, once each of them may be reached."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise Unreachable(f"{host} does not resolve: {e.strerror}", may_pass=e.errno == socket.EAI_AGAIN) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise Unreachable(f"{host} resolves to {address}, a loopback, private or reserved address: webhooks "
                                  "may only reach public addresses unless NEXUS_WEBHOOK_PRIVATE_ADDRESSES=1")
    return addresses


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is no part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not ip.is_multicast
