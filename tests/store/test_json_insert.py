"""Clients' JSON is stored as they wrote it, whatever else shares the insert: on the real engine, by every
route the store has to it (chDB reading the Arrow table in place or from a file; a server's statement)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pytest

from nexus.store import json_insert

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

TABLE = "json_probe"


@pytest.fixture(scope="module")
def probe(client) -> str:
    client.command(f"CREATE TABLE IF NOT EXISTS {TABLE} (project_id UInt32, n UInt32, properties JSON) "
                   "ENGINE = MergeTree ORDER BY (project_id, n)")
    return TABLE


_projects = iter(range(1, 1_000_000))


@pytest.fixture(params=["python", "file"])
def route(request, monkeypatch) -> Iterator[str]:
    """Both routes chDB has: the Arrow table read in place, and (when a chDB cannot do that) a file."""
    monkeypatch.setattr(json_insert, "_python_objects", None if request.param == "python" else False)
    yield request.param
    assert json_insert._python_objects is (request.param == "python")


def insert(client, rows: list[tuple[int, str]]) -> list[int]:
    """Store (project, JSON text) rows in one insert; the project ids used, in the rows' order."""
    projects = {p: next(_projects) for p, _ in rows}
    table = pa.table({"project_id": pa.array([projects[p] for p, _ in rows], pa.uint32()),
                      "n": pa.array(range(len(rows)), pa.uint32()), "properties": [text for _, text in rows]})
    json_insert.insert(client, TABLE, table)
    return [projects[p] for p, _ in rows]


def stored(client, project_id: int) -> list[tuple[str, str, str]]:
    """Each row's properties as JSON, and its `x` as text and as the type the column gave it."""
    return client.query(f"SELECT toJSONString(properties), toString(properties.x), dynamicType(properties.x) "
                         f"FROM {TABLE} WHERE project_id = {{p:UInt32}} ORDER BY n",
                         parameters={"p": project_id}).result_rows


# A's value, then B's at the same path, in one insert; before each was parsed apart without date inference,
# B's (and sometimes A's) came back as something else.
@pytest.mark.parametrize(("a", "b"), [
    ("2024-01-02", "2024-13-45"),  # B was the Date 1970-01-01
    ("2024-01-02", "1900-01-01"),  # B was 1970-01-01 too
    ("2024-01-02 10:00:00", "2024-01-02 25:00:00"),  # B was 2024-01-03 01:00:00 even alone
    ("2024-01-02T10:00:00Z", "hello"),
    ("123", "abc"),
    ("1e5", "007"),
    ("12:30:00", "99:99:99"),
])
def test_strings_stay_strings_whatever_another_project_sent(client, probe, route, a, b):
    first, second = insert(client, [("A", json.dumps({"x": a})), ("B", json.dumps({"x": b}))])
    assert stored(client, first) == [(json.dumps({"x": a}, separators=(",", ":")), a, "String")]
    assert stored(client, second) == [(json.dumps({"x": b}, separators=(",", ":")), b, "String")]


@pytest.mark.parametrize(("a", "b"), [
    ([1.5], [9007199254740993]),  # B's integer was made a Float64 of A's array type: 9007199254740992
    ([0.5], [18446744073709551615]),  # B's was 18446744073709552000
    ([[1.5]], [[9007199254740993]]),
    ({"y": [0.5]}, {"y": [-9223372036854775807]}),
])
def test_one_projects_numbers_do_not_pick_the_type_of_anothers(client, probe, route, a, b):
    # Given B's request after A's in one insert, both of the same path
    first, second = insert(client, [("A", json.dumps({"x": a})), ("B", json.dumps({"x": b}))])
    # Then each reads back exactly as sent
    assert json.loads(stored(client, first)[0][0]) == {"x": a}
    assert json.loads(stored(client, second)[0][0]) == {"x": b}


# One value per setting of JSON_INPUT_SETTINGS that the setting's other value stores differently.
@pytest.mark.parametrize("value", [
    "2024-01-02 25:00:00",  # input_format_try_infer_datetimes on: 2024-01-03 01:00:00
    [9007199254740993, 1.5],  # input_format_try_infer_integers on: a Float64 array, 9007199254740992
    [1, True],  # input_format_json_read_bools_as_numbers on: [1, 1]
    ["a", True],  # input_format_json_read_bools_as_strings on: ["a", "true"]
    ["1"],  # input_format_json_try_infer_numbers_from_strings on: [1]
    [1, "a"],  # input_format_json_infer_array_of_dynamic_from_array_of_different_types off: ["1", "a"]
    [None], [[]],  # input_format_json_infer_incomplete_types_as_strings off: refused
    "2024-01-02", 18446744073709551615, -9223372036854775808, 1.5, True, "",
])
def test_a_value_is_stored_as_its_json_says(client, probe, route, value):
    [project] = insert(client, [("A", json.dumps({"x": value}))])
    [(text, _, kind)] = stored(client, project)
    assert json.loads(text) == {"x": value}
    assert type(json.loads(text)["x"]) is type(value)
    assert "Date" not in kind and (kind == "String" if isinstance(value, str) else True)


def test_each_project_is_its_own_chunk_and_keeps_its_rows(client, probe):
    # Given rows of three projects interleaved, as requests of a writer's block are
    rows = [("A", '{"x": [1.5]}'), ("B", '{"x": [9007199254740993]}'), ("A", '{"x": "2024-01-02"}'),
            ("C", '{"x": "1900-01-01"}'), ("B", '{"x": "2024-13-45"}')]
    projects = insert(client, rows)
    # Then every row is stored once, in its project, as sent
    for project in dict.fromkeys(projects):
        sent = [json.loads(text) for (_, text), p in zip(rows, projects) if p == project]
        assert [json.loads(text) for text, _, _ in stored(client, project)] == sent


def test_one_record_batch_per_project():
    table = pa.concat_tables(
        pa.table({"project_id": pa.array(ps, pa.uint32()), "v": pa.array(map(str, ps), pa.string())})
        for ps in ([2, 2], [1], [2, 1, 3], []))
    batches = json_insert._by_tenant(table, "project_id").to_batches()
    assert [b.to_pydict() for b in batches] == [
        {"project_id": [2, 2, 2], "v": ["2", "2", "2"]}, {"project_id": [1, 1], "v": ["1", "1"]},
        {"project_id": [3], "v": ["3"]}]


def test_the_server_statement_is_one_the_engine_parses(client, probe):
    # A server reads the rows from the request body through input(): the engine here cannot run that, but
    # it parses it, and the statement is the one the other routes run but for where the rows come from
    rows = pa.table({"project_id": pa.array([1], pa.uint32()), "n": pa.array([1], pa.uint32()), "properties": ["{}"]})
    sql = json_insert.statement(TABLE, rows, ["properties"], "server")
    [(formatted,)] = client.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows
    assert "FROM input('`project_id` UInt32, `n` UInt32, `properties` String')" in formatted
    assert formatted.endswith("FORMAT ArrowStream")
    assert all(f"{name} = {value}" in formatted for name, value in json_insert.JSON_INPUT_SETTINGS.items())
    local = json_insert.statement(TABLE, rows, ["properties"], "python")
    assert sql == local.replace("Python(nexus_rows)", "input('`project_id` UInt32, `n` UInt32, `properties` String')") \
        + " FORMAT ArrowStream"
