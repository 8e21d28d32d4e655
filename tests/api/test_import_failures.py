"""Imports that stop part-way — a truncated or corrupt file, a poison line, a store that refuses — report
exactly what they stored and where to resume, and importing the file again stores every row once."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_nexus

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

ROWS = 30_000  # three of the importer's 10,000-row chunks


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def count(server, project_id: int) -> int:
    return server.runtime.clickhouse.query(
        "SELECT count() FROM events WHERE project_id = {p:UInt32} AND event = 'Legacy Order'",
        parameters={"p": project_id}).result_rows[0][0]


def history(n: int = ROWS, month: int | None = None) -> list[dict]:
    """Old orders as a warehouse export has them: no messageId; the same user orders several times."""
    return [{"type": "track", "event": "Legacy Order", "userId": f"u{i % 97}",
             "timestamp": f"2019-{month or 1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
             "properties": {"total": i % 500, "sku": f"s{i % 31}"}} for i in range(n)]


def ndjson(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def arrow(rows: list[dict], kind: str) -> bytes:
    table = pa.table({
        "type": [r["type"] for r in rows], "event": [r["event"] for r in rows],
        "userId": [r["userId"] for r in rows], "timestamp": [r["timestamp"] for r in rows],
        "properties": [json.dumps(r["properties"]) for r in rows],
    })
    sink = io.BytesIO()
    if kind == "parquet":
        pq.write_table(table, sink, row_group_size=5_000)
    else:
        with (ipc.new_stream if kind == "stream" else ipc.new_file)(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=700):  # as a streaming producer writes them
                writer.write_batch(batch)
    return sink.getvalue()


def cut(data: bytes, share: float = 0.7) -> bytes:
    return data[:int(len(data) * share)]


def readable_stream_rows(data: bytes) -> int:
    """The rows of the whole record batches before an Arrow IPC stream's cut, read by pyarrow alone."""
    reader, rows = ipc.open_stream(pa.BufferReader(data)), 0
    try:
        for batch in reader:
            rows += batch.num_rows
    except (pa.ArrowInvalid, OSError):
        pass
    return rows


def whole_gzip_lines(data: bytes) -> int:
    """The complete lines a cut gzip stream still decodes to."""
    return zlib.decompressobj(wbits=31).decompress(data).count(b"\n")


def upload(http, secrets, body: bytes, query: str = ""):
    return http.post(f"/v1/import{query}", content=body, headers=auth(secrets["admin"]))


def stopped(answer, status: int, error: str, done: int) -> dict:
    """The answer of an import that stopped after settling its first `done` lines or rows, none rejected."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body.pop("error").startswith(error), body
    assert body == {"success": False, "events": done, "stored": done, "duplicates": 0, "rejected": 0,
                    "errors": [], "resume_from": done}
    return body


def complete(answer, stored: int, duplicates: int, rows: int = ROWS) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"success": True, "events": stored + duplicates, "stored": stored,
                             "duplicates": duplicates, "rejected": 0, "errors": [], "resume_from": rows}


def test_an_arrow_stream_cut_at_70_percent_stores_its_whole_batches_and_says_where_to_resume(server, http):
    project_id, secrets = server.project_with_keys("arrow-stream-cut")
    data = arrow(history(), "stream")
    done = readable_stream_rows(cut(data))
    assert 20_000 < done < ROWS and done % 700 == 0

    # When the cut stream is uploaded
    stopped(upload(http, secrets, cut(data)), 400, "the Arrow IPC stream is truncated: it ends inside a record batch",
            done)
    assert count(server, project_id) == done

    # Then the whole file, from where the import stopped, stores the rest; once more whole, nothing
    complete(upload(http, secrets, data, f"?resume_from={done}"), ROWS - done, 0)
    assert count(server, project_id) == ROWS
    complete(upload(http, secrets, data), 0, ROWS)
    assert count(server, project_id) == ROWS


def test_a_truncated_gzip_ndjson_stores_its_whole_lines_and_the_full_file_stores_the_rest(server, http):
    project_id, secrets = server.project_with_keys("gzip-cut")
    data = gzip.compress(ndjson(history()))
    done = whole_gzip_lines(cut(data))

    stopped(upload(http, secrets, cut(data)), 400, "the gzip-compressed file is truncated", done)
    assert count(server, project_id) == done

    # Uploading the whole file again (no resume_from) recognises what the first upload stored
    complete(upload(http, secrets, data), ROWS - done, done)
    assert count(server, project_id) == ROWS


@pytest.mark.parametrize(("kind", "error"), [
    ("file", "the Arrow IPC file is truncated: it does not end with its footer"),
    ("parquet", "the Parquet file is truncated: it does not end with its footer"),
])
def test_a_cut_file_whose_footer_is_gone_stores_nothing(server, http, kind: str, error: str):
    project_id, secrets = server.project_with_keys(f"{kind}-cut")
    data = arrow(history(), kind)

    stopped(upload(http, secrets, cut(data)), 400, error, 0)
    assert count(server, project_id) == 0

    complete(upload(http, secrets, data), ROWS, 0)
    assert count(server, project_id) == ROWS


def test_a_line_the_pipeline_rejects_is_named_and_every_other_line_stored_once(server, http):
    project_id, secrets = server.project_with_keys("rejected-line")
    rows = history()
    rows[23_999] = {"type": "track", "userId": "u1"}  # the 24,000th line: a track call without a name
    data = ndjson(rows)
    expected = {"success": False, "events": ROWS, "stored": ROWS - 1, "duplicates": 0, "rejected": 1,
                "errors": [{"index": 23_999, "field": "event", "reason": "track calls need an event name"}],
                "resume_from": ROWS}

    answer = upload(http, secrets, data)
    assert (answer.status_code, answer.json()) == (400, expected)
    assert count(server, project_id) == ROWS - 1
    again = upload(http, secrets, data)
    assert again.json() == {**expected, "stored": 0, "duplicates": ROWS - 1}
    assert count(server, project_id) == ROWS - 1


def test_a_line_the_insert_fails_on_is_reported_exactly(server, http):
    # Given a property shape the JSON column refuses (a dotted path beside the same nested one) on the
    # 24,000th line. The pipeline may reject it, normalise it, or let it fail the insert: whichever it
    # does, the answer must say exactly what is stored.
    project_id, secrets = server.project_with_keys("poison-line")
    rows = history()
    rows[23_999]["properties"] = {"p.q": 1, "p": {"q": 2}}
    data = ndjson(rows)

    answer = upload(http, secrets, data)
    body = answer.json()
    assert count(server, project_id) == body["stored"]
    assert body["stored"] + body["duplicates"] + body["rejected"] == body["events"] == body["resume_from"]
    if "error" in body:  # the insert failed: the chunk holding the line is not stored, nor anything after
        assert (answer.status_code, body["resume_from"], body["rejected"]) == (503, 20_000, 0), body
        assert body["error"].startswith("events were not stored: ")
    else:
        assert body["resume_from"] == ROWS
        assert [e["index"] for e in body["errors"]] == [23_999] * body["rejected"]

    # Then the same file again stores nothing twice, and once the line is fixed, the file is all stored once
    before = count(server, project_id)
    assert upload(http, secrets, data).json()["stored"] == 0
    assert count(server, project_id) == before
    if before < ROWS:
        rows[23_999]["properties"] = {"p": {"q": 2}}
        answer = upload(http, secrets, ndjson(rows))
        assert answer.status_code == 200 and answer.json()["stored"] == ROWS - before, answer.text
    assert count(server, project_id) == ROWS


def test_a_store_that_refuses_the_insert_stops_the_import_with_503_and_the_counts(server, http, monkeypatch):
    # Given blocks of 10,000 rows (NEXUS_WRITER_MAX_ROWS), and ClickHouse refusing inserts once a partition
    # has too many parts (merges stopped): the project's January will reach the limit with the first block
    monkeypatch.setattr(server.app.state.api.ingestor.writer, "max_rows", 10_000)
    client = server.runtime.clickhouse
    project_id, secrets = server.project_with_keys("too-many-parts")
    client.command("SYSTEM STOP MERGES events")
    try:
        fullest = client.query("SELECT max(c) FROM (SELECT count() AS c FROM system.parts WHERE database = "
                               "currentDatabase() AND table = 'events' AND active GROUP BY partition)").result_rows
        limit = (fullest[0][0] or 0) + 1
        for _ in range(limit - 1):
            client.command("INSERT INTO events (project_id, ts, event, message_id) "
                           "VALUES ({p:UInt32}, '2019-01-01 00:00:00', 'filler', toString(generateUUIDv4()))",
                           parameters={"p": project_id})
        client.command(f"ALTER TABLE events MODIFY SETTING parts_to_throw_insert = {limit}")
        data = ndjson(history(month=1))

        answer = upload(http, secrets, data)

        stopped(answer, 503, "events were not stored: ", 10_000)
        assert answer.headers["retry-after"] == "5"
        assert count(server, project_id) == 10_000
    finally:
        client.command("ALTER TABLE events RESET SETTING parts_to_throw_insert")
        client.command("SYSTEM START MERGES events")
    # Then, the store healthy again, resuming stores the rest
    complete(upload(http, secrets, data, "?resume_from=10000"), ROWS - 10_000, 0)
    assert count(server, project_id) == ROWS


def test_a_file_imported_again_after_the_dedup_window_stores_nothing_twice(server, http):
    # Given a file whose every tenth row has no timestamp (stored at the time it arrived)
    project_id, secrets = server.project_with_keys("weeks-later")
    rows = history(3_000)
    for row in rows[::10]:
        del row["timestamp"]
    data = gzip.compress(ndjson(rows))
    complete(upload(http, secrets, data), 3_000, 0, 3_000)

    # When Redis has forgotten every id (NEXUS_DEDUP_HOURS passed) and the file comes again
    redis = server.runtime.redis.client
    forgotten = list(redis.scan_iter(match=f"d:{project_id}:*", count=10_000))
    assert len(forgotten) == 3_000
    redis.delete(*forgotten)

    # Then ClickHouse says every row is stored already
    complete(upload(http, secrets, data), 0, 3_000, 3_000)
    assert count(server, project_id) == 3_000


def test_a_corrupt_or_unreadable_upload_answers_400_with_the_counts(server, http):
    _, secrets = server.project_with_keys("unreadable")
    for body, error in [(b"PK\x03\x04 zip bytes", "the file is a zip archive"),
                        (b"\x1f\x8b\x08\x00garbage", "the file looks gzip-compressed but cannot be decompressed")]:
        stopped(upload(http, secrets, body), 400, error, 0)
    answer = upload(http, secrets, ndjson(history(10)), "?resume_from=-1")
    assert (answer.status_code, answer.json()["field"]) == (400, "resume_from"), answer.text


def test_cli_import_of_a_truncated_file_says_where_to_resume_and_exits_1(tmp_path: Path):
    data_dir = tmp_path / "data"
    assert run_nexus("project", "create", "cli-cut", data_dir=data_dir).returncode == 0
    whole = tmp_path / "orders.ndjson.gz"
    whole.write_bytes(gzip.compress(ndjson(history(3_000))))
    truncated = tmp_path / "cut.ndjson.gz"
    truncated.write_bytes(cut(whole.read_bytes()))
    done = whole_gzip_lines(truncated.read_bytes())

    result = run_nexus("import", str(truncated), "--project", "cli-cut", data_dir=data_dir)

    assert result.returncode == 1
    assert f"read {done:,} events: {done:,} stored, 0 already stored, 0 rejected" in result.stdout
    assert ("error: the gzip-compressed file is truncated: it ends before gzip's end-of-stream marker\n"
            f"stopped at cut.ndjson.gz:{done + 1}: every line or row before it is done; resume with "
            f"--resume-from {done} (importing the whole file again stores nothing twice)") in result.stderr
    assert "Traceback" not in result.stderr
    resumed = run_nexus("import", str(whole), "--project", "cli-cut", "--resume-from", str(done), data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"read {3_000 - done:,} events: {3_000 - done:,} stored, 0 already stored, 0 rejected" in resumed.stdout
    again = run_nexus("import", str(whole), "--project", "cli-cut", data_dir=data_dir)
    assert "read 3,000 events: 0 stored, 3,000 already stored, 0 rejected" in again.stdout
    total = run_nexus("sql", "SELECT count() FROM events WHERE event = 'Legacy Order'", "--format", "csv",
                      data_dir=data_dir)
    assert total.stdout.splitlines()[-1] == "3000"
