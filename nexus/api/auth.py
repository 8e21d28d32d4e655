"""Who is calling: the API key from HTTP Basic (Segment's way: key as user name), a Bearer token, or a
key carried in the body; checked against stored hashes, with a short cache so ingestion does not query
ClickHouse per request (a revoked key stops working within CACHE_SECONDS)."""

from __future__ import annotations

import base64
import binascii
import threading
import time

from clickhouse_connect.driver.client import Client
from litestar import Request

from nexus.errors import Forbidden, Unauthorized
from nexus.meta import keys

CACHE_SECONDS = 10.0


def secret_from_headers(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            user, _, _password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("the Authorization header is not valid HTTP Basic") from None
        return user or None
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


class KeyCache:
    def __init__(self, client: Client):
        self.client = client
        self._entries: dict[str, tuple[float, keys.ApiKey | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, secret: str | None, scope: keys.Scope) -> keys.ApiKey:
        """The caller's key, if it exists, is active and allows `scope`; else Unauthorized/Forbidden."""
        if not secret:
            raise Unauthorized("an API key is required: HTTP Basic with the key as user name, or a Bearer token")
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(secret)
        if cached is None or cached[0] < now:
            found = keys.authenticate(self.client, secret)
            with self._lock:
                if len(self._entries) > 10_000:
                    self._entries.clear()
                self._entries[secret] = (now + CACHE_SECONDS, found)
        else:
            found = cached[1]
        if found is None:
            raise Unauthorized("the API key is not valid (unknown or revoked)")
        if not found.allows(scope):
            raise Forbidden(f"this {found.scope} key cannot {_ACTIONS[scope]}")
        return found


_ACTIONS = {"write": "send events", "read": "read data", "admin": "administer the project"}
