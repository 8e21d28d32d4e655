"""The copy's two halves in one engine (two databases), fast: values kept exactly (JSON of every shape,
UUIDs), the project renumbered, job records left behind, a resumed load that stores nothing twice, and a
destination that differs found by the verification."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest

from nexus.demo.load import load as load_demo
from nexus.jobs import store as jobs
from nexus.meta import projects
from nexus.store import json_insert, transfer
from nexus.store.database import open_database

END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SHAPES = [{"nested": {"a": [1, 2.5, "x"]}, "big": 9007199254740993}, {"date_like": "2024-13-45", "flag": True},
          {}, {"n": None, "list": [[]], "s": "1"}]


@pytest.fixture(scope="module")
def destination(database_url: str) -> Iterator:
    client = open_database(database_url.split("?")[0] + "?database=t_transfer_destination")
    projects.create(client, "first")  # so the copied project is not the destination's project 1
    yield client
    client.command("DROP DATABASE t_transfer_destination SYNC")


@pytest.fixture(scope="module")
def shop(client) -> int:
    project_id = projects.create(client, "shop").project_id
    load_demo(client, project_id, 800, end=END, seed=2)
    rows = pa.table({"project_id": pa.array([project_id] * len(SHAPES), pa.uint32()),
                     "ts": pa.array([END] * len(SHAPES), pa.timestamp("ms", tz="UTC")),
                     "event": ["shaped"] * len(SHAPES), "message_id": [f"shape-{i}" for i in range(len(SHAPES))],
                     "properties": [msgspec.json.encode(p).decode() for p in SHAPES]})
    json_insert.insert(client, "events", rows)
    jobs.create(client, project_id, "export", msgspec.Struct(), "k_test")
    return project_id


def test_a_copy_is_equal_and_a_resumed_load_stores_nothing_twice(client, destination, shop, tmp_path: Path):
    staging = tmp_path / "staging"
    transfer.export(client, "shop", staging, lambda line: None)
    exported = transfer.read_lines(staging / "exported.jsonl", transfer.Slice)
    assert "jobs" not in {s.table for s in exported} and "events_daily" not in {s.table for s in exported}
    # Given a load that stopped after its first batches (its journal cut there)
    project_id = transfer.load(destination, staging, lambda n: None, batch_rows=100)
    assert project_id == 2
    journal = (staging / "loaded.jsonl").read_bytes().splitlines(keepends=True)
    events = [line for line in journal if b'"events"' in line]
    (staging / "loaded.jsonl").write_bytes(b"".join(journal[: journal.index(events[2])]))
    destination.command("DELETE FROM events WHERE project_id = 2 AND message_id IN (SELECT message_id FROM events "
                        "WHERE project_id = 2 ORDER BY message_id LIMIT 1)")  # a batch half there cannot be settled
    with pytest.raises(transfer.CopyMismatch, match="rows where"):
        transfer.load(destination, staging, lambda n: None)
    destination.command("TRUNCATE TABLE events")
    destination.command("TRUNCATE TABLE events_daily")
    destination.command("TRUNCATE TABLE events_hourly")
    destination.command("TRUNCATE TABLE sessions")
    (staging / "loaded.jsonl").write_bytes(b"".join(line for line in journal if b'"events"' not in line))
    # When the load runs again
    assert transfer.load(destination, staging, lambda n: None) == 2
    # Then every slice equals the source's, JSON values of every shape included, and nothing is twice
    assert transfer.verify(destination, staging, 2) == []
    shaped = destination.query("SELECT toJSONString(properties) FROM events WHERE project_id = 2 AND event = 'shaped' "
                               "ORDER BY message_id").result_rows
    assert shaped == client.query("SELECT toJSONString(properties) FROM events WHERE project_id = {p:UInt32} AND "
                                  "event = 'shaped' ORDER BY message_id", parameters={"p": shop}).result_rows
    assert destination.query("SELECT count() FROM jobs WHERE project_id = 2").result_rows == [(0,)]
    assert [p.name for p in projects.list_all(destination)] == ["first", "shop"]


def test_a_destination_that_differs_is_named_by_the_verification(client, destination, shop, tmp_path: Path):
    staging = tmp_path / "staging"
    transfer.export(client, str(shop), staging, lambda line: None)
    (staging / "target.json").write_bytes(msgspec.json.encode(transfer.Target(2, 50_000)))
    destination.command("ALTER TABLE events UPDATE event = 'changed' WHERE project_id = 2 AND event = 'shaped' "
                        "SETTINGS mutations_sync = 1")
    problems = transfer.verify(destination, staging, 2)
    assert len(problems) == 1 and problems[0].startswith("events (202611): 4 rows (checksum")
