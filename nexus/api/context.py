"""What every handler needs, built once per app: the runtime, key checks and rate limits."""

from __future__ import annotations

from datetime import datetime, timezone

import anyio
from litestar import Request

from nexus.api.auth import KeyCache, secret_from_headers
from nexus.api.limits import RateLimiter
from nexus.meta.keys import ApiKey, Scope
from nexus.runtime import Runtime


class ApiContext:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        self.ingestor = runtime.ingestor
        self.keys = KeyCache(runtime.clickhouse)
        self.limiter = RateLimiter(runtime.redis.client, runtime.settings.rate_limit)
        # Decoding and enriching hold the GIL: more threads than cores only add switching.
        self.cpu = anyio.CapacityLimiter(2)

    def authorize(self, request: Request, scope: Scope, body_key: str | None = None) -> ApiKey:
        """The caller's key (from headers, else the body), allowed `scope` and within its rate limit."""
        key = self.keys.authenticate(secret_from_headers(request) or body_key, scope)
        self.limiter.check(key.key_id)
        return key


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
