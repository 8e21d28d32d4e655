"""Structured logs: one JSON object per line on stderr, with the request id of the request (or the job)
being served, so a request's line and the lines of the jobs it enqueued share one id.

What is logged is chosen where it is logged: routes by template (never the path as sent, nor a query
string, which may carry a key), never a header, an event or a body. A line names its fields in `extra`.
Whatever a library logs anyway, an API key's secret in it is cut to the key's public id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
import sys
from datetime import datetime, timezone

import msgspec

# The id of the request or job this thread or task is serving ("" outside one).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("nexus_request_id", default="")

_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# An API key's secret (nexus.meta.keys: "nx_", the 8 characters of its public id, then the secret part),
# wherever a library put it in a line (a URL it logged, an exception's text): cut after its public id.
_KEY_SECRET = re.compile(r"(nx_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+")
# LogRecord's own attributes: what is not among them came in `extra` and is written as a field.
# (uvicorn adds color_message: its message with terminal colours.)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName",
                                                                          "color_message"}


def new_request_id(offered: str | None = None) -> str:
    """The caller's X-Request-Id when it is a plain token (so a proxy's id carries through), else a new one."""
    if offered and _ACCEPTED_ID.fullmatch(offered):
        return offered
    return secrets.token_hex(8)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if current := request_id.get():
            line["request_id"] = current
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _KEY_SECRET.sub(r"\1[redacted]", msgspec.json.encode(line, enc_hook=str).decode())


def configure(level: str) -> None:
    """Every logger of the process (uvicorn's, Dramatiq's, the drivers') writes JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that gave themselves a text handler when imported (bokeh, when the root had none yet).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "bokeh"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if level != "debug":
        # The drivers log each failure they raise (with the statement); Nexus reports the raised error once.
        for driver in ("clickhouse_connect", "urllib3"):
            logging.getLogger(driver).setLevel(logging.CRITICAL)
