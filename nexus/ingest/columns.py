"""Event columns (one Python list per events-table column, `nexus.event_columns`) → an Arrow table for
insert_arrow."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from nexus.event_columns import EVENT_COLUMNS

EVENT_SCHEMA = pa.schema([(c.name, c.arrow) for c in EVENT_COLUMNS])


def events_table(columns: dict[str, list[Any]]) -> pa.Table:
    """One Arrow table from columns that carry every EVENT_SCHEMA column, all of one length."""
    return pa.table([pa.array(columns[f.name], f.type) for f in EVENT_SCHEMA], schema=EVENT_SCHEMA)


def select(columns: dict[str, list[Any]], keep: list[int]) -> dict[str, list[Any]]:
    return {name: [values[i] for i in keep] for name, values in columns.items()}
