"""When a trends question can be answered from the rollup tables, and the SQL that reads them.

`events_hourly` (UTC hour × event) serves event counts, distinct ids and revenue sums filtered or broken
down by event name only; `events_daily` (UTC day × event × country, browser, os, device_type,
referrer_class, utm_source) also serves filters and breakdowns on those columns. A rollup row must fall
wholly inside one bucket: so every bucket boundary and both range ends must lie on a whole UTC hour
(hourly) or UTC midnight (daily) — true for UTC and whole-hour-offset zones across DST changes with the
hourly table, false for minute buckets, half-hour zones or ranges starting mid-hour, which read raw
events. Which table is a pure speed choice: `tests/analyses/test_trends.py` checks rollup equals raw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from nexus.analyses import dates, time_sql
from nexus.analyses.dates import Span
from nexus.analyses.filters import FilterGroup, compile_group
from nexus.analyses.metric_catalogue import ROLLUP_PROPERTY, ROLLUP_SUM, metric
from nexus.analyses.sql import PROJECT, Params
from nexus.analyses.trends_request import Series, TrendsRequest
from nexus.event_columns import DAILY, HOURLY, dimensions


def choose(request: TrendsRequest, spans: Sequence[Span], tz: str) -> str | None:
    """The rollup table that answers `request` exactly, or None when only raw events can."""
    if request.interval == "minute" or not all(rollup_state(s) for s in request.series):
        return None
    groups = [g for g in (request.where, *(s.where for s in request.series)) if g is not None]
    columns = {f.key if f.source == "column" else "" for g in groups for f in g.leaves()}
    if request.breakdown is not None:
        columns.add(request.breakdown.key if request.breakdown.source == "column" else "")
    boundaries = [moment for span in spans for moment in _boundaries(span, request.interval, tz)]
    if columns <= dimensions(HOURLY) and all(_on_utc(m, "hour") for m in boundaries):
        return HOURLY
    if columns <= dimensions(DAILY) and all(_on_utc(m, "day") for m in boundaries):
        return DAILY
    return None


def rollup_state(series: Series) -> str | None:
    chosen = metric(series.metric)
    if chosen.name == "sum" and series.property == ROLLUP_PROPERTY:
        return ROLLUP_SUM
    return chosen.rollup


def inner_sql(table: str, series: Series, request: TrendsRequest, spans: Sequence[Span], tz: str,
              params: Params) -> str:
    """Rows (current, bd, bucket, m, weight) per breakdown value and bucket, read from `table`."""
    column, as_time, _ = _TIME[table]
    bucket = time_sql.bucket(request.interval, as_time, params.add(tz, "String"))
    ranges = " OR ".join(
        f"({column} >= {_bound(table, s.start, params)} AND {column} < {_bound(table, s.end, params)})" for s in spans
    )
    event = "1" if series.event is None else f"event = {params.add(series.event, 'String')}"
    bd = request.breakdown.expression("") if request.breakdown else "''"
    return (
        f"SELECT {column} >= {_bound(table, spans[0].start, params)} AS current, {bd} AS bd, {bucket} AS bucket,"
        f" {rollup_state(series)} AS m, if(current, sum(events), 0) AS weight\n"
        f"FROM {table}\n"
        f"WHERE project_id = {PROJECT} AND ({ranges}) AND {event}\n"
        f"  AND {_filters(request.where, series.where, params)}\n"
        f"GROUP BY current, bd, bucket"
    )


# Per table: its time column, that column as a UTC DateTime (for bucketing), and the type range ends bind as.
_TIME = {HOURLY: ("hour", "hour", "DateTime('UTC')"),
         DAILY: ("day", "toDateTime(day, 'UTC')", "Date")}


def _bound(table: str, moment: datetime, params: Params) -> str:
    # Range ends lie on UTC hours (hourly) or UTC midnights (daily): choose() checked it.
    value = moment if table == HOURLY else moment.astimezone(timezone.utc).date()
    return params.add(value, _TIME[table][2])


def _filters(shared: FilterGroup | None, own: FilterGroup | None, params: Params) -> str:
    return f"{compile_group(shared, params, '')} AND {compile_group(own, params, '')}"


def _boundaries(span: Span, interval: dates.Interval, tz: str) -> list[datetime]:
    """The range ends and every bucket boundary strictly inside the range."""
    inner = dates.bucket_starts(span, interval, tz)[1:]
    return [span.start, span.end, *inner]


def _on_utc(moment: datetime, unit: str) -> bool:
    utc = moment.astimezone(timezone.utc)
    on_hour = utc.minute == 0 and utc.second == 0 and utc.microsecond == 0
    return on_hour and (unit == "hour" or utc.hour == 0)
