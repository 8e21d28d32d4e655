"""Two-phase dedup against real Redis and ClickHouse, including a writer that died mid-commit."""

from __future__ import annotations

from datetime import datetime, timezone

from nexus.ingest.columns import EVENT_SCHEMA, events_table
from nexus.ingest.dedup import Dedup, key


def rows(project_id: int, message_ids: list[str]) -> dict:
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    n = len(message_ids)
    columns = {f: [""] * n for f in EVENT_SCHEMA.names}
    return {**columns, "project_id": [project_id] * n, "message_id": message_ids, "ts": [now] * n,
            "received_at": [now] * n, "sent_at": [None] * n, "skew_ms": [0] * n, "properties": ["{}"] * n}


def test_new_ids_are_claimed_once_and_stored_ids_are_duplicates(client, redis):
    dedup = Dedup(redis.client, 24)
    assert dedup.claim(client, [(1, "a"), (1, "b")]) == [True, True]
    dedup.commit([(1, "a"), (1, "b")])
    assert dedup.claim(client, [(1, "a"), (2, "a"), (1, "c")]) == [False, True, True]
    assert redis.client.ttl(key(1, "a")) > 23 * 3600


def test_a_dead_writers_claims_are_settled_by_clickhouse(client, redis):
    # Given a writer that claimed three ids, inserted two of them, and died before marking them stored
    dead = Dedup(redis.client, 24)
    assert dead.claim(client, [(7, "x"), (7, "y"), (7, "z")]) == [True, True, True]
    client.insert_arrow("events", events_table(rows(7, ["x", "y"])))
    # When another writer sees the same ids again (the SDK resent the batch)
    alive = Dedup(redis.client, 24)
    # Then the inserted ones are duplicates, the lost one is new and now claimed by the live writer
    assert alive.claim(client, [(7, "x"), (7, "y"), (7, "z")]) == [False, False, True]
    assert redis.client.get(key(7, "x")) == b"s" and redis.client.get(key(7, "z")) == f"p:{alive.epoch}".encode()


def test_released_claims_can_be_stored_by_a_retry(client, redis):
    dedup = Dedup(redis.client, 24)
    assert dedup.claim(client, [(9, "r")]) == [True]
    dedup.release([(9, "r")])
    assert dedup.claim(client, [(9, "r")]) == [True]


def test_long_message_ids_are_keyed_by_hash():
    long_id = "m" * 500
    assert len(key(1, long_id)) < 50 and key(1, long_id) != key(1, long_id + "x")
