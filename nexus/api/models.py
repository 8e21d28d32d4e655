"""Prediction models over HTTP: POST /v1/models/{churn|ltv}/train queues a training job (poll it at
/v1/jobs/{job_id}), GET /v1/models lists the project's versions with their metrics, activate and rollback
choose the version that scores, and POST /v1/models/score queues a scoring run now (one also runs daily,
and after every activation).

Reading versions takes a read key; training, activating, rolling back and scoring change what the whole
project sees, so they take an admin key, checked before the body is read. Another project's version is
"not found", exactly as a missing one.
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

import anyio.to_thread
import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.errors import InvalidRequest
from nexus.jobs import store
from nexus.jobs.store import JobView
from nexus.json_input import UnreadableJson, decode_json
from nexus.predict import jobs as predictions
from nexus.predict import versions
from nexus.predict.churn import ChurnRequest
from nexus.predict.jobs import TrainDefinition
from nexus.predict.ltv import LtvRequest
from nexus.predict.versions import VersionView


T = TypeVar("T")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


class Versions(msgspec.Struct, frozen=True):
    versions: list[VersionView]


def _request(body: bytes, request_type: type[T]) -> T:
    """The training request in `body` (an empty body asks for the defaults); a value its own check refuses
    is reported under that check's field, which msgspec's error leaves out."""
    try:
        return decode_json(body.strip() or b"{}", request_type)
    except UnreadableJson as e:
        refused = e.error.__cause__ if e.error is not None else None
        if e.field is None and isinstance(refused, InvalidRequest) and refused.field:
            raise InvalidRequest(str(refused), field=refused.field) from None
        if e.field is None and (unknown := _UNKNOWN_FIELD.search(e.reason)):
            raise InvalidRequest(f"{unknown[1]}: no such setting of a training request", field=unknown[1]) from None
        raise


def _kind(kind: str) -> str:
    if kind not in versions.KINDS:
        raise InvalidRequest("the model kind must be churn or ltv", field="kind")
    return kind


@post("/v1/models/{kind:str}/train", status_code=202, opt={openapi.BODY: openapi.Body(
    {openapi.JSON: (ChurnRequest, LtvRequest)}, "the kind's training request; none for the defaults", required=False)})
async def train(request: Request, state: State, kind: FromPath[str]) -> JobView:
    """Queue the training of a churn or LTV model; the body (optional) sets its horizon, active days, training
    cutoffs, seed and whether the new version activates."""
    api: ApiContext = state.api
    body = await read_body(request, api.settings.max_request_bytes)

    def queue() -> JobView:
        key = api.authorize(request, "admin")
        wanted = _kind(kind)
        definition = (TrainDefinition("churn", churn=_request(body, ChurnRequest)) if wanted == "churn"
                      else TrainDefinition("ltv", ltv=_request(body, LtvRequest)))
        job = predictions.submit_training(api.runtime, key.project_id, definition, key.key_id)
        return store.view(job, api.runtime.redis.client)

    return await anyio.to_thread.run_sync(queue)


@get("/v1/models")
async def list_models(request: Request, state: State,
                      kind: Annotated[str | None, QueryParameter()] = None) -> Versions:
    """The project's model versions, newest first, each with its metrics and whether it is active."""
    api: ApiContext = state.api

    def listing() -> Versions:
        key = api.authorize(request, "read")
        return Versions(versions.listing(api.settings.data_dir, key.project_id, _kind(kind) if kind else None))

    return await anyio.to_thread.run_sync(listing)


@get("/v1/models/{kind:str}/{version_id:str}")
async def get_model(request: Request, state: State, kind: FromPath[str], version_id: FromPath[str]) -> VersionView:
    api: ApiContext = state.api

    def one() -> VersionView:
        key = api.authorize(request, "read")
        version = versions.get(api.settings.data_dir, key.project_id, _kind(kind), version_id)
        current = versions.active(api.settings.data_dir, key.project_id, kind)
        return VersionView(current is not None and current.version_id == version_id, version)

    return await anyio.to_thread.run_sync(one)


@post("/v1/models/{kind:str}/{version_id:str}/activate", status_code=200)
async def activate(request: Request, state: State, kind: FromPath[str], version_id: FromPath[str]) -> VersionView:
    """Make a version the one that scores, and queue a scoring run with it."""
    api: ApiContext = state.api

    def change() -> VersionView:
        key = api.authorize(request, "admin")
        version = versions.activate(api.settings.data_dir, key.project_id, _kind(kind), version_id)
        predictions.submit_scoring(api.runtime, key.project_id, key.key_id)
        return VersionView(True, version)

    return await anyio.to_thread.run_sync(change)


@post("/v1/models/{kind:str}/rollback", status_code=200)
async def roll_back(request: Request, state: State, kind: FromPath[str]) -> VersionView:
    """Make the version active before the current one active again, and queue a scoring run with it."""
    api: ApiContext = state.api

    def change() -> VersionView:
        key = api.authorize(request, "admin")
        version = versions.roll_back(api.settings.data_dir, key.project_id, _kind(kind))
        predictions.submit_scoring(api.runtime, key.project_id, key.key_id)
        return VersionView(True, version)

    return await anyio.to_thread.run_sync(change)


@post("/v1/models/score", status_code=202)
async def score(request: Request, state: State) -> JobView:
    """Queue a scoring run of every person with the active versions now."""
    api: ApiContext = state.api

    def queue() -> JobView:
        key = api.authorize(request, "admin")
        return store.view(predictions.submit_scoring(api.runtime, key.project_id, key.key_id), api.runtime.redis.client)

    return await anyio.to_thread.run_sync(queue)


ROUTES = [train, list_models, get_model, activate, roll_back, score]
