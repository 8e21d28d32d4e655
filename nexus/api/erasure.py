"""Erasure over HTTP: DELETE /v1/persons/{id} erases a person of the key's project (nexus.store.erasure) and
answers with its record (rows removed per table); GET /v1/erasures lists the project's records. Both take an
admin key. A person of another project is not found, as an unknown one is: the erasure reads and deletes only
the key's project's rows. (GET /v1/persons/{id}, the profile, is nexus.api.persons.)"""

from __future__ import annotations

import anyio.to_thread
from litestar import Request, delete, get
from litestar.datastructures import State
from litestar.params import FromPath

from nexus.api.context import ApiContext
from nexus.api.persons import person_in_path
from nexus.errors import InvalidRequest
from nexus.meta import erasures
from nexus.meta.erasures import Erasure, Erasures
from nexus.store import erasure

MAX_ID_LENGTH = 1_000


@delete("/v1/persons/{person_id:path}", status_code=200)
async def erase_person(request: Request, state: State, person_id: FromPath[str]) -> Erasure:
    api: ApiContext = state.api
    person_id = person_in_path(person_id)

    def erase() -> Erasure:
        key = api.authorize(request, "admin")
        if len(person_id) > MAX_ID_LENGTH:
            raise InvalidRequest(f"a person id has at most {MAX_ID_LENGTH} characters", field="person_id")
        return erasure.erase(api.runtime.clickhouse, key.project_id, person_id, key.key_id, api.runtime.redis.client)

    return await anyio.to_thread.run_sync(erase)


@get("/v1/erasures")
async def list_erasures(request: Request, state: State) -> Erasures:
    api: ApiContext = state.api

    def listing() -> Erasures:
        key = api.authorize(request, "admin")
        return Erasures(erasures.list_all(api.runtime.clickhouse, key.project_id))

    return await anyio.to_thread.run_sync(listing)


ROUTES = [erase_person, list_erasures]
