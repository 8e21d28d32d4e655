"""Ad-hoc SQL over HTTP: POST /v1/query, saved queries at /v1/queries, schema discovery at /v1/schema.

Handlers decode, authorize, and call nexus.adhoc; queries run off the event loop. A JSON answer is built
whole (its row limit is small) so every failure is a clean 4xx. Other formats stream: the first chunk is
produced before the status line goes out, so a query that fails at once still gets its 4xx; a limit hit
later cuts the connection (no final chunk), so no client can take a partial result for a whole one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Stream

from nexus.adhoc import saved, schema
from nexus.adhoc.formats import EXTENSIONS, Format
from nexus.adhoc.sandbox import JsonAnswer, QueryService, ResultStream
from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.api.deadline import send_deadline, set_deadline
from nexus.errors import NexusError
from nexus.json_input import decode_json
from nexus.meta.keys import ApiKey

log = logging.getLogger("nexus.api.query")


class QueryRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sql: str
    params: dict[str, Any] = {}
    format: Format = "json"
    max_rows: int | None = None


class RunRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    params: dict[str, Any] = {}
    format: Format = "json"
    max_rows: int | None = None


class SavedQueries(msgspec.Struct, frozen=True):
    queries: list[saved.SavedQueryView]


def service(state: State) -> QueryService:
    return state.runtime.queries


@post("/v1/query", status_code=200, middleware=[send_deadline], opt={openapi.BODY: QueryRequest})
async def run_query(request: Request, state: State) -> Response:
    api: ApiContext = state.api
    body = decode_json(await read_body(request, api.settings.max_request_bytes), QueryRequest)
    return await _answer(state, request, lambda key: (body.sql, body.params), body.format, body.max_rows)


@post("/v1/queries/{query_id:str}/run", status_code=200, middleware=[send_deadline],
      opt={openapi.BODY: openapi.Body({openapi.JSON: RunRequest}, required=False)})
async def run_saved_query(request: Request, state: State, query_id: FromPath[str]) -> Response:
    api: ApiContext = state.api
    body = decode_json(await read_body(request, api.settings.max_request_bytes) or b"{}", RunRequest)
    queries = service(state)

    def source(key: ApiKey) -> tuple[str, dict[str, Any]]:
        return saved.resolve(queries.client, key.project_id, query_id, body.params)

    return await _answer(state, request, source, body.format, body.max_rows)


# Handlers are async and move blocking work to a thread themselves: Litestar wraps sync handlers at
# registration, and registering the same handler in a second app (tests build several) wraps it twice.


@get("/v1/schema")
async def describe_schema(request: Request, state: State) -> schema.SchemaAnswer:
    def describe() -> schema.SchemaAnswer:
        state.api.authorize(request, "read")
        queries = service(state)
        return schema.describe(queries.client, queries.address.database)

    return await anyio.to_thread.run_sync(describe)


@get("/v1/queries")
async def list_queries(request: Request, state: State) -> SavedQueries:
    def listing() -> SavedQueries:
        key = state.api.authorize(request, "read")
        return SavedQueries([saved.view(q) for q in saved.list_all(service(state).client, key.project_id)])

    return await anyio.to_thread.run_sync(listing)


@get("/v1/queries/{query_id:str}")
async def get_query(request: Request, state: State, query_id: FromPath[str]) -> saved.SavedQueryView:
    def one() -> saved.SavedQueryView:
        key = state.api.authorize(request, "read")
        return saved.view(saved.get(service(state).client, key.project_id, query_id))

    return await anyio.to_thread.run_sync(one)


@post("/v1/queries", status_code=201, opt={openapi.BODY: saved.SavedQueryInput})
async def create_query(request: Request, state: State) -> saved.SavedQueryView:
    api: ApiContext = state.api
    data = decode_json(await read_body(request, api.settings.max_request_bytes), saved.SavedQueryInput)

    def create() -> saved.SavedQueryView:
        # Saved queries feed dashboards and scheduled exports of the whole project: changing them is
        # an admin action; read keys list and run them.
        key = api.authorize(request, "admin")
        return saved.view(saved.create(service(state), key.project_id, data, key.key_id))

    return await anyio.to_thread.run_sync(create)


@put("/v1/queries/{query_id:str}", opt={openapi.BODY: saved.SavedQueryInput})
async def update_query(request: Request, state: State, query_id: FromPath[str]) -> saved.SavedQueryView:
    api: ApiContext = state.api
    data = decode_json(await read_body(request, api.settings.max_request_bytes), saved.SavedQueryInput)

    def update() -> saved.SavedQueryView:
        key = api.authorize(request, "admin")
        return saved.view(saved.update(service(state), key.project_id, query_id, data))

    return await anyio.to_thread.run_sync(update)


@delete("/v1/queries/{query_id:str}", status_code=204)
async def delete_query(request: Request, state: State, query_id: FromPath[str]) -> None:
    def remove() -> None:
        key = state.api.authorize(request, "admin")
        saved.delete(service(state).client, key.project_id, query_id)

    await anyio.to_thread.run_sync(remove)


ROUTES = [run_query, run_saved_query, describe_schema, list_queries, get_query, create_query, update_query,
          delete_query]


async def _answer(state: State, request: Request, source, fmt: Format, max_rows: int | None) -> Response:
    api: ApiContext = state.api
    queries = service(state)

    def start() -> JsonAnswer | ResultStream:
        key = api.authorize(request, "read")
        sql, params = source(key)
        key_limits = queries.limits_for(key.key_id)
        # The key's time limit covers the whole answer, sending included.
        if fmt == "json":
            set_deadline(request, key_limits.max_seconds)
            return queries.answer_json(key.project_id, sql, params, key_limits, max_rows, key_id=key.key_id)
        result = queries.open(key.project_id, sql, params, fmt, key_limits, max_rows, key_id=key.key_id)
        set_deadline(request, key_limits.max_seconds, result.close)
        return result

    result = await anyio.to_thread.run_sync(start)
    if isinstance(result, JsonAnswer):
        return Response(msgspec.json.encode(result), media_type="application/json",
                        headers={TRUNCATED: _flag(result.truncated)})
    headers = {"Content-Disposition": f'attachment; filename="result.{EXTENSIONS[fmt]}"'}
    if result.truncated is not None:  # a stream cut at max_rows says so when it is known before the body
        headers[TRUNCATED] = _flag(result.truncated)
    return Stream(_body(result), media_type=result.media_type, headers=headers)


TRUNCATED = "X-Nexus-Truncated"


def _flag(value: bool) -> str:
    return "true" if value else "false"


async def _body(result: ResultStream) -> AsyncIterator[bytes]:
    try:
        while (chunk := await anyio.to_thread.run_sync(_next_chunk, result)) is not None:
            yield chunk
    except NexusError as e:
        # The status line is gone: ending the stream without its last chunk is how the client learns.
        log.warning("ad-hoc query stopped mid-stream: %s", e)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(result.close)


def _next_chunk(result: ResultStream) -> bytes | None:
    return next(result, None)
