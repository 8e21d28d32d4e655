"""Schedules over HTTP: /v1/schedules, exports that run on a cron expression and deliver their files, and
/v1/schedules/{id}/runs, the jobs each one started.

Read keys list and read schedules and their runs; creating, changing, pausing and deleting one is an admin
action. The key is checked before the body is read as a schedule. Another project's schedule is "not
found", exactly as a missing one. A webhook's secret never appears in an answer (nexus.jobs.schedules).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.jobs import schedules, store
from nexus.jobs.schedules import Schedule, ScheduleInput
from nexus.jobs.store import JobView
from nexus.json_input import decode_json
from nexus.meta.keys import ApiKey, KeyScope

T = TypeVar("T")


class Schedules(msgspec.Struct, frozen=True):
    schedules: list[Schedule]


class Runs(msgspec.Struct, frozen=True):
    """The jobs a schedule started, newest first."""

    runs: list[JobView]


async def _as(request: Request, state: State, scope: KeyScope, work: Callable[[ApiContext, ApiKey], T]) -> T:
    """`work` off the event loop, for the caller's key once it is allowed `scope`."""
    api: ApiContext = state.api
    return await anyio.to_thread.run_sync(lambda: work(api, api.authorize(request, scope)))


@get("/v1/schedules")
async def list_schedules(request: Request, state: State) -> Schedules:
    return await _as(request, state, "read",
                     lambda api, key: Schedules(schedules.list_all(api.runtime.clickhouse, key.project_id)))


@get("/v1/schedules/{schedule_id:str}")
async def get_schedule(request: Request, state: State, schedule_id: FromPath[str]) -> Schedule:
    return await _as(request, state, "read",
                     lambda api, key: schedules.get(api.runtime.clickhouse, key.project_id, schedule_id))


@post("/v1/schedules", status_code=201, opt={openapi.BODY: ScheduleInput})
async def create_schedule(request: Request, state: State) -> Schedule:
    body = await read_body(request, state.api.settings.max_request_bytes)
    return await _as(request, state, "admin", lambda api, key: schedules.create(
        api.runtime, key.project_id, decode_json(body, ScheduleInput), key.key_id))


@put("/v1/schedules/{schedule_id:str}", opt={openapi.BODY: ScheduleInput})
async def replace_schedule(request: Request, state: State, schedule_id: FromPath[str]) -> Schedule:
    body = await read_body(request, state.api.settings.max_request_bytes)
    return await _as(request, state, "admin", lambda api, key: schedules.replace(
        api.runtime, key.project_id, schedule_id, decode_json(body, ScheduleInput)))


@delete("/v1/schedules/{schedule_id:str}", status_code=204)
async def delete_schedule(request: Request, state: State, schedule_id: FromPath[str]) -> None:
    await _as(request, state, "admin",
              lambda api, key: schedules.delete(api.runtime.clickhouse, key.project_id, schedule_id))


@post("/v1/schedules/{schedule_id:str}/pause", status_code=200)
async def pause_schedule(request: Request, state: State, schedule_id: FromPath[str]) -> Schedule:
    """Start no more runs (one already started goes on) until resumed."""
    return await _as(request, state, "admin", lambda api, key: schedules.set_paused(
        api.runtime.clickhouse, key.project_id, schedule_id, True))


@post("/v1/schedules/{schedule_id:str}/resume", status_code=200)
async def resume_schedule(request: Request, state: State, schedule_id: FromPath[str]) -> Schedule:
    """Run again from the next due time on; the runs due while paused are not made up."""
    return await _as(request, state, "admin", lambda api, key: schedules.set_paused(
        api.runtime.clickhouse, key.project_id, schedule_id, False))


@get("/v1/schedules/{schedule_id:str}/runs")
async def list_runs(request: Request, state: State, schedule_id: FromPath[str]) -> Runs:
    """The schedule's runs, newest first: each job's state, file and deliveries."""

    def runs(api: ApiContext, key: ApiKey) -> Runs:
        runtime = api.runtime
        schedules.find(runtime.clickhouse, key.project_id, schedule_id)
        found = store.list_for(runtime.clickhouse, key.project_id, schedule_id=schedule_id)
        return Runs([store.view(job, runtime.redis.client) for job in found])

    return await _as(request, state, "read", runs)


ROUTES = [list_schedules, get_schedule, create_schedule, replace_schedule, delete_schedule, pause_schedule,
          resume_schedule, list_runs]
