"""Which analyses exist: kind → module, so the API, dashboard, jobs and CLI dispatch without an if-chain.

Every module has `Request` (a frozen msgspec Struct the body decodes into), `Result`, and
`run(client, project_id, request, *, now=None) -> Result` and `explain(...) -> Query` (the SQL and its
bound parameters, for `?explain=1`).
"""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import funnel_persons, funnels, lifecycle, retention, sessions, stickiness, trends
from nexus.analyses.query import Query
from nexus.errors import InvalidRequest, NotFound, reason_and_field

ANALYSES: dict[str, ModuleType] = {
    "trends": trends,
    "funnel": funnels,
    "funnel_persons": funnel_persons,
    "retention": retention,
    "sessions": sessions,
    "stickiness": stickiness,
    "lifecycle": lifecycle,
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
        return msgspec.json.decode(body, type=request_type)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"invalid {kind} request: {e}", field=reason_and_field(e)[1] or None) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"invalid {kind} request: {e}") from None
    except RecursionError:
        raise InvalidRequest(f"invalid {kind} request: nested too deeply") from None


def run(client: Client, project_id: int, kind: str, request: msgspec.Struct, *,
        now: datetime | None = None) -> msgspec.Struct:
    return module(kind).run(client, project_id, request, now=now)


def explain(client: Client, project_id: int, kind: str, request: msgspec.Struct, *,
            now: datetime | None = None) -> Query:
    return module(kind).explain(client, project_id, request, now=now)
