"""Channel rules over HTTP: GET /v1/channels (read key), PUT /v1/channels (admin), DELETE /v1/channels (admin:
back to the default rules). The attribution analyses read them; the key is checked before the body is read, so a
key that may not change the rules learns nothing from its body's errors. Storage work runs off the event loop."""

from __future__ import annotations

import anyio.to_thread
from litestar import Request, delete, get, put
from litestar.datastructures import State

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.meta import channels
from nexus.meta.channels import Channels


@get("/v1/channels")
async def get_channels(request: Request, state: State) -> Channels:
    api: ApiContext = state.api

    def read() -> Channels:
        key = api.authorize(request, "read")
        return channels.get(api.runtime.clickhouse, key.project_id)

    return await anyio.to_thread.run_sync(read)


@put("/v1/channels", opt={openapi.BODY: channels.ChannelSettings})
async def replace_channels(request: Request, state: State) -> Channels:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def replace() -> Channels:
        key = api.authorize(request, "admin")
        return channels.replace(api.runtime.clickhouse, key.project_id, channels.decode(body), key.key_id)

    return await anyio.to_thread.run_sync(replace)


@delete("/v1/channels", status_code=200)
async def reset_channels(request: Request, state: State) -> Channels:
    api: ApiContext = state.api

    def reset() -> Channels:
        key = api.authorize(request, "admin")
        return channels.reset(api.runtime.clickhouse, key.project_id)

    return await anyio.to_thread.run_sync(reset)


ROUTES = [get_channels, replace_channels, reset_channels]
