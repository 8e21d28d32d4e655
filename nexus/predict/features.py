"""Per-person features as of a cutoff instant, in one ClickHouse query: the one definition that training and
scoring both use, so a model sees at scoring time exactly what it was trained on.

Definitions. Only events with `ts < cutoff` enter; persons are resolved through identity links as the
analyses resolve them (nexus.analyses.persons: the live link of each distinct id, else the id itself), and
a person is a row when they have at least one event before the cutoff. An event's age is `cutoff − ts` in
milliseconds (≥ 1) and its day `(age − 1) div 86,400,000`, so day 0 is the 24 hours before the cutoff and
"the last N days" are days 0 … N−1 (cutoff − N days ≤ ts < cutoff).

- `days_since_last`: age of the person's latest event, in days (fractional); `tenure_days`: of the first.
- `events_{7,30,90}d`, `active_days_{7,30,90}d` (distinct days with an event), `events_per_active_day_{30,90}d`
  (intensity: events ÷ active days, 0 with none); `active_days_total` over all the person's history.
- `sessions_{30,90}d` and `session_minutes_90d` (mean session length): the person's events of the last 90
  days in time order, split where the gap to the previous one is over 30 minutes (as the sessions analysis
  does); a session is cut at the window's start; its length = last − first event. `sessions_30d` counts
  the sessions of the last 30 days' events the same way.
- `distinct_events_90d`: distinct event names in the last 90 days.
- `trend_14d`: (events of days 0–13 − events of days 14–27) ÷ their sum, in [−1, 1], 0 when both are 0.
- `revenue_90d`, `revenue_total`: sums of the numeric `revenue` property; `purchases_90d`,
  `purchases_total`: events with a numeric revenue above 0.
- `channel`: of the first event, its `utm_source`, else its referrer class; `device` and `country`: of the
  latest event; `plan`: the `plan` property of the latest event carrying one ('' if none did). Ties in
  time go to the value with the smaller (first) or larger (latest) CRC-32, so the answer never depends on
  storage order. These come from events, not from person traits, because traits hold today's value, which
  may postdate the cutoff.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from clickhouse_connect.driver.client import Client

from nexus.analyses.persons import by_person
from nexus.analyses.sql import ENGINE_SETTINGS, PROJECT, Query

DAY_MS = 86_400_000
SESSION_GAP_MS = 30 * 60_000

NUMERIC = [
    "days_since_last", "tenure_days",
    "events_7d", "events_30d", "events_90d",
    "active_days_7d", "active_days_30d", "active_days_90d", "active_days_total",
    "events_per_active_day_30d", "events_per_active_day_90d",
    "sessions_30d", "sessions_90d", "session_minutes_90d",
    "distinct_events_90d", "trend_14d",
    "revenue_90d", "revenue_total", "purchases_90d", "purchases_total",
]
CATEGORICAL = ["channel", "device", "country", "plan"]
FEATURES = NUMERIC + CATEGORICAL

# Per event: what every aggregate below reads. `ms` and `day` are integers so windows are exact.
_EVENTS = f"""
SELECT e.id_key AS id_key, e.distinct_id AS distinct_id, e.event AS event, toUnixTimestamp64Milli(e.ts) AS ms,
       intDiv({{cutoff_ms:Int64}} - ms - 1, {DAY_MS}) AS day,
       ifNull(toFloat64OrNull(toString(e.properties.revenue)), 0) AS revenue,
       if(e.utm_source != '', toString(e.utm_source), toString(e.referrer_class)) AS channel,
       toString(e.device_type) AS device, toString(e.country) AS country, toString(e.properties.plan) AS plan
FROM events AS e
WHERE e.project_id = {PROJECT} AND e.ts < fromUnixTimestamp64Milli({{cutoff_ms:Int64}}, 'UTC')
"""


def _when(value: str) -> str:
    """An event's time, then `value`'s CRC-32, as one number: the first or latest value by time, a tie in
    time going to the smaller or larger CRC-32. One integer key runs argMin/argMax 4-6× faster than a
    (time, value) tuple (measured at 1M events: 0.15 s against 0.75-1.0 s for each such column)."""
    return f"toUInt128(ms) * 4294967296 + CRC32({value})"


def _sessions(times: str) -> str:
    """Sessions among `times` (a sorted array of ms): 1 + gaps over the limit, 0 for no events."""
    return f"if(empty({times}), 0, 1 + arrayCount(g -> g > {SESSION_GAP_MS}, arrayDifference({times})))"


# Per distinct id first, in partial states (-State) that the per-person step merges (-Merge): the events are
# read without joining identities, which then join one row per id instead of every event (persons.by_person).
# Grouped by the sort key's distinct_id. Measured at 1M events on a loaded machine: 2.1 s against 4.0 s for
# the same aggregates over events joined to their persons.
_PER_ID = f"""
SELECT any(id_key) AS id_key, distinct_id, min(ms) AS first_ms, max(ms) AS last_ms,
       countIf(day < 7) AS e7, countIf(day < 30) AS e30, countIf(day < 90) AS e90,
       uniqExactStateIf(day, day < 7) AS d7, uniqExactStateIf(day, day < 30) AS d30,
       uniqExactStateIf(day, day < 90) AS d90, uniqExactState(day) AS d_all,
       groupArrayIf(ms, day < 90) AS t90, uniqExactStateIf(event, day < 90) AS names90,
       countIf(day < 14) AS e14, countIf(day >= 14 AND day < 28) AS e_prev14,
       sumIf(revenue, day < 90) AS r90, sum(revenue) AS r_all,
       countIf(revenue > 0 AND day < 90) AS p90, countIf(revenue > 0) AS p_all,
       argMinState(channel, {_when('channel')}) AS channel_state, argMaxState(device, {_when('device')}) AS device_state,
       argMaxState(country, {_when('country')}) AS country_state,
       argMaxStateIf(plan, {_when('plan')}, plan != '') AS plan_state
FROM ({_EVENTS})
GROUP BY distinct_id
"""

_PER_PERSON = by_person(_PER_ID, """
       if(any(ids.person_id) = '', any(x.distinct_id), any(ids.person_id)) AS person_id,
       min(x.first_ms) AS first_ms, max(x.last_ms) AS last_ms,
       sum(x.e7) AS events_7d, sum(x.e30) AS events_30d, sum(x.e90) AS events_90d,
       uniqExactMerge(x.d7) AS active_days_7d, uniqExactMerge(x.d30) AS active_days_30d,
       uniqExactMerge(x.d90) AS active_days_90d, uniqExactMerge(x.d_all) AS active_days_total,
       arraySort(groupArrayArray(x.t90)) AS times_90d, uniqExactMerge(x.names90) AS distinct_events_90d,
       sum(x.e14) AS events_14d, sum(x.e_prev14) AS events_prev_14d,
       sum(x.r90) AS revenue_90d, sum(x.r_all) AS revenue_total, sum(x.p90) AS purchases_90d,
       sum(x.p_all) AS purchases_total,
       argMinMerge(x.channel_state) AS channel, argMaxMerge(x.device_state) AS device,
       argMaxMerge(x.country_state) AS country, argMaxMerge(x.plan_state) AS plan""")

_FEATURES = f"""
SELECT person_id, person AS person_key,
       ({{cutoff_ms:Int64}} - last_ms) / {DAY_MS} AS days_since_last,
       ({{cutoff_ms:Int64}} - first_ms) / {DAY_MS} AS tenure_days,
       events_7d, events_30d, events_90d, active_days_7d, active_days_30d, active_days_90d, active_days_total,
       if(active_days_30d = 0, 0, events_30d / active_days_30d) AS events_per_active_day_30d,
       if(active_days_90d = 0, 0, events_90d / active_days_90d) AS events_per_active_day_90d,
       arrayFilter(m -> m >= {{cutoff_ms:Int64}} - {30 * DAY_MS}, times_90d) AS times_30d,
       {_sessions('times_30d')} AS sessions_30d,
       {_sessions('times_90d')} AS sessions_90d,
       if(sessions_90d = 0, 0,
          arraySum(g -> if(g > {SESSION_GAP_MS}, 0, g), arrayDifference(times_90d)) / sessions_90d / 60000)
           AS session_minutes_90d,
       distinct_events_90d,
       if(events_14d + events_prev_14d = 0, 0,
          (events_14d - events_prev_14d) / (events_14d + events_prev_14d)) AS trend_14d,
       revenue_90d, revenue_total, purchases_90d, purchases_total, channel, device, country, plan
FROM ({_PER_PERSON})
ORDER BY person
"""

_COLUMNS = ["person_id", "person_key", *FEATURES]


def explain(project_id: int, cutoff: datetime) -> Query:
    """The query and its parameters, for snapshots and for ad-hoc inspection."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM ({_FEATURES})"
    return Query(sql, {"project_id": project_id, "cutoff_ms": cutoff_ms(cutoff)})


def extract(client: Client, project_id: int, cutoff: datetime) -> pd.DataFrame:
    """One row per person with an event before `cutoff`: `person_id`, `person_key` and `FEATURES`,
    ordered by `person_key`; numeric features as float64, categorical ones as strings."""
    sql, parameters = explain(project_id, cutoff)
    table = client.query_arrow(sql, parameters=parameters, settings=ENGINE_SETTINGS)
    frame = table.to_pandas()
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    return frame


def cutoff_ms(cutoff: datetime) -> int:
    if cutoff.tzinfo is None:
        raise ValueError("a cutoff must carry its time zone")
    return int(cutoff.timestamp() * 1000)
