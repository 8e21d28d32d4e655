"""The services' log format: one JSON object per line, at NEXUS_LOG_LEVEL, with the request id in force and
the fields a line was given; libraries' own handlers (bokeh's) write through it too, `nexus dashboard`'s
included, and no line holds an API key's secret."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from nexus.observe.logs import JsonFormatter
from tests.conftest import run_nexus

PROGRAM = """
import logging, sys
import bokeh.util.logconfig  # gives itself a text handler when the root has none, as at nexus serve's imports
from nexus.observe import logs
logs.configure(sys.argv[1])
logs.request_id.set("req-12345678")
logging.getLogger("nexus.test").info("request", extra={"route": "/v1/batch", "status": 200})
logging.getLogger("nexus.test").warning("slow")
logging.getLogger("bokeh.server").warning("from bokeh")
"""


def _lines(level: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, level], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout, done.stderr
    return [json.loads(line) for line in done.stderr.splitlines()]


def test_lines_are_json_at_the_level_asked():
    info = _lines("info")
    assert [(line["level"], line["message"]) for line in info] == [("info", "request"), ("warning", "slow"),
                                                                   ("warning", "from bokeh")]
    assert info[0]["route"] == "/v1/batch" and info[0]["status"] == 200 and info[0]["logger"] == "nexus.test"
    assert {line["request_id"] for line in info} == {"req-12345678"}
    assert [line["message"] for line in _lines("error")] == []


SECRET = "nx_" + "Ab3_" * 10  # shaped as a key's secret: "nx_", its 8-character public id, the rest


def test_a_secret_a_library_logs_is_cut_to_the_key_id():
    record = logging.LogRecord("tornado.access", logging.INFO, "", 0, "200 GET /login?key=%s (127.0.0.1)",
                               (SECRET,), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "200 GET /login?key=nx_Ab3_Ab3_[redacted] (127.0.0.1)"


def test_the_dashboard_logs_its_requests_as_json_lines_without_keys(tmp_path: Path):
    # Given `nexus dashboard` on a migrated store at NEXUS_LOG_LEVEL=info
    data_dir = tmp_path / "data"
    assert run_nexus("migrate", data_dir=data_dir).returncode == 0
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    environment.update(NEXUS_DATA_DIR=str(data_dir), NEXUS_LOG_LEVEL="info", PYTHONUNBUFFERED="1")
    dashboard = subprocess.Popen([sys.executable, "-m", "nexus", "dashboard", "--port", "0"], env=environment,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"serving (http://\S+)", dashboard.stdout.readline())[1]
        # When a key arrives in a query string, in the sign-in form, and in a link to no page
        statuses = [httpx.get(f"{url}login?key={SECRET}").status_code,
                    httpx.post(f"{url}login", data={"key": SECRET}).status_code,
                    httpx.get(f"{url}nowhere?key={SECRET}").status_code]
    finally:
        dashboard.send_signal(signal.SIGTERM)
        _, err = dashboard.communicate(timeout=60)
    # Then each request is a JSON line at info, by path without its query (none for an unknown path), and no
    # line holds the key
    assert statuses == [200, 401, 404]
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(line["level"], line["method"], line["route"], line["status"]) for line in lines
            if line["logger"] == "nexus.dashboard.requests"] == [
        ("info", "GET", "/login", 200), ("info", "POST", "/login", 401), ("info", "GET", "(unmatched)", 404)]
    assert SECRET[len("nx_Ab3_Ab3_"):] not in err
