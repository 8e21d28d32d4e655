"""Retention: of the persons who started in a period, how many came back 0, 1, …, N periods later.

Definition. Periods are local days, weeks (Monday) or months in the request's time zone; the cohort
periods are those overlapping the date range. `start_mode="first_time"` (default): a person's cohort is
the period of their first start event ever (persons whose first start event is before the range are in
no cohort); `"recurring"`: a person belongs to the cohort of every period in which they did the start
event. Cell (cohort, k) = persons of the cohort with a return event in period cohort+k (k = 0..periods;
a return event in the start period counts for k = 0, before or after the start event). Start and return
events are each an event name (or any event, when none is named) with optional filters, plus the
request's filters. Percentages divide by the cohort's size. A cell whose period has not begun at `now`
is None; `average[k]` is the persons-weighted mean over cohorts whose cell k is not None (sum of cells /
sum of those cohorts' sizes). Persons are resolved through identities; counts are exact (`count()` of
one row per person).

Breakdown: a person's row in a cohort takes the value of the start event that put them there (their
first start event in that period; for first-time cohorts, their first ever), or their trait for a person
property. The top `limit` values by persons in cohorts each get the same matrix and curve, the rest are
summed into `breakdown.OTHER`; the top-level cohorts are everyone's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import periods, persons, time_sql
from nexus.analyses.breakdown import OTHER, Breakdown, cells_by_label, everyone, ranked
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.periods import Period
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_PERIODS = 100


class RetentionEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: str | None = None  # None: any event
    where: FilterGroup | None = None


class RetentionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    start: RetentionEvent
    returning: RetentionEvent
    period: Period = "day"
    periods: int = 7
    start_mode: Literal["first_time", "recurring"] = "first_time"
    date_range: DateRange = DateRange()
    timezone: str | None = None
    where: FilterGroup | None = None
    breakdown: Breakdown | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.periods <= MAX_PERIODS:
            raise InvalidRequest(f"periods must be 0..{MAX_PERIODS}", field="periods")


class Cohort(msgspec.Struct, frozen=True):
    period: date  # the local date the cohort's period starts on
    persons: int
    counts: list[int | None]  # k = 0..periods
    percentages: list[float | None]


class RetentionBreakdown(msgspec.Struct, frozen=True):
    breakdown: str  # a value, or breakdown.OTHER
    cohorts: list[Cohort]
    average: list[float | None]


class RetentionResult(msgspec.Struct, frozen=True):
    period: Period
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    cohorts: list[Cohort]  # everyone
    average: list[float | None]
    breakdowns: list[RetentionBreakdown] = []  # with a breakdown: by persons in cohorts, OTHER last


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = RetentionRequest
Result = RetentionResult


def run(client: Client, project_id: int, request: RetentionRequest, *,
        now: datetime | None = None) -> RetentionResult:
    scope = scope_of(client, project_id, request, now)
    found = cells_by_label(fetch(client, _query(scope, request)))  # {label: {(cohort, k): persons}}
    cohorts, average = _matrix(found.get(None, {}), request, scope)
    breakdowns = [RetentionBreakdown(label, *_matrix(cells, request, scope))
                  for label, cells in found.items() if label is not None and request.breakdown]
    breakdowns.sort(key=lambda b: (b.breakdown == OTHER, -sum(c.persons for c in b.cohorts), b.breakdown))
    return RetentionResult(request.period, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                           cohorts, average, breakdowns)


def _matrix(found: dict[tuple[date, int], int], request: RetentionRequest,
            scope: AnalysisScope) -> tuple[list[Cohort], list[float | None]]:
    """The cohorts (k = -1 carries their sizes) and the average curve, from the cells found."""
    cohorts = []
    begun = _begun(scope)
    for start in periods.covering(scope.span, request.period, scope.timezone):
        size = found.get((start, -1), 0)
        counts = [found.get((start, k), 0) if begun(periods.shift(start, request.period, k)) else None
                  for k in range(request.periods + 1)]
        shares = [None if c is None else (c / size if size else 0.0) for c in counts]
        cohorts.append(Cohort(start, size, counts, shares))
    average = []
    for k in range(request.periods + 1):
        seen = [c for c in cohorts if c.counts[k] is not None]
        size = sum(c.persons for c in seen)
        average.append(sum(c.counts[k] for c in seen) / size if size else None)
    return cohorts, average


def explain(client: Client, project_id: int, request: RetentionRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def _query(scope: AnalysisScope, request: RetentionRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    # Per person and cohort: the value of the cohort's first start event (the least value among
    # simultaneous ones); k = -1 carries the cohort's size, k = 0..periods the cells.
    cells = (
        f"SELECT bd, cohort, k, count() AS n, if(k = -1, n, 0) AS weight FROM (\n"
        f"  {person_rows(scope, request, params)})\n"
        f"GROUP BY bd, cohort, k"
    )
    total, having = everyone(request.breakdown, "cohort", "k")
    return params.query(
        f"SELECT label, grouping(label) AS is_total, cohort, k, sum(n)\n"
        f"FROM ({ranked(cells, request.breakdown, params)})\n"
        f"GROUP BY GROUPING SETS ((label, cohort, k), {total}){having}"
    )


def person_rows(scope: AnalysisScope, request: RetentionRequest, params: Params, names: bool = False) -> str:
    """One row per person, cohort and k: cohort (the period's first day), bd (the person's value there), k
    (-1 for being in the cohort, 0..periods for a return k periods later); with `names`, also `name`, the
    person's id."""
    tz = scope.timezone
    cohorts = periods.covering(scope.span, request.period, tz)
    first, last = cohorts[0], cohorts[-1]
    scan_start = params.add(periods.starts_at(first, tz), UTC_TIME)
    cohorts_end = params.add(periods.starts_at(periods.shift(last, request.period, 1), tz), UTC_TIME)
    returns_end = params.add(periods.starts_at(periods.shift(last, request.period, request.periods + 1), tz), UTC_TIME)
    is_start, is_return = (_matches(e, params) for e in (request.start, request.returning))
    # First-time cohorts need every earlier start event (was this the first?), so starts have no lower bound.
    start_window = f"e.ts < {cohorts_end}"
    if request.start_mode == "recurring":
        start_window += f" AND e.ts >= {scan_start}"
    period = time_sql.period(request.period, "e.ts", params.add(tz, "String"))
    first_period, last_period = params.add(first, "Date"), params.add(last, "Date")
    # Start events are kept as their periods; with a breakdown by an event's value, as (period, ms, value),
    # to find the value of each cohort's first start event (sets of tuples cost ~20% more, so only then).
    # A person's trait is the same on all their start events: it is joined once per person instead.
    trait = request.breakdown is not None and request.breakdown.needs_person
    if request.breakdown and not trait:
        bd, start_item = request.breakdown.expression(params=params), "(p, toUnixTimestamp64Milli(e_ts), bd)"
        start_periods = "arrayMap(x -> x.1, start_events)"
        cohort_bd = "arraySort(x -> (x.2, x.3), arrayFilter(x -> x.1 = cohort, start_events))[1].3"
    else:
        bd, start_item, start_periods, cohort_bd = "''", "p", "start_events", "bd" if trait else "''"
    cohorts = request.breakdown if request.breakdown is not None and request.breakdown.source == "cohort" else None
    joins = persons.joins(False, request.where, request.start.where, request.returning.where, cohorts)
    # With names, each id's text rides along to name its person.
    id_text, id_name = (", e.distinct_id AS distinct_id", ", any(distinct_id) AS distinct_id") if names else ("", "")
    per_id = (
        f"SELECT id_key{id_name}, max(is_start) AS started, minIf(p, is_start) AS first_start,"
        f" groupUniqArrayIf({start_item}, is_start AND p >= {first_period}) AS starts,"
        f" groupUniqArrayIf(p, is_return AND e_ts >= {scan_start} AND e_ts < {returns_end}) AS returns\n"
        f"FROM (SELECT {persons.ID_KEY} AS id_key{id_text}, e.ts AS e_ts, {period} AS p, {bd} AS bd,"
        f" ({is_start}) AND {start_window} AS is_start, {is_return} AS is_return\n"
        f"  FROM events AS e\n{joins.sql}\n"
        f"  WHERE {all_of(f'e.project_id = {PROJECT} AND e.ts < {returns_end}', compile_group(request.where, params))}\n"
        f"    AND (is_start OR (is_return AND e.ts >= {scan_start})))\n"
        f"GROUP BY id_key"
    )
    name = ", any(if(ids.person_id = '', x.distinct_id, ids.person_id)) AS name" if names else ""
    merged = persons.by_person(per_id, "max(started) AS has_start, minIf(first_start, started) AS first_ever, "
                                        "groupUniqArrayArray(starts) AS start_events, "
                                        "groupUniqArrayArray(returns) AS return_periods" + name)
    if trait:
        merged = persons.with_trait(merged, request.breakdown.expression())
    cohort_list = (f"if(has_start AND first_ever >= {first_period}, [first_ever], [])"
                   if request.start_mode == "first_time" else f"arrayDistinct({start_periods})")
    gap = time_sql.periods_between(request.period, "cohort", "r")
    periods_bound = params.add(request.periods, "UInt32")
    return (
        f"SELECT cohort, {cohort_bd} AS bd,"
        f" arrayJoin(arrayPushFront(arrayDistinct(arrayFilter(k -> k BETWEEN 0 AND {periods_bound},"
        f" arrayMap(r -> {gap}, return_periods))), -1)) AS k{', name' if names else ''}\n"
        f"  FROM (SELECT arrayJoin(arrayFilter(c -> c <= {last_period}, {cohort_list})) AS cohort, *"
        f" FROM ({merged}))"
    )


def _matches(item: RetentionEvent, params: Params) -> str:
    event = "1" if item.event is None else f"e.event = {params.add(item.event, 'String')}"
    return all_of(event, compile_group(item.where, params))



def _begun(scope: AnalysisScope) -> Callable[[date], bool]:
    """Whether the period starting on a day has begun by the scope's clock; each day worked out once (the
    cells of a matrix share their periods, and a local midnight costs a time-zone conversion)."""
    return cache(lambda day: periods.starts_at(day, scope.timezone) < scope.now)
