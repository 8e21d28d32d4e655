"""Stickiness: how many persons did an event on exactly 1, 2, …, N days (or weeks, months) of a range.

Definition. The periods are the local days, weeks (Monday) or months in the request's time zone that
overlap the date range (N of them; a partial first or last period counts as one). A person is active in
a period when they did the event (or any event, when none is named), passing the filters, at a moment
inside the range during that period. `persons[k-1]` = persons active in exactly k of the N periods
(exact counts; persons never active are not counted); `cumulative[k-1]` = persons active in at least k.
Persons are resolved through identities (`persons.by_person`).

Breakdown: per value, the same counts from that value's events only, so a person counts under each
value they have (a person's trait: one). The top `limit` values by persons, then `breakdown.OTHER` from
the events of all other values; the top-level counts are everyone's.
"""

from __future__ import annotations

from datetime import datetime

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


class StickinessRequest(EventPeriodsRequest, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The event, filters, period and range to count active periods of."""


class StickinessBreakdown(msgspec.Struct, frozen=True):
    breakdown: str  # a value, or breakdown.OTHER
    persons: list[int]
    cumulative: list[int]


class StickinessResult(msgspec.Struct, frozen=True):
    period: Period
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    periods: int
    persons: list[int]  # index k-1: active in exactly k periods
    cumulative: list[int]  # index k-1: active in at least k periods
    breakdowns: list[StickinessBreakdown] = []  # with a breakdown: by persons, OTHER last


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = StickinessRequest
Result = StickinessResult


def run(client: Client, project_id: int, request: StickinessRequest, *,
        now: datetime | None = None) -> StickinessResult:
    scope = scope_of(client, project_id, request, now)
    total = len(periods.covering(scope.span, request.period, scope.timezone))
    found = cells_by_label(fetch(client, _query(scope, request)))  # {label: {(days,): persons}}

    def counts(by_days: dict[tuple, int]) -> tuple[list[int], list[int]]:
        exact = [by_days.get((k,), 0) for k in range(1, total + 1)]
        return exact, [sum(exact[k:]) for k in range(total)]

    breakdowns = [StickinessBreakdown(label, *counts(by_days)) for label, by_days in found.items() if label is not None]
    breakdowns.sort(key=lambda b: (b.breakdown == OTHER, -b.cumulative[0] if b.cumulative else 0, b.breakdown))
    return StickinessResult(request.period, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                            total, *counts(found.get(None, {})), breakdowns)


def explain(client: Client, project_id: int, request: StickinessRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def _query(scope: AnalysisScope, request: StickinessRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    event = "1" if request.event is None else f"e.event = {params.add(request.event, 'String')}"
    period = time_sql.period(request.period, "e.ts", params.add(scope.timezone, "String"))
    per_id = (
        f"SELECT {persons.ID_KEY} AS id_key, {request.bd(params)} AS bd, groupUniqArray({period}) AS active\n"
        f"FROM events AS e\n{request.joins()}\n"
        f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scope.span.start, UTC_TIME)}"
        f" AND e.ts < {params.add(scope.span.end, UTC_TIME)} AND {all_of(event, compile_group(request.where, params))}\n"
        f"GROUP BY id_key, bd"
    )
    merged = request.per_person(per_id, "groupUniqArrayArray(active) AS active")
    labelled = per_label(merged, request.breakdown, "length(groupUniqArrayArray(active)) AS days", params)
    return params.query(f"SELECT label, is_total, days, count() FROM ({labelled}) GROUP BY label, is_total, days")
