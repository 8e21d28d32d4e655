"""Projects and keys over HTTP, while the server runs: /v1/projects (the instance admin key creates; an
admin key lists what it administers) and /v1/keys (an admin key: the instance's for any project, a
project's for its own). The rules are nexus.meta.admin's; here the key is checked by a guard before the
body is read, and a revoked key stops working on every process within a second (nexus.api.auth)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery

from nexus.api import openapi
from nexus.api.body import read_body
from nexus.api.context import ApiContext
from nexus.json_input import decode_json
from nexus.meta.admin import Administration, KeyInput, KeyView, LimitsInput, LimitsView, NewKey, ProjectInput
from nexus.meta.projects import Project

_MAX_BODY = 64 * 1024  # admin bodies are a few fields


async def instance_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    await _admit(connection, instance_only=True)


async def any_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    await _admit(connection, instance_only=False)


async def _admit(connection: ASGIConnection, *, instance_only: bool) -> None:
    api: ApiContext = connection.app.state.api
    caller = await anyio.to_thread.run_sync(lambda: api.administrator(connection, instance_only=instance_only))
    connection.scope.setdefault("state", {})["caller"] = caller


def _administration(request: Request) -> Administration:
    return request.app.state.api.administration(request.scope["state"]["caller"])


async def _body(request: Request, kind: Any) -> Any:
    return decode_json(await read_body(request, _MAX_BODY), kind)


_ADMIN = {"admin": Provide(_administration, sync_to_thread=False)}


@post("/v1/projects", opt={openapi.BODY: ProjectInput}, guards=[instance_admin], dependencies=_ADMIN, status_code=201)
async def create_project(request: Request, admin: NamedDependency[Administration]) -> Project:
    data = await _body(request, ProjectInput)
    return await anyio.to_thread.run_sync(admin.create_project, data)


@get("/v1/projects", guards=[any_admin], dependencies=_ADMIN)
async def list_projects(admin: NamedDependency[Administration]) -> list[Project]:
    return await anyio.to_thread.run_sync(admin.list_projects)


@post("/v1/keys", opt={openapi.BODY: KeyInput}, guards=[any_admin], dependencies=_ADMIN, status_code=201)
async def create_key(request: Request, admin: NamedDependency[Administration]) -> NewKey:
    data = await _body(request, KeyInput)
    return await anyio.to_thread.run_sync(admin.create_key, data)


@get("/v1/keys", guards=[any_admin], dependencies=_ADMIN)
async def list_keys(admin: NamedDependency[Administration], project_id: FromQuery[int | None] = None) -> list[KeyView]:
    return await anyio.to_thread.run_sync(admin.list_keys, project_id)


@delete("/v1/keys/{key_id:str}", guards=[any_admin], dependencies=_ADMIN, status_code=200)
async def revoke_key(admin: NamedDependency[Administration], key_id: FromPath[str]) -> KeyView:
    return await anyio.to_thread.run_sync(admin.revoke_key, key_id)


@get("/v1/keys/{key_id:str}/limits", guards=[any_admin], dependencies=_ADMIN)
async def get_limits(admin: NamedDependency[Administration], key_id: FromPath[str]) -> LimitsView:
    return await anyio.to_thread.run_sync(admin.get_limits, key_id)


@put("/v1/keys/{key_id:str}/limits", opt={openapi.BODY: LimitsInput}, guards=[any_admin], dependencies=_ADMIN)
async def set_limits(request: Request, admin: NamedDependency[Administration], key_id: FromPath[str]) -> LimitsView:
    data = await _body(request, LimitsInput)
    return await anyio.to_thread.run_sync(admin.set_limits, key_id, data)


ROUTES = [create_project, list_projects, create_key, list_keys, revoke_key, get_limits, set_limits]
