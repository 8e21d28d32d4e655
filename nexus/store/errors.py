"""What an error of the engine or of the way to it means for Nexus, read from ClickHouse's error code: the
one place Nexus sorts them. nexus.store.guard turns the answer into Nexus's errors for SQL that Nexus
wrote, nexus.adhoc.session for the caller's own ad-hoc SQL.

clickhouse-connect carries the code (`code`, `name`) on its errors; chDB's own connection (the sandbox's)
only writes it into the message (`Code: 62. DB::Exception: ... (SYNTAX_ERROR)`), read here and nowhere
else. An error with no code that comes from the way to the server (a refused or reset connection, a
timeout, a proxy's 502) means the server cannot be reached.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

import urllib3.exceptions
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

Kind = Literal["unavailable", "limit", "refused", "other"]

# The server cannot take the work now — unreachable, overloaded, out of disk or memory as a whole, or
# its Keeper or replicas are gone — and the same request may succeed later: 503 with Retry-After.
UNAVAILABLE: dict[int, str] = {
    74: "CANNOT_READ_FROM_FILE_DESCRIPTOR", 75: "CANNOT_WRITE_TO_FILE_DESCRIPTOR", 95: "CANNOT_READ_FROM_SOCKET",
    96: "CANNOT_WRITE_TO_SOCKET", 173: "CANNOT_ALLOCATE_MEMORY", 192: "UNKNOWN_USER", 193: "WRONG_PASSWORD",
    194: "REQUIRED_PASSWORD", 195: "IP_ADDRESS_NOT_ALLOWED", 201: "QUOTA_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES", 203: "NO_FREE_CONNECTION", 204: "CANNOT_FSYNC", 209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR", 217: "CLIENT_HAS_CONNECTED_TO_WRONG_PORT", 225: "NO_ZOOKEEPER", 242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE", 244: "UNEXPECTED_ZOOKEEPER_ERROR", 252: "TOO_MANY_PARTS", 254: "NO_ACTIVE_REPLICAS",
    265: "NO_AVAILABLE_REPLICA", 279: "ALL_CONNECTION_TRIES_FAILED", 285: "TOO_FEW_LIVE_REPLICAS",
    289: "REPLICA_IS_NOT_IN_QUORUM", 297: "SHARD_HAS_NO_CONNECTIONS", 319: "UNKNOWN_STATUS_OF_INSERT",
    369: "ALL_REPLICAS_ARE_STALE", 415: "ALL_REPLICAS_LOST", 425: "SYSTEM_ERROR", 439: "CANNOT_SCHEDULE_TASK",
    516: "AUTHENTICATION_FAILED", 519: "NO_REMOTE_SHARD_AVAILABLE", 574: "DISTRIBUTED_TOO_MANY_PENDING_BYTES",
    692: "TOO_MANY_MUTATIONS", 700: "USER_SESSION_LIMIT_EXCEEDED", 745: "SERVER_OVERLOADED",
    749: "TCP_CONNECTION_LIMIT_REACHED", 762: "HTTP_CONNECTION_LIMIT_REACHED", 777: "MEMORY_RESERVATION_KILLED",
    778: "MEMORY_RESERVATION_FAILED", 904: "TOO_MANY_UNAVAILABLE_SHARDS", 999: "KEEPER_EXCEPTION",
    1017: "ASYNC_INSERT_FLUSH_TIMEOUT", 1019: "QUERY_SLOT_ACQUISITION_TIMEOUT",
    1020: "MEMORY_RESERVATION_ACQUISITION_TIMEOUT",
}

# A limit set on this one query stopped it: the setting that did, unless the message names another.
# MEMORY_LIMIT_EXCEEDED is here only for the query's own limit: the server's or user's is UNAVAILABLE.
LIMITS: dict[int, tuple[str, str]] = {
    158: ("TOO_MANY_ROWS", "max_rows_to_read"), 159: ("TIMEOUT_EXCEEDED", "max_execution_time"),
    160: ("TOO_SLOW", "max_execution_time"), 161: ("TOO_MANY_COLUMNS", "max_columns_to_read"),
    162: ("TOO_DEEP_SUBQUERIES", "max_subquery_depth"), 165: ("TOO_MANY_TEMPORARY_COLUMNS", "max_temporary_columns"),
    166: ("TOO_MANY_TEMPORARY_NON_CONST_COLUMNS", "max_temporary_non_const_columns"),
    167: ("TOO_DEEP_AST", "max_ast_depth"), 168: ("TOO_BIG_AST", "max_ast_elements"),
    191: ("SET_SIZE_LIMIT_EXCEEDED", "max_rows_in_set"), 229: ("QUERY_IS_TOO_LARGE", "max_query_size"),
    241: ("MEMORY_LIMIT_EXCEEDED", "max_memory_usage"), 307: ("TOO_MANY_BYTES", "max_bytes_to_read"), 396: ("TOO_MANY_ROWS_OR_BYTES", "max_result_rows"),
}

# The query asked for what a read-only, sandboxed session may not do (for the caller's SQL: 403).
REFUSED: dict[int, str] = {164: "READONLY", 344: "SUPPORT_IS_DISABLED", 446: "FUNCTION_NOT_ALLOWED",
                           497: "ACCESS_DENIED"}

_CODE = re.compile(r"\bCode: (\d+)\b")
_ENGINE_TEXT = re.compile(r"\s*(Streaming query failed: )?Code: \d+\. DB::Exception")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?:\s*\(version [^)]*\))?\s*$")
_SETTING = re.compile(r"controlled by '(\w+)' setting")
_QUERY_MEMORY = re.compile(r"query memory limit|memory limit \(for query\)", re.IGNORECASE)


class Failure(NamedTuple):
    """One error, sorted: its kind, ClickHouse's code and name when known, its reason in one line, and for
    a limit the ClickHouse setting that stopped the query."""

    kind: Kind
    code: int | None
    name: str
    message: str
    setting: str = ""


def classify(error: BaseException) -> Failure:
    """Sort a driver error (clickhouse-connect's, chDB's, urllib3's or the OS's) by what it means."""
    code, name = error_code(error)
    text = str(error)
    message = engine_message(text) if code is not None else transport_message(error)
    if code is None:
        kind: Kind = "unavailable" if _is_transport(error) else "other"
        return Failure(kind, None, name, message)
    if code in UNAVAILABLE:
        return Failure("unavailable", code, name or UNAVAILABLE[code], message)
    if code in LIMITS:
        limit_name, setting = LIMITS[code]
        if code == 241 and not _QUERY_MEMORY.search(text):  # the server's memory, or the user's, is full
            return Failure("unavailable", code, name or limit_name, message)
        return Failure("limit", code, name or limit_name, message, _limit_setting(code, text, setting))
    if code in REFUSED:
        return Failure("refused", code, name or REFUSED[code], message)
    return Failure("other", code, name, message)


def error_code(error: BaseException) -> tuple[int | None, str]:
    """ClickHouse's error code and name: clickhouse-connect's attributes, else (chDB's own errors) the
    message's `Code: N` and trailing `(NAME)`. (None, '') for an error that is not the engine's."""
    code = getattr(error, "code", None)
    name = getattr(error, "name", None) or ""
    if not isinstance(code, int) or isinstance(code, bool):
        code = None
        text = str(error)
        if isinstance(error, ClickHouseError) or _ENGINE_TEXT.match(text):
            found = _CODE.search(text)
            code = int(found[1]) if found else None
    if code is not None and not name:
        found = _NAME.search(str(error).split("Stack trace", 1)[0].strip())
        name = found[1] if found else ""
    return code, name


def engine_message(text: str) -> str:
    """`Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot ... (READONLY) (version 26.9)` -> its reason."""
    text = text.split("Stack trace", 1)[0].replace("Streaming query failed: ", "")
    text = re.sub(r"\s*\(version [^)]*\)", "", text)
    text = re.sub(r"(Code: \d+\. DB::Exception: )+", "", text)
    # Parsing runs inside the sandbox's own wrapper query; the caller's position numbers are what matter.
    text = re.sub(r":? In scope SELECT (parseQueryToJSON|formatQueryFromJSON)\(.*", "", text, flags=re.S)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:1000] or "the query failed"


def transport_message(error: BaseException) -> str:
    """The reason of an error on the way to the server, without the driver's pages of retry detail."""
    text = str(error).strip()
    for cause in (error.__cause__, error.__context__):  # clickhouse-connect raises from urllib3's error
        if not re.search(r"\[Errno -?\d+\]", text) and cause is not None:
            text = f"{text} {cause}".strip()
    if socket_error := re.search(r"\[Errno -?\d+\] ([^'\")(]+)", text):
        return socket_error[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:300] or type(error).__name__


def _is_transport(error: BaseException) -> bool:
    """An error on the way to the server rather than about the statement: a connection refused, reset or
    timed out, or an HTTP answer without an engine error in it (a proxy's 502). The driver's client-side
    refusals (ProgrammingError, DataError, ...) are other DatabaseError subclasses: not these."""
    return isinstance(error, (OSError, urllib3.exceptions.HTTPError, OperationalError)) or type(error) is DatabaseError


def _limit_setting(code: int, text: str, default: str) -> str:
    if named := _SETTING.search(text):
        return named[1]
    if code == 396 and "max bytes" in text:
        return "max_result_bytes"
    if code == 307 and "result" in text.lower():
        return "max_result_bytes"
    return default
