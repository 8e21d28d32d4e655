"""Event rows: a slice of a project's raw events (a date range, filters, the columns asked for), oldest
first, for exports. Unlike the events explorer (nexus.analyses.events) it has no page size: the result
streams from the engine in Arrow batches, whatever its length.

Definition. The events of the range `[start, end)` (default the last 7 days, in the request's time zone)
that pass `where`, of the events named in `events` when any are, ordered by time, then message id. Each
row holds the `columns` asked for, in that order: any event column but the project and the IP, plus
`person_id` (the person the distinct id is linked to by identify or alias; the id itself when it is linked
to none). `properties` is the event's properties as JSON text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import persons
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest
from nexus.event_columns import EVENT_COLUMNS

_HIDDEN = {"project_id", "ip"}  # the project is the key's own; the IP is not handed out in bulk
COLUMNS: tuple[str, ...] = (*(c.name for c in EVENT_COLUMNS if c.name not in _HIDDEN), "person_id")
DEFAULT_COLUMNS: tuple[str, ...] = ("ts", "event", "distinct_id", "person_id", "session_id", "url", "path",
                                    "referrer", "utm_source", "utm_medium", "utm_campaign", "country", "browser",
                                    "os", "device_type", "properties")
_EXPRESSIONS = {"person_id": persons.PERSON, "properties": "toJSONString(e.properties)"}


class EventRowsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    date_range: DateRange = DateRange()
    timezone: str | None = None
    where: FilterGroup | None = None
    events: Annotated[list[str], msgspec.Meta(max_length=100)] = []  # empty: every event
    columns: Annotated[list[str], msgspec.Meta(min_length=1, max_length=len(COLUMNS))] = msgspec.field(
        default_factory=lambda: list(DEFAULT_COLUMNS))

    def __post_init__(self) -> None:
        for i, name in enumerate(self.columns):
            if name not in COLUMNS:
                raise InvalidRequest(f"columns[{i}]: {name!r} is not an event column (one of {', '.join(COLUMNS)})",
                                     field=f"columns[{i}]")
        if len(set(self.columns)) != len(self.columns):
            raise InvalidRequest("columns: a column is named twice", field="columns")


def query(client: Client, project_id: int, request: EventRowsRequest, *, now: datetime | None = None) -> Query:
    """The SQL of the slice, with its values bound: run it as a stream of Arrow batches."""
    return _query(scope_of(client, project_id, request, now), request)


def count(client: Client, project_id: int, request: EventRowsRequest, *, now: datetime | None = None) -> int:
    """How many rows the slice has (an export's progress counts towards it)."""
    sql, params = _query(scope_of(client, project_id, request, now), request, count=True)
    return int(fetch(client, Query(sql, params))[0][0])


def _query(scope: AnalysisScope, request: EventRowsRequest, count: bool = False) -> Query:
    params = Params(scope.project_id)
    conditions = [f"e.ts >= {params.add(scope.span.start, UTC_TIME)} AND e.ts < {params.add(scope.span.end, UTC_TIME)}",
                  compile_group(request.where, params)]
    if request.events:
        conditions.append(f"e.event IN {params.add(request.events, 'Array(String)')}")
    selected = ", ".join(f"{_expression(name)} AS {name}" for name in request.columns)
    joins = persons.joins(not count and "person_id" in request.columns, request.where)
    where = f"FROM events AS e\n{joins.sql}\nWHERE e.project_id = {PROJECT} AND {all_of(*conditions)}"
    if count:
        return params.query(f"SELECT count() {where}")
    return params.query(f"SELECT {selected}\n{where}\nORDER BY e.ts, e.message_id")


def _expression(name: str) -> str:
    """A column as the file should hold it: text for LowCardinality ones, whose dictionaries Arrow would
    otherwise carry into every writer."""
    if name in _EXPRESSIONS:
        return _EXPRESSIONS[name]
    return f"toString(e.{name})" if name not in ("ts", "sent_at", "received_at", "skew_ms") else f"e.{name}"
