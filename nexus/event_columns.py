"""The columns of the `events` table, written down once for Python: their order and the Arrow type ingest
sends each in, which of them a request may filter and break down by, and which the rollup tables keep.
(`id_key` is not listed: the engine computes it from `distinct_id`, and no insert sends it.)

The migrations create the tables (`sql/migrations/001_events.sql`, `003_rollups.sql`); a test checks this
list against the migrated tables' `system.columns`, so neither can change without the other.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

HOURLY = "events_hourly"  # UTC hour × event
DAILY = "events_daily"  # UTC day × event and the dimensions analysts break down by most
ROLLUPS = (HOURLY, DAILY)


class EventColumn(NamedTuple):
    name: str
    arrow: pa.DataType  # as ingest sends it
    filterable: bool  # a request may filter and break down by it (`"source": "column"`): Strings only
    rollups: tuple[str, ...] = ()  # the rollup tables that keep it as a dimension


_TIME = pa.timestamp("ms", tz="UTC")  # times travel as integer milliseconds
_TEXT = pa.string()


def _text(name: str, filterable: bool = True, rollups: tuple[str, ...] = ()) -> EventColumn:
    return EventColumn(name, _TEXT, filterable, rollups)


# In the table's order. Ids are filterable (a person's events); the message id and the IP deliberately not.
EVENT_COLUMNS: tuple[EventColumn, ...] = (
    EventColumn("project_id", pa.uint32(), False),
    EventColumn("ts", _TIME, False),
    _text("event", rollups=ROLLUPS),
    _text("type"),
    _text("message_id", filterable=False),
    _text("distinct_id"),
    _text("anonymous_id"),
    _text("user_id"),
    _text("session_id"),
    _text("url"),
    _text("host"),
    _text("path"),
    _text("referrer"),
    _text("referrer_domain"),
    _text("referrer_class", rollups=(DAILY,)),
    _text("utm_source", rollups=(DAILY,)),
    _text("utm_medium"),
    _text("utm_campaign"),
    _text("utm_term"),
    _text("utm_content"),
    _text("country", rollups=(DAILY,)),
    _text("region"),
    _text("city"),
    _text("browser", rollups=(DAILY,)),
    _text("browser_version"),
    _text("os", rollups=(DAILY,)),
    _text("os_version"),
    _text("device_type", rollups=(DAILY,)),
    _text("library"),
    _text("library_version"),
    _text("ip", filterable=False),
    _text("properties", filterable=False),  # JSON in the table; sent as its text
    EventColumn("sent_at", _TIME, False),
    EventColumn("received_at", _TIME, False),
    EventColumn("skew_ms", pa.int64(), False),
)

FILTERABLE = frozenset(c.name for c in EVENT_COLUMNS if c.filterable)


def dimensions(rollup: str) -> frozenset[str]:
    """The event columns the rollup table `rollup` keeps: what it can filter and break down by."""
    return frozenset(c.name for c in EVENT_COLUMNS if rollup in c.rollups)
