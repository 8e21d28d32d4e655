"""The copy's two halves in one engine (two databases), fast: values kept exactly (JSON of every shape,
UUIDs), the project renumbered, job records left behind, a resumed load that stores nothing twice, and a
destination that differs found by the verification; a source that changes between runs or while a slice is read,
a staging directory of another copy, and a key's versions that an insert collapses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from pyarrow import ipc

from nexus.demo.load import load as load_demo
from nexus.errors import InvalidRequest
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
    transfer.record_source(client, staging)
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
    transfer.record_source(client, staging)
    destination.command("ALTER TABLE events UPDATE event = 'changed' WHERE project_id = 2 AND event = 'shaped' "
                        "SETTINGS mutations_sync = 1")
    problems = transfer.verify(destination, staging, 2)
    assert len(problems) == 1 and problems[0].startswith("events (202611): 4 rows (checksum")


def add_events(client, project_id: int, count: int) -> None:
    """`count` events in November 2026 (the slice "(202611)") with message ids of their own."""
    ids = [f"added-{datetime.now().timestamp()}-{i}" for i in range(count)]
    json_insert.insert(client, "events", pa.table({
        "project_id": pa.array([project_id] * count, pa.uint32()), "ts": pa.array([END] * count, pa.timestamp("ms", tz="UTC")),
        "event": ["added"] * count, "message_id": ids, "properties": ["{}"] * count}))


def copied_events(destination, project_id: int) -> int:
    return destination.query("SELECT count() FROM events WHERE project_id = {p:UInt32}",
                             parameters={"p": project_id}).result_rows[0][0]


def test_a_rerun_exports_again_a_slice_that_changed_and_verifies_against_the_source_now(client, destination,
                                                                                         tmp_path: Path):
    # Given a copy that exported November's 2 events and stopped before loading, and 3 more November events since
    project_id = projects.create(client, "growing").project_id
    add_events(client, project_id, 2)
    staging = tmp_path / "staging"
    transfer.export(client, "growing", staging, lambda line: None)
    add_events(client, project_id, 3)
    # When the copy runs again
    transfer.export(client, "growing", staging, lambda line: None)
    copied = transfer.load(destination, staging, lambda n: None)
    # Then the destination has all 5, verified against the source
    transfer.record_source(client, staging)
    assert copied_events(destination, copied) == 5 and transfer.verify(destination, staging, copied) == []
    # And a slice that changes once loaded is refused, and named by a verification against the source as it is now
    add_events(client, project_id, 1)
    transfer.record_source(client, staging)
    assert [p.split(":")[0] for p in transfer.verify(destination, staging, copied)] == ["events (202611)"]
    transfer.export(client, "growing", staging, lambda line: None)
    with pytest.raises(transfer.CopyMismatch, match=r"events \(202611\) changed in the source after this copy loaded"):
        transfer.load(destination, staging, lambda n: None)


def test_the_journal_counts_the_rows_written_to_the_file_when_the_source_takes_writes(client, tmp_path: Path):
    # Given a source that gets an event after the slices were counted, before their rows are read
    project_id = projects.create(client, "live").project_id
    add_events(client, project_id, 2)
    staging = tmp_path / "staging"
    # When the export runs
    transfer.export(client, "live", staging,
                    lambda line: add_events(client, project_id, 1) if line.startswith("total") else None)
    # Then the journal records the 3 rows its file holds, with their checksum
    (part,) = [s for s in transfer.read_lines(staging / "exported.jsonl", transfer.Slice) if s.table == "events"]
    with ipc.open_file(staging / part.file) as reader:
        assert part.rows == reader.read_all().num_rows == 3
    assert transfer.slices(client, "events", "toString(tuple(toYYYYMM(ts)))", project_id, False) == [
        (part.slice, part.rows, part.checksum)]


def test_a_staging_directory_serves_one_copy_and_keeps_what_it_did_not_write(client, shop, tmp_path: Path):
    # Given the staging directory of a copy of another project, or of the same one between other stores
    projects.create(client, "other")
    staging = tmp_path / "staging"
    transfer.export(client, "other", staging, lambda line: None, "chdb:///a → chdb:///b")
    (staging / "notes.txt").write_text("mine")
    # Then a copy of this project there is refused, and so is one between other stores
    with pytest.raises(InvalidRequest, match="holds the copy of project .* give this copy another --staging"):
        transfer.export(client, "shop", staging, lambda line: None, "chdb:///a → chdb:///b")
    with pytest.raises(InvalidRequest, match="holds the copy of project"):
        transfer.export(client, "other", staging, lambda line: None, "chdb:///a → chdb:///c")
    # And a directory with other files and no plan is refused
    with pytest.raises(InvalidRequest, match="holds other files and no copy's plan.json"):
        transfer.export(client, "other", tmp_path, lambda line: None, "chdb:///a → chdb:///b")
    # And removing the staging removes only what the copy wrote
    transfer.remove_staging(staging)
    assert [p.name for p in staging.iterdir()] == ["notes.txt"]


def test_versions_of_a_key_an_insert_collapses_are_copied_as_one_row_and_a_resumed_load_keeps_one(client, destination,
                                                                                                    tmp_path: Path):
    # Given spend entered, then corrected: two versions of one key, not merged yet in the source
    project_id = projects.create(client, "corrected").project_id
    client.command("INSERT INTO ad_spend (project_id, day, channel, campaign, cost, version) SETTINGS "
                   "optimize_on_insert = 0 VALUES ({p:UInt32}, '2026-10-01', 'Paid search', 'fall', 10, 1), "
                   "({p:UInt32}, '2026-10-01', 'Paid search', 'fall', 12, 2)", parameters={"p": project_id})
    staging = tmp_path / "staging"
    transfer.export(client, "corrected", staging, lambda line: None)
    copied = transfer.load(destination, staging, lambda n: None)
    # When a load resumes without the record of the spend's batch
    journal = (staging / "loaded.jsonl").read_bytes().splitlines(keepends=True)
    (staging / "loaded.jsonl").write_bytes(b"".join(line for line in journal if b'"ad_spend"' not in line))
    assert transfer.load(destination, staging, lambda n: None) == copied
    # Then the copy equals the source, read with FINAL: the corrected spend, once
    transfer.record_source(client, staging)
    assert transfer.verify(destination, staging, copied) == []
    assert destination.query("SELECT cost FROM ad_spend FINAL WHERE project_id = {p:UInt32}",
                             parameters={"p": copied}).result_rows == [(12,)]
