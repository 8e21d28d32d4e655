"""The services' log format: one JSON object per line, at NEXUS_LOG_LEVEL, with the request id in force and
the fields a line was given; libraries' own handlers (bokeh's) write through it too."""

from __future__ import annotations

import json
import subprocess
import sys

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
