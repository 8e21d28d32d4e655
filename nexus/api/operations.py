"""What the operator asks of a running server, with the instance admin key: GET /metrics (Prometheus text;
NEXUS_METRICS_PORT serves the same without a key on a port of its own) and POST /v1/backups (a backup of
the embedded store while it serves, with the event writer paused so that every table is cut at one
moment)."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from litestar import Request, Response, get, post

from nexus.api import openapi
from nexus.api.admin import instance_admin
from nexus.api.body import read_body
from nexus.errors import InvalidRequest
from nexus.json_input import decode_json
from nexus.observe.metrics import CONTENT_TYPE_LATEST, exposition
from nexus.runtime import Runtime
from nexus.store.backup import BackupRequest, BackupSummary


@get("/metrics", guards=[instance_admin], include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response[bytes]:
    runtime: Runtime = request.app.state.runtime
    text = await anyio.to_thread.run_sync(lambda: scrape(runtime))
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def scrape(runtime: Runtime) -> bytes:
    """The metrics, with whether ClickHouse and Redis answer right now."""
    runtime.record_dependencies()
    return exposition()


@post("/v1/backups", guards=[instance_admin], status_code=201, opt={openapi.BODY: BackupRequest})
async def create_backup(request: Request) -> BackupSummary:
    wanted = decode_json(await read_body(request, 4096), BackupRequest)
    if not Path(wanted.path).is_absolute():  # relative, it would name a place under the server's working directory
        raise InvalidRequest("path must be absolute: a new directory on the server's machine", "path")
    runtime: Runtime = request.app.state.runtime
    return await anyio.to_thread.run_sync(lambda: runtime.backup(Path(wanted.path)))


ROUTES = [prometheus_metrics, create_backup]
