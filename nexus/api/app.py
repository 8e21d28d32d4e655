"""Builds the Litestar application around a Runtime."""

from __future__ import annotations

import logging

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from nexus import __version__
from nexus.api import admin, analyses, health, ingest, openapi, posthog, query
from nexus.api.context import ApiContext
from nexus.api.headers import ResponseHeaders
from nexus.errors import (Forbidden, InvalidRequest, NexusError, NotFound, QueryFailed, RateLimited,
                          StorageUnavailable, TooLarge, Unauthorized)
from nexus.runtime import Runtime

# First match wins: subclasses before their parents.
_STATUS = {TooLarge: 413, InvalidRequest: 400, QueryFailed: 400, Unauthorized: 401, Forbidden: 403,
           NotFound: 404, RateLimited: 429, StorageUnavailable: 503}


def _nexus_error(_: Request, error: NexusError) -> Response:
    status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 500)
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="nexus"'
    elif isinstance(error, StorageUnavailable):
        headers["Retry-After"] = "5"
    body = {"error": str(error)}
    if isinstance(error, InvalidRequest) and error.field:
        body["field"] = error.field
    return Response(body, status_code=status, headers=headers)


def _http_error(_: Request, error: HTTPException) -> Response:
    body = {"error": error.detail}
    # Litestar's own checks (query parameters of the wrong type) say what failed in `extra`.
    problems = [p for p in error.extra if isinstance(p, dict)] if isinstance(error.extra, list) else []
    if problems:
        body["error"] += ": " + "; ".join(f"{p.get('key', '?')}: {p.get('message', 'invalid')}" for p in problems)
        body["field"] = str(problems[0].get("key", ""))
    return Response(body, status_code=error.status_code, headers=error.headers)


def _unexpected_error(_: Request, error: Exception) -> Response:
    logging.getLogger("nexus.api").error("unhandled error", exc_info=error)
    return Response({"error": "internal error; the server log has the details"}, status_code=500)


def _paths(handlers: list) -> set[str]:
    return {path for handler in handlers for path in handler.paths}


def create_app(runtime: Runtime) -> Litestar:
    app = Litestar(
        route_handlers=[health.live, health.ready, *ingest.ROUTES, posthog.capture, *query.ROUTES,
                        *analyses.ROUTES, *admin.ROUTES],
        exception_handlers={NexusError: _nexus_error, HTTPException: _http_error, Exception: _unexpected_error},
        debug=False,
        before_send=[ResponseHeaders(_paths([*ingest.WRITE_ROUTES, posthog.capture]), runtime.settings.cors_origins)],
        openapi_config=openapi.config(__version__),
        # Each route reads its body within its own limit (see api.body); this is only the outer bound.
        request_max_body_size=max(runtime.settings.max_import_bytes, runtime.settings.max_request_bytes),
    )
    app.state.runtime = runtime
    app.state.api = ApiContext(runtime)
    return app
