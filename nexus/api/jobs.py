"""Jobs and exports over HTTP: POST /v1/exports queues an export, /v1/jobs lists, shows and cancels jobs,
GET /v1/exports/{id}/file downloads a finished export's file.

A read key may export what it may read, and only from its own project: the job runs as that key (its
query limits) in that project. Another project's job is "not found", exactly as a missing one. A file is
served with its key, or through a signed link (nexus.jobs.links) that a schedule sent to its recipients.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import File

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.errors import InvalidRequest
from nexus.exports import request as export_request
from nexus.exports.request import ExportRequest
from nexus.jobs import files, links, store
from nexus.jobs.store import JobView
from nexus.json_input import decode_json


class Jobs(msgspec.Struct, frozen=True):
    jobs: list[JobView]


@post("/v1/exports", status_code=202, opt={openapi.BODY: ExportRequest})
async def create_export(request: Request, state: State) -> JobView:
    """Queue an export of this project's data: the answer is the job (poll GET /v1/jobs/{job_id})."""
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> JobView:
        key = api.authorize(request, "read")
        runtime = api.runtime
        wanted = export_request.checked(runtime.queries, key.project_id, decode_json(body, ExportRequest),
                                        runtime.settings.export_max_rows)
        job = runtime.jobs.submit(key.project_id, "export", wanted, key.key_id)
        return store.view(job, runtime.redis.client)

    return await anyio.to_thread.run_sync(create)


@get("/v1/jobs")
async def list_jobs(request: Request, state: State,
                    job_state: Annotated[str | None, QueryParameter(name="state")] = None,
                    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> Jobs:
    """The project's jobs, newest first; `state` keeps those in one state."""
    api: ApiContext = state.api
    if job_state is not None and job_state not in ("queued", "running", "done", "failed", "cancelled"):
        raise InvalidRequest("state must be queued, running, done, failed or cancelled", field="state")

    def listing() -> Jobs:
        key = api.authorize(request, "read")
        runtime = api.runtime
        found = store.list_for(runtime.clickhouse, key.project_id, state=job_state, limit=limit)
        return Jobs([store.view(job, runtime.redis.client) for job in found])

    return await anyio.to_thread.run_sync(listing)


@get("/v1/jobs/{job_id:str}")
async def get_job(request: Request, state: State, job_id: FromPath[str]) -> JobView:
    api: ApiContext = state.api

    def one() -> JobView:
        key = api.authorize(request, "read")
        return store.view(store.get(api.runtime.clickhouse, key.project_id, job_id), api.runtime.redis.client)

    return await anyio.to_thread.run_sync(one)


@delete("/v1/jobs/{job_id:str}", status_code=200)
async def cancel_job(request: Request, state: State, job_id: FromPath[str]) -> JobView:
    """Cancel a queued or running job (a running one stops within a second or so, and its partial file
    is removed); a finished job is answered as it is."""
    api: ApiContext = state.api

    def cancel() -> JobView:
        key = api.authorize(request, "read")
        runtime = api.runtime
        job = runtime.jobs.cancel(store.get(runtime.clickhouse, key.project_id, job_id))
        return store.view(job, runtime.redis.client)

    return await anyio.to_thread.run_sync(cancel)


@get("/v1/exports/{job_id:str}/file")
async def export_file(request: Request, state: State, job_id: FromPath[str],
                      project: Annotated[int | None, QueryParameter(ge=1)] = None,
                      expires: Annotated[int | None, QueryParameter(ge=0)] = None,
                      signature: FromQuery[str | None] = None) -> File:
    """The export's file, with its media type and name. With `project`, `expires` and `signature` (a signed
    link a schedule delivered), no key is needed until the link expires."""
    api: ApiContext = state.api

    def find() -> File:
        runtime = api.runtime
        if signature is not None:
            project_id = links.verified(runtime.redis.client, job_id, project, expires, signature)
        else:
            project_id = api.authorize(request, "read").project_id
        found = files.finished(runtime.clickhouse, runtime.settings, project_id, job_id)
        return File(found.path, filename=found.file_name, media_type=found.media_type,
                    content_disposition_type="attachment")

    return await anyio.to_thread.run_sync(find)


ROUTES = [create_export, list_jobs, get_job, cancel_job, export_file]
