"""Engine errors sorted by their ClickHouse code, on the real engine: what each kind of failure becomes for
SQL Nexus wrote (nexus.store.guard) and for a caller's ad-hoc SQL (nexus.adhoc.session)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import chdb
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from nexus.adhoc.errors import QueryRefused, QueryTimeout
from nexus.adhoc.session import engine_error
from nexus.errors import EngineError, LimitExceeded, QueryFailed, StorageUnavailable
from nexus.store.client import connect, parse_url
from nexus.store.database import open_database
from nexus.store.errors import LIMITS, REFUSED, UNAVAILABLE, classify
from nexus.store.guard import unguarded


def closed_port() -> int:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    return port


def raised(call) -> BaseException:
    try:
        call()
    except BaseException as e:  # noqa: BLE001 - the error is what the test looks at
        return e
    raise AssertionError("no error")


@contextmanager
def engine_busy(engine_dir: Path) -> Iterator[None]:
    """One query running on the engine (in a connection of its own) for as long as the block lasts."""
    conn = chdb.connect(str(engine_dir))
    stream = conn.send_query("SELECT sleepEachRow(0.5) FROM numbers(120) SETTINGS max_block_size = 1", "TSV")
    started = threading.Event()

    def pull() -> None:
        stream.fetch()
        started.set()

    threading.Thread(target=pull, daemon=True).start()
    assert started.wait(10)
    try:
        yield
    finally:
        stream.cancel()
        conn.close()


def test_every_code_in_the_tables_is_the_engine_s_own(client) -> None:
    # The tables are written by hand: each code must carry the name the engine itself gives it.
    named = {**UNAVAILABLE, **REFUSED, **{code: name for code, (name, _) in LIMITS.items()}}
    rows = client.query("SELECT number, errorCodeToName(toInt32(number)) FROM numbers(2000) "
                        "WHERE number IN {codes:Array(UInt32)}", parameters={"codes": sorted(named)}).result_rows
    assert dict(rows) == named


def test_nexus_s_own_sql_failing_is_an_engine_error_with_its_sql(client) -> None:
    error = raised(lambda: client.query("SELECT nosuch FROM events WHERE project_id = {p:UInt32}",
                                        parameters={"p": 7}))
    assert isinstance(error, EngineError) and not isinstance(error, QueryFailed)
    assert (error.code, error.name) == (47, "UNKNOWN_IDENTIFIER")
    assert error.sql.startswith("SELECT nosuch") and error.params == {"p": 7}
    assert "nosuch" in str(error) and len(error.error_id) == 12
    # an insert names its table, never its rows
    error = raised(lambda: client.insert("no_such_table", [[1]], column_names=["x"]))
    assert isinstance(error, EngineError) and error.sql == "INSERT INTO no_such_table"
    # The sandbox's door gives the driver's own error, to wrap with the caller's meaning
    assert isinstance(raised(lambda: unguarded(client).query("SELEC 1")), DatabaseError)


def test_a_limit_of_the_query_names_the_setting_that_stopped_it(client) -> None:
    cases = {
        "SELECT count() FROM numbers(100000) SETTINGS max_rows_to_read = 10": "max_rows_to_read",
        "SELECT number FROM numbers(100000) SETTINGS max_result_rows = 10, result_overflow_mode = 'throw'":
            "max_result_rows",
        "SELECT number FROM numbers(100000) SETTINGS max_result_bytes = 100, result_overflow_mode = 'throw'":
            "max_result_bytes",
        "SELECT groupArray(number) FROM numbers(10000000) SETTINGS max_memory_usage = 1000000": "max_memory_usage",
        "SELECT sleepEachRow(0.3) FROM numbers(10) SETTINGS max_execution_time = 1, max_block_size = 1":
            "max_execution_time",
    }
    for sql, setting in cases.items():
        error = raised(lambda: client.query(sql))
        assert isinstance(error, LimitExceeded) and error.limit == setting, (sql, error)
        assert setting in str(error)


def test_a_caller_s_sql_fails_with_the_engine_s_reason_and_its_limits_name_the_key_s(engine_dir: Path) -> None:
    conn = chdb.connect(str(engine_dir))
    try:
        def caller(sql: str) -> BaseException:
            return engine_error(raised(lambda: conn.query(sql, "TSV")))

        syntax = caller("SELEC 1")
        assert type(syntax) is QueryFailed and "Syntax error" in str(syntax)
        unknown = caller("SELECT nosuch")
        assert type(unknown) is QueryFailed and "nosuch" in str(unknown)
        timeout = caller("SELECT sleepEachRow(0.3) FROM numbers(10) SETTINGS max_execution_time = 1, max_block_size = 1")
        assert isinstance(timeout, QueryTimeout) and timeout.limit == "max_seconds"
        assert "nexus key limits KEY_ID --max-seconds" in str(timeout) and "PUT /v1/keys/KEY_ID/limits" in str(timeout)
        rows = caller("SELECT count() FROM numbers(100000) SETTINGS max_rows_to_read = 10")
        assert isinstance(rows, LimitExceeded) and rows.limit == "max_rows_to_read"
        assert "NEXUS_QUERY_MAX_ROWS_TO_READ" in str(rows)
        conn.query("SET readonly = 1", "TSV")
        refused = caller("CREATE TABLE x (a UInt8) ENGINE = Memory")
        assert isinstance(refused, QueryRefused)  # READONLY: the sandbox's 403
    finally:
        conn.close()


def test_an_overloaded_engine_is_unavailable_for_nexus_and_for_the_caller(client, engine_dir: Path) -> None:
    busy = {"max_concurrent_queries_for_all_users": 1}
    with engine_busy(engine_dir):
        error = raised(lambda: client.query("SELECT 1", settings=busy))
        assert isinstance(error, StorageUnavailable) and (error.code, error.name) == (202, "TOO_MANY_SIMULTANEOUS_QUERIES")
        assert "retry" in str(error) and error.retry_after > 0
        caller = engine_error(raised(lambda: unguarded(client).query("SELECT 1", settings=busy)))
        assert isinstance(caller, StorageUnavailable) and caller.code == 202


def test_the_server_s_memory_as_a_whole_is_unavailability_not_the_query_s_limit() -> None:
    # The engine's own words for each tracker (query, user, server); the code alone is the same.
    query = "Code: 241. DB::Exception: Query memory limit exceeded: would use 1.00 MiB, maximum: 976.56 KiB. (MEMORY_LIMIT_EXCEEDED)"
    total = "Code: 241. DB::Exception: (total) memory limit exceeded: would use 30.1 GiB, maximum: 28.8 GiB. (MEMORY_LIMIT_EXCEEDED)"
    old = "Code: 241. DB::Exception: Memory limit (for query) exceeded: would use 9.3 GiB, maximum: 9.3 GiB. (MEMORY_LIMIT_EXCEEDED)"
    assert classify(DatabaseError(query, code=241)).kind == "limit"
    assert classify(DatabaseError(old, code=241)).kind == "limit"
    assert classify(DatabaseError(total, code=241)).kind == "unavailable"
    assert classify(RuntimeError(total)).kind == "unavailable"  # chDB's own connection: the code is in the text
    assert classify(RuntimeError("Code: 241 is not an engine error")).kind == "other"


def test_an_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/nexus"
    started = time.monotonic()
    error = raised(lambda: open_database(url))
    assert isinstance(error, StorageUnavailable) and "Connection refused" in str(error), error
    assert time.monotonic() - started < 30
    # The driver's error for it, as the guard and the sandbox see it on any later call
    driver_error = raised(lambda: __import__("clickhouse_connect").get_client(host="127.0.0.1", port=closed_port()))
    failure = classify(driver_error)
    assert failure.kind == "unavailable" and failure.code is None and "Connection refused" in failure.message
    assert isinstance(engine_error(driver_error), StorageUnavailable)
    assert classify(ConnectionResetError(104, "Connection reset by peer")).kind == "unavailable"
    with pytest.raises(StorageUnavailable):
        connect(parse_url(url))
