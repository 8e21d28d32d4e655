"""Lifecycle: per period, how many persons doing an event are new, returning, resurrecting or dormant.

Definition. Periods are local days, weeks (Monday) or months in the request's time zone overlapping the
date range. A person is active in a period when they did the event (or any event, when none is named),
passing the filters, during it. For each period P of the range, every person active in P is exactly one
of: `new` — P is the first period they were ever active in (all history is read); `returning` — also
active in the period before P; `resurrecting` — not active in the period before P, but active at some
earlier time. `dormant` — persons active in the period before P but not in P (reported as a positive
count; charts usually draw it below zero). Counts are exact, persons resolved through identities.

Breakdown: per value, the same classification from that value's events only (new = first active with
that value), so a person counts under each value they have. The top `limit` values by persons, then
`breakdown.OTHER` from the events of all other values; the top-level counts are everyone's.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import periods, persons, time_sql
from nexus.analyses.breakdown import OTHER, cells_by_label, per_label
from nexus.analyses.dates import DateRange
from nexus.analyses.event_periods import EventPeriodsRequest
from nexus.analyses.filters import all_of, compile_group
from nexus.analyses.periods import Period
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch

STATUSES = ("new", "returning", "resurrecting", "dormant")


class LifecycleRequest(EventPeriodsRequest, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The event, filters, period and range to classify persons over."""


class LifecycleBreakdown(msgspec.Struct, frozen=True):
    breakdown: str  # a value, or breakdown.OTHER
    new: list[int]
    returning: list[int]
    resurrecting: list[int]
    dormant: list[int]


class LifecycleResult(msgspec.Struct, frozen=True):
    period: Period
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    periods: list[date]  # local start dates
    new: list[int]
    returning: list[int]
    resurrecting: list[int]
    dormant: list[int]
    breakdowns: list[LifecycleBreakdown] = []  # with a breakdown: most active first, OTHER last


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = LifecycleRequest
Result = LifecycleResult


def run(client: Client, project_id: int, request: LifecycleRequest, *,
        now: datetime | None = None) -> LifecycleResult:
    scope = scope_of(client, project_id, request, now)
    covered = periods.covering(scope.span, request.period, scope.timezone)
    found = cells_by_label(fetch(client, _query(scope, request)))  # {label: {(period, status): persons}}

    def counts(cells: dict[tuple[date, str], int]) -> dict[str, list[int]]:
        return {status: [cells.get((p, status), 0) for p in covered] for status in STATUSES}

    breakdowns = [LifecycleBreakdown(label, **counts(cells)) for label, cells in found.items() if label is not None]
    active = {label: sum(n for (_, status), n in cells.items() if status != "dormant") for label, cells in found.items()}
    breakdowns.sort(key=lambda b: (b.breakdown == OTHER, -active[b.breakdown], b.breakdown))
    return LifecycleResult(request.period, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                           covered, **counts(found.get(None, {})), breakdowns=breakdowns)


def explain(client: Client, project_id: int, request: LifecycleRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def _query(scope: AnalysisScope, request: LifecycleRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    tz = scope.timezone
    covered = periods.covering(scope.span, request.period, tz)
    first, last = params.add(covered[0], "Date"), params.add(covered[-1], "Date")
    # One period before the range is read too: it decides returning vs resurrecting, and dormancy in
    # the range's first period.
    before = params.add(periods.starts_at(periods.shift(covered[0], request.period, -1), tz), UTC_TIME)
    end = params.add(periods.starts_at(periods.shift(covered[-1], request.period, 1), tz), UTC_TIME)
    event = "1" if request.event is None else f"e.event = {params.add(request.event, 'String')}"
    period = time_sql.period(request.period, "e.ts", params.add(tz, "String"))
    per_id = (
        f"SELECT {persons.ID_KEY} AS id_key, {request.bd(params)} AS bd, min({period}) AS first_seen,"
        f" groupUniqArrayIf({period}, e.ts >= {before}) AS active\n"
        f"FROM events AS e\n{request.joins()}\n"
        f"WHERE e.project_id = {PROJECT} AND e.ts < {end} AND {all_of(event, compile_group(request.where, params))}\n"
        f"GROUP BY id_key, bd"
    )
    merged = request.per_person(per_id, "min(first_seen) AS first_seen, groupUniqArrayArray(active) AS active")
    labelled = per_label(merged, request.breakdown,
                         "min(first_seen) AS first_ever, groupUniqArrayArray(active) AS seen", params)
    prev, nxt = time_sql.period_after(request.period, "a", -1), time_sql.period_after(request.period, "a", 1)
    statuses = (
        f"arrayConcat("
        f"arrayMap(a -> (a, if(a = first_ever, 'new', if(has(seen, {prev}), 'returning', 'resurrecting'))),"
        f" arrayFilter(a -> a BETWEEN {first} AND {last}, seen)),"
        f" arrayMap(a -> ({nxt}, 'dormant'), arrayFilter(a -> {nxt} BETWEEN {first} AND {last}"
        f" AND NOT has(seen, {nxt}), seen)))"
    )
    return params.query(
        f"SELECT label, is_total, status.1 AS p, status.2 AS kind, count()\n"
        f"FROM (SELECT label, is_total, arrayJoin({statuses}) AS status FROM ({labelled}))\n"
        f"GROUP BY label, is_total, p, kind"
    )
