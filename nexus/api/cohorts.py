"""Saved cohorts over HTTP: /v1/cohorts. Read keys list and read cohorts and their members; creating,
changing and deleting one is an admin action (a cohort is shared by the whole project), as for dashboards.
The key is checked before the body is read, so a key that may not change cohorts learns nothing from its
body's errors. Sizes over time are the `cohort_size` analysis (POST /v1/analyses/cohort_size).

- `POST /v1/cohorts` a dynamic cohort: `{"name", "description", "definition": {"match", "conditions"}}`;
- `POST /v1/cohorts/upload?name=…` a static cohort of the ids in the CSV body (first column);
- `POST /v1/cohorts/from-analysis` a static cohort of an analysis' persons: `{"name", "kind", "request"}`;
- `PUT /v1/cohorts/{id}` new name, description and definition; `PUT /v1/cohorts/{id}/members` a new CSV list;
- `GET /v1/cohorts/{id}/persons?limit=&offset=` the members with events, by id.
"""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.json_input import decode_json
from nexus.meta import cohorts
from nexus.meta.cohorts import Cohort, CohortInput, FromAnalysis, MemberPage


class Cohorts(msgspec.Struct, frozen=True):
    cohorts: list[Cohort]


@get("/v1/cohorts")
async def list_cohorts(request: Request, state: State) -> Cohorts:
    api: ApiContext = state.api

    def listing() -> Cohorts:
        key = api.authorize(request, "read")
        return Cohorts(cohorts.list_all(api.runtime.clickhouse, key.project_id))

    return await anyio.to_thread.run_sync(listing)


@get("/v1/cohorts/{cohort_id:str}")
async def get_cohort(request: Request, state: State, cohort_id: FromPath[str]) -> Cohort:
    api: ApiContext = state.api

    def one() -> Cohort:
        key = api.authorize(request, "read")
        return cohorts.get(api.runtime.clickhouse, key.project_id, cohort_id)

    return await anyio.to_thread.run_sync(one)


@get("/v1/cohorts/{cohort_id:str}/persons")
async def cohort_persons(request: Request, state: State, cohort_id: FromPath[str], limit: FromQuery[int] = 100,
                         offset: FromQuery[int] = 0) -> MemberPage:
    api: ApiContext = state.api

    def page() -> MemberPage:
        key = api.authorize(request, "read")
        return cohorts.member_page(api.runtime.clickhouse, key.project_id, cohort_id, limit, offset)

    return await anyio.to_thread.run_sync(page)

# A CSV file of ids: the first column of each row, after an optional header (nexus.meta.cohorts.create_static).
IDS_CSV = openapi.Body({"text/csv": str}, "a CSV file of person or distinct ids, one a row in its first column")


@post("/v1/cohorts", status_code=201, opt={openapi.BODY: CohortInput})
async def create_cohort(request: Request, state: State) -> Cohort:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Cohort:
        key = api.authorize(request, "admin")
        return cohorts.create(api.runtime.clickhouse, key.project_id, cohorts.decode_input(body), key.key_id)

    return await anyio.to_thread.run_sync(create)


@post("/v1/cohorts/upload", status_code=201, opt={openapi.BODY: IDS_CSV})
async def upload_cohort(request: Request, state: State, name: FromQuery[str],
                        description: FromQuery[str] = "") -> Cohort:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Cohort:
        key = api.authorize(request, "admin")
        return cohorts.create_static(api.runtime.clickhouse, key.project_id, name, body, key.key_id, description)

    return await anyio.to_thread.run_sync(create)


@post("/v1/cohorts/from-analysis", status_code=201, opt={openapi.BODY: FromAnalysis})
async def cohort_from_analysis(request: Request, state: State) -> Cohort:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Cohort:
        key = api.authorize(request, "admin")
        data = decode_json(body, FromAnalysis)
        return cohorts.create_from_analysis(api.runtime.clickhouse, key.project_id, data, key.key_id)

    return await anyio.to_thread.run_sync(create)


@put("/v1/cohorts/{cohort_id:str}", opt={openapi.BODY: CohortInput})
async def replace_cohort(request: Request, state: State, cohort_id: FromPath[str]) -> Cohort:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def replace() -> Cohort:
        key = api.authorize(request, "admin")
        return cohorts.replace(api.runtime.clickhouse, key.project_id, cohort_id, cohorts.decode_input(body))

    return await anyio.to_thread.run_sync(replace)


@put("/v1/cohorts/{cohort_id:str}/members", opt={openapi.BODY: IDS_CSV})
async def replace_members(request: Request, state: State, cohort_id: FromPath[str]) -> Cohort:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def upload() -> Cohort:
        key = api.authorize(request, "admin")
        return cohorts.upload_members(api.runtime.clickhouse, key.project_id, cohort_id, body)

    return await anyio.to_thread.run_sync(upload)


@delete("/v1/cohorts/{cohort_id:str}", status_code=204)
async def delete_cohort(request: Request, state: State, cohort_id: FromPath[str]) -> None:
    api: ApiContext = state.api

    def remove() -> None:
        key = api.authorize(request, "admin")
        cohorts.delete(api.runtime.clickhouse, key.project_id, cohort_id)

    await anyio.to_thread.run_sync(remove)


ROUTES = [list_cohorts, upload_cohort, cohort_from_analysis, get_cohort, cohort_persons, create_cohort,
          replace_cohort, replace_members, delete_cohort]
