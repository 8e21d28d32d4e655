"""Saved dashboards over HTTP: /v1/dashboards, the same definitions the Panel dashboard shows, scriptable.

Read keys list and read dashboards; changing one is an admin action, as for saved queries (a dashboard is
shared by the whole project). The key is checked before the body is read as a dashboard, so a key that
may not change dashboards learns nothing from its body's errors. Storage work runs off the event loop.
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
from nexus.meta import dashboards
from nexus.meta.dashboards import Dashboard, DashboardInput


class Dashboards(msgspec.Struct, frozen=True):
    dashboards: list[Dashboard]


@get("/v1/dashboards")
async def list_dashboards(request: Request, state: State) -> Dashboards:
    api: ApiContext = state.api

    def listing() -> Dashboards:
        key = api.authorize(request, "read")
        return Dashboards(dashboards.list_all(api.runtime.clickhouse, key.project_id))

    return await anyio.to_thread.run_sync(listing)


@get("/v1/dashboards/{dashboard_id:str}")
async def get_dashboard(request: Request, state: State, dashboard_id: FromPath[str]) -> Dashboard:
    api: ApiContext = state.api

    def one() -> Dashboard:
        key = api.authorize(request, "read")
        return dashboards.get(api.runtime.clickhouse, key.project_id, dashboard_id)

    return await anyio.to_thread.run_sync(one)


@post("/v1/dashboards", status_code=201, opt={openapi.BODY: DashboardInput})
async def create_dashboard(request: Request, state: State) -> Dashboard:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Dashboard:
        key = api.authorize(request, "admin")
        data = decode_json(body, DashboardInput)
        return dashboards.create(api.runtime.clickhouse, key.project_id, data, key.key_id)

    return await anyio.to_thread.run_sync(create)


@put("/v1/dashboards/{dashboard_id:str}", opt={openapi.BODY: DashboardInput})
async def replace_dashboard(request: Request, state: State, dashboard_id: FromPath[str]) -> Dashboard:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def replace() -> Dashboard:
        key = api.authorize(request, "admin")
        data = decode_json(body, DashboardInput)
        return dashboards.replace(api.runtime.clickhouse, key.project_id, dashboard_id, data)

    return await anyio.to_thread.run_sync(replace)


@delete("/v1/dashboards/{dashboard_id:str}", status_code=204)
async def delete_dashboard(request: Request, state: State, dashboard_id: FromPath[str]) -> None:
    api: ApiContext = state.api

    def remove() -> None:
        key = api.authorize(request, "admin")
        dashboards.delete(api.runtime.clickhouse, key.project_id, dashboard_id)

    await anyio.to_thread.run_sync(remove)


ROUTES = [list_dashboards, get_dashboard, create_dashboard, replace_dashboard, delete_dashboard]
