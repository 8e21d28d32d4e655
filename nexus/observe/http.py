"""Watches every HTTP request from outside the router, so an unknown path is seen too: gives it a
request id (the X-Request-Id it came with, when that is a plain token, else a new one; answered in the
response's X-Request-Id), counts and times it by route template and status, and logs one line for it."""

from __future__ import annotations

import logging
import time
from typing import Any

from nexus.observe.logs import new_request_id, request_id
from nexus.observe.metrics import metrics

log = logging.getLogger("nexus.api.requests")

UNMATCHED = "(unmatched)"  # the route of a path no handler serves: counted under one name, not its own


class RequestObserver:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        current = new_request_id(offered)
        token = request_id.set(current)
        status = 500  # what the client gets when the app fails before it answers

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", current.encode())]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            # The router writes the template into this scope; the path as sent is never a label nor logged.
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "")
            recorded = metrics()
            recorded.requests.labels(method, route, str(status)).inc()
            recorded.request_seconds.labels(method, route).observe(seconds)
            log.log(logging.WARNING if status >= 500 else logging.INFO, "request",
                    extra={"method": method, "route": route, "status": status,
                           "duration_ms": round(seconds * 1000, 1)})
            request_id.reset(token)
