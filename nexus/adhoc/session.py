"""One sandboxed engine session per ad-hoc query, on the embedded engine or a ClickHouse server.

The sandbox settings (limits, the per-project row filter, and `readonly=1` last, which then freezes them)
belong to the session, not to the query text, so they cover every part of the query (UNION branches,
subqueries) and the query cannot change them. Results arrive as Arrow record batches or as the engine's
own text formats, block by block, so a result of any size passes through in bounded memory.

Embedded: a chDB connection of its own (cheap: one handle on the process's one engine). clickhouse-
connect's chDB backend cannot be used here: it materializes ArrowStream results whole, and it applies
per-call settings with SET and then restores them, which `readonly=1` forbids. Server: the shared
clickhouse-connect client, with the sandbox settings sent with every call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import timezone
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc
import urllib3.exceptions
from clickhouse_connect.driver.binding import format_bind_value
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus.adhoc.errors import QueryRefused, limit_exceeded
from nexus.errors import NexusError, QueryFailed
from nexus.store.client import StoreAddress
from nexus.store.errors import classify
from nexus.store.guard import unavailable, unguarded

SettingValue = int | str | dict[str, str]
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ESCAPES = str.maketrans({c: "\\" + c for c in ("\\", "'", "`", "\t", "\n")})



class Session(Protocol):
    rows_read: int | None
    bytes_read: int | None

    def scalar(self, sql: str, params: Mapping[str, Any]) -> str: ...
    def text(self, sql: str, params: Mapping[str, Any], fmt: str) -> bytes: ...
    def batches(self, sql: str, params: Mapping[str, Any]) -> Iterator[pa.RecordBatch]: ...
    def chunks(self, sql: str, params: Mapping[str, Any], fmt: str) -> Iterator[bytes]: ...
    def close(self) -> None: ...


def open_session(address: StoreAddress, client: Client, settings: Sequence[tuple[str, SettingValue]]) -> Session:
    """A session on the store at `address` with `settings` applied in order (put readonly last)."""
    for name, _ in settings:
        if not _SETTING_NAME.match(name):
            raise ValueError(f"not a setting name: {name!r}")
    if address.engine == "chdb":
        return ChdbSession(os.path.realpath(address.path), address.database, settings)
    return HttpSession(unguarded(client), settings)  # the caller's SQL: its errors are wrapped here


class ChdbSession:
    def __init__(self, path: str, database: str, settings: Sequence[tuple[str, SettingValue]]):
        import chdb  # only the embedded engine needs it

        self.rows_read: int | None = 0
        self.bytes_read: int | None = 0
        self._stream: Any = None
        self._conn = chdb.connect(path)
        try:
            self._run(f"USE `{database}`", "TabSeparated")  # the name is checked by store.client.parse_url
            for name, value in settings:
                self._run(f"SET {name} = {_literal(value)}", "TabSeparated")
        except BaseException:
            self.close()
            raise

    def scalar(self, sql: str, params: Mapping[str, Any]) -> str:
        return self._run(sql, "RawBLOB", params).bytes().decode()

    def text(self, sql: str, params: Mapping[str, Any], fmt: str) -> bytes:
        return self._run(sql, fmt, params).bytes()

    def batches(self, sql: str, params: Mapping[str, Any]) -> Iterator[pa.RecordBatch]:
        empty = True
        for chunk in self._chunks(sql, params, "Arrow"):
            empty = False
            yield from _arrow_file_batches(chunk)
        if empty:
            # A streamed empty result has no chunk, hence no schema; the whole (empty) result has one.
            whole = self.text(sql, params, "Arrow")
            schema = ipc.open_file(pa.py_buffer(whole)).schema
            yield pa.RecordBatch.from_pylist([], schema=schema)

    def chunks(self, sql: str, params: Mapping[str, Any], fmt: str) -> Iterator[bytes]:
        return self._chunks(sql, params, fmt)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.cancel()
            except Exception:  # closing after a failure: the stream may already be gone
                pass
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()

    def _chunks(self, sql: str, params: Mapping[str, Any], fmt: str) -> Iterator[bytes]:
        try:
            self._stream = self._conn.send_query(sql, fmt, params=_bind(params))
            while (chunk := self._stream.fetch()) is not None:
                self.rows_read += chunk.storage_rows_read()
                self.bytes_read += chunk.storage_bytes_read()
                yield chunk.bytes()
            self._stream = None
        except Exception as e:
            raise engine_error(e) from None

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None = None) -> Any:
        if self._conn is None:
            raise QueryFailed("the query session is closed")
        try:
            result = self._conn.query(sql, fmt, params=_bind(params or {}))
        except Exception as e:
            raise engine_error(e) from None
        self.rows_read += result.storage_rows_read()
        self.bytes_read += result.storage_bytes_read()
        return result


class HttpSession:
    """A ClickHouse server: the settings travel with each call, applied before the query runs."""

    def __init__(self, client: Client, settings: Sequence[tuple[str, SettingValue]]):
        self.client = client
        self.settings = {name: _literal(value) if isinstance(value, dict) else value for name, value in settings}
        self.rows_read: int | None = None  # the HTTP interface reports them in a header clickhouse-connect drops
        self.bytes_read: int | None = None

    def scalar(self, sql: str, params: Mapping[str, Any]) -> str:
        return self.text(sql, params, "RawBLOB").decode()

    def text(self, sql: str, params: Mapping[str, Any], fmt: str) -> bytes:
        try:
            return self.client.raw_query(sql, parameters=dict(params), settings=self.settings, fmt=fmt)
        except (ClickHouseError, OSError, urllib3.exceptions.HTTPError) as e:
            raise engine_error(e) from None

    def batches(self, sql: str, params: Mapping[str, Any]) -> Iterator[pa.RecordBatch]:
        try:
            with self.client.raw_stream(sql, parameters=dict(params), settings=self.settings, fmt="ArrowStream") as raw:
                yield from ipc.open_stream(raw)
        except (ClickHouseError, pa.ArrowInvalid, OSError, urllib3.exceptions.HTTPError) as e:
            raise engine_error(e) from None

    def chunks(self, sql: str, params: Mapping[str, Any], fmt: str) -> Iterator[bytes]:
        try:
            with self.client.raw_stream(sql, parameters=dict(params), settings=self.settings, fmt=fmt) as raw:
                while chunk := raw.read(1 << 20):
                    yield chunk
        except (ClickHouseError, OSError, urllib3.exceptions.HTTPError) as e:
            raise engine_error(e) from None

    def close(self) -> None:
        pass


def engine_error(error: BaseException) -> NexusError:
    """An error of the caller's own SQL as what it means to the caller (nexus.store.errors sorts it by its
    ClickHouse code): the store unavailable (503), one of the key's limits (400, naming it and how to raise
    it), a refused operation (403), else the engine's reason (400: the caller's SQL, the caller's to fix)."""
    if isinstance(error, NexusError):
        return error
    failure = classify(error)
    if failure.kind == "unavailable":
        return unavailable(failure)
    if failure.kind == "limit":
        return limit_exceeded(failure)
    if failure.kind == "refused":
        return QueryRefused(failure.message)
    return QueryFailed(failure.message)


def _bind(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameter values as the engine reads them, the way clickhouse-connect sends them over HTTP: a
    top-level string escaped, composite values (arrays, maps) as literals."""
    return {name: _bind_value(value) for name, value in params.items()}


def _bind_value(value: Any) -> str:
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, dict):
        pairs = (f"{format_bind_value(k, timezone.utc, False)}: {format_bind_value(v, timezone.utc, False)}"
                 for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return format_bind_value(value, timezone.utc)


def _literal(value: SettingValue) -> str:
    """A setting value as SQL. Values are the server's own (limits, table names, a project number)."""
    if isinstance(value, bool) or not isinstance(value, (int, str, dict)):
        raise ValueError(f"unsupported setting value {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPES) + "'"
    return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"


def _arrow_file_batches(chunk: bytes) -> Iterator[pa.RecordBatch]:
    reader = ipc.open_file(pa.py_buffer(chunk))
    for index in range(reader.num_record_batches):
        yield reader.get_batch(index)
