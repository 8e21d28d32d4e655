"""The analyses over HTTP: POST /v1/analyses/{kind}, and the pickers' lookups (event and property names).

The read service (nexus.services.analyses) runs and caches them; an answer says whether it came from
the cache. `?explain=1` adds the SQL and parameters that produced the result; `?format=csv|arrow` returns
the result's table instead of JSON.
"""

from __future__ import annotations

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from nexus.analyses import catalog
from nexus.analyses.registry import ANALYSES
from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.errors import InvalidRequest
from nexus.services.analyses import MEDIA_TYPES

TABLE_FORMATS = ("csv", "arrow")


@post("/v1/analyses/{kind:str}", status_code=200, opt={openapi.BODY: openapi.Body(
    {openapi.JSON: tuple(analysis.Request for analysis in ANALYSES.values())}, "the request of the analysis `kind`")})
async def analyse(request: Request, state: State, kind: FromPath[str], explain: FromQuery[bool] = False,
                  format: FromQuery[str] = "json") -> Response:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    return await anyio.to_thread.run_sync(_analyse, api, request, kind, body, explain, format)


def _analyse(api: ApiContext, request: Request, kind: str, body: bytes, explain: bool, fmt: str) -> Response:
    key = api.authorize(request, "read")
    if fmt != "json" and fmt not in TABLE_FORMATS:
        raise InvalidRequest(f"format must be json, csv or arrow, not {fmt!r}", field="format")
    if explain and fmt != "json":
        raise InvalidRequest("explain=1 comes with JSON results only: drop format, or explain", field="explain")
    answer = api.runtime.analyses.answer(key.project_id, kind, body)
    if fmt != "json":
        return Response(answer.table_bytes(fmt), media_type=MEDIA_TYPES[fmt],  # type: ignore[arg-type]
                        headers={"X-Nexus-Cached": str(answer.cached).lower()})
    parts = [b'{"kind":', msgspec.json.encode(kind), b',"cached":', b"true" if answer.cached else b"false",
             b',"result":', answer.result]
    if explain:
        parts += [b',"explain":', msgspec.json.encode(answer.explain)]
    return Response(b"".join(parts) + b"}", media_type="application/json")


@get("/v1/events/names")
async def event_names(request: Request, state: State) -> list[catalog.EventName]:
    api: ApiContext = state.api

    def names() -> list[catalog.EventName]:
        return catalog.event_names(api.runtime.clickhouse, api.authorize(request, "read").project_id)

    return await anyio.to_thread.run_sync(names)


@get("/v1/properties")
async def property_names(request: Request, state: State, event: FromQuery[str | None] = None) -> list[catalog.PropertyName]:
    api: ApiContext = state.api

    def names() -> list[catalog.PropertyName]:
        return catalog.properties(api.runtime.clickhouse, api.authorize(request, "read").project_id, event)

    return await anyio.to_thread.run_sync(names)


ROUTES = [analyse, event_names, property_names]
