"""Sessions: how many, how long, how deep, how often bounced, where they start and end, per interval.

Definition. A person's events inside the date range, in time order, are split into sessions wherever
the gap to the previous event is longer than `gap_minutes` (default 30; a gap of exactly the limit
does not split). Sessions are computed here from raw events and persons (so a session continues across
an identify that changes the distinct id), not read from the `sessions` table: that rollup is keyed by
the session id the SDK sent, which may be empty and ignores the configured gap. A session crossing a
range end is cut there. A session belongs to the bucket (local, in the request's time zone) of its first
event; `where` and `breakdown` apply to that first event. Duration = last event − first event;
page views = events of type page or screen; a bounce is a session of exactly one event, a page or
screen view. Per bucket: `sessions` (exact count), `avg_duration`/`median_duration` in seconds
(median exact, interpolated), `pages_per_session` (mean page views), `bounce_rate` (bounces / sessions).
`entry_pages`/`exit_pages`: the paths of sessions' first/last page views over the range, top 10 by
sessions (exact counts).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import dates, persons, time_sql
from nexus.analyses.breakdown import OTHER, Breakdown, ranked
from nexus.analyses.dates import DateRange, Interval
from nexus.analyses.filters import FilterGroup, compile_group
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

TOP_PAGES = 10


class SessionsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    date_range: DateRange = DateRange()
    interval: Interval = "day"
    timezone: str | None = None
    where: FilterGroup | None = None
    breakdown: Breakdown | None = None
    gap_minutes: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.gap_minutes <= 24 * 60:
            raise InvalidRequest("gap_minutes must be 1..1440", field="gap_minutes")


class SessionsLine(msgspec.Struct, frozen=True):
    breakdown: str | None
    sessions: list[int]
    avg_duration: list[float | None]
    median_duration: list[float | None]
    pages_per_session: list[float | None]
    bounce_rate: list[float | None]
    total: dict[str, float | None]  # the same five measures over the whole range


class PageCount(msgspec.Struct, frozen=True):
    path: str
    sessions: int


class SessionsResult(msgspec.Struct, frozen=True):
    interval: Interval
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    buckets: list[datetime]
    lines: list[SessionsLine]
    entry_pages: list[PageCount]
    exit_pages: list[PageCount]


MEASURES = ("sessions", "avg_duration", "median_duration", "pages_per_session", "bounce_rate")


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = SessionsRequest
Result = SessionsResult


def run(client: Client, project_id: int, request: SessionsRequest, *, now: datetime | None = None) -> SessionsResult:
    scope = scope_of(client, project_id, request, now)
    buckets = dates.bucket_starts(scope.span, request.interval, scope.timezone)
    position = {dates.key(b): i for i, b in enumerate(buckets)}
    lines: dict[str, dict] = {} if request.breakdown else {"": _empty(len(buckets))}
    entries: dict[str, int] = {}
    exits: dict[str, int] = {}
    for label, bucket, is_total, *values, entry_map, exit_map in fetch(client, _query(scope, request)):
        line = lines.setdefault(label, _empty(len(buckets)))
        values = [None if v is None or v != v else float(v) for v in values]
        if is_total:
            line["total"] = dict(zip(MEASURES, values))
            for found, counts in ((entries, entry_map), (exits, exit_map)):
                for path, n in counts.items():
                    found[path] = found.get(path, 0) + n
        else:
            for name, value in zip(MEASURES, values):
                line[name][position[bucket]] = value
    result = []
    by_rank = sorted(lines.items(), key=lambda item: (item[0] == OTHER, -(item[1]["total"]["sessions"] or 0), item[0]))
    for label, line in by_rank:
        line["sessions"] = [int(v or 0) for v in line["sessions"]]
        result.append(SessionsLine(label if request.breakdown else None, **line))
    return SessionsResult(request.interval, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                          buckets, result, _top(entries), _top(exits))


def explain(client: Client, project_id: int, request: SessionsRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def _query(scope: AnalysisScope, request: SessionsRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    gap = params.add(request.gap_minutes * 60_000, "Int64")
    bd = request.breakdown.expression(params=params) if request.breakdown else "''"
    joins = persons.joins(True, request.where, request.breakdown)
    events = (
        f"SELECT {persons.PERSON_KEY} AS person, (toUnixTimestamp64Milli(e.ts), e.type IN ('page', 'screen'),"
        f" if(e.type IN ('page', 'screen'), e.path, ''), {bd}, {compile_group(request.where, params)}) AS ev\n"
        f"FROM events AS e\n{joins.sql}\n"
        f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scope.span.start, UTC_TIME)}"
        f" AND e.ts < {params.add(scope.span.end, UTC_TIME)}"
    )
    # Per person: events in time order, split where the gap exceeds the limit, one tuple per session:
    # (start ms, duration ms, events, page views, entry path, exit path, breakdown value, passes filters).
    split = (
        f"SELECT arrayJoin(arrayMap(s -> (s[1].1, s[-1].1 - s[1].1, length(s), arrayCount(x -> x.2, s),"
        f" arrayFirst(x -> x.2, s).3, arrayLast(x -> x.2, s).3, s[1].4, s[1].5),"
        f" arraySplit((x, new) -> new, evs, arrayMap((t, p) -> t - p > {gap}, evs.1,"
        f" arrayPushFront(arrayPopBack(evs.1), evs.1[1]))))) AS session\n"
        f"FROM (SELECT person, arraySort(groupArray(ev)) AS evs FROM ({events}) GROUP BY person)"
    )
    start = "fromUnixTimestamp64Milli(session.1, 'UTC')"
    bucket = time_sql.bucket(request.interval, start, params.add(scope.timezone, "String"))
    per_value = (
        f"SELECT session.7 AS bd, {bucket} AS bucket, count() AS weight, countState() AS n,"
        f" avgState(session.2 / 1000) AS d, quantileExactInclusiveState(0.5)(session.2 / 1000) AS md,"
        f" avgState(session.4) AS pages, avgState(session.3 = 1 AND session.4 = 1) AS bounced,"
        f" sumMapState([session.5], [toUInt64(session.5 != '')]) AS entries,"
        f" sumMapState([session.6], [toUInt64(session.6 != '')]) AS exits\n"
        f"FROM ({split})\nWHERE session.8\nGROUP BY bd, bucket"
    )
    return params.query(
        f"SELECT label, bucket, grouping(bucket) AS is_total, countMerge(n), avgMerge(d),"
        f" quantileExactInclusiveMerge(0.5)(md), avgMerge(pages), avgMerge(bounced),"
        f" mapFromArrays(sumMapMerge(entries).1, sumMapMerge(entries).2),"
        f" mapFromArrays(sumMapMerge(exits).1, sumMapMerge(exits).2)\n"
        f"FROM ({ranked(per_value, request.breakdown, params)})\n"
        f"GROUP BY GROUPING SETS ((label, bucket), (label))"
    )


def _empty(buckets: int) -> dict:
    return {**{name: [None] * buckets for name in MEASURES}, "total": dict.fromkeys(MEASURES)}


def _top(counts: dict[str, int]) -> list[PageCount]:
    ranked_pages = sorted(((p, n) for p, n in counts.items() if p and n), key=lambda item: (-item[1], item[0]))
    return [PageCount(p, n) for p, n in ranked_pages[:TOP_PAGES]]
