"""Liveness (the process answers: restart it if not) and readiness (ClickHouse and Redis answer, every
migration is applied, the event writer keeps up: send it traffic only then). Liveness checks nothing else
on purpose, so an outage of a store never gets a healthy process restarted. Readiness also says how many
job workers are alive in server mode, without depending on it: an API process without workers still
ingests and answers, so a load balancer must not take it out of rotation for them."""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from nexus.api.openapi import PUBLIC
from nexus.runtime import Runtime


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}
    workers_alive: int | None = None  # server mode: `nexus worker` processes with a fresh heartbeat


class Live(msgspec.Struct):
    status: str


@get("/health/live", opt={PUBLIC: True})
async def live() -> Live:
    return Live("ok")


@get("/health/ready", opt={PUBLIC: True},
     responses={503: ResponseSpec(Health, description="not ready: `checks` says which is not",
                                  generate_examples=False)})
async def ready(state: State) -> Response[Health]:
    return await anyio.to_thread.run_sync(_check, state.runtime)


def _check(runtime: Runtime) -> Response[Health]:
    checks = runtime.readiness()
    ok = all(v == "ok" for v in checks.values())
    return Response(Health("ok" if ok else "unavailable", checks, runtime.workers_alive()),
                    status_code=200 if ok else 503)
