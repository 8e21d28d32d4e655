"""Segment-compatible tracking endpoints: /v1/batch and the single calls, receipts and ingest metrics.

Handlers read the body within its limit, then do the rest off the event loop: decode, authenticate,
rate-limit, and hand the messages to the ingest service, which answers once they are stored.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, Parameter

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext, client_ip, now_utc
from nexus.api.statuses import status_for
from nexus.errors import InvalidRequest, StorageUnavailable, TooLarge
from nexus.ingest import metrics
from nexus.ingest.backfill import ImportSummary, Stop, import_file
from nexus.ingest.dedup import stored_message_ids
from nexus.ingest.pipeline import Source
from nexus.ingest.service import IngestResult, Submitted
from nexus.ingest.wire import BatchEnvelope, Message, Rejection, decode_message
from nexus.json_input import decode_json
from nexus.meta import ad_spend

MAX_RECEIPTS = 10_000


class Receipts(msgspec.Struct, rename="camel"):
    message_ids: list[str]


class ReceiptsAnswer(msgspec.Struct):
    stored: list[str]
    missing: list[str]


class Refused(msgspec.Struct):
    """A 400 of a route that takes events: `error` (and `field`) when the whole request was refused or an
    import stopped; the counts and each rejected event (`errors`) when its events were looked at."""

    error: str | msgspec.UnsetType = msgspec.UNSET
    field: str | msgspec.UnsetType = msgspec.UNSET
    success: bool | msgspec.UnsetType = msgspec.UNSET
    events: int | msgspec.UnsetType = msgspec.UNSET  # an import's lines or rows settled
    stored: int | msgspec.UnsetType = msgspec.UNSET
    duplicates: int | msgspec.UnsetType = msgspec.UNSET
    rejected: int | msgspec.UnsetType = msgspec.UNSET
    errors: list[Rejection] | msgspec.UnsetType = msgspec.UNSET
    resume_from: int | msgspec.UnsetType = msgspec.UNSET  # an import's line or row to send again from


# The answers of ingest_response and import_response: 200, not 201 (events are stored, no resource is made).
EVENTS_ANSWERS = {"status_code": 200, "responses": {400: ResponseSpec(
    Refused, description="the request was refused, or some of its events were", generate_examples=False)}}


# /v1/b: where analytics-next sends its batches.
@post(["/v1/batch", "/v1/b"], opt={openapi.BODY: BatchEnvelope}, **EVENTS_ANSWERS)
async def batch(request: Request, state: State) -> Response:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    return await complete(api, await anyio.to_thread.run_sync(_batch, api, request, body, limiter=api.cpu))


async def finished(api: ApiContext, submitted: Submitted) -> IngestResult:
    """Wait for the writer without holding a worker thread; what became of every message (raises the
    writer's error, if any)."""
    waiting = asyncio.wrap_future(submitted.stored)
    await asyncio.wait([waiting])
    waiting.exception()  # seen here; finish() raises it
    return await anyio.to_thread.run_sync(api.ingestor.finish, submitted)


async def complete(api: ApiContext, submitted: Submitted) -> Response:
    """Wait for the writer, then answer for every message."""
    return ingest_response(await finished(api, submitted))


def _batch(api: ApiContext, request: Request, body: bytes) -> Submitted:
    envelope = decode_json(body, BatchEnvelope)
    key = api.authorize(request, "write", envelope.write_key)
    if not envelope.batch:
        raise InvalidRequest("the batch is empty")
    limit = api.settings.max_event_bytes
    messages: list[Message | Rejection] = [
        Rejection(i, "", f"event is {len(raw)} bytes, over the limit of {limit}") if len(raw) > limit
        else decode_message(raw, i)
        for i, raw in enumerate(envelope.batch)
    ]
    source = Source(key.project_id, now_utc(), client_ip(request), envelope.sent_at, envelope.context)
    return api.ingestor.submit(messages, source)

# The fields of one message (nexus.ingest.wire.Message) but its `type`, which is the path's.
SINGLE_CALL = openapi.Body({openapi.JSON: dict[str, Any]}, "one Segment message: its type is the path's")


def _single(call: str):
    # Segment's short path is the type's first letter (/v1/t, /v1/p, ...): what analytics-next posts to.
    @post([f"/v1/{call}", f"/v1/{call[0]}"], name=f"segment_{call}", opt={openapi.BODY: SINGLE_CALL}, **EVENTS_ANSWERS)
    async def handler(request: Request, state: State) -> Response:
        api: ApiContext = state.api
        body = await read_body(request, api.settings.max_request_bytes)
        if len(body) > api.settings.max_event_bytes:
            raise TooLarge(f"the event is {len(body)} bytes, over the limit of {api.settings.max_event_bytes}")
        return await complete(api, await anyio.to_thread.run_sync(_one, api, request, body, call, limiter=api.cpu))

    return handler


def _one(api: ApiContext, request: Request, body: bytes, call: str) -> Submitted:
    fields = decode_json(body, dict[str, Any])
    key = api.authorize(request, "write", fields.get("writeKey") if isinstance(fields.get("writeKey"), str) else None)
    fields["type"] = call
    message = decode_message(msgspec.json.encode(fields), 0)
    return api.ingestor.submit([message], Source(key.project_id, now_utc(), client_ip(request)))


track, identify, page, screen, group, alias = (_single(c) for c in ("track", "identify", "page", "screen", "group", "alias"))


# A question, not a creation: Segment-style clients expect 200.
@post("/v1/receipts", status_code=200, opt={openapi.BODY: Receipts})
async def receipts(request: Request, state: State) -> ReceiptsAnswer:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    return await anyio.to_thread.run_sync(_receipts, api, request, body)


def _receipts(api: ApiContext, request: Request, body: bytes) -> ReceiptsAnswer:
    # The sender's key asks (write, or admin, which may do anything): receipts are how a pipeline
    # reconciles what it sent. Read keys query events with SQL instead.
    key = api.authorize(request, "write")
    asked = decode_json(body, Receipts).message_ids
    if len(asked) > MAX_RECEIPTS:
        raise InvalidRequest(f"ask about at most {MAX_RECEIPTS} messageIds at once, not {len(asked)}")
    stored = stored_message_ids(api.runtime.clickhouse, key.project_id, sorted(set(asked)))
    return ReceiptsAnswer(stored=[m for m in asked if m in stored], missing=[m for m in asked if m not in stored])


@get("/v1/ingest/metrics")
async def ingest_metrics(request: Request, state: State) -> metrics.IngestMetrics:
    api: ApiContext = state.api

    def read() -> metrics.IngestMetrics:
        key = api.authorize(request, "read")
        api.ingestor.metrics.flush()  # this process's latest counts too
        return metrics.read(api.runtime.redis.client, key.project_id)

    return await anyio.to_thread.run_sync(read)


def ingest_response(result: IngestResult) -> Response:
    """200 {"success": true} when every event is stored (or was already); else 400 with each rejection."""
    if not result.rejections:
        return Response({"success": True, "stored": result.stored, "duplicates": result.duplicates}, status_code=200)
    return Response(
        {"success": False, "stored": result.stored, "duplicates": result.duplicates,
         "rejected": len(result.rejections), "errors": [msgspec.to_builtins(r) for r in result.rejections]},
        status_code=400,
    )



@post("/v1/import", opt={openapi.BODY: openapi.Body(
    {"application/octet-stream": openapi.BINARY},
    "an NDJSON, Arrow IPC or Parquet file of events; with table=ad_spend, a CSV or NDJSON spend file")},
      **EVENTS_ANSWERS)
async def import_events(request: Request, state: State, format: FromQuery[str | None] = None,
                        resume_from: Annotated[int, Parameter(ge=0)] = 0, table: FromQuery[str] = "events") -> Response:
    """Back-fill a file of events (NDJSON, Arrow IPC or Parquet; the format is detected unless given), from
    line or row `resume_from` on. The upload is spooled to disk, never held in memory; needs an admin key.
    With `table=ad_spend`, the file is a spend file for attribution (nexus.meta.ad_spend), read whole."""
    api: ApiContext = state.api
    key = await anyio.to_thread.run_sync(api.authorize, request, "admin")
    if table not in IMPORT_TABLES:
        raise InvalidRequest(f"table must be {' or '.join(IMPORT_TABLES)}, not {table!r}", field="table")
    if table == "ad_spend":
        body = await read_body(request, api.settings.max_request_bytes)
        summary = await anyio.to_thread.run_sync(ad_spend.import_spend, api.runtime.clickhouse, key.project_id, body)
        return Response(msgspec.to_builtins(summary), status_code=200)
    spool = api.settings.data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=spool, suffix=".upload") as upload:
        size, limit = 0, api.settings.max_import_bytes
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is over the limit of {limit} bytes")
            upload.write(chunk)
        upload.flush()
        summary = await anyio.to_thread.run_sync(
            lambda: import_file(api.ingestor, Path(upload.name), key.project_id, format, resume_from=resume_from,
                                max_event_bytes=api.settings.max_event_bytes))
    return import_response(summary)


IMPORT_TABLES = ("events", "ad_spend")


# What stopped an import, as the error class whose status (api.statuses) the answer carries.
_STOP_CAUSE: dict[Stop, type[Exception]] = {"file": InvalidRequest, "store": StorageUnavailable, "internal": Exception}


def import_response(summary: ImportSummary) -> Response:
    """The counts, always: 200 when every event is stored (or was already); 400 with each rejected line,
    or with `error` when the file is corrupt or cut short; 503 with `error` when the store failed, to be
    retried from `resume_from`."""
    body = {"success": summary.rejected == 0 and summary.error is None, **msgspec.to_builtins(summary)}
    stopped_by = body.pop("stopped_by")
    if stopped_by is None:
        del body["error"]
        return Response(body, status_code=200 if summary.rejected == 0 else 400)
    return Response(body, status_code=status_for(_STOP_CAUSE[stopped_by]),
                    headers={"Retry-After": "5"} if stopped_by == "store" else {})


# The endpoints a write key may call, open to every web origin (see api.headers).
WRITE_ROUTES = [batch, track, identify, page, screen, group, alias, receipts]
ROUTES = [*WRITE_ROUTES, ingest_metrics, import_events]
