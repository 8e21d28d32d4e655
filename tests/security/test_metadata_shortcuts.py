"""Issue: `distinctJSONPaths(properties)` answered from every project's part metadata (B's property and
trait keys showed), and a count() beside it counted parts, not rows. Every engine shortcut that answers
from metadata either obeys the project filter or is switched off in the sandbox
(policy.NO_METADATA_SHORTCUTS); each is checked here against the same question asked of A's rows
directly, with B's parts present and merged."""

from __future__ import annotations

import pytest

from nexus.adhoc import policy
from tests.security.conftest import B_MARKERS, events, read_headers, send

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security


@pytest.fixture(scope="module")
def populated(server, http, keys_of) -> None:
    send(http, keys_of["a"][1]["write"], events("a-user", 30, 10, {"plan": "free", "n": 1}, "https://a.example/",
                                                "viewed"))
    send(http, keys_of["b"][1]["write"], events("b-victim", 3, 2, {"secret": "ZZSECRET", "bkey": {"deep": 1}},
                                                "https://b.example/x", "zz_secret_event"))
    for table in policy.PROJECT_TABLES:
        server.runtime.clickhouse.command(f"OPTIMIZE TABLE {table} FINAL")


def ask(http, keys_of, sql: str) -> list:
    answer = http.post("/v1/query", json={"sql": sql}, headers=read_headers(keys_of))
    assert answer.status_code == 200, answer.text
    assert not any(marker in answer.text for marker in (*B_MARKERS, "bkey")), answer.text
    return answer.json()["rows"]


def direct(server, keys_of, sql: str) -> list:
    """The same question asked of A's rows by the admin client, with the filter written out."""
    result = server.runtime.clickhouse.query(sql, parameters={"a": keys_of["a"][0]}, settings={
        name: value for name, value in policy.NO_METADATA_SHORTCUTS})
    return [list(row) for row in result.result_rows]


# (what the shortcut is, the query A sends, the same query over A's rows alone)
SHORTCUTS = [
    ("JSON paths of the events", "SELECT distinctJSONPaths(properties) FROM events",
     "SELECT distinctJSONPaths(properties) FROM events WHERE project_id = {a:UInt32}"),
    ("count beside the JSON paths", "SELECT count(), length(distinctJSONPaths(properties)) FROM events",
     "SELECT count(), length(distinctJSONPaths(properties)) FROM events WHERE project_id = {a:UInt32}"),
    ("JSON paths and types", "SELECT toString(distinctJSONPathsAndTypes(properties)) FROM events",
     "SELECT toString(distinctJSONPathsAndTypes(properties)) FROM events WHERE project_id = {a:UInt32}"),
    ("dynamic types at a path", "SELECT distinctDynamicTypes(properties.secret) FROM events",
     "SELECT distinctDynamicTypes(properties.secret) FROM events WHERE project_id = {a:UInt32}"),
    ("JSON paths of the persons' traits", "SELECT distinctJSONPaths(properties) FROM persons",
     "SELECT distinctJSONPaths(properties) FROM persons WHERE project_id = {a:UInt32}"),
    ("trivial count", "SELECT count() FROM events", "SELECT count() FROM events WHERE project_id = {a:UInt32}"),
    ("trivial count of persons", "SELECT count() FROM persons",
     "SELECT count() FROM persons WHERE project_id = {a:UInt32}"),
    ("min and max of the partition key", "SELECT toString(min(ts)), toString(max(ts)), count() FROM events",
     "SELECT toString(min(ts)), toString(max(ts)), count() FROM events WHERE project_id = {a:UInt32}"),
    ("part-level virtual columns", "SELECT uniqExact(_part), uniqExact(_partition_id), count() FROM events",
     "SELECT uniqExact(_part), uniqExact(_partition_id), count() FROM events WHERE project_id = {a:UInt32}"),
    ("count over the partition id", "SELECT count() FROM events WHERE _partition_id != ''",
     "SELECT count() FROM events WHERE project_id = {a:UInt32}"),
    ("sizes of a subcolumn", "SELECT sum(length(distinct_id)), countIf(isNull(sent_at)) FROM events",
     "SELECT sum(length(distinct_id)), countIf(isNull(sent_at)) FROM events WHERE project_id = {a:UInt32}"),
    ("rollup keys", "SELECT groupUniqArray(event) FROM events_daily",
     "SELECT groupUniqArray(event) FROM events_daily WHERE project_id = {a:UInt32}"),
]


@pytest.mark.parametrize("title, sql, reference", SHORTCUTS, ids=[case[0] for case in SHORTCUTS])
def test_metadata_shortcuts_answer_for_a_alone(server, http, keys_of, populated, title: str, sql: str,
                                               reference: str) -> None:
    assert ask(http, keys_of, sql) == direct(server, keys_of, reference)


def test_a_saved_query_of_json_paths_sees_a_alone(http, keys_of, populated) -> None:
    admin = {"Authorization": f"Bearer {keys_of['a'][1]['admin']}"}
    saved = http.post("/v1/queries", json={"name": "paths", "sql": "SELECT distinctJSONPaths(properties) FROM events"},
                      headers=admin)
    assert saved.status_code == 201, saved.text
    run = http.post(f"/v1/queries/{saved.json()['query_id']}/run", json={}, headers=read_headers(keys_of))
    assert run.status_code == 200 and run.json()["rows"] == [[["n", "plan"]]], run.text


def test_the_shortcuts_really_answer_from_metadata_outside_the_sandbox(server, populated) -> None:
    # The admin client keeps the engine's defaults: a count() beside the JSON paths counts parts, not rows.
    # If this starts to agree, the engine changed, and the settings list above deserves a new look.
    clickhouse = server.runtime.clickhouse
    rows = clickhouse.query("SELECT count(), length(distinctJSONPaths(properties)) FROM events").result_rows
    assert rows[0][0] != clickhouse.query("SELECT count() FROM events").result_rows[0][0]
