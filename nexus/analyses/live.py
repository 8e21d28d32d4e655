"""Live: what is happening right now — events and persons of the last minutes, per minute, and the newest
events themselves — for the dashboard's live panel.

Definition. The window is the `minutes` whole UTC minutes ending with the current one, which is included
(as `-Nh` ranges include the current hour): `[start of now's minute − (minutes − 1), start of now's
minute + 1)`. Over the events in it that pass `where`: `events` (`count()`, exact), `persons` (unique
persons after identity resolution, `uniqExact`), `series` (events per minute, one point per minute of the
window, 0 where none) and `latest`, the newest `latest` of them (newest first; events of the same
millisecond by message id), each with its time, name, distinct id, path, country and browser. An event timestamped
after now but inside the current minute (a client clock a little ahead) counts; one after the window does
not. Minutes are UTC minutes, which are every zone's minutes but for zones offset by a fraction of one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import cohort_store, persons
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_MINUTES = 24 * 60
MAX_LATEST = 100
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)


class LiveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    minutes: int = 30
    latest: int = 20
    where: FilterGroup | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.minutes <= MAX_MINUTES:
            raise InvalidRequest(f"minutes must be 1..{MAX_MINUTES}", field="minutes")
        if not 1 <= self.latest <= MAX_LATEST:
            raise InvalidRequest(f"latest must be 1..{MAX_LATEST}", field="latest")


class MinuteCount(msgspec.Struct, frozen=True):
    t: datetime  # the start of the UTC minute
    events: int


class LiveEvent(msgspec.Struct, frozen=True):
    timestamp: datetime
    event: str
    distinct_id: str
    path: str
    country: str
    browser: str


class LiveResult(msgspec.Struct, frozen=True):
    minutes: int
    date_from: datetime  # the window, UTC: the first minute's start
    date_to: datetime  # the end of the current minute (exclusive)
    events: int
    persons: int
    series: list[MinuteCount]  # one per minute of the window, oldest first
    latest: list[LiveEvent]  # newest first


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = LiveRequest
Result = LiveResult


def run(client: Client, project_id: int, request: LiveRequest, *, now: datetime | None = None) -> LiveResult:
    start, end = window(request, now)
    cohorts = cohort_store.loaded(client, project_id, request, end)
    [(events, persons_, (minutes, counts), latest)] = fetch(client, _query(project_id, request, start, end, cohorts))
    per_minute = dict(zip(minutes, counts))
    series = [MinuteCount(t, per_minute.get(int(t.timestamp()), 0))
              for t in (start + timedelta(minutes=i) for i in range(request.minutes))]
    rows = [LiveEvent(EPOCH - negative_ms * MILLISECOND, *columns)
            for negative_ms, _, *columns in latest]
    return LiveResult(request.minutes, start, end, events, persons_, series, rows)


def explain(client: Client, project_id: int, request: LiveRequest, *, now: datetime | None = None) -> Query:
    start, end = window(request, now)
    return _query(project_id, request, start, end, cohort_store.loaded(client, project_id, request, end))


def window(request: LiveRequest, now: datetime | None) -> tuple[datetime, datetime]:
    """The window's UTC bounds: `minutes` whole minutes, the last one holding `now`."""
    end = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    end += timedelta(minutes=1)
    return end - timedelta(minutes=request.minutes), end


def _query(project_id: int, request: LiveRequest, start: datetime, end: datetime, cohorts: Cohorts) -> Query:
    # One row from one read of the window: the counts, the per-minute counts as a pair of arrays (minutes,
    # counts), and the newest events, kept by groupArraySorted, which holds only `latest` of them while it
    # reads: keyed by negated milliseconds, its ascending order is newest first (then by message id).
    params = Params(project_id, cohorts)
    joins = persons.joins(True, request.where)
    newest = (f"groupArraySorted({params.add(request.latest, 'UInt32')})((-toUnixTimestamp64Milli(e.ts),"
              f" e.message_id, toString(e.event), e.distinct_id, e.path, toString(e.country),"
              f" toString(e.browser)))")
    return params.query(
        f"SELECT count(), uniqExact({persons.PERSON_KEY}),"
        f" sumMap([toUInt32(toUnixTimestamp(toStartOfMinute(e.ts)))], [toUInt64(1)]), {newest}\n"
        f"FROM events AS e\n{joins.sql}\n"
        f"WHERE e.project_id = {PROJECT} AND "
        + all_of(f"e.ts >= {params.add(start, UTC_TIME)} AND e.ts < {params.add(end, UTC_TIME)}",
                 compile_group(request.where, params))
    )
