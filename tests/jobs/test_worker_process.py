"""Jobs across process deaths, with `nexus serve` (embedded: its worker threads in-process) as a person runs
it: a stop (SIGTERM) hands a running export back to the queue and the next start finishes it; a kill -9
mid-job leaves it running only until its liveness lapses, then it is retried, never left "running"."""

from __future__ import annotations

import io
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openpyxl

from tests.jobs.conftest import wait_for_job
from tests.test_serve import Server

ENV = {"NEXUS_WORKER_THREADS": "1", "NEXUS_SCHEDULER_TICK_SECONDS": "1", "NEXUS_JOB_MAX_ATTEMPTS": "3",
       "NEXUS_JOB_BACKOFF_SECONDS": "1"}
EVENTS = 300_000
# Excel is the slowest writer: an export of every event runs for seconds, long enough to stop it midway.
EXPORT = {"source": {"type": "events", "request": {"date_range": {"date_from": "-3650d"},
                                                  "columns": ["ts", "event", "distinct_id"]}}, "format": "xlsx"}


def _running(http: httpx.Client, key: str, job_id: str) -> dict:
    """Wait until the job runs and has written some rows (its progress is above 0)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
        if job["state"] == "running" and job["progress"] > 0:
            return job
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError(f"the export did not start: {job}")


def test_a_stop_requeues_a_running_export_and_a_kill_minus_9_is_recovered(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--demo", str(EVENTS), env=ENV)
    key = re.findall(r"Demo read key \(shown once\): (\S+)", "".join(server.lines))[0]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job_id = http.post("/v1/exports", json=EXPORT, headers={"Authorization": f"Bearer {key}"}).json()["job_id"]
            _running(http, key, job_id)
        code, _ = server.stop(signal.SIGTERM)
        stopped = datetime.now(timezone.utc)
        assert code == 0
        server = Server(data_dir, env=ENV)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = _running(http, key, job_id)
            # Run again from the start after the restart, and the stop cost no attempt.
            assert datetime.fromisoformat(job["started_at"]) > stopped and job["attempts"] == 1, job
        server.process.kill()  # kill -9, mid-job
        server.process.wait()
        server = Server(data_dir, env=ENV)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = wait_for_job(http, key, job_id, timeout=90)
            assert job["state"] == "done", job
            assert job["attempts"] == 2  # the killed attempt, then the one that finished
            file = http.get(f"/v1/exports/{job_id}/file", headers={"Authorization": f"Bearer {key}"})
            sheet = openpyxl.load_workbook(io.BytesIO(file.content), read_only=True).worksheets[0]
            header, first = sheet.iter_rows(max_row=2, values_only=True)
            assert job["rows"] == EVENTS and header == ("ts (UTC)", "event", "distinct_id") and first[1]
    finally:
        if server.process.poll() is None:
            server.stop()
