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

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, NamedTuple

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
WINDOW_ROWS = 200_000  # rows sorted at once (16 columns with properties: ~100 MB in the engine)
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


def windows(client: Client, project_id: int, request: EventRowsRequest, *, now: datetime | None = None,
            rows: int = WINDOW_ROWS) -> list[Window]:
    """The slice as consecutive windows of whole UTC days, each of at most about `rows` rows (a day with
    more is a window of its own), in time order; days without rows are left out. Each window is sorted on
    its own: the table is ordered by person, not time, so one ORDER BY over a whole slice of millions of
    rows would hold them all in memory (10M demo events passed the default 1 GB query memory limit)."""
    scope = scope_of(client, project_id, request, now)
    days = fetch(client, _query(scope, request, request_days=True))
    found: list[Window] = []
    start, size = None, 0
    for day, count in days:
        if start is not None and size + count > rows:
            found.append(Window(_query(scope, request, _day(start), _day(day)), size))
            start, size = None, 0
        start = day if start is None else start
        size += count
    if start is not None:
        found.append(Window(_query(scope, request, _day(start), _day(days[-1][0]) + timedelta(days=1)), size))
    return found


def empty(client: Client, project_id: int, request: EventRowsRequest, *, now: datetime | None = None) -> Query:
    """A query of the slice's columns with no rows (a file of an empty slice still has its header)."""
    scope = scope_of(client, project_id, request, now)
    return _query(scope, request, scope.span.start, scope.span.start)


class Window(NamedTuple):
    query: Query  # its rows, sorted by time and message id
    rows: int  # how many it has


def _day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _query(scope: AnalysisScope, request: EventRowsRequest, start: datetime | None = None, end: datetime | None = None,
           *, request_days: bool = False) -> Query:
    """The rows of the slice between `start` and `end` (within its span), or with `request_days` the rows
    per UTC day."""
    params = Params(scope.project_id, scope.cohorts)
    start = max(start, scope.span.start) if start else scope.span.start
    end = min(end, scope.span.end) if end else scope.span.end
    conditions = [f"e.ts >= {params.add(start, UTC_TIME)} AND e.ts < {params.add(end, UTC_TIME)}",
                  compile_group(request.where, params)]
    if request.events:
        conditions.append(f"e.event IN {params.add(request.events, 'Array(String)')}")
    selected = ", ".join(f"{_expression(name)} AS {name}" for name in request.columns)
    joins = persons.joins(not request_days and "person_id" in request.columns, request.where)
    where = f"FROM events AS e\n{joins.sql}\nWHERE e.project_id = {PROJECT} AND {all_of(*conditions)}"
    if request_days:
        return params.query(f"SELECT toDate(e.ts, 'UTC') AS day, count() {where}\nGROUP BY day ORDER BY day")
    return params.query(f"SELECT {selected}\n{where}\nORDER BY e.ts, e.message_id")


def _expression(name: str) -> str:
    """A column as the file should hold it: text for LowCardinality ones, whose dictionaries Arrow would
    otherwise carry into every writer."""
    if name in _EXPRESSIONS:
        return _EXPRESSIONS[name]
    return f"toString(e.{name})" if name not in ("ts", "sent_at", "received_at", "skew_ms") else f"e.{name}"
