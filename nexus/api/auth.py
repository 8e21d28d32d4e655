"""Who is calling: the API key from HTTP Basic (Segment's way: key as user name), a Bearer token, or a
key carried in the body; checked against stored hashes, with a short cache so ingestion does not query
ClickHouse per request.

A revoked key stops working on every process within GENERATION_CHECK_SECONDS: revoking bumps a counter in
Redis (nexus.meta.keys.changed), and each cache drops all it holds when it sees the counter move. The
counter is read at most that often, not per request; CACHE_SECONDS bounds an entry's life even so."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable

import redis
from clickhouse_connect.driver.client import Client
from litestar import Request

from nexus.errors import Forbidden, Unauthorized
from nexus.meta import keys

CACHE_SECONDS = 10.0
GENERATION_CHECK_SECONDS = 0.25


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
    def __init__(self, client: Client, redis_client: redis.Redis):
        self.client = client
        self.redis = redis_client
        self._entries: dict[tuple[str, str], tuple[float, keys.ApiKey | None]] = {}
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._checked = float("-inf")

    def authenticate(self, secret: str | None, scope: keys.KeyScope) -> keys.ApiKey:
        """The caller's key, if it exists, is active and allows `scope`; else Unauthorized/Forbidden."""
        found = self.find(secret)
        if not found.allows(scope):
            raise Forbidden(f"this {found.scope} key cannot {_ACTIONS[scope]}")
        return found

    def find(self, secret: str | None) -> keys.ApiKey:
        """The active key whose secret this is, whatever its scope; else Unauthorized."""
        if not secret:
            raise Unauthorized("an API key is required: HTTP Basic with the key as user name, or a Bearer token")
        found = self._cached(("secret", secret), lambda: keys.authenticate(self.client, secret))
        if found is None:
            raise Unauthorized("the API key is not valid (unknown or revoked)")
        return found

    def active(self, key_id: str) -> keys.ApiKey | None:
        """The key with this public id while it is active (the dashboard's sign-ins hold ids, not secrets)."""
        return self._cached(("id", key_id), lambda: keys.find_active(self.client, key_id))

    def _cached(self, name: tuple[str, str], lookup: Callable[[], keys.ApiKey | None]) -> keys.ApiKey | None:
        now = time.monotonic()
        generation = self._drop_if_changed(now)
        with self._lock:
            cached = self._entries.get(name)
        if cached is not None and cached[0] >= now:
            return cached[1]
        found = lookup()
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            # A lookup that raced a revocation seen meanwhile may be stale: use it, do not keep it.
            if self._generation == generation:
                self._entries[name] = (now + CACHE_SECONDS, found)
        return found

    def _drop_if_changed(self, now: float) -> int | None:
        """The generation this cache holds entries of, after dropping them if Redis has moved on."""
        if now - self._checked < GENERATION_CHECK_SECONDS:
            return self._generation
        # Without the counter a revoked key could live on here: an unreachable Redis refuses the request
        # (RedisUnavailable, a 503) rather than guess.
        generation = keys.generation(self.redis)
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            self._checked = now
        return generation


_ACTIONS = {"write": "send events", "read": "read data", "admin": "administer the project"}
