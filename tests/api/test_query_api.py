"""Ad-hoc SQL over real HTTP: the JSON answer, every streamed format, saved queries, schema discovery,
the remote client of `nexus sql --url`, and the escapes of the security suite, each with its status."""

from __future__ import annotations

import base64
import io
import json
import urllib.request

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from nexus.adhoc import limits, policy, remote
from nexus.demo.load import load
from nexus.errors import Forbidden, QueryFailed, StorageUnavailable, Unauthorized
from nexus.exports.stream import write_batches
from nexus.meta import keys
from tests.adhoc.conftest import BETA_MARKERS, insert_marked_rows
from tests.conftest import DEMO_END

PERSON_EVENTS = ("SELECT event, distinct_id, toUInt64(toMinute(ts)) AS minute FROM events "
                 "WHERE distinct_id = {who:String} ORDER BY minute")


@pytest.fixture(scope="module")
def projects(server):
    alpha, alpha_keys = server.project_with_keys("alpha")
    beta, beta_keys = server.project_with_keys("beta")
    clickhouse = server.runtime.clickhouse
    load(clickhouse, alpha, 2000, seed=1, end=DEMO_END)
    load(clickhouse, beta, 1000, seed=2, end=DEMO_END)
    insert_marked_rows(clickhouse, alpha, "alpha_event", "alpha-user", "https://alpha.example/home", 5)
    insert_marked_rows(clickhouse, beta, "beta_secret_event", "beta-victim", "https://beta.example/secret", 7)
    return {"alpha": (alpha, alpha_keys), "beta": (beta, beta_keys)}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def read_key(projects, name: str = "alpha") -> str:
    return projects[name][1]["read"]


def query(http, projects, body: dict, project: str = "alpha") -> httpx.Response:
    return http.post("/v1/query", json=body, headers=bearer(read_key(projects, project)))


def test_the_json_answer(http, projects) -> None:
    answer = query(http, projects, {"sql": PERSON_EVENTS, "params": {"who": "alpha-user"}})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body.pop("elapsed_ms") > 0 and body.pop("rows_read") >= 5 and body.pop("bytes_read") > 0
    assert body == {
        "columns": [{"name": "event", "type": "LowCardinality(String)"}, {"name": "distinct_id", "type": "String"},
                    {"name": "minute", "type": "UInt64"}],
        "rows": [["alpha_event", "alpha-user", m] for m in range(5)],
        "row_count": 5,
        "truncated": False,
    }


def test_streamed_formats(http, projects) -> None:
    expected = [{"event": "alpha_event", "distinct_id": "alpha-user", "minute": m} for m in range(5)]
    body = {"sql": PERSON_EVENTS, "params": {"who": "alpha-user"}}
    arrow = query(http, projects, {**body, "format": "arrow"})
    assert arrow.status_code == 200 and arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert ipc.open_stream(arrow.content).read_all().to_pylist() == expected
    parquet = query(http, projects, {**body, "format": "parquet"})
    assert parquet.headers["content-disposition"] == 'attachment; filename="result.parquet"'
    assert pq.read_table(io.BytesIO(parquet.content)).to_pylist() == expected
    csv = query(http, projects, {**body, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[:2] == ['"event","distinct_id","minute"', '"alpha_event","alpha-user",0']
    ndjson = query(http, projects, {**body, "format": "ndjson"})
    assert [json.loads(line) for line in ndjson.text.splitlines()] == expected


def test_csv_writes_formula_like_cells_as_text_as_every_csv_path_does(http, projects) -> None:
    """A value a public write key sent (an event name, a property) can start like a spreadsheet formula:
    /v1/query's CSV neutralises it exactly as exports, analyses and `nexus sql` do (one CSV writer)."""
    cells = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]
    sql = "SELECT arrayJoin({cells:Array(String)}) AS cell"
    answer = query(http, projects, {"sql": sql, "params": {"cells": cells}, "format": "csv"})
    assert answer.status_code == 200
    sink = io.BytesIO()
    write_batches([pa.record_batch({"cell": cells})], "csv", sink)
    assert answer.content == sink.getvalue()
    assert answer.content.split(b"\n")[1:-1] == [b"\"'=1+1\"", b"\"'+1\"", b"\"'-1\"", b"\"'@SUM(A1)\"",
                                                 b"\"'\tx\"", b"\"'\rx\"", b'"plain"', b'"a=b"']


def test_python_reads_arrow_straight_from_the_response(server, projects) -> None:
    """The README's example: pyarrow reads the HTTP response as it arrives, into pandas."""
    request = urllib.request.Request(
        f"{server.url}/v1/query", method="POST",
        data=json.dumps({"sql": "SELECT event, count() AS n FROM events GROUP BY event ORDER BY n DESC, event",
                         "format": "arrow"}).encode(),
        headers={"Authorization": f"Bearer {read_key(projects)}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        frame = ipc.open_stream(response).read_pandas()
    assert frame.columns.tolist() == ["event", "n"] and "alpha_event" in frame["event"].tolist()
    assert "beta_secret_event" not in frame["event"].tolist()


def test_each_project_sees_its_own_rows(http, projects) -> None:
    sql = {"sql": "SELECT DISTINCT project_id FROM events"}
    assert query(http, projects, sql).json()["rows"] == [[projects["alpha"][0]]]
    assert query(http, projects, sql, "beta").json()["rows"] == [[projects["beta"][0]]]


def test_keys_and_scopes(http, projects) -> None:
    body = {"sql": "SELECT 1"}
    assert http.post("/v1/query", json=body).status_code == 401
    write = http.post("/v1/query", json=body, headers=bearer(projects["alpha"][1]["write"]))
    assert write.status_code == 403 and write.json() == {"error": "this write key cannot read data"}
    basic = base64.b64encode(f"{read_key(projects)}:".encode()).decode()
    assert http.post("/v1/query", json=body, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert http.post("/v1/query", json=body, headers=bearer(projects["alpha"][1]["admin"])).status_code == 200


# The security suite's escapes as an API client meets them: status code and the start of the reason.
ESCAPES = [
    ("SELECT key_hash FROM api_keys", 403, "table 'api_keys' is not available"),
    ("SELECT count() FROM merge(currentDatabase(), '^events$')", 403, "table function 'merge' is not allowed"),
    ("SELECT * FROM remote('127.0.0.1', system.one)", 403, "table function 'remote' is not allowed"),
    ("SELECT * FROM cluster('default', system.one)", 403, "table function 'cluster' is not allowed"),
    ("SELECT name FROM system.tables", 403, "table 'system.tables' is not available"),
    ("SELECT file('/etc/passwd')", 403, "function 'file' is not allowed"),
    ("SELECT count() FROM events SETTINGS readonly = 0", 403, "SETTINGS is not allowed"),
    ("SELECT count() FROM events -- x\n; DROP TABLE events", 403, "only a single SELECT"),
    ("DROP TABLE events", 403, "only SELECT queries can run here"),
    ("SELECT * FROM events INTO OUTFILE '/tmp/x'", 403, "INTO OUTFILE is not allowed"),
    ("SELECT sleep(3)", 403, "function 'sleep' is not allowed"),
    ("SELEC 1", 400, "Syntax error"),
]


@pytest.mark.parametrize("sql, status, reason", ESCAPES)
def test_escapes_get_a_clean_status_and_reason(http, projects, sql: str, status: int, reason: str) -> None:
    answer = query(http, projects, {"sql": sql, "format": "arrow"})
    assert answer.status_code == status
    assert list(answer.json()) == ["error"] and answer.json()["error"].startswith(reason), answer.text
    assert "Traceback" not in answer.text and "Stack trace" not in answer.text


def test_limits_per_key_over_http(server, http, projects) -> None:
    # Given a read key with tight limits
    alpha = projects["alpha"][0]
    key, secret = keys.create(server.runtime.clickhouse, alpha, "read", "tight")
    limits.set_for_key(server.runtime.clickhouse, alpha, key.key_id, max_seconds=1, max_rows_to_read=1_000_000,
                       max_json_rows=10)
    cartesian = "SELECT count() FROM events AS a, events AS b, events AS c WHERE a.ts < b.ts AND b.ts < c.ts"
    slow = http.post("/v1/query", json={"sql": cartesian}, headers=bearer(secret))
    assert slow.status_code == 400 and slow.json()["error"].startswith("Timeout exceeded")
    huge = http.post("/v1/query", json={"sql": "SELECT * FROM numbers(10000000)", "format": "parquet"},
                     headers=bearer(secret))
    assert huge.status_code == 400 and "max_rows_to_read" in huge.json()["error"]
    many = http.post("/v1/query", json={"sql": "SELECT number FROM numbers(11)"}, headers=bearer(secret))
    assert many.status_code == 400 and many.json()["error"].startswith("Limit for result exceeded, max rows: 10.00")


def test_max_rows_returns_at_most_that_many_rows_and_says_when_it_cut(server, http, projects) -> None:
    # Given a key whose own limits are 10 rows of JSON and 1,000 rows of any result
    alpha = projects["alpha"][0]
    key, secret = keys.create(server.runtime.clickhouse, alpha, "read", "max-rows")
    limits.set_for_key(server.runtime.clickhouse, alpha, key.key_id, max_json_rows=10, max_result_rows=1000)
    sql = "SELECT number FROM numbers(2000)"
    # When a query asks for at most 2 rows: 2 rows, flagged as cut in the body and a header
    cut = http.post("/v1/query", json={"sql": sql, "max_rows": 2}, headers=bearer(secret))
    assert cut.status_code == 200 and cut.json()["rows"] == [[0], [1]] and cut.json()["truncated"] is True
    assert cut.headers["x-nexus-truncated"] == "true"
    whole = http.post("/v1/query", json={"sql": "SELECT 1", "max_rows": 2}, headers=bearer(secret))
    assert whole.json()["truncated"] is False and whole.headers["x-nexus-truncated"] == "false"
    # Every streamed format too, up to the key's own limit
    for fmt, count in [("ndjson", lambda b: b.count(b"\n")), ("csv", lambda b: b.count(b"\n") - 1),
                       ("arrow", lambda b: ipc.open_stream(b).read_all().num_rows),
                       ("parquet", lambda b: pq.read_table(io.BytesIO(b)).num_rows)]:
        for max_rows, truncated in [(3, "true"), (1000, "true")]:
            answer = http.post("/v1/query", json={"sql": sql, "format": fmt, "max_rows": max_rows}, headers=bearer(secret))
            assert answer.status_code == 200 and count(answer.content) == max_rows, (fmt, max_rows)
            assert answer.headers["x-nexus-truncated"] == truncated
    # And a saved query's run
    created = http.post("/v1/queries", json={"name": "two thousand", "sql": sql}, headers=bearer(projects["alpha"][1]["admin"]))
    ran = http.post(f"/v1/queries/{created.json()['query_id']}/run", json={"max_rows": 3}, headers=bearer(secret))
    assert ran.status_code == 200 and ran.json()["rows"] == [[0], [1], [2]] and ran.json()["truncated"] is True
    http.delete(f"/v1/queries/{created.json()['query_id']}", headers=bearer(projects["alpha"][1]["admin"]))
    # While the key's own limits stay hard: a larger result without max_rows, or max_rows above them, fails
    for body in ({"sql": sql}, {"sql": sql, "max_rows": 11}, {"sql": sql, "format": "csv", "max_rows": 1001}):
        failed = http.post("/v1/query", json=body, headers=bearer(secret))
        assert failed.status_code == 400 and "Limit for result exceeded" in failed.json()["error"], body


def test_a_limit_hit_mid_stream_cuts_the_connection(server, http, projects) -> None:
    # Given a key whose streamed results stop at 1M rows, and a result of 5M
    alpha = projects["alpha"][0]
    key, secret = keys.create(server.runtime.clickhouse, alpha, "read", "mid-stream")
    limits.set_for_key(server.runtime.clickhouse, alpha, key.key_id, max_result_rows=1_000_000)
    body = {"sql": "SELECT number FROM numbers(5000000)", "format": "ndjson"}
    # Then the answer starts (200) and ends without its last chunk: no client can take it for whole
    with http.stream("POST", "/v1/query", json=body, headers=bearer(secret)) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in response.iter_bytes():
                pass
    # And the remote client of `nexus sql --url` reports it as a failed query
    with pytest.raises(QueryFailed, match="stopped sending the result before its end"):
        with remote.answer(server.url, secret, body["sql"], None, "ndjson") as answer:
            for _ in answer.chunks():
                pass
    # While the server goes on answering
    assert query(http, projects, {"sql": "SELECT 1"}).json()["rows"] == [[1]]


def test_clients_that_hang_up_give_their_query_back(http, projects) -> None:
    # Given more abandoned streams than the server runs queries at once (4)
    for _ in range(6):
        with http.stream("POST", "/v1/query", json={"sql": "SELECT number FROM numbers(50000000)", "format": "arrow"},
                         headers=bearer(read_key(projects))) as response:
            assert response.status_code == 200
            next(response.iter_raw())
    # Then each was ended and its slot freed: the next query is answered, not turned away (429)
    answer = query(http, projects, {"sql": "SELECT 1"})
    assert answer.status_code == 200 and answer.json()["rows"] == [[1]]


def test_bad_request_bodies(http, projects) -> None:
    mistyped = query(http, projects, {"sql": "SELECT 1", "format": "xlsx"})
    assert mistyped.status_code == 400 and mistyped.json()["field"] == "format"
    assert query(http, projects, {"sql": "SELECT 1", "limit": 3}).status_code == 400
    assert query(http, projects, {"query": "SELECT 1"}).status_code == 400
    assert query(http, projects, {"sql": "SELECT 1", "max_rows": 0}).status_code == 400
    answer = http.post("/v1/query", content=b"not json", headers=bearer(read_key(projects)))
    assert answer.status_code == 400 and answer.json()["error"].startswith("malformed JSON")


def test_saved_queries_over_http(http, projects) -> None:
    admin, read = bearer(projects["alpha"][1]["admin"]), bearer(read_key(projects))
    definition = {"name": "events of a person", "sql": PERSON_EVENTS, "description": "one person's events",
                  "default_params": {"who": "alpha-user"}}
    # A read key may run saved queries but not change them
    assert http.post("/v1/queries", json=definition, headers=read).status_code == 403
    created = http.post("/v1/queries", json=definition, headers=admin)
    assert created.status_code == 201
    query_id = created.json()["query_id"]
    assert created.json()["parameters"] == [{"name": "who", "type": "String"}]
    assert [q["query_id"] for q in http.get("/v1/queries", headers=read).json()["queries"]] == [query_id]
    assert http.get(f"/v1/queries/{query_id}", headers=read).json()["sql"] == PERSON_EVENTS

    # Run by id: with its default, with a parameter, and streamed
    ran = http.post(f"/v1/queries/{query_id}/run", json={}, headers=read)
    assert ran.status_code == 200 and ran.json()["row_count"] == 5
    other = http.post(f"/v1/queries/{query_id}/run", json={"params": {"who": "nobody"}}, headers=read)
    assert other.json()["rows"] == []
    arrow = http.post(f"/v1/queries/{query_id}/run", json={"format": "arrow"}, headers=read)
    assert ipc.open_stream(arrow.content).read_all().num_rows == 5

    # Another project cannot see, run or delete it
    beta = bearer(projects["beta"][1]["admin"])
    assert http.get(f"/v1/queries/{query_id}", headers=beta).status_code == 404
    assert http.post(f"/v1/queries/{query_id}/run", json={}, headers=beta).status_code == 404
    assert http.delete(f"/v1/queries/{query_id}", headers=beta).status_code == 404

    # Edit, then delete
    edited = http.put(f"/v1/queries/{query_id}", json={**definition, "default_params": {}}, headers=admin)
    assert edited.status_code == 200 and edited.json()["default_params"] == {}
    missing = http.post(f"/v1/queries/{query_id}/run", json={}, headers=read)
    assert missing.status_code == 400 and "missing value for parameter {who:String}" in missing.json()["error"]
    refused = http.put(f"/v1/queries/{query_id}", json={**definition, "sql": "SELECT * FROM api_keys"}, headers=admin)
    assert refused.status_code == 403
    assert http.delete(f"/v1/queries/{query_id}", headers=admin).status_code == 204
    assert http.get(f"/v1/queries/{query_id}", headers=read).status_code == 404


def test_schema_discovery(http, projects) -> None:
    assert http.get("/v1/schema").status_code == 401
    answer = http.get("/v1/schema", headers=bearer(read_key(projects)))
    assert answer.status_code == 200
    tables = answer.json()["tables"]
    assert [t["name"] for t in tables] == sorted(policy.PROJECT_TABLES)
    assert all(t["comment"] and all(c["comment"] for c in t["columns"]) for t in tables)


def test_the_remote_client_of_nexus_sql(server, projects) -> None:
    secret = read_key(projects)
    with remote.answer(server.url, secret, PERSON_EVENTS, {"who": "alpha-user"}, "arrow", 3) as answer:
        table = pa.Table.from_batches(list(answer.batches()))
    assert table.column_names == ["event", "distinct_id", "minute"] and answer.truncated is True
    assert table.to_pylist()[0] == {"event": "alpha_event", "distinct_id": "alpha-user", "minute": 0}
    with remote.answer(server.url, secret, PERSON_EVENTS, {"who": "alpha-user"}, "parquet") as answer:
        assert pq.read_table(io.BytesIO(b"".join(answer.chunks()))).num_rows == 5 and answer.truncated is False
    with pytest.raises(Forbidden, match="table 'api_keys'"):
        remote.answer(server.url, secret, "SELECT * FROM api_keys", None, "arrow").__enter__()
    with pytest.raises(Unauthorized):
        remote.answer(server.url, "nx_not-a-key-at-all-xxxxxxxxxxxxxxxxxxxx", "SELECT 1", None, "arrow").__enter__()
    with pytest.raises(StorageUnavailable, match="cannot reach Nexus"):
        remote.answer("http://127.0.0.1:9", secret, "SELECT 1", None, "arrow").__enter__()


def test_no_answer_to_alpha_mentions_beta(http, projects) -> None:
    for sql in ("SELECT * FROM events", "SELECT * FROM identities", "SELECT * FROM sessions",
                "SELECT * FROM projects", "SELECT * FROM saved_queries"):
        for fmt in ("json", "csv", "ndjson"):
            text = query(http, projects, {"sql": sql, "format": fmt}).text
            assert not any(marker in text for marker in BETA_MARKERS), (sql, fmt)
        table = ipc.open_stream(query(http, projects, {"sql": sql, "format": "arrow"}).content).read_all()
        assert set(table.column("project_id").to_pylist()) <= {projects["alpha"][0]}
