"""The one error tree of Nexus; driver errors are wrapped into it where they enter (nexus.store.guard for
ClickHouse, nexus.adhoc.session for ad-hoc SQL, nexus.redis_server for Redis), and the API maps each class to
its HTTP status in one table (nexus.api.app)."""

from __future__ import annotations

import re
import secrets
from typing import Any


class NexusError(Exception):
    """Base of every error Nexus reports to a person: its message is one clear line."""


class InvalidConfig(NexusError):
    """A setting (an NEXUS_* variable or a CLI option) has a value Nexus cannot use."""


class InvalidRequest(NexusError, ValueError):
    """The caller asked for something malformed or impossible; `field`, when known, is the JSON path of the
    value at fault (`steps[1].where`). A ValueError so that msgspec, decoding a request whose
    `__post_init__` refuses a value, reports where the value was."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(NexusError):
    """A named thing (project, key, migration) does not exist."""


class Unauthorized(NexusError):
    """No API key, or one that does not exist or was revoked."""


class TooLarge(InvalidRequest):
    """A body or an event is over its size limit."""


class RateLimited(NexusError):
    """The caller sent more requests than its limit allows; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(NexusError):
    """The caller's key does not allow this."""


class StorageUnavailable(NexusError):
    """ClickHouse or Redis cannot be reached, opened or written, or is too busy to take the work now: the
    same request may succeed after `retry_after` seconds. `code` and `name` are ClickHouse's error code,
    when the engine gave one (TOO_MANY_SIMULTANEOUS_QUERIES, TOO_MANY_PARTS, ...)."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None, retry_after: int = 5):
        super().__init__(message)
        self.code = code
        self.name = name
        self.retry_after = retry_after


class StoreLocked(StorageUnavailable):
    """The embedded data dir is held by another process."""


class MigrationError(NexusError):
    """The schema cannot be brought up to date safely."""


class QueryFailed(NexusError):
    """The caller's own SQL (ad-hoc or saved) failed in the engine: a syntax error, an unknown column, a
    value that does not parse. The message is the engine's reason, meant for the person who wrote it."""


class LimitExceeded(QueryFailed):
    """The caller's request went over a limit on what one query may use (time, memory, rows read, result
    size). `limit` names it (a key's limit such as `max_seconds`, or the ClickHouse setting), and the
    message says how it can be raised or the request narrowed."""

    def __init__(self, message: str, limit: str = ""):
        super().__init__(message)
        self.limit = limit


class QueryTimeout(LimitExceeded):
    """The query ran, or its answer was sent, for longer than its time limit."""


class EngineError(NexusError):
    """ClickHouse refused SQL that Nexus itself wrote (an analysis, a catalog or metadata query, an insert):
    a fault of Nexus or of the store, never the caller's. The message is the engine's text, for logs and
    the operator's terminal; the API answers 500 with `error_id` only, and logs it with the SQL."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None, sql: str = "",
                 params: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.name = name
        self.sql = sql
        self.params = params or {}
        self.error_id = new_error_id()


def new_error_id() -> str:
    """A short id that ties an answer to its entry in the server log."""
    return secrets.token_hex(6)


_INNER_FIELD = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): ")


def reason_and_field(error: Exception) -> tuple[str, str]:
    """A msgspec ValidationError's text as (reason, field): msgspec ends it with the JSON path of the value
    at fault (" - at `$.steps[1]`"), given here as `steps[1]`; '' when it is the whole document."""
    reason, _, path = str(error).partition(" - at `$")
    path = path.rstrip("`").lstrip(".")
    # A nested request's own check names its field first ("columns[1]: ..."): the path reaches down to it.
    if path and (inner := _INNER_FIELD.match(reason)):
        path, reason = f"{path}.{inner[1]}", reason[inner.end():]
    return reason, path
