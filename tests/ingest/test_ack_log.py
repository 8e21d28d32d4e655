"""The writer with the acknowledgement log (NEXUS_ACK=logged), on the real engine and Redis: a request is answered
once logged, a refused event goes to the rejected file, and a replay inserts only what ClickHouse lacks."""

from __future__ import annotations

import json
from pathlib import Path

from nexus.ingest.ack_log import WriteAheadLog
from nexus.ingest.identity import IdentityResolver
from nexus.ingest.writer import GroupCommitWriter, Outcome
from nexus.store import json_insert
from tests.analyses.journeys import new_project
from tests.ingest.test_poison import POISON, _table, count


def logged_writer(client, redis, directory: Path) -> GroupCommitWriter:
    return GroupCommitWriter(client, IdentityResolver(redis.client), max_rows=100_000, max_delay_ms=0,
                             ack_log=WriteAheadLog(directory))


def test_an_event_refused_after_its_acknowledgement_goes_to_the_rejected_file(client, redis, tmp_path: Path):
    # Given a writer that has not started: requests are answered once their events are in the log
    writer = logged_writer(client, redis, tmp_path)
    projects = [new_project(client) for _ in range(3)]
    texts = {p: ['{"n":1}'] * 20 for p in projects}
    texts[projects[1]][7] = json.dumps(POISON)
    answers = [writer.submit(_table(p, t), []).result(timeout=10) for p, t in texts.items()]
    assert answers == [Outcome()] * 3
    assert [count(client, p) for p in projects] == [0, 0, 0]

    # When the writer inserts the log
    writer.start()
    writer.stop()

    # Then every event but the refused one is stored, the refused one is in the rejected file, the log is empty
    assert [count(client, p) for p in projects] == [20, 19, 20]
    assert [count(client, p, "events_hourly") for p in projects] == [20, 19, 20]
    [rejected] = [json.loads(line) for line in (tmp_path / "rejected.ndjson").read_text().splitlines()]
    assert (rejected["event"]["project_id"], rejected["event"]["message_id"], rejected["field"]) == (projects[1], "7", "properties")
    assert "ClickHouse refused the event" in rejected["reason"]
    assert not list(tmp_path.glob("*.log"))


def test_a_replay_inserts_only_what_clickhouse_does_not_hold_and_skips_a_torn_record(client, redis, tmp_path: Path):
    # Given a process that logged two requests, inserted the first only, and died while appending a third
    dead = logged_writer(client, redis, tmp_path)
    projects = [new_project(client) for _ in range(2)]
    tables = [_table(p, ['{"n":1}'] * 30) for p in projects]
    for table in tables:
        dead.submit(table, []).result(timeout=10)
    json_insert.insert(client, "events", tables[0])
    [segment] = tmp_path.glob("*.log")
    with segment.open("ab") as file:
        file.write(b"\x00\x10\x00\x00torn")

    # When the next process replays the log
    writer = logged_writer(client, redis, tmp_path)
    writer.replay()

    # Then each event is stored once and the log is gone
    assert [count(client, p) for p in projects] == [30, 30]
    assert [count(client, p, "events_hourly") for p in projects] == [30, 30]
    assert not list(tmp_path.glob("*.log"))
