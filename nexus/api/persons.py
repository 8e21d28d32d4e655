"""Persons over HTTP: GET /v1/persons (the persons list) and GET /v1/persons/{id} (a profile and its timeline).

Both are the `persons` and `person` analyses through the read service, with their request fields as
query parameters (`filters` is the list's `where`, as JSON). A person of another project is not found, as
an unknown one is: the analyses read only the key's project. Answers are the analyses' results as JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from nexus.api.context import ApiContext
from nexus.errors import InvalidRequest
from nexus.json_input import UnreadableJson, decode_json


@get("/v1/persons")
async def list_persons(request: Request, state: State, q: FromQuery[str | None] = None,
                       filters: FromQuery[str | None] = None, sort: FromQuery[str | None] = None,
                       cursor: FromQuery[str | None] = None, limit: FromQuery[int | None] = None) -> Response:
    api: ApiContext = state.api
    body: dict[str, Any] = {name: value for name, value in
                            (("q", q), ("sort", sort), ("cursor", cursor), ("limit", limit)) if value is not None}
    if filters is not None:
        try:
            body["where"] = decode_json(filters)
        except UnreadableJson as e:
            raise InvalidRequest(f"filters is not JSON: {e.reason}", field="filters") from None
    return await anyio.to_thread.run_sync(_answer, api, request, "persons", body)


def person_in_path(path: str) -> str:
    """The person id of `/v1/persons/{id}`: the rest of the path, so an id holding '/' (sent as %2F or as
    is) is addressable too; the router gives it with its leading '/'."""
    return path.removeprefix("/")


@get("/v1/persons/{person_id:path}")
async def get_person(request: Request, state: State, person_id: FromPath[str], cursor: FromQuery[str | None] = None,
                     limit: FromQuery[int | None] = None) -> Response:
    api: ApiContext = state.api
    body: dict[str, Any] = {"person": person_in_path(person_id), **({"cursor": cursor} if cursor is not None else {}),
                            **({"limit": limit} if limit is not None else {})}
    return await anyio.to_thread.run_sync(_answer, api, request, "person", body)


def _answer(api: ApiContext, request: Request, kind: str, body: dict[str, Any]) -> Response:
    key = api.authorize(request, "read")
    with _named_as_parameters():
        answer = api.runtime.analyses.answer(key.project_id, kind, body)
    return Response(answer.result, media_type="application/json",
                    headers={"X-Nexus-Cached": str(answer.cached).lower()})


@contextmanager
def _named_as_parameters() -> Iterator[None]:
    """Refusals name the query parameter at fault: the list's `where` is sent as `filters`."""
    try:
        yield
    except InvalidRequest as e:
        if e.field and (e.field == "where" or e.field.startswith(("where.", "where["))):
            raise InvalidRequest(str(e).replace("`where", "`filters"), field="filters" + e.field[5:]) from None
        raise


ROUTES = [list_persons, get_person]
