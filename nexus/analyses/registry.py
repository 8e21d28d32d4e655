"""Which analyses exist: kind → module, so the API, dashboard, jobs and CLI dispatch without an if-chain.

Every module has `Request` (a frozen msgspec Struct the body decodes into), `Result`, and
`run(client, project_id, request, *, now=None) -> Result` and `explain(...) -> Query` (the SQL and its
bound parameters, for `?explain=1`).
"""

from __future__ import annotations

import re
from datetime import datetime
from types import ModuleType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import (events, funnel_persons, funnels, lifecycle, live, overview, retention, sessions, stickiness,
                            trends)
from nexus.analyses import person_list, person_profile, retention_persons
from nexus.analyses import paths, paths_persons
from nexus.analyses import goals
from nexus.analyses import experiment
from nexus.analyses import attribution, conversion_paths
from nexus.analyses import cohort_size, cohort_store
from nexus.analyses import predictions
from nexus.analyses.sql import Query
from nexus.errors import InvalidRequest, NotFound, reason_and_field
from nexus.json_input import UnreadableJson, decode_json

_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")
_PATH_PART = re.compile(r"([A-Za-z_$][\w$]*)|\[\d+\]")  # names, and list indexes as ''

ANALYSES: dict[str, ModuleType] = {
    "trends": trends,
    "funnel": funnels,
    "funnel_persons": funnel_persons,
    "retention": retention,
    "sessions": sessions,
    "stickiness": stickiness,
    "lifecycle": lifecycle,
    "overview": overview,
    "live": live,
    "events": events,
    "persons": person_list,
    "person": person_profile,
    "retention_persons": retention_persons,
    "paths": paths,
    "paths_persons": paths_persons,
    "goals": goals,
    "cohort_size": cohort_size,
    "attribution": attribution,
    "conversion_paths": conversion_paths,
    "experiment": experiment,
    "predictions": predictions,
}


def module(kind: str) -> ModuleType:
    try:
        return ANALYSES[kind]
    except KeyError:
        raise NotFound(f"no analysis {kind!r}: use one of {', '.join(ANALYSES)}") from None


def decode(kind: str, body: bytes | str | dict[str, Any]) -> msgspec.Struct:
    """The request of `kind` from a JSON body (or an already parsed dict); malformed input is InvalidRequest."""
    request_type = module(kind).Request
    try:
        if isinstance(body, dict):
            return msgspec.convert(body, request_type)
        return decode_json(body, request_type)
    except (msgspec.ValidationError, UnreadableJson) as e:
        error = e.error if isinstance(e, UnreadableJson) else e
        if not isinstance(error, msgspec.ValidationError):  # malformed, or nested too deeply
            raise InvalidRequest(f"invalid {kind} request: {e.reason}") from None
        field = _field(error)
        choices = _choices(request_type, field)
        hint = f": use one of {', '.join(map(str, choices))}" if choices else ""
        raise InvalidRequest(f"invalid {kind} request: {error}{hint}", field=field or None) from None


def _field(error: msgspec.ValidationError) -> str:
    """The JSON path of the value at fault: msgspec names the object holding a missing or unknown field, and
    the Struct whose `__post_init__` refused a value, which then names its field (`InvalidRequest.field`)."""
    reason, path = reason_and_field(error)
    named = _NAMED_FIELD.search(reason)
    inner = named[1] if named else getattr(error.__cause__, "field", None)
    return f"{path}.{inner}" if path and inner else inner or path


def _choices(request_type: Any, field: str) -> tuple[Any, ...]:
    """The values the enum (Literal) field at `field` (`steps[1].where.match`) accepts, in declared order."""
    kind = request_type
    for name in _PATH_PART.findall(field):
        kind = next((inner for member in _members(kind) if (inner := _inner(member, name)) is not None), None)
        if kind is None:
            return ()
    return tuple(value for member in _members(kind) if get_origin(member) is Literal for value in get_args(member))


def _members(kind: Any) -> tuple[Any, ...]:
    return get_args(kind) if get_origin(kind) in (Union, UnionType) else (kind,)


def _inner(kind: Any, name: str) -> Any:
    """The type of field `name` of a Struct, or of an item of a list when `name` is empty."""
    if not name:
        return get_args(kind)[0] if get_origin(kind) is list else None
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return next((f.type for f in msgspec.structs.fields(kind) if f.encode_name == name), None)
    return None


def run(client: Client, project_id: int, kind: str, request: msgspec.Struct, *,
        now: datetime | None = None) -> msgspec.Struct:
    return module(kind).run(client, project_id, request, now=now)


def explain(client: Client, project_id: int, kind: str, request: msgspec.Struct, *,
            now: datetime | None = None) -> Query:
    return module(kind).explain(client, project_id, request, now=now)


def saved_definitions(client: Client, project_id: int, kind: str, request: msgspec.Struct) -> bytes:
    """The saved definitions a request names by id (goals, cohorts), as stored now; b'' when it names none.
    The read service keys its cache on them too, so an answer is not served after a definition changed."""
    reader = getattr(module(kind), "saved_definitions", None)
    own = reader(client, project_id, request) if reader else b""
    # Cohorts named anywhere in the request (filters, breakdowns), any kind: their definitions and member lists.
    cohorts = cohort_store.load(client, project_id, cohort_store.referenced(request))
    return own + (msgspec.json.encode(sorted(cohorts.values(), key=lambda c: c.cohort_id)) if cohorts else b"")
