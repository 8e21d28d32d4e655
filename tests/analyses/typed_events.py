"""Hand-written events with any typed column set (referrer, browser, os, device, ...), written straight into
`events`, for the analyses that list those columns (overview, live, events); `journeys` sets fewer."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from tests.analyses.journeys import at

COLUMNS = ["project_id", "ts", "event", "type", "message_id", "distinct_id", "path", "referrer_domain",
           "referrer_class", "country", "browser", "os", "device_type", "properties"]
_DEFAULTS: dict[str, Any] = {"type": "track", "path": "", "referrer_domain": "", "referrer_class": "", "country": "",
                             "browser": "", "os": "", "device_type": "", "properties": {}}


def insert(client: Client, project_id: int, rows: list[dict[str, Any]]) -> None:
    """`[{"distinct_id", "ts" (ISO, UTC unless it says), "event", ...any of COLUMNS}]`; the rest empty, a fresh
    message id unless given."""
    client.insert("events", [[{**_DEFAULTS, "project_id": project_id, "message_id": uuid.uuid4().hex, **row,
                               "ts": at(row["ts"])}[c] for c in COLUMNS] for row in rows], column_names=COLUMNS)


def page(distinct_id: str, ts: str, path: str, **columns: Any) -> dict[str, Any]:
    """A page call's row."""
    return {"distinct_id": distinct_id, "ts": ts, "event": "page_view", "type": "page", "path": path, **columns}


def frame_with(client: Client, project_id: int, persons: pd.DataFrame, columns: str) -> pd.DataFrame:
    """The project's events with `columns` (SQL select list, `ts` and `distinct_id` among them), `person`
    mapped from `persons` (a reference frame with distinct_id and person: `reference.events_frame`)."""
    events = client.query_df(f"SELECT {columns} FROM events WHERE project_id = {{p:UInt32}}", parameters={"p": project_id})
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events["person"] = events["distinct_id"].map(persons.drop_duplicates("distinct_id").set_index("distinct_id")["person"])
    return events
