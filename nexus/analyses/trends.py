"""Trends: a metric of the events matching each series, per time bucket, optionally broken down and
compared with the previous period.

Definition. For each series, the events of the project in `[start, end)` of the date range, of the
series' event (any event when none is named), passing the request's and the series' filters; grouped
by local bucket of `interval` in the request's time zone (default: the project's); each bucket's value
is the series' metric from the catalogue (`metric_catalogue.CATALOGUE`) over its events. Empty buckets
are 0 for counts and sums, None for averages, extremes and quantiles. `total` is the metric over the
whole range (a distinct count of the range, not a sum of buckets). With `breakdown`, one line per value among the top
`limit` by number of events in the range plus one for `breakdown.OTHER`; with `compare`, the same lines
for the period just before (`dates.previous`), with those same top values.

Source. Answered from `events_hourly`/`events_daily` when the question allows it (see
`trends_rollup`), else from raw events; `source` forces one ("rollup" fails when it cannot apply).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import dates, persons, time_sql, trends_rollup
from nexus.analyses.breakdown import OTHER, ranked
from nexus.analyses.dates import DateRange, Interval, Span
from nexus.analyses.filters import all_of, compile_group
from nexus.analyses.metric_catalogue import metric
from nexus.analyses.properties import Property
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.analyses.trends_request import Series, TrendsRequest
from nexus.errors import InvalidRequest

class TrendLine(msgspec.Struct, frozen=True):
    series: int
    label: str
    breakdown: str | None
    values: list[float | None]
    total: float | None


class TrendsResult(msgspec.Struct, frozen=True):
    interval: Interval
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    source: str  # the table read: events, events_hourly or events_daily
    buckets: list[datetime]
    lines: list[TrendLine]
    previous_buckets: list[datetime] | None = None
    previous: list[TrendLine] | None = None


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = TrendsRequest
Result = TrendsResult


def run(client: Client, project_id: int, request: TrendsRequest, *, now: datetime | None = None) -> TrendsResult:
    scope = scope_of(client, project_id, request, now)
    spans = _spans(scope, request)
    source = _source(request, spans, scope.timezone)
    rows = fetch(client, _query(scope, request, spans, source))
    current = _lines(request, rows, True, dates.bucket_starts(spans[0], request.interval, scope.timezone))
    result = TrendsResult(request.interval, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                          source, dates.bucket_starts(spans[0], request.interval, scope.timezone), current)
    if request.compare:
        buckets = dates.bucket_starts(spans[1], request.interval, scope.timezone)
        result = msgspec.structs.replace(result, previous_buckets=buckets,
                                         previous=_lines(request, rows, False, buckets))
    return result


def explain(client: Client, project_id: int, request: TrendsRequest, *, now: datetime | None = None) -> Query:
    scope = scope_of(client, project_id, request, now)
    spans = _spans(scope, request)
    return _query(scope, request, spans, _source(request, spans, scope.timezone))


def _spans(scope: AnalysisScope, request: TrendsRequest) -> list[Span]:
    spans = [scope.span]
    if request.compare:
        spans.append(dates.previous(scope.span, scope.timezone))
    for span in spans:
        dates.bucket_starts(span, request.interval, scope.timezone)  # refuses too many buckets up front
    return spans


def _source(request: TrendsRequest, spans: list[Span], tz: str) -> str:
    table = None if request.source == "events" else trends_rollup.choose(request, spans, tz)
    if request.source == "rollup" and table is None:
        raise InvalidRequest("this trend cannot be answered from the rollups (see docs/metrics.md: Trends)",
                             field="source")
    return table or "events"


def _query(scope: AnalysisScope, request: TrendsRequest, spans: list[Span], source: str) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    if source == "events":
        parts = [_raw_pass(indexes, request, spans, scope.timezone, params) for indexes in _passes(request.series)]
        return params.query("\nUNION ALL\n".join(parts))
    parts = []
    for index, series in enumerate(request.series):
        inner = trends_rollup.inner_sql(source, series, request, spans, scope.timezone, params)
        # States merged per (period, label, bucket) and per (period, label): the second set is the total.
        parts.append(
            f"SELECT {index} AS series, current, label, bucket, grouping(bucket) AS is_total, "
            f"toFloat64({metric(series.metric).merge('m', rollup=True)}) AS value\n"
            f"FROM ({ranked(inner, request.breakdown, params)})\n"
            f"GROUP BY GROUPING SETS ((current, label, bucket), (current, label))"
        )
    return params.query("\nUNION ALL\n".join(parts))


def _passes(series: list[Series]) -> list[list[int]]:
    """The series read together, as indexes: those of one metric (and property) share a pass over the
    events, since one aggregate serves them all."""
    passes: dict[tuple[str, str | None], list[int]] = {}
    for index, s in enumerate(series):
        passes.setdefault((s.metric, s.property), []).append(index)
    return list(passes.values())


def _raw_pass(indexes: list[int], request: TrendsRequest, spans: list[Span], tz: str, params: Params) -> str:
    """Rows (series, current, label, bucket, is_total, value) of the series at `indexes`, in one read of
    the events: each event counts once in every series it matches.

    Without a breakdown the metric aggregates the events straight into buckets and totals (grouping
    sets); with one, per-value states are ranked first, and those outside the top values merge into
    `OTHER` (a distinct count stays distinct)."""
    chosen = [request.series[i] for i in indexes]
    first = chosen[0]
    measure = metric(first.metric)
    # Resolve persons only when the metric counts them: the identities join is the costliest part.
    joins = persons.joins(measure.argument == "person", request.where, request.breakdown, *(s.where for s in chosen))
    value = Property(first.property).number() if first.property else "CAST(NULL AS Nullable(Float64))"
    amount = f"ifNull({Property(first.property).amount()}, 0)" if first.property else "toDecimal128(0, 9)"
    ranges = " OR ".join(
        f"(e.ts >= {params.add(s.start, UTC_TIME)} AND e.ts < {params.add(s.end, UTC_TIME)})"
        for s in spans
    )
    names = [s.event for s in chosen]
    if all(s.where is None for s in chosen) and None not in names and len(set(names)) == len(names):
        # One event name per series: the name itself is the key (a LowCardinality column groups fastest).
        key, matched = "e.event", f"e.event IN {params.add(names, 'Array(String)')}"
        position = f"indexOf({params.add(names, 'Array(String)')}, toString(key)) - 1"
    else:
        conditions = [all_of("1" if s.event is None else f"e.event = {params.add(s.event, 'String')}",
                             compile_group(s.where, params)) for s in chosen]
        key = f"arrayJoin(arrayFilter((i, c) -> c, range({len(chosen)}), [{', '.join(conditions)}]))"
        matched, position = "(" + " OR ".join(f"({c})" for c in conditions) + ")", "key"
    series = f"{params.add(indexes, 'Array(UInt8)')}[{position} + 1]"
    bucket = time_sql.bucket(request.interval, "e.ts", params.add(tz, "String"))
    bd = request.breakdown.expression(params=params) if request.breakdown else "''"
    rows = (
        f"SELECT {key} AS key, e.ts >= {params.add(spans[0].start, UTC_TIME)} AS current, {bucket} AS bucket,"
        f" {bd} AS bd, {persons.PERSON_KEY if joins.identities else persons.ID_KEY} AS person,"
        f" e.distinct_id AS distinct_id, nullIf(e.session_id, '') AS session, {value} AS value,"
        f" {amount} AS amount\n"
        f"FROM events AS e\n{joins.sql}\n"
        f"WHERE e.project_id = {PROJECT} AND ({ranges}) AND {matched}\n"
        f"  AND {compile_group(request.where, params)}"
    )
    if request.breakdown is None:
        return (
            f"SELECT {series} AS series, current, '' AS label, bucket, grouping(bucket) AS is_total,"
            f" toFloat64({measure.aggregate()}) AS value\n"
            f"FROM ({rows})\n"
            f"GROUP BY GROUPING SETS ((key, current, bucket), (key, current))"
        )
    inner = (f"SELECT key, current, bd, bucket, {measure.state()} AS m, if(current, count(), 0) AS weight\n"
             f"FROM ({rows})\nGROUP BY key, current, bd, bucket")
    return (
        f"SELECT {series} AS series, current, label, bucket, grouping(bucket) AS is_total,"
        f" toFloat64({measure.merge('m')}) AS value\n"
        f"FROM ({ranked(inner, request.breakdown, params, within='key')})\n"
        f"GROUP BY GROUPING SETS ((key, current, label, bucket), (key, current, label))"
    )


def _lines(request: TrendsRequest, rows: list[tuple], current: bool, buckets: list[datetime]) -> list[TrendLine]:
    position = {dates.key(b): i for i, b in enumerate(buckets)}
    lines: dict[tuple[int, str], dict] = {}
    if request.breakdown is None:  # a line per series even when no event matched
        for index in range(len(request.series)):
            lines[(index, "")] = {"values": [None] * len(buckets), "total": None}
    for series, is_current, label, bucket, is_total, value in rows:
        if bool(is_current) != current:
            continue
        line = lines.setdefault((series, label), {"values": [None] * len(buckets), "total": None})
        value = None if value != value else value  # NaN (avg of nothing) reads as no value
        if is_total:
            line["total"] = value
        else:
            line["values"][position[bucket]] = value
    result = []
    for (series, label), line in sorted(lines.items(), key=lambda item: _order(item, request)):
        spec = request.series[series]
        zero = 0.0 if metric(spec.metric).function in ("count", "uniq", "uniqExact", "sum") else None
        values = [zero if v is None else v for v in line["values"]]
        result.append(TrendLine(series, spec.label or spec.event or "all events",
                                label if request.breakdown else None, values,
                                zero if line["total"] is None else line["total"]))
    return result


def _order(item: tuple[tuple[int, str], dict], request: TrendsRequest) -> tuple:
    (series, label), line = item
    return (series, label == OTHER, -(line["total"] or 0), label)
