"""Exports over real HTTP, run by real Dramatiq workers: every format read back by its own reader and
checked against the data computed another way (DuckDB over the same rows, the analysis API); nasty
values round-trip; another project's key finds nothing; bad input is a 400 naming the field; a job can
be cancelled; transient failures are retried with backoff and a job out of attempts is failed with its reason."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from datetime import datetime, timedelta, timezone

import duckdb
import msgspec
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus.demo.load import load
from nexus.errors import InvalidRequest, StorageUnavailable
from nexus.jobs.worker import files_dir
from tests.jobs.conftest import wait_for_job

NASTY = ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tTAB", "\rCR", 'quote "q", comma', "new\nline", "emoji 🎉👍", "Ωμέγα 中文 عربي"]
NOW = datetime.now(timezone.utc)
EVENTS_SLICE = {"type": "events", "request": {"date_range": {"date_from": "-60d"},
                                              "columns": ["ts", "event", "distinct_id", "properties"]}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def alpha(workers, http):
    """Project alpha: 3,000 demo events ending now, and one event per nasty value, sent over HTTP."""
    project_id, keys = workers.project_with_keys("alpha")
    load(workers.runtime.clickhouse, project_id, 3000, end=NOW)
    batch = [{"type": "track", "event": "nasty", "userId": f"u{i}", "messageId": f"nasty-{i}",
              "timestamp": (NOW - timedelta(minutes=i + 1)).isoformat(), "properties": {"value": value}}
             for i, value in enumerate(NASTY)]
    assert http.post("/v1/batch", json={"batch": batch}, headers=bearer(keys["write"])).status_code == 200
    deadline = time.monotonic() + 10
    while _count(workers, project_id, "event = 'nasty'") < len(NASTY) and time.monotonic() < deadline:
        time.sleep(0.05)
    return project_id, keys


@pytest.fixture(scope="module")
def beta(workers):
    project_id, keys = workers.project_with_keys("beta")
    load(workers.runtime.clickhouse, project_id, 500, end=NOW, seed=7)
    return project_id, keys


def _count(server, project_id: int, where: str = "1") -> int:
    return server.runtime.clickhouse.query(f"SELECT count() FROM events WHERE project_id = {project_id} AND {where}").result_rows[0][0]


def export(http, key: str, body: dict, *, expect: str = "done") -> tuple[dict, bytes]:
    created = http.post("/v1/exports", json=body, headers=bearer(key))
    assert created.status_code == 202, created.text
    job = wait_for_job(http, key, created.json()["job_id"])
    assert job["state"] == expect, job
    if expect != "done":
        return job, b""
    file = http.get(f"/v1/exports/{job['job_id']}/file", headers=bearer(key))
    assert file.status_code == 200, file.text
    assert job["file_name"] in file.headers["content-disposition"]
    return job, file.content


def _events_reference(server, project_id: int) -> pd.DataFrame:
    """The same slice computed another way: the table's rows through DuckDB, ordered as the export is."""
    frame = server.runtime.clickhouse.query_df(
        f"SELECT ts, toString(event) AS event, distinct_id, toJSONString(properties) AS properties, message_id "
        f"FROM events WHERE project_id = {project_id} AND ts >= now() - INTERVAL 61 DAY")
    return duckdb.sql("SELECT event, distinct_id, properties FROM frame ORDER BY ts, message_id").df()


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_an_events_slice_in_every_streamed_format_equals_the_stored_rows(http, workers, alpha, fmt) -> None:
    project_id, keys = alpha
    job, content = export(http, keys["read"], {"source": EVENTS_SLICE, "format": fmt})
    if fmt == "csv":
        frame = pd.read_csv(io.BytesIO(content), keep_default_na=False)
    elif fmt == "ndjson":
        frame = pd.DataFrame([json.loads(line) for line in content.splitlines()])
    else:
        frame = pq.read_table(io.BytesIO(content)).to_pandas()
    expected = _events_reference(workers, project_id)
    assert job["rows"] == len(frame) == len(expected) == _count(workers, project_id)
    assert job["bytes"] == len(content) and job["progress"] == 100
    got = frame[["event", "distinct_id", "properties"]].reset_index(drop=True)
    if fmt == "csv":  # a spreadsheet's formula prefixes neutralised: a leading quote, the value after it
        assert got["distinct_id"].tolist() == expected["distinct_id"].tolist()
        nasty = [json.loads(p)["value"] for p in got.loc[got["event"] == "nasty", "properties"]]
        assert sorted(nasty) == sorted(NASTY)  # properties' JSON starts with '{': nothing to neutralise
    else:
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_csv_neutralises_formulas_and_round_trips_quotes_newlines_and_emoji(http, alpha) -> None:
    _, keys = alpha
    sql = ("SELECT JSONExtractString(toJSONString(properties), 'value') AS value, 1 AS `=HYPERLINK(\"x\")` "
           "FROM events WHERE event = 'nasty' ORDER BY value")
    _, content = export(http, keys["read"], {"source": {"type": "sql", "query": sql}, "format": "csv"})
    frame = pd.read_csv(io.BytesIO(content), keep_default_na=False)
    assert list(frame.columns) == ["value", "'=HYPERLINK(\"x\")"]  # a column name is a cell too
    values = frame["value"].tolist()
    risky = ("=", "+", "-", "@", "\t", "\r")
    assert sorted(values) == sorted(f"'{v}" if v.startswith(risky) else v for v in NASTY)


def test_excel_of_a_dashboard_has_one_typed_sheet_per_tile(http, workers, alpha) -> None:
    project_id, keys = alpha
    board = http.get("/v1/dashboards", headers=bearer(keys["read"])).json()["dashboards"][0]
    job, content = export(http, keys["read"], {"source": {"type": "dashboard", "dashboard_id": board["dashboard_id"]},
                                               "format": "xlsx", "name": "board"})
    assert job["file_name"] == "board.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(content))
    titles = [t["title"] for t in board["tiles"]]
    assert [name for name in book.sheetnames if name != "Notes"] == [t[:31] for t in titles]
    # The first tile (events per day, last 30 days) against the analysis API: the same numbers, as numbers.
    tile = board["tiles"][0]
    answer = http.post(f"/v1/analyses/{tile['kind']}?format=csv", json=tile["request"], headers=bearer(keys["read"]))
    expected = pd.read_csv(io.BytesIO(answer.content))
    sheet = pd.read_excel(io.BytesIO(content), sheet_name=book.sheetnames[0])
    assert len(sheet) == len(expected) and sheet.select_dtypes("number").sum().sum() == expected.select_dtypes("number").sum().sum()
    numbers = [c.value for c in next(book[book.sheetnames[0]].iter_cols(min_row=2, max_col=book[book.sheetnames[0]].max_column))]
    assert numbers  # a column of values, typed (not text) where the API's CSV holds numbers
    first_row = [c.value for c in book[book.sheetnames[0]][2]]
    assert any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first_row)
    assert any(isinstance(v, datetime) for v in first_row)


def test_csv_of_a_dashboard_is_a_zip_with_a_file_per_tile(http, alpha) -> None:
    _, keys = alpha
    board = http.get("/v1/dashboards", headers=bearer(keys["read"])).json()["dashboards"][0]
    job, content = export(http, keys["read"], {"source": {"type": "dashboard", "dashboard_id": board["dashboard_id"]},
                                               "format": "csv"})
    assert job["file_name"].endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        assert len(names) == len(board["tiles"]) and all(n.endswith(".csv") for n in names)
        assert pd.read_csv(archive.open(names[0])).shape[0] > 0


def test_an_analysis_export_equals_the_analysis_api(http, alpha) -> None:
    _, keys = alpha
    request = {"steps": [{"event": "page_view"}, {"event": "signup"}], "date_range": {"date_from": "-60d"}}
    _, content = export(http, keys["read"], {"source": {"type": "analysis", "kind": "funnel", "request": request},
                                             "format": "parquet"})
    api = http.post("/v1/analyses/funnel?format=arrow", json=request, headers=bearer(keys["read"]))
    expected = pa.ipc.open_stream(api.content).read_all()
    assert pq.read_table(io.BytesIO(content)).to_pylist() == expected.to_pylist()


def test_max_rows_cuts_each_table(http, alpha) -> None:
    _, keys = alpha
    job, content = export(http, keys["read"], {"source": EVENTS_SLICE, "format": "ndjson", "max_rows": 7})
    assert job["rows"] == 7 and len(content.splitlines()) == 7


def test_another_projects_key_finds_nothing_of_it(http, workers, alpha, beta) -> None:
    _, alpha_keys = alpha
    beta_id, beta_keys = beta
    job, _ = export(http, alpha_keys["read"], {"source": EVENTS_SLICE, "format": "csv"})
    for method, path in (("GET", f"/v1/jobs/{job['job_id']}"), ("DELETE", f"/v1/jobs/{job['job_id']}"),
                         ("GET", f"/v1/exports/{job['job_id']}/file")):
        answer = http.request(method, path, headers=bearer(beta_keys["read"]))
        assert answer.status_code == 404 and "alpha" not in answer.text and "nasty" not in answer.text
    assert job["job_id"] not in http.get("/v1/jobs", headers=bearer(beta_keys["read"])).text
    # SQL naming every table still reads only the key's own project; beta's data never reaches alpha's file.
    _, content = export(http, beta_keys["read"], {"source": {"type": "sql", "query": "SELECT count() AS n, "
                                                            "countIf(event = 'nasty') AS nasty FROM events"}, "format": "csv"})
    assert pd.read_csv(io.BytesIO(content)).to_dict("records") == [{"n": _count(workers, beta_id), "nasty": 0}]
    alpha_board = http.get("/v1/dashboards", headers=bearer(alpha_keys["read"])).json()["dashboards"][0]
    refused = http.post("/v1/exports", json={"source": {"type": "dashboard", "dashboard_id": alpha_board["dashboard_id"]
                                                        if alpha_board["dashboard_id"] != "d_defaultboard" else "d_notbetasown1"},
                                             "format": "csv"}, headers=bearer(beta_keys["read"]))
    assert refused.status_code == 404
    assert http.post("/v1/exports", json={"source": EVENTS_SLICE, "format": "csv"},
                     headers=bearer(beta_keys["write"])).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"source": EVENTS_SLICE, "format": "docx"}, "format"),
    ({"source": {"type": "analysis", "kind": "nope"}, "format": "csv"}, "source.kind"),
    ({"source": {"type": "analysis", "kind": "funnel", "request": {"steps": "x"}}, "format": "csv"}, "source.request.steps"),
    ({"source": {"type": "events", "request": {"columns": ["ts", "secret"]}}, "format": "csv"}, "source.request.columns[1]"),
    ({"source": EVENTS_SLICE, "format": "csv", "max_rows": 0}, "max_rows"),
    ({"source": EVENTS_SLICE, "format": "csv", "max_rows": 10 ** 12}, "max_rows"),
    ({"source": {"type": "report"}, "format": "csv"}, "format"),
    ({"source": EVENTS_SLICE, "format": "csv", "name": "../x"}, "name"),
    ({"source": {"type": "nope"}, "format": "csv"}, "source.type"),
])
def test_bad_input_is_a_400_naming_the_field(http, alpha, body, field) -> None:
    _, keys = alpha
    before = http.get("/v1/jobs", headers=bearer(keys["read"])).json()["jobs"]
    answer = http.post("/v1/exports", json=body, headers=bearer(keys["read"]))
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and "Traceback" not in answer.text
    assert http.get("/v1/jobs", headers=bearer(keys["read"])).json()["jobs"] == before  # no job was queued


def test_a_running_export_can_be_cancelled_and_leaves_no_file(http, workers, alpha) -> None:
    project_id, keys = alpha
    gate = threading.Event()

    def slow(context) -> None:  # a job that runs until it is cancelled, reporting progress as exports do
        context.file_path().parent.mkdir(parents=True, exist_ok=True)
        context.file_path().write_bytes(b"partial")
        gate.set()
        for i in range(600):
            context.progress(i, i / 600)
            time.sleep(0.05)

    workers.runtime.jobs.handlers["slow"] = slow
    job = workers.runtime.jobs.submit(project_id, "slow", _Empty(), "test")
    assert gate.wait(10)
    running = wait_for_job(http, keys["read"], job.job_id, until=("running",))
    assert running["state"] == "running" and 0 <= running["progress"] < 100
    cancelled = http.delete(f"/v1/jobs/{job.job_id}", headers=bearer(keys["read"]))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    time.sleep(1.5)
    final = wait_for_job(http, keys["read"], job.job_id)
    assert final["state"] == "cancelled"
    assert not (files_dir(workers.runtime.settings, project_id) / job.job_id).exists()


class _Empty(msgspec.Struct):
    """The definition of the test's own kinds of job: they need none."""


def test_transient_failures_are_retried_with_backoff_then_succeed(http, workers, alpha) -> None:
    project_id, keys = alpha
    attempts: list[float] = []

    def flaky(context) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise StorageUnavailable("ClickHouse is unavailable (test)")

    workers.runtime.jobs.handlers["flaky"] = flaky
    job = workers.runtime.jobs.submit(project_id, "flaky", _Empty(), "test")
    final = wait_for_job(http, keys["read"], job.job_id, until=("done", "failed"), timeout=60)
    assert final["state"] == "done" and final["attempts"] == 3 and len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.5 and attempts[2] - attempts[1] >= 1  # backoff grows from 1 s


def test_a_job_out_of_attempts_is_failed_with_its_reason_and_a_bad_one_fails_at_once(http, workers, alpha) -> None:
    project_id, keys = alpha
    calls = {"down": 0, "bad": 0}

    def down(context) -> None:
        calls["down"] += 1
        raise StorageUnavailable("Redis is unavailable (test)")

    def bad(context) -> None:
        calls["bad"] += 1
        raise InvalidRequest("this definition can never run (test)")

    workers.runtime.jobs.handlers.update(down=down, bad=bad)
    dead = workers.runtime.jobs.submit(project_id, "down", _Empty(), "test")
    broken = workers.runtime.jobs.submit(project_id, "bad", _Empty(), "test")
    final = wait_for_job(http, keys["read"], dead.job_id, until=("failed", "done"), timeout=60)
    assert final["state"] == "failed" and final["attempts"] == 3 == calls["down"]
    assert "failed 3 times" in final["error"] and "Redis is unavailable (test)" in final["error"]
    failed = wait_for_job(http, keys["read"], broken.job_id, until=("failed", "done"))
    assert failed["state"] == "failed" and failed["attempts"] == 1 == calls["bad"]
    assert failed["error"] == "this definition can never run (test)"
    listed = http.get("/v1/jobs?state=failed", headers=bearer(keys["read"])).json()["jobs"]
    assert {dead.job_id, broken.job_id} <= {j["job_id"] for j in listed}
    assert http.get("/v1/jobs?state=nope", headers=bearer(keys["read"])).json()["field"] == "state"



def _pdf_text(content: bytes) -> str:
    import pypdf

    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def test_reports_as_pdf_and_excel_print_the_analysis_results(http, alpha) -> None:
    _, keys = alpha
    overview = {"source": {"type": "report", "report": {"template": "overview", "title": "Weekly Ωμέγα 中文",
                                                        "date_range": {"date_from": "-30d"}}}, "format": "pdf"}
    job, content = export(http, keys["read"], overview)
    assert content.startswith(b"%PDF") and job["file_name"].endswith(".pdf")
    text = _pdf_text(content)
    assert "Weekly Ωμέγα 中文" in text
    # The key numbers printed are the overview analysis's, asked for over the API.
    result = http.post("/v1/analyses/overview", json={"date_range": {"date_from": "-30d"}},
                       headers=bearer(keys["read"])).json()["result"]
    events = next(k for k in result["kpis"] if k["name"] == "events")["value"]
    assert events > 1000 and f"{int(events):,}" in text
    # The same report as Excel: a sheet per section, whose numbers are the overview analysis's.
    job, content = export(http, keys["read"], {**overview, "format": "xlsx"})
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert len(book.sheetnames) >= 3
    # A query's rows as a PDF table, and a dashboard as a PDF of its tiles.
    _, content = export(http, keys["read"], {"source": {"type": "sql", "query": "SELECT 'zz-marker-42' AS marker"},
                                             "format": "pdf"})
    assert "zz-marker-42" in _pdf_text(content)
    board = http.get("/v1/dashboards", headers=bearer(keys["read"])).json()["dashboards"][0]
    _, content = export(http, keys["read"], {"source": {"type": "dashboard", "dashboard_id": board["dashboard_id"]},
                                             "format": "pdf"})
    text = _pdf_text(content)
    assert all(tile["title"] in text for tile in board["tiles"])


def test_a_slice_is_read_in_windows_of_whole_days_that_together_are_the_slice_in_order(workers, alpha) -> None:
    """Each window is sorted on its own (bounded memory); one after another they are the whole slice."""
    from nexus.analyses import event_rows

    project_id, _ = alpha
    request = msgspec.convert(EVENTS_SLICE["request"], event_rows.EventRowsRequest)
    client = workers.runtime.clickhouse
    parts = event_rows.windows(client, project_id, request, rows=500)
    assert len(parts) >= 5 and all(p.rows <= 500 for p in parts)
    rows = [row for part in parts for row in client.query(part.query.sql, parameters=part.query.params).result_rows]
    assert sum(p.rows for p in parts) == len(rows) == _count(workers, project_id)
    expected = _events_reference(workers, project_id)
    assert [(r[1], r[2]) for r in rows] == list(zip(expected["event"], expected["distinct_id"]))
    assert event_rows.windows(client, project_id, msgspec.structs.replace(request, events=["no such event"])) == []


def test_files_past_their_retention_are_removed_by_the_cleanup_job(http, workers, alpha) -> None:
    from nexus.jobs import store
    from nexus.jobs.handlers import CLEANUP_PROJECT

    project_id, keys = alpha
    old, _ = export(http, keys["read"], {"source": EVENTS_SLICE, "format": "csv", "max_rows": 3})
    fresh, _ = export(http, keys["read"], {"source": EVENTS_SLICE, "format": "csv", "max_rows": 3})
    client = workers.runtime.clickhouse
    hours = workers.runtime.settings.export_retention_hours
    store.save(client, store.get(client, project_id, old["job_id"]),
               finished_at=datetime.now(timezone.utc) - timedelta(hours=hours + 1))
    cleanup = workers.runtime.jobs.submit(CLEANUP_PROJECT, "cleanup", _Empty(), "")
    deadline = time.monotonic() + 30
    while store.get(client, CLEANUP_PROJECT, cleanup.job_id).state != "done" and time.monotonic() < deadline:
        time.sleep(0.1)
    gone = http.get(f"/v1/exports/{old['job_id']}/file", headers=bearer(keys["read"]))
    assert gone.status_code == 404 and "removed after NEXUS_EXPORT_RETENTION_HOURS" in gone.json()["error"]
    assert not (files_dir(workers.runtime.settings, project_id) / old["job_id"]).exists()
    assert http.get(f"/v1/exports/{fresh['job_id']}/file", headers=bearer(keys["read"])).status_code == 200
    assert http.get(f"/v1/jobs/{old['job_id']}", headers=bearer(keys["read"])).json()["state"] == "done"
