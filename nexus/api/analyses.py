"""The analyses over HTTP: POST /v1/analyses/{kind}, and the pickers' lookups (event and property names).

Results are cached in Redis (see nexus.cache); an answer says whether it came from the cache.
`?explain=1` adds the exact SQL and parameters behind the result; `?format=csv|arrow` returns the
result's table instead of JSON.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import anyio.to_thread
import msgspec
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from nexus import cache
from nexus.analyses import catalog, registry, tables
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.errors import InvalidRequest
from nexus.exports.cells import neutralized

TABLE_FORMATS = {"csv": "text/csv; charset=utf-8", "arrow": "application/vnd.apache.arrow.stream"}


@post("/v1/analyses/{kind:str}", status_code=200)
async def analyse(request: Request, state: State, kind: FromPath[str], explain: FromQuery[bool] = False,
                  format: FromQuery[str] = "json") -> Response:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    return await anyio.to_thread.run_sync(_analyse, api, request, kind, body, explain, format)


def _analyse(api: ApiContext, request: Request, kind: str, body: bytes, explain: bool, fmt: str) -> Response:
    key = api.authorize(request, "read")
    if fmt != "json" and fmt not in TABLE_FORMATS:
        raise InvalidRequest(f"format must be json, csv or arrow, not {fmt!r}")
    if explain and fmt != "json":
        raise InvalidRequest("explain=1 comes with JSON results only: drop format, or explain")
    analysis = registry.decode(kind, body or b"{}")
    clickhouse, redis = api.runtime.clickhouse, api.runtime.redis.client
    name = cache.key(redis, key.project_id, kind, analysis)
    encoded = cache.get(redis, name)
    cached = encoded is not None
    if encoded is None:
        encoded = msgspec.json.encode(registry.run(clickhouse, key.project_id, kind, analysis))
        cache.put(redis, name, encoded)
    if fmt != "json":
        result = msgspec.json.decode(encoded, type=registry.module(kind).Result)
        return Response(_table_bytes(kind, result, fmt), media_type=TABLE_FORMATS[fmt],
                        headers={"X-Nexus-Cached": str(cached).lower()})
    parts = [b'{"kind":', msgspec.json.encode(kind), b',"cached":', b"true" if cached else b"false",
             b',"result":', encoded]
    if explain:
        sql, params = registry.explain(clickhouse, key.project_id, kind, analysis)
        parts += [b',"explain":', msgspec.json.encode({"sql": sql, "params": {k: _as_bound(v) for k, v in params.items()}})]
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


def _as_bound(value: Any) -> Any:
    """A parameter as ClickHouse reads it back when bound by hand (times in UTC, without the 'T' and 'Z';
    milliseconds only when there are some, since a DateTime parameter refuses them and DateTime64 reads both)."""
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%d %H:%M:%S") + (f".{utc.microsecond // 1000:03d}" if utc.microsecond else "")
    if isinstance(value, list):
        return [_as_bound(v) for v in value]
    return value


def _table_bytes(kind: str, result: msgspec.Struct, fmt: str) -> bytes:
    table = tables.table(kind, result)
    sink = io.BytesIO()
    if fmt == "csv":
        pa_csv.write_csv(neutralized(table), sink)
    else:
        with pa_ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


ROUTES = [analyse, event_names, property_names]
