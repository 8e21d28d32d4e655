"""What a project has tracked, for pickers in the dashboard and API: event names and property names.

Event names and counts come from the `events_daily` rollup (cheap at any volume). Event property names
and their JSON types are read from a sample of recent events — the newest `SAMPLE` of the last
`DAYS` days — so a property that stopped being sent fades out; person property names from up to
`SAMPLE` persons (FINAL). Typed columns are listed as they are (source `column`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.sql import PROJECT, UTC_TIME, Params, fetch
from nexus.event_columns import FILTERABLE

DAYS = 30
SAMPLE = 100_000


class EventName(msgspec.Struct, frozen=True):
    name: str
    events: int  # all time
    last_seen: date  # UTC day


class PropertyName(msgspec.Struct, frozen=True):
    key: str
    source: str  # event, person or column
    types: list[str]  # ClickHouse JSON types seen (Int64, Float64, String, Bool, …); ["String"] for columns
    seen: int | None = None  # how many of the sampled events (or persons) carry it; None for typed columns


def event_names(client: Client, project_id: int) -> list[EventName]:
    """Every event name of the project, most frequent first."""
    params = Params(project_id)
    rows = fetch(client, params.query(
        f"SELECT event, sum(events) AS n, max(day) FROM events_daily WHERE project_id = {PROJECT} "
        f"GROUP BY event ORDER BY n DESC, event"))
    return [EventName(name, int(n), day) for name, n, day in rows]


def properties(client: Client, project_id: int, event: str | None = None, *,
               now: datetime | None = None) -> list[PropertyName]:
    """Property names usable in filters and breakdowns: of `event`'s recent events (or all events),
    then person traits, then typed columns."""
    params = Params(project_id)
    since = (now or datetime.now(timezone.utc)) - timedelta(days=DAYS)
    event_filter = "" if event is None else f" AND event = {params.add(event, 'String')}"
    rows = fetch(client, params.query(
        f"SELECT 'event' AS source, key, groupUniqArray(type), count() FROM (\n"
        f"  SELECT JSONAllPathsWithTypes(properties) AS paths FROM events\n"
        f"  WHERE project_id = {PROJECT} AND ts >= {params.add(since, UTC_TIME)}{event_filter}\n"
        f"  ORDER BY ts DESC LIMIT {params.add(SAMPLE, 'UInt32')})\n"
        f"ARRAY JOIN mapKeys(paths) AS key, mapValues(paths) AS type GROUP BY key\n"
        f"UNION ALL\n"
        f"SELECT 'person', key, groupUniqArray(type), count() FROM (SELECT JSONAllPathsWithTypes(properties) AS paths\n"
        f"  FROM persons FINAL WHERE project_id = {PROJECT} LIMIT {params.add(SAMPLE, 'UInt32')})\n"
        f"ARRAY JOIN mapKeys(paths) AS key, mapValues(paths) AS type GROUP BY key"))
    found = sorted((PropertyName(key, source, sorted(types), int(seen)) for source, key, types, seen in rows),
                   key=lambda p: (p.source != "event", p.key))
    return found + [PropertyName(column, "column", ["String"]) for column in sorted(FILTERABLE)]
