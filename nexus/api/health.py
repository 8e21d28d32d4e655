"""Liveness (the process answers: restart it if not) and readiness (ClickHouse and Redis answer too: send
it traffic only then). Liveness checks nothing else on purpose, so an outage of a store never gets a
healthy process restarted."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Response, get
from litestar.datastructures import State

from nexus.runtime import Runtime


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


class Live(msgspec.Struct):
    status: str


@get("/health/live")
async def live() -> Live:
    return Live("ok")


@get("/health/ready")
async def ready(state: State) -> Response[Health]:
    return await anyio.to_thread.run_sync(_check, state.runtime)


def _check(runtime: Runtime) -> Response[Health]:
    checks = runtime.readiness()
    ok = all(v == "ok" for v in checks.values())
    return Response(Health("ok" if ok else "unavailable", checks), status_code=200 if ok else 503)
