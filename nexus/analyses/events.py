"""Events: the raw events themselves, newest first, a page at a time — the dashboard's events explorer.

Definition. The events of the range `[start, end)` (default the last 7 days, in the request's time zone)
that pass `where`, of the event `event` when one is named, ordered by time, then message id, both
descending. Message ids are unique per project (ingest stores each once), so (time, message id) is a
total order, and a page ends with a cursor, `next_cursor`, naming its last row: the next request sends it
as `before` and gets the events after that row in this order. An event stored since the first page sorts
before the cursor's row when it is newer, so it never shifts a later page: paging neither repeats nor
skips a row. (One arriving with a time older than the cursor's, a backfill, shows in a later page; one
between rows already read is not shown.) `next_cursor` is None on the last page. Each row: time, name, distinct id, the person the id is linked
to (`person_id`, None for an id never linked by identify or alias: the person is then the id itself),
path, country, browser, os, device type, the message id and the properties as JSON text.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import persons
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """A row's place in the order: its time in Unix milliseconds and its message id."""

    ms: int
    message_id: str

    @classmethod
    def of(cls, row: EventRow) -> Cursor:
        return cls((row.timestamp - EPOCH) // MILLISECOND, row.message_id)  # integers: no float rounding

    def encode(self) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, field: str = "before") -> Cursor:
        """The cursor `text` encodes; anything else is refused naming `field`, the request's name for it."""
        refusal = InvalidRequest(f"{field} is not a cursor this list returned (next_cursor)", field=field)
        try:
            cursor = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=cls)
        except (binascii.Error, ValueError, msgspec.ValidationError):  # msgspec.DecodeError is a ValueError
            raise refusal from None
        if not 0 <= cursor.ms < 2 ** 53:
            raise refusal
        return cursor


class EventsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    date_range: DateRange = DateRange()
    timezone: str | None = None
    where: FilterGroup | None = None
    event: str | None = None  # None: any event
    limit: int = 100
    before: str | None = None  # the previous page's next_cursor; None: the first page

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be 1..{MAX_LIMIT}", field="limit")
        if self.before is not None:
            Cursor.decode(self.before)


class EventRow(msgspec.Struct, frozen=True):
    timestamp: datetime
    event: str
    distinct_id: str
    person_id: str | None  # None: the distinct id is linked to no person (it is its own person)
    path: str
    country: str
    browser: str
    os: str
    device_type: str
    message_id: str
    properties: str  # the event's properties, a JSON object as text


class EventsResult(msgspec.Struct, frozen=True):
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    rows: list[EventRow]  # newest first
    next_cursor: str | None  # `before` of the next page; None on the last page


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = EventsRequest
Result = EventsResult


def run(client: Client, project_id: int, request: EventsRequest, *, now: datetime | None = None) -> EventsResult:
    scope = scope_of(client, project_id, request, now)
    found = fetch(client, _query(scope, request))
    rows = [EventRow(*row) for row in found[:request.limit]]
    last = rows[-1] if len(found) > request.limit else None
    return EventsResult(scope.timezone, scope.span.start, scope.span.end, request.date_range, rows,
                        Cursor.of(last).encode() if last else None)


def explain(client: Client, project_id: int, request: EventsRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def _query(scope: AnalysisScope, request: EventsRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    conditions = [f"e.ts >= {params.add(scope.span.start, UTC_TIME)} AND e.ts < {params.add(scope.span.end, UTC_TIME)}"]
    if request.event is not None:
        conditions.append(f"e.event = {params.add(request.event, 'String')}")
    if request.before is not None:
        cursor = Cursor.decode(request.before)
        at = EPOCH + cursor.ms * MILLISECOND
        conditions.append(f"(e.ts, e.message_id) < ({params.add(at, UTC_TIME)}, {params.add(cursor.message_id, 'String')})")
    conditions.append(compile_group(request.where, params))
    # The page is chosen first and only its rows are joined to their persons; person-property filters
    # need the persons (and their traits) of every event they look at, so they are joined before.
    order = "ORDER BY e.ts DESC, e.message_id DESC"
    page = (
        f"SELECT e.ts AS ts, e.event AS event, e.distinct_id AS distinct_id, e.id_key AS id_key, e.path AS path,"
        f" e.country AS country, e.browser AS browser, e.os AS os, e.device_type AS device_type,"
        f" e.message_id AS message_id, e.properties AS properties\n"
        f"FROM events AS e\n{persons.joins(False, request.where).sql}\n"
        f"WHERE e.project_id = {PROJECT} AND {all_of(*conditions)}\n"
        f"{order} LIMIT {params.add(request.limit + 1, 'UInt32')}"
    )
    return params.query(
        f"SELECT e.ts, toString(e.event), e.distinct_id, nullIf(ids.person_id, ''), e.path, toString(e.country),"
        f" toString(e.browser), toString(e.os), toString(e.device_type), e.message_id, toJSONString(e.properties)\n"
        f"FROM ({page}) AS e\n{persons.IDENTITIES_JOIN}\n{order}"
    )
