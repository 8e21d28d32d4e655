"""Two projects' requests in one block of the group-commit writer: each project's properties and traits are
stored as its own JSON says, whatever the other sent at the same path (real pipeline, writer and engine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from nexus.ingest import pipeline
from nexus.ingest.dedup import Dedup
from nexus.ingest.identity import IdentityResolver
from nexus.ingest.metrics import MetricsRecorder
from nexus.ingest.service import Ingestor
from nexus.ingest.wire import decode_message
from nexus.ingest.writer import GroupCommitWriter
from nexus.settings import load
from nexus.store.database import open_database
from tests.analyses.journeys import new_project

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

# At path `x`: what project A sends, and what project B sends in the same block.
A = {"s": "2024-01-02", "t": "2024-01-02 10:00:00", "n": "123", "e": "1e5", "ids": [1.5], "tags": ["2024-01-02"]}
B = {"s": "2024-13-45", "t": "2024-01-02 25:00:00", "n": "abc", "e": "007", "ids": [9007199254740993],
     "tags": ["nope"]}
STRINGS = ["s", "t", "n", "e"]


@pytest.fixture
def held(database_url, redis, tmp_path) -> Iterator[Ingestor]:
    """An ingestor whose writer starts only when the test says: what is submitted before is one block."""
    settings = load({"NEXUS_DATA_DIR": str(tmp_path), "NEXUS_CLICKHOUSE_URL": database_url})
    clickhouse = open_database(database_url, migrate=False)
    writer = GroupCommitWriter(clickhouse, IdentityResolver(redis.client), max_rows=100_000, max_delay_ms=50)
    yield Ingestor(writer, Dedup(redis.client, 24), clickhouse, MetricsRecorder(redis.client, 60_000), settings,
                   b"salt")
    clickhouse.close()


def message(call: str, message_id: str, values: dict[str, Any]) -> Any:
    body = {"type": call, "userId": f"user-{message_id}", "anonymousId": f"anon-{message_id}",
            "messageId": message_id, "event": "Viewed"}
    body["traits" if call == "identify" else "properties"] = values
    return decode_message(json.dumps(body).encode(), 0)


def one_block(held: Ingestor, requests: dict[int, list[Any]]) -> None:
    # Queued before the writer starts, so that one block (one events insert, one persons insert) holds them
    submitted = [held.submit(messages, pipeline.Source(project, datetime.now(timezone.utc)))
                 for project, messages in requests.items()]
    held.writer.start()
    try:
        results = [held.finish(s) for s in submitted]
    finally:
        held.writer.stop()
    assert [(r.stored, r.rejections) for r in results] == [(len(m), []) for m in requests.values()]


def as_stored(client, table: str, project_id: int) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """The project's one row of properties, as JSON and, for each string path, as text with its type."""
    persons = table == "persons"
    paths = ", ".join(f"toString(properties.{k}), dynamicType(properties.{k})" for k in STRINGS)
    [(text, *typed)] = client.query(
        f"SELECT toJSONString(properties), {paths} FROM {table}{' FINAL' if persons else ''} "
        f"WHERE project_id = {{p:UInt32}}{' AND NOT is_deleted' if persons else ''}",
        parameters={"p": project_id}).result_rows
    return json.loads(text), {k: (typed[2 * i], typed[2 * i + 1]) for i, k in enumerate(STRINGS)}


def test_properties_of_two_projects_in_one_block_are_stored_as_each_sent(held, client):
    a, b = new_project(client), new_project(client)
    one_block(held, {a: [message("track", "a1", A)], b: [message("track", "b1", B)]})
    for project, sent in ((a, A), (b, B)):
        values, strings = as_stored(client, "events", project)
        assert values == sent
        assert strings == {k: (sent[k], "String") for k in STRINGS}


def test_traits_of_two_projects_in_one_block_are_stored_as_each_sent(held, client):
    a, b = new_project(client), new_project(client)
    one_block(held, {a: [message("identify", "a1", A)], b: [message("identify", "b1", B)]})
    for project, sent in ((a, A), (b, B)):
        values, strings = as_stored(client, "persons", project)
        assert values == sent
        assert strings == {k: (sent[k], "String") for k in STRINGS}
