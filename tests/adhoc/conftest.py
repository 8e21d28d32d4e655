"""Two projects side by side on the real engine: alpha (the caller) and beta (the one it must never
see), each with demo events, persons and identities, rollups fed by the materialized views, and rows
carrying marker strings so that any leak of beta's data into alpha's answers is visible."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import msgspec
import pytest
from clickhouse_connect.driver.client import Client

from nexus.adhoc import saved
from nexus.adhoc.sandbox import QueryService
from nexus.demo.load import load
from nexus.meta import keys, projects
from nexus.store.client import parse_url
from tests.conftest import DEMO_END

# Strings that exist only in beta's rows: finding one in an answer to alpha is a leak.
BETA_MARKERS = ("beta_secret_event", "beta-victim", "beta.example")


class World(msgspec.Struct):
    service: QueryService
    alpha: int
    beta: int
    alpha_events: int
    beta_key_hash: str
    beta_query_id: str


def insert_marked_rows(client: Client, project_id: int, event: str, distinct_id: str, url: str, count: int) -> None:
    """`count` events (in two sessions) of one person, with that person and the id linking them."""
    ts = datetime(2026, 10, 20, 12, 0, tzinfo=timezone.utc)
    rows = [[project_id, ts.replace(minute=i % 60), event, "track", f"{distinct_id}-{i}", distinct_id,
             f"{distinct_id}-session-{i % 2}", url] for i in range(count)]
    client.insert("events", rows, column_names=["project_id", "ts", "event", "type", "message_id", "distinct_id",
                                                 "session_id", "url"])
    person = uuid.uuid5(uuid.NAMESPACE_URL, distinct_id)
    client.insert("persons", [[project_id, person, ts, 1, 0]],
                  column_names=["project_id", "person_id", "created_at", "version", "is_deleted"])
    client.insert("identities", [[project_id, distinct_id, person, 1, 0]],
                  column_names=["project_id", "distinct_id", "person_id", "version", "is_deleted"])


@pytest.fixture(scope="module")
def service(client: Client, database_url: str) -> QueryService:
    return QueryService(parse_url(database_url), client)


@pytest.fixture(scope="module")
def world(client: Client, service: QueryService) -> World:
    alpha = projects.create(client, "alpha").project_id
    beta = projects.create(client, "beta").project_id
    load(client, alpha, 3000, seed=1, end=DEMO_END)
    load(client, beta, 2000, seed=2, end=DEMO_END)
    insert_marked_rows(client, alpha, "alpha_event", "alpha-user", "https://alpha.example/home", 5)
    insert_marked_rows(client, beta, "beta_secret_event", "beta-victim", "https://beta.example/secret", 7)
    key, _ = keys.create(client, beta, "admin", "beta's admin key")
    beta_query = saved.create(service, beta, saved.SavedQueryInput(
        "beta secret query", "SELECT count() FROM events WHERE event = 'beta_secret_event'"), key.key_id)
    alpha_events = client.query("SELECT count() FROM events WHERE project_id = {p:UInt32}",
                                parameters={"p": alpha}).result_rows[0][0]
    return World(service, alpha, beta, alpha_events, key.key_hash, beta_query.query_id)
