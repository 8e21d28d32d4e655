"""Event rows → an Arrow table with the events table's column types, ready for insert_arrow."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

_TS = pa.timestamp("ms", tz="UTC")

EVENT_SCHEMA = pa.schema([
    ("project_id", pa.uint32()), ("ts", _TS), ("event", pa.string()), ("type", pa.string()),
    ("message_id", pa.string()), ("distinct_id", pa.string()), ("anonymous_id", pa.string()),
    ("user_id", pa.string()), ("session_id", pa.string()), ("url", pa.string()), ("host", pa.string()),
    ("path", pa.string()), ("referrer", pa.string()), ("referrer_domain", pa.string()),
    ("referrer_class", pa.string()), ("utm_source", pa.string()), ("utm_medium", pa.string()),
    ("utm_campaign", pa.string()), ("utm_term", pa.string()), ("utm_content", pa.string()),
    ("country", pa.string()), ("region", pa.string()), ("city", pa.string()), ("browser", pa.string()),
    ("browser_version", pa.string()), ("os", pa.string()), ("os_version", pa.string()),
    ("device_type", pa.string()), ("library", pa.string()), ("library_version", pa.string()),
    ("ip", pa.string()), ("properties", pa.string()), ("sent_at", _TS), ("received_at", _TS),
    ("skew_ms", pa.int64()),
])


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """One Arrow table from row dicts that carry every EVENT_SCHEMA column."""
    return pa.table(
        [pa.array([row[field.name] for row in rows], field.type) for field in EVENT_SCHEMA],
        schema=EVENT_SCHEMA,
    )
