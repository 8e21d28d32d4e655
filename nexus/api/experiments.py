"""A/B experiments over HTTP: /v1/experiments, and the assignment of distinct ids to their variants.

Read keys list and read experiments; creating, changing and deleting one is an admin action (an experiment
is shared by the whole project), as for goals. The key is checked before the body is decoded, so a key that
may not change experiments learns nothing from its body's errors. The results are the `experiment`
analysis (POST /v1/analyses/experiment).

Assignment takes a write key, the key a client ships, so an app may ask which variant to show:
- `GET /v1/experiments/{key}/assign?distinct_id=…[&record=true][&id_type=user]` one id;
- `POST /v1/experiments/{key}/assign` `{"distinct_ids": [...], "record": false, "id_type": "anonymous"}` up
  to MAX_ASSIGN ids.
With `record`, each answer is also stored as an exposure event (the experiment's exposure event with its
`experiment` and `variant` properties) through the ordinary ingest path; its messageId is derived from the
experiment, id and variant, so asking again for the same id does not store a second exposure. The id is
the event's `anonymousId` unless the caller says it is a user id (`id_type=user`: `userId`), as a Segment
client would send it; either way it is the event's distinct id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Literal, cast

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext, client_ip, now_utc
from nexus.errors import InvalidRequest
from nexus.ingest.pipeline import Source
from nexus.ingest.service import Submitted
from nexus.ingest.wire import decode_message
from nexus.json_input import decode_json
from nexus.meta import experiments
from nexus.meta.experiment_assignment import assign_all
from nexus.meta.experiments import Experiment, ExperimentInput

MAX_ASSIGN = 10_000
MAX_ID_LENGTH = 200
IdType = Literal["anonymous", "user"]
SEGMENT_ID_FIELD: dict[IdType, str] = {"anonymous": "anonymousId", "user": "userId"}


class Experiments(msgspec.Struct, frozen=True):
    experiments: list[Experiment]


class AssignBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    distinct_ids: list[str]
    record: bool = False
    id_type: IdType = "anonymous"  # what the ids are, for the recorded exposures


class Assignment(msgspec.Struct, frozen=True):
    distinct_id: str
    variant: str


class Assignments(msgspec.Struct, frozen=True):
    """The variants of the ids asked about, in their order; `running` is False before the start or after
    the end (an id still has its variant); with `record`, how many exposures were stored now."""

    experiment: str
    running: bool
    assignments: list[Assignment]
    recorded: int | None = None


@get("/v1/experiments")
async def list_experiments(request: Request, state: State) -> Experiments:
    api: ApiContext = state.api

    def listing() -> Experiments:
        key = api.authorize(request, "read")
        return Experiments(experiments.list_all(api.runtime.clickhouse, key.project_id))

    return await anyio.to_thread.run_sync(listing)


@get("/v1/experiments/{key:str}")
async def get_experiment(request: Request, state: State, key: FromPath[str]) -> Experiment:
    api: ApiContext = state.api

    def one() -> Experiment:
        caller = api.authorize(request, "read")
        return experiments.get(api.runtime.clickhouse, caller.project_id, key)

    return await anyio.to_thread.run_sync(one)


@post("/v1/experiments", status_code=201, opt={openapi.BODY: ExperimentInput})
async def create_experiment(request: Request, state: State) -> Experiment:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def create() -> Experiment:
        caller = api.authorize(request, "admin")
        data = decode_json(body, ExperimentInput)
        return experiments.create(api.runtime.clickhouse, caller.project_id, data, caller.key_id)

    return await anyio.to_thread.run_sync(create)


@put("/v1/experiments/{key:str}", opt={openapi.BODY: ExperimentInput})
async def replace_experiment(request: Request, state: State, key: FromPath[str]) -> Experiment:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def replace() -> Experiment:
        caller = api.authorize(request, "admin")
        experiments.get(api.runtime.clickhouse, caller.project_id, key)  # another project's is a 404 first
        data = decode_json(body, ExperimentInput)
        return experiments.replace(api.runtime.clickhouse, caller.project_id, key, data)

    return await anyio.to_thread.run_sync(replace)


@delete("/v1/experiments/{key:str}", status_code=204)
async def delete_experiment(request: Request, state: State, key: FromPath[str]) -> None:
    api: ApiContext = state.api

    def remove() -> None:
        caller = api.authorize(request, "admin")
        experiments.delete(api.runtime.clickhouse, caller.project_id, key)

    await anyio.to_thread.run_sync(remove)


# What an assign call asks: the ids, whether to record exposures, the field that holds the ids, what they are.
Asked = tuple[list[str], bool, str, IdType]


@get("/v1/experiments/{key:str}/assign")
async def assign_one(request: Request, state: State, key: FromPath[str], distinct_id: FromQuery[str | None] = None,
                     record: FromQuery[bool] = False, id_type: FromQuery[str] = "anonymous") -> Assignments:
    api: ApiContext = state.api

    def asked() -> Asked:
        if distinct_id is None:  # optional to Litestar, so that the refusal names the parameter
            raise InvalidRequest("distinct_id is required: ?distinct_id=…", field="distinct_id")
        if id_type not in SEGMENT_ID_FIELD:
            raise InvalidRequest(f"id_type is one of {', '.join(SEGMENT_ID_FIELD)}", field="id_type")
        return [distinct_id], record, "distinct_id", cast(IdType, id_type)

    return await _assign(api, request, key, asked)


# A question, not a creation: 200.
@post("/v1/experiments/{key:str}/assign", status_code=200, opt={openapi.BODY: AssignBody})
async def assign_many(request: Request, state: State, key: FromPath[str]) -> Assignments:
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def asked() -> Asked:
        data = decode_json(body, AssignBody)
        if not 1 <= len(data.distinct_ids) <= MAX_ASSIGN:
            raise InvalidRequest(f"ask about 1 to {MAX_ASSIGN} ids at once, not {len(data.distinct_ids)}",
                                 field="distinct_ids")
        return data.distinct_ids, data.record, "distinct_ids", data.id_type

    return await _assign(api, request, key, asked)


async def _assign(api: ApiContext, request: Request, key: str, asked: Callable[[], Asked]) -> Assignments:
    answer, submitted = await anyio.to_thread.run_sync(_assignments, api, request, key, asked)
    if submitted is None:
        return answer
    await asyncio.wait([asyncio.wrap_future(submitted.stored)])
    result = await anyio.to_thread.run_sync(api.ingestor.finish, submitted)
    return msgspec.structs.replace(answer, recorded=result.stored)


def _assignments(api: ApiContext, request: Request, key: str,
                 asked: Callable[[], Asked]) -> tuple[Assignments, Submitted | None]:
    caller = api.authorize(request, "write")  # before the body is decoded: a wrong key learns nothing from it
    distinct_ids, record, field, id_type = asked()
    for i, distinct_id in enumerate(distinct_ids):
        if not 1 <= len(distinct_id) <= MAX_ID_LENGTH:
            raise InvalidRequest(f"a distinct id has 1 to {MAX_ID_LENGTH} characters",
                                 field=field if field == "distinct_id" else f"{field}[{i}]")
    experiment = experiments.get(api.runtime.clickhouse, caller.project_id, key)
    definition = experiment.definition
    variants = assign_all(experiment.key, definition.variants, distinct_ids)
    now = now_utc()
    running = definition.starts <= now and (definition.ends is None or now < definition.ends)
    answer = Assignments(experiment.key, running, [Assignment(d, v) for d, v in zip(distinct_ids, variants)])
    if not record:
        return answer, None
    messages = [decode_message(msgspec.json.encode({
        "type": "track", "event": definition.exposure_event, SEGMENT_ID_FIELD[id_type]: distinct_id,
        "messageId": _exposure_id(experiment.key, distinct_id, variant),
        "properties": {"experiment": experiment.key, "variant": variant}}), i)
        for i, (distinct_id, variant) in enumerate(zip(distinct_ids, variants))]
    return answer, api.ingestor.submit(messages, Source(caller.project_id, now, client_ip(request)))


def _exposure_id(key: str, distinct_id: str, variant: str) -> str:
    digest = hashlib.sha256(f"{key}\0{distinct_id}\0{variant}".encode()).hexdigest()[:32]
    return f"exposure-{digest}"


ROUTES = [list_experiments, get_experiment, create_experiment, replace_experiment, delete_experiment,
          assign_one, assign_many]
