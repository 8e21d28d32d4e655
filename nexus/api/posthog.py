"""PostHog-compatible capture endpoints, so posthog SDKs can point at Nexus unchanged.

Unlike PostHog, a request is never answered 200 when one of its events was dropped: the answer is
then 400 with each rejected event's index and reason (the valid ones are stored).
"""

from __future__ import annotations

import anyio.to_thread
from litestar import Request, Response, post
from litestar.datastructures import State

from nexus.api.body import read_body
from nexus.api.context import ApiContext, client_ip, now_utc
from nexus.api.ingest import complete
from nexus.errors import InvalidRequest
from nexus.ingest import posthog, posthog_body
from nexus.ingest.pipeline import Source
from nexus.ingest.service import Submitted

PATHS = ["/batch", "/capture", "/e", "/i/v0/e", "/track"]


@post(PATHS, name="posthog_capture")
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
