"""PostHog-compatible capture endpoints, so posthog SDKs can point at Nexus unchanged.

v0 (/batch, /capture, /e, /i/v0/e, /track): unlike PostHog, a request is never answered 200 when one of
its events was dropped: the answer is then 400 with each rejected event's index and reason (the valid ones
are stored). v1 (/i/v1/analytics/events, nexus.ingest.posthog_v1) answers per event, as that protocol does.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, post
from litestar.datastructures import State

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext, client_ip, now_utc
from nexus.api.ingest import EVENTS_ANSWERS, complete, finished
from nexus.errors import InvalidRequest, StorageUnavailable
from nexus.ingest import posthog, posthog_body, posthog_v1
from nexus.ingest.pipeline import Source
from nexus.ingest.service import Submitted

PATHS = ["/batch", "/capture", "/e", "/i/v0/e", "/track"]


# What posthog_body.decode_body reads: JSON (an event, a list of them or a batch), or a form whose `data` is
# that JSON or its base64; either may be gzipped (Content-Encoding, or ?compression=gzip-js).
CAPTURE_BODY = openapi.Body({openapi.JSON: Any, "application/x-www-form-urlencoded": dict[str, str]},
                            "PostHog's capture body: an event, a list of them, or {api_key, batch}")


@post(PATHS, name="posthog_capture", opt={openapi.BODY: CAPTURE_BODY}, **EVENTS_ANSWERS)
async def capture(request: Request, state: State) -> Response:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    response = await complete(api, await anyio.to_thread.run_sync(_capture, api, request, body, limiter=api.cpu))
    if response.status_code == 200:
        response.content = {"status": 1, **response.content}  # what posthog SDKs look for
    return response


def _capture(api: ApiContext, request: Request, body: bytes) -> Submitted:
    received = now_utc()
    payload = posthog_body.decode_body(body, request.headers.get("content-type", ""), "", dict(request.query_params),
                                       max_bytes=api.settings.max_request_bytes)
    key = api.authorize(request, "write", payload.api_key)
    messages = posthog.to_messages(payload, received)
    if not messages:
        raise InvalidRequest("the request holds no events")
    return api.ingestor.submit(messages, Source(key.project_id, received, client_ip(request), payload.sent_at))

V1_BODY = openapi.Body({openapi.JSON: dict[str, Any]},
                       "a capture v1 batch: {batch: [events], created_at, historical_migration}")


@post(posthog_v1.PATH, name="posthog_capture_v1", status_code=200, opt={openapi.BODY: V1_BODY})
async def capture_v1(request: Request, state: State) -> Response:
    """PostHog's capture v1: 200 with each event's result (`ok`, `drop` with why, or `retry` when the store
    failed), so the SDK resends only what needs it."""
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)
    batch, submitted = await anyio.to_thread.run_sync(_capture_v1, api, request, body, limiter=api.cpu)
    try:
        result = await finished(api, submitted)
    except StorageUnavailable as e:
        results = batch.results(submitted.processed.rejections, stored=False)
        return Response({"results": results}, headers={"Retry-After": str(e.retry_after)})
    return Response({"results": batch.results(result.rejections, stored=True)})


def _capture_v1(api: ApiContext, request: Request, body: bytes) -> tuple[posthog_v1.Batch, Submitted]:
    received = now_utc()
    key = api.authorize(request, "write")  # Bearer: the protocol puts no key in the body
    batch = posthog_v1.decode(body, request.headers.get(posthog_v1.SDK_INFO, ""),
                              request.headers.get(posthog_v1.REQUEST_TIMESTAMP, ""), received)
    source = Source(key.project_id, received, client_ip(request))
    return batch, api.ingestor.submit(batch.messages, source, backfill=batch.historical)
