"""Saved queries: named ad-hoc SQL of a project, checked when saved, runnable by id with parameters.

A saved query is what a dashboard tile or a scheduled export points at: `resolve` turns an id and a run's
parameters into the SQL and values to hand to QueryService (answer_json, open, batches), so every
consumer runs it in the same sandbox as ad-hoc SQL.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.adhoc.check import Parameter
from nexus.adhoc.sandbox import QueryService
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import records

TABLE = "saved_queries"
_NAME = re.compile(r"^\S(?:.{0,126}\S)?$")
_ID = re.compile(r"^q_[A-Za-z0-9_-]{12}$")


class SavedQuery(msgspec.Struct, frozen=True):
    """The stored record (parameters and default_params as JSON text)."""

    project_id: int
    query_id: str
    name: str
    description: str
    sql: str
    parameters: str
    default_params: str
    created_by: str
    created_at: datetime
    updated_at: datetime


class SavedQueryInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    sql: str
    description: str = ""
    default_params: dict[str, Any] = {}


class SavedQueryView(msgspec.Struct, frozen=True):
    """A saved query as the API shows it."""

    query_id: str
    name: str
    description: str
    sql: str
    parameters: list[Parameter]
    default_params: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


def view(query: SavedQuery) -> SavedQueryView:
    return SavedQueryView(
        query_id=query.query_id, name=query.name, description=query.description, sql=query.sql,
        parameters=msgspec.json.decode(query.parameters, type=list[Parameter]),
        default_params=msgspec.json.decode(query.default_params), created_by=query.created_by,
        created_at=query.created_at, updated_at=query.updated_at,
    )


def create(service: QueryService, project_id: int, data: SavedQueryInput, created_by: str) -> SavedQuery:
    """Check the SQL in the project's sandbox, then store it under a new id."""
    parameters = _validated(service, project_id, data)
    _refuse_duplicate_name(service.client, project_id, data.name, None)
    now = records.now()
    query = SavedQuery(project_id, "q_" + secrets.token_urlsafe(9), data.name, data.description, data.sql,
                       parameters, msgspec.json.encode(data.default_params).decode(), created_by, now, now)
    records.save(service.client, TABLE, query)
    return query


def update(service: QueryService, project_id: int, query_id: str, data: SavedQueryInput) -> SavedQuery:
    """Replace a saved query's name, SQL, description and defaults; its id and author stay."""
    current = get(service.client, project_id, query_id)
    parameters = _validated(service, project_id, data)
    _refuse_duplicate_name(service.client, project_id, data.name, query_id)
    query = msgspec.structs.replace(current, name=data.name, description=data.description, sql=data.sql,
                                    parameters=parameters,
                                    default_params=msgspec.json.encode(data.default_params).decode(),
                                    updated_at=records.now())
    records.save(service.client, TABLE, query)
    return query


def delete(client: Client, project_id: int, query_id: str) -> None:
    records.save(client, TABLE, get(client, project_id, query_id), deleted=True)


def get(client: Client, project_id: int, query_id: str) -> SavedQuery:
    found = records.select(client, TABLE, SavedQuery, "project_id = {p:UInt32} AND query_id = {q:String}",
                           {"p": project_id, "q": query_id}) if _ID.match(query_id) else []
    if not found:
        raise NotFound(f"no saved query {query_id!r} in this project")
    return found[0]


def list_all(client: Client, project_id: int) -> list[SavedQuery]:
    found = records.select(client, TABLE, SavedQuery, "project_id = {p:UInt32}", {"p": project_id})
    return sorted(found, key=lambda q: q.name)


def resolve(client: Client, project_id: int, query_id: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL of a saved query and its parameter values: the run's, else the saved defaults."""
    query = get(client, project_id, query_id)
    return query.sql, {**msgspec.json.decode(query.default_params), **(params or {})}


def _validated(service: QueryService, project_id: int, data: SavedQueryInput) -> str:
    """The SQL's parameters as JSON, after checking the SQL and that every default names one of them."""
    if not _NAME.match(data.name):
        raise InvalidRequest("a saved query's name must be 1-128 characters, not starting or ending with a space")
    checked = service.validate(project_id, data.sql)
    declared = {p.name for p in checked.parameters}
    unknown = sorted(set(data.default_params) - declared)
    if unknown:
        raise InvalidRequest(f"default_params names {unknown[0]!r}, which the SQL does not declare as {{name:Type}}")
    return msgspec.json.encode(list(checked.parameters)).decode()


def _refuse_duplicate_name(client: Client, project_id: int, name: str, query_id: str | None) -> None:
    same = records.select(client, TABLE, SavedQuery, "project_id = {p:UInt32} AND name = {n:String}",
                          {"p": project_id, "n": name})
    if any(q.query_id != query_id for q in same):
        raise InvalidRequest(f"a saved query named {name!r} already exists in this project")
