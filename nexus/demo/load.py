"""Stores generated demo data for a project, refusing a project that already has events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from clickhouse_connect.driver.client import Client

from nexus.demo.generator import generate
from nexus.errors import InvalidRequest


def event_count(client: Client, project_id: int) -> int:
    return client.query("SELECT count() FROM events WHERE project_id = {p:UInt32}", parameters={"p": project_id}).result_rows[0][0]


def load(
    client: Client, project_id: int, events: int, *, seed: int = 42, end: datetime | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Generate and store `events` demo events (and their persons and identities); returns the count."""
    if events < 1:
        raise InvalidRequest("the number of demo events must be at least 1")
    if existing := event_count(client, project_id):
        raise InvalidRequest(f"project {project_id} already has {existing} events: load demo data into a new project")
    stored = 0
    for chunk in generate(project_id, events, seed=seed, end=end):
        client.insert_arrow("events", chunk.events)
        client.insert_arrow("persons", chunk.persons)
        client.insert_arrow("identities", chunk.identities)
        stored += chunk.events.num_rows
        progress(chunk.events.num_rows)
    return stored
