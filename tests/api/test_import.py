"""Bulk back-fill over HTTP and from the CLI: NDJSON, Arrow and Parquet, old timestamps, per-line errors."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_nexus


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("backfill")


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def count(server, project_id: int, where: str = "1") -> int:
    return server.runtime.clickhouse.query(
        f"SELECT count() FROM events WHERE project_id = {{p:UInt32}} AND {where}", parameters={"p": project_id}
    ).result_rows[0][0]


def history(prefix: str, n: int) -> list[dict]:
    # sentAt as the SDK once sent it: a back-fill keeps timestamps as they are (no skew correction)
    return [{"type": "track", "event": "Legacy Order", "userId": f"u{i % 50}", "messageId": f"{prefix}-{i}",
             "timestamp": f"2019-0{1 + i % 9}-15T12:00:00Z", "sentAt": f"2019-0{1 + i % 9}-15T12:00:02Z",
             "properties": {"total": i}} for i in range(n)]


def test_ndjson_gzip_backfill_of_old_events_with_a_bad_line(server, http, project):
    project_id, secrets = project
    lines = [json.dumps(e) for e in history("nd", 3000)]
    lines.insert(1500, '{"type": "track", "userId": "x"}')
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    answer = http.post("/v1/import", content=body, headers=auth(secrets["admin"]))
    assert answer.status_code == 400
    summary = answer.json()
    assert (summary["events"], summary["stored"], summary["rejected"]) == (3001, 3000, 1)
    assert summary["errors"] == [{"index": 1500, "field": "event", "reason": "track calls need an event name"}]
    assert count(server, project_id, "event = 'Legacy Order' AND toYear(ts) = 2019") == 3000
    assert count(server, project_id, "event = 'Legacy Order' AND toSecond(ts) = 0 AND skew_ms = 0") == 3000
    again = http.post("/v1/import", content=body, headers=auth(secrets["admin"])).json()
    assert (again["stored"], again["duplicates"]) == (0, 3000)


def test_parquet_and_arrow_backfills(server, http, project):
    project_id, secrets = project
    for name in ("pq", "arrow"):
        rows = history(name, 1000)
        table = pa.table({
            "type": [r["type"] for r in rows], "event": [r["event"] for r in rows],
            "userId": [r["userId"] for r in rows], "messageId": [r["messageId"] for r in rows],
            "timestamp": pa.array([1_560_000_000_000 + i for i in range(1000)], pa.timestamp("ms", tz="UTC")),
            "properties": [json.dumps(r["properties"]) for r in rows],
        })
        sink = io.BytesIO()
        if name == "pq":
            pq.write_table(table, sink)
        else:
            with ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        answer = http.post(f"/v1/import?format={'parquet' if name == 'pq' else 'arrow'}", content=sink.getvalue(),
                           headers=auth(secrets["admin"]))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True, "events": 1000, "stored": 1000, "duplicates": 0, "rejected": 0,
                                 "errors": [], "resume_from": 1000}
    assert count(server, project_id, "message_id LIKE 'pq-%' OR message_id LIKE 'arrow-%'") == 2000


def test_import_needs_an_admin_key_and_a_known_format(server, http, project):
    _, secrets = project
    denied = http.post("/v1/import", content=b'{"type":"track"}\n', headers=auth(secrets["write"]))
    assert denied.status_code == 403 and "cannot administer" in denied.json()["error"]
    unknown = http.post("/v1/import", content=b"PK\x03\x04 zip bytes", headers=auth(secrets["admin"]))
    assert unknown.status_code == 400 and "zip" in unknown.json()["error"].lower()


def test_an_upload_over_the_limit_is_413_and_stores_nothing(server, http, project, monkeypatch):
    project_id, secrets = project
    api = server.app.state.api
    monkeypatch.setattr(api, "settings", msgspec.structs.replace(api.settings, max_import_bytes=10_000))
    before = count(server, project_id)
    body = "\n".join(json.dumps(e) for e in history("big", 200)).encode()
    answer = http.post("/v1/import", content=body, headers=auth(secrets["admin"]))
    assert answer.status_code == 413 and "over the limit of 10000" in answer.json()["error"]
    assert count(server, project_id) == before


def test_cli_import_reports_lines_and_exits_1_on_rejections(tmp_path: Path):
    data_dir = tmp_path / "data"
    assert run_nexus("project", "create", "cli-import", data_dir=data_dir).returncode == 0
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join([*map(json.dumps, history("cli", 500)), "not json"]) + "\n")
    result = run_nexus("import", str(source), "--project", "cli-import", data_dir=data_dir)
    assert result.returncode == 1
    assert "read 501 events: 500 stored, 0 already stored, 1 rejected" in result.stdout
    assert "events.ndjson:501: malformed JSON" in result.stderr
    clean = tmp_path / "clean.ndjson"
    clean.write_text("\n".join(map(json.dumps, history("ok", 10))) + "\n")
    assert run_nexus("import", str(clean), "--project", "cli-import", data_dir=data_dir).returncode == 0
    missing = run_nexus("import", str(clean), "--project", "nope", data_dir=data_dir)
    assert missing.returncode == 1 and "error: no project 'nope'" in missing.stderr
