"""Builds the Litestar application around a Runtime."""

from __future__ import annotations

import logging

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from nexus import __version__
from nexus.api import health
from nexus.errors import Forbidden, InvalidRequest, NexusError, NotFound, StorageUnavailable
from nexus.runtime import Runtime

_STATUS = {InvalidRequest: 400, Forbidden: 403, NotFound: 404, StorageUnavailable: 503}


def _nexus_error(_: Request, error: NexusError) -> Response:
    status = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 500)
    return Response({"error": str(error)}, status_code=status)


def _http_error(_: Request, error: HTTPException) -> Response:
    return Response({"error": error.detail}, status_code=error.status_code, headers=error.headers)


def _unexpected_error(_: Request, error: Exception) -> Response:
    logging.getLogger("nexus.api").error("unhandled error", exc_info=error)
    return Response({"error": "internal error; the server log has the details"}, status_code=500)


def create_app(runtime: Runtime) -> Litestar:
    app = Litestar(
        route_handlers=[health.live, health.ready],
        exception_handlers={NexusError: _nexus_error, HTTPException: _http_error, Exception: _unexpected_error},
        debug=False,
    )
    app.state.runtime = runtime
    app.state.version = __version__
    return app
