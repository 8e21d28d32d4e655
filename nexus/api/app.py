"""Builds the Litestar application around a Runtime."""

from __future__ import annotations

import logging

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from nexus import __version__
from nexus.api import (admin, analyses, cohorts, dashboards, erasure, goals, health, ingest, jobs, openapi, persons,
                        posthog, query, schedules)
from nexus.api import experiments
from nexus.api import channels
from nexus.api import models
from nexus.api import operations
from nexus.api.context import ApiContext
from nexus.api.headers import ResponseHeaders
from nexus.api.statuses import status_of
from nexus.errors import (EngineError, InvalidRequest, LimitExceeded, NexusError, RateLimited, StorageUnavailable,
                          Unauthorized, new_error_id)
from nexus.observe.http import RequestObserver
from nexus.runtime import Runtime

log = logging.getLogger("nexus.api")


def _nexus_error(_: Request, error: NexusError) -> Response:
    status = status_of(error)
    if status == 500:
        return _internal(error)
    headers = {}
    if isinstance(error, (RateLimited, StorageUnavailable)):
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="nexus"'
    body = {"error": str(error)}
    if isinstance(error, InvalidRequest) and error.field:
        body["field"] = error.field
    if isinstance(error, LimitExceeded) and error.limit:
        body["limit"] = error.limit
    return Response(body, status_code=status, headers=headers)


def _internal(error: Exception) -> Response:
    """500 with an id the log has too: what failed (for Nexus's own SQL: the statement, its parameters and
    the engine's text), never any of it in the answer, which may reach anyone holding a key."""
    if isinstance(error, EngineError):
        error_id = error.error_id
        log.error("error %s: ClickHouse refused Nexus's SQL (code %s %s): %s\nSQL: %s\nparameters: %.2000r",
                  error_id, error.code, error.name or "", error, error.sql, error.params)
    else:
        error_id = new_error_id()
        log.error("error %s: unhandled %s", error_id, type(error).__name__, exc_info=error)
    return Response({"error": f"internal error {error_id}: the server log has the details under this id",
                     "error_id": error_id}, status_code=500)


def _http_error(_: Request, error: HTTPException) -> Response:
    body = {"error": error.detail}
    # Litestar's own checks (query parameters of the wrong type) say what failed in `extra`.
    problems = [p for p in error.extra if isinstance(p, dict)] if isinstance(error.extra, list) else []
    if problems:
        body["error"] += ": " + "; ".join(f"{p.get('key', '?')}: {p.get('message', 'invalid')}" for p in problems)
        body["field"] = str(problems[0].get("key", ""))
    return Response(body, status_code=error.status_code, headers=error.headers)


def _unexpected_error(_: Request, error: Exception) -> Response:
    return _internal(error)


def _paths(handlers: list) -> set[str]:
    return {path for handler in handlers for path in handler.paths}


def create_app(runtime: Runtime) -> Litestar:
    app = Litestar(
        route_handlers=[health.live, health.ready, *ingest.ROUTES, posthog.capture, posthog.capture_v1,
                        *query.ROUTES, *analyses.ROUTES, *admin.ROUTES, *dashboards.ROUTES, *jobs.ROUTES,
                        *schedules.ROUTES, *persons.ROUTES, *goals.ROUTES, *erasure.ROUTES, *cohorts.ROUTES,
                        *channels.ROUTES, *experiments.ROUTES, *models.ROUTES, *operations.ROUTES],
        exception_handlers={NexusError: _nexus_error, HTTPException: _http_error, Exception: _unexpected_error},
        debug=False,
        logging_config=None,  # Litestar's would replace the root logger's handlers: nexus.observe.logs owns them
        before_send=[ResponseHeaders(_paths([*ingest.WRITE_ROUTES, posthog.capture, posthog.capture_v1,
                                             experiments.assign_one, experiments.assign_many]),
                                     runtime.settings.cors_origins)],
        openapi_config=openapi.config(__version__),
        plugins=[openapi.ErrorAnswers(), openapi.RequestBodies()],
        # Each route reads its body within its own limit (see api.body); this is only the outer bound.
        request_max_body_size=max(runtime.settings.max_import_bytes, runtime.settings.max_request_bytes),
    )
    app.state.runtime = runtime
    app.state.api = ApiContext(runtime)
    # Outside the router, so that a path no route serves is counted and logged too.
    app.asgi_handler = RequestObserver(app.asgi_handler)
    return app
