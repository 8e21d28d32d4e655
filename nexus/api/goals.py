"""Saved goals over HTTP: /v1/goals, the conversions the goals analysis (POST /v1/analyses/goals), the
overview's KPIs and the Panel dashboard count.

Read keys list and read goals; changing one is an admin action, as for dashboards (a goal is shared by the
whole project). The key is checked before the body is read as a goal, so a key that may not change goals
learns nothing from its body's errors. A goal read alone, and every answer to a write, lists in
`warnings` the names in it the project has not sent yet. Storage work runs off the event loop.
"""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.json_input import decode_json
from nexus.meta import goals
from nexus.meta.goals import Goal, GoalInput


class Goals(msgspec.Struct, frozen=True):
    goals: list[Goal]


@get("/v1/goals")
async def list_goals(request: Request, state: State) -> Goals:
    api: ApiContext = state.api

    def listing() -> Goals:
        key = api.authorize(request, "read")
        return Goals(goals.list_all(api.runtime.clickhouse, key.project_id))

    return await anyio.to_thread.run_sync(listing)


@get("/v1/goals/{goal_id:str}")
async def get_goal(request: Request, state: State, goal_id: FromPath[str]) -> Goal:
    api: ApiContext = state.api

    def one() -> Goal:
        key = api.authorize(request, "read")
        return goals.get(api.runtime.clickhouse, key.project_id, goal_id)

    return await anyio.to_thread.run_sync(one)


@post("/v1/goals", status_code=201, opt={openapi.BODY: GoalInput})
async def create_goal(request: Request, state: State) -> Goal:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Goal:
        key = api.authorize(request, "admin")
        data = decode_json(body, GoalInput)
        return goals.create(api.runtime.clickhouse, key.project_id, data, key.key_id)

    return await anyio.to_thread.run_sync(create)


@put("/v1/goals/{goal_id:str}", opt={openapi.BODY: GoalInput})
async def replace_goal(request: Request, state: State, goal_id: FromPath[str]) -> Goal:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def replace() -> Goal:
        key = api.authorize(request, "admin")
        data = decode_json(body, GoalInput)
        return goals.replace(api.runtime.clickhouse, key.project_id, goal_id, data)

    return await anyio.to_thread.run_sync(replace)


@delete("/v1/goals/{goal_id:str}", status_code=204)
async def delete_goal(request: Request, state: State, goal_id: FromPath[str]) -> None:
    api: ApiContext = state.api

    def remove() -> None:
        key = api.authorize(request, "admin")
        goals.delete(api.runtime.clickhouse, key.project_id, goal_id)

    await anyio.to_thread.run_sync(remove)


ROUTES = [list_goals, get_goal, create_goal, replace_goal, delete_goal]
