"""What every handler needs, built once per app: the runtime, key checks and rate limits."""

from __future__ import annotations

import hmac
from datetime import datetime, timezone

import anyio
from litestar import Request
from litestar.connection import ASGIConnection

from nexus.adhoc.limits import from_settings
from nexus.api.auth import KeyCache, secret_from_headers
from nexus.api.limits import RateLimiter
from nexus.errors import Forbidden
from nexus.meta import keys
from nexus.meta.admin import Administration, Caller
from nexus.meta.keys import ApiKey, KeyScope
from nexus.runtime import Runtime


class ApiContext:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        self.ingestor = runtime.ingest()
        self.keys = KeyCache(runtime.clickhouse, runtime.redis.client)
        self.limiter = RateLimiter(runtime.redis.client, runtime.settings.rate_limit)
        self.query_defaults = from_settings(runtime.settings)
        # Decoding and enriching hold the GIL: more threads than cores only add switching.
        self.cpu = anyio.CapacityLimiter(2)

    def authorize(self, request: Request, scope: KeyScope, body_key: str | None = None) -> ApiKey:
        """The caller's key (from headers, else the body), allowed `scope` and within its rate limit."""
        key = self.keys.authenticate(secret_from_headers(request) or body_key, scope)
        self.limiter.check(key.key_id)
        return key

    def administrator(self, connection: ASGIConnection, *, instance_only: bool) -> Caller:
        """The caller as an administrator: the instance admin key (NEXUS_ADMIN_KEY or the stored one), or,
        unless `instance_only`, a project's admin key; within its rate limit."""
        secret = secret_from_headers(connection)  # type: ignore[arg-type]
        configured = self.settings.admin_key
        if configured and secret and hmac.compare_digest(secret.encode(), configured.encode()):
            caller = Caller("instance")
        else:
            key = self.keys.find(secret)
            if key.scope == keys.INSTANCE:
                caller = Caller(key.key_id)
            elif key.scope == "admin" and not instance_only:
                caller = Caller(key.key_id, key.project_id)
            elif key.scope == "admin":
                raise Forbidden("a project's admin key cannot manage projects: that takes the instance admin key")
            else:
                raise Forbidden(f"this {key.scope} key cannot administer the project")
        self.limiter.check(caller.key_id)
        return caller

    def administration(self, caller: Caller) -> Administration:
        return Administration(self.runtime.clickhouse, caller, self.query_defaults, self.runtime.redis.client)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
