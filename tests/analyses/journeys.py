"""Small hand-written journeys, written straight into `events`, `identities` and `persons`."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from nexus.meta import projects

_COLUMNS = ["project_id", "ts", "event", "type", "message_id", "distinct_id", "session_id", "url", "path",
            "country", "utm_source", "properties"]
_names = itertools.count()


def new_project(client: Client, tz: str = "UTC") -> int:
    return projects.create(client, f"journeys-{next(_names)}-{uuid.uuid4().hex[:6]}", tz).project_id


def at(text: str) -> datetime:
    """An ISO time, UTC unless it says otherwise."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def insert_events(client: Client, project_id: int, journeys: dict[str, list[tuple]]) -> None:
    """`{"u1": [("signup", "2026-10-01T10:00", {"plan": "pro"}, {"country": "DE"}), ...]}`: event, time,
    optional properties, optional typed columns. Rows are inserted in the order given, not by time."""
    rows = []
    for distinct_id, events in journeys.items():
        for item in events:
            event, when, properties, columns = (*item, {}, {})[:4]
            values: dict[str, Any] = {
                "project_id": project_id, "ts": at(when), "event": event,
                "type": "page" if event == "page_view" else "track", "message_id": uuid.uuid4().hex,
                "distinct_id": distinct_id, "session_id": "", "url": "", "path": "", "country": "",
                "utm_source": "", "properties": properties, **columns,
            }
            rows.append([values[c] for c in _COLUMNS])
    client.insert("events", rows, column_names=_COLUMNS)


def link(client: Client, project_id: int, ids: dict[str, str], version: int = 1, deleted: bool = False) -> None:
    """Resolve each distinct id to a person (a UUID string)."""
    rows = [[project_id, distinct_id, person, version, int(deleted)] for distinct_id, person in ids.items()]
    client.insert("identities", rows, column_names=["project_id", "distinct_id", "person_id", "version", "is_deleted"])


def person(client: Client, project_id: int, person_id: str, properties: dict[str, Any], version: int = 1) -> None:
    client.insert("persons", [[project_id, person_id, properties, at("2026-01-01T00:00"), version]],
                  column_names=["project_id", "person_id", "properties", "created_at", "version"])
