"""Two-phase dedup against real Redis and ClickHouse, including a process that died mid-commit."""

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


def test_new_ids_are_claimed_once_and_committed_ids_are_duplicates(client, redis):
    dedup = Dedup(redis.client, 24)
    first = dedup.claim(client, [(1, "a"), (1, "b")])
    assert first.fresh == [True, True]
    # While the first request is in flight, the same ids from another request are duplicates
    assert dedup.claim(client, [(1, "a")]).fresh == [False]
    dedup.commit(first)
    assert dedup.claim(client, [(1, "a"), (2, "a"), (1, "c")]).fresh == [False, True, True]
    assert redis.client.ttl(key(1, "a")) > 23 * 3600


def test_a_dead_processs_claims_are_settled_by_clickhouse(client, redis):
    # Given a process that claimed three ids, inserted two of them, and died before committing
    dead = Dedup(redis.client, 24)
    assert dead.claim(client, [(7, "x"), (7, "y"), (7, "z")]).fresh == [True, True, True]
    client.insert_arrow("events", events_table(rows(7, ["x", "y"])))
    # When a restarted process sees the same ids again (the SDK resent the batch)
    alive = Dedup(redis.client, 24)
    claim = alive.claim(client, [(7, "x"), (7, "y"), (7, "z")])
    # Then the inserted ones are duplicates, the lost one is new and now the live request's
    assert claim.fresh == [False, False, True] and claim.keys == [(7, "z")]
    assert redis.client.get(key(7, "x")) == b"s" and redis.client.get(key(7, "z")) == claim.mark.encode()
    alive.commit(claim)
    assert alive.claim(client, [(7, "z")]).fresh == [False]


def test_released_claims_can_be_stored_by_a_retry(client, redis):
    dedup = Dedup(redis.client, 24)
    claim = dedup.claim(client, [(9, "r")])
    dedup.release(claim)
    assert dedup.claim(client, [(9, "r")]).fresh == [True]


def test_long_message_ids_are_keyed_by_hash():
    long_id = "m" * 500
    assert len(key(1, long_id)) < 50 and key(1, long_id) != key(1, long_id + "x")
    assert key(1, "a\nb") != key(1, "a") and "\n" not in key(1, "a\nb")
