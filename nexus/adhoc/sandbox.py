"""Runs one ad-hoc query for one project, in a sandboxed engine session: parse, check, run, stream.

Order of events: a session opens with the key's limits, the project's row filter on every table, and
`readonly=1` (which also freezes those settings). The engine parses the SQL into its syntax tree and
formats it back into canonical text; that text is parsed once more and checked (check.py), and it is
what runs, so what was checked is exactly what executes, free of comments and quoting tricks. The
`{name:Type}` parameters are bound by the engine, never spliced into the text.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus.adhoc import formats, functions, policy
from nexus.adhoc import limits as limits_module
from nexus.adhoc.check import Checked, VisibleTables, check
from nexus.adhoc.errors import LimitExceeded, QueryRefused, QueryTimeout
from nexus.adhoc.formats import Cut, Format
from nexus.adhoc.limits import QueryLimits
from nexus.adhoc.session import Session, SettingValue, open_session
from nexus.adhoc.slots import Slots
from nexus.errors import InvalidRequest, NexusError, QueryFailed
from nexus.exports.stream import encoded
from nexus.store.client import StoreAddress
from nexus.store.cluster import LOCAL_SUFFIX

log = logging.getLogger("nexus.adhoc")


class Column(msgspec.Struct, frozen=True):
    name: str
    type: str


# A streamed answer cut at max_rows says so in a header only if the cut is known before the first byte
# goes out: the output is read ahead until the row past the cut arrives or the result ends, up to this much.
READ_AHEAD_BYTES = 16 << 20


class JsonAnswer(msgspec.Struct, frozen=True):
    """A whole result as JSON: rows are arrays in column order; `truncated` when max_rows cut it short."""

    columns: list[Column]
    rows: msgspec.Raw
    row_count: int
    elapsed_ms: float
    rows_read: int
    bytes_read: int
    truncated: bool = False


class _EngineJson(msgspec.Struct):
    meta: list[Column]
    data: msgspec.Raw
    rows: int
    statistics: dict[str, float] = {}


class Prepared(msgspec.Struct, frozen=True):
    sql: str  # canonical text, as checked
    params: dict[str, Any]
    checked: Checked


class ResultStream:
    """A running query's encoded output. The first chunk is already in hand, so a query that fails at
    once fails before any byte is sent; iterate for the bytes, and close (always) to end the query.

    The time limit covers the whole answer, not only the engine's work: the engine does not count the
    time it waits for a slow reader, so a chunk asked for after `max_seconds` ends the query.

    A result cut at max_rows is read ahead (at most READ_AHEAD_BYTES) until the cut is known, so that
    `truncated` can go out before the body; it stays None when the read-ahead did not settle it."""

    def __init__(self, fmt: Format, chunks: Iterator[bytes], session: Session, release: Callable[[], None],
                 started: float, max_seconds: int, cut: Cut | None = None):
        self.format = fmt
        self.media_type = formats.MEDIA_TYPES[fmt]
        self.max_seconds = max_seconds
        self.deadline = started + max_seconds if max_seconds > 0 else None
        self._chunks = chunks
        self._session = session
        self._release = release
        self._started = started
        self._closed = False
        self._cut = cut
        try:
            self._ahead: deque[bytes] = deque([next(chunks, b"")])
            size = len(self._ahead[0])
            while cut is not None and cut.truncated is None and size < READ_AHEAD_BYTES:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                self._ahead.append(chunk)
                size += len(chunk)
        except BaseException:
            self.close()
            raise

    @property
    def truncated(self) -> bool | None:
        """Whether max_rows cut the result short; None while unknown. A result without max_rows is whole
        (a limit it hits fails it instead)."""
        return False if self._cut is None else self._cut.truncated

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._ahead:
            return self._ahead.popleft()
        if self._closed:
            raise StopIteration
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.close()
            raise QueryTimeout(f"the answer took longer than this key's max_seconds limit of {self.max_seconds} s, "
                               f"sending included", limit="max_seconds")
        return next(self._chunks)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close_chunks = getattr(self._chunks, "close", None)
            if close_chunks is not None:
                close_chunks()
        finally:
            self._session.close()
            self._release()
            log.debug("query %s finished in %.0f ms", self.format, (time.monotonic() - self._started) * 1000)

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class QueryService:
    """Ad-hoc SQL over one Nexus database; one per process. `client` serves metadata (catalog, limits)."""

    def __init__(self, address: StoreAddress, client: Client, defaults: QueryLimits | None = None,
                 max_concurrent: int = 4, queue_seconds: float = 10, max_json_bytes: int = 50_000_000):
        self.address = address
        self.client = client
        self.defaults = defaults or QueryLimits()
        self.max_json_bytes = max_json_bytes
        self.slots = Slots(max_concurrent, queue_seconds)
        self._lock = threading.Lock()
        self._catalog: functions.FunctionCatalog | None = None
        self._visible: VisibleTables | None = None

    def limits_for(self, key_id: str) -> QueryLimits:
        return limits_module.for_key(self.client, key_id, self.defaults)

    def validate(self, project_id: int, sql: str) -> Checked:
        """Parse and check without running: what the query reads and the parameters it needs."""
        with self._session(project_id, self.defaults) as session:
            return self._prepare(session, sql, None).checked

    def answer_json(self, project_id: int, sql: str, params: dict[str, Any] | None = None,
                    limits: QueryLimits | None = None, max_rows: int | None = None, *, key_id: str = "") -> JsonAnswer:
        """The whole result with column names and types, row count, time, rows and bytes read. It is built
        in memory, so besides its rows its size is bounded (`max_json_bytes`): the engine stops a result
        that grows past it (it checks between blocks), and the text is checked before it is copied into
        the answer. A larger answer is refused; it streams in the other formats."""
        started = time.monotonic()
        effective = limits_module.narrowed(limits or self.defaults, max_rows, json=True)
        effective = msgspec.structs.replace(effective, max_result_bytes=limits_module.smallest(
            effective.max_result_bytes, self.max_json_bytes))
        cut = Cut(max_rows) if max_rows is not None else None
        with self._session(project_id, effective, key_id, cut) as session:
            prepared = self._prepare(session, sql, params or {})
            raw = session.text(prepared.sql, prepared.params, "JSONCompact")
        if len(raw) > self.max_json_bytes:  # one engine block can pass the engine's own count
            raise LimitExceeded(f"the JSON answer is larger than {self.max_json_bytes} bytes "
                                f"(NEXUS_QUERY_MAX_JSON_BYTES): ask for arrow, parquet, csv or ndjson, which stream",
                                limit="max_json_bytes")
        result = msgspec.json.decode(raw, type=_EngineJson)
        data, row_count, truncated = result.data, result.rows, False
        if cut is not None and row_count > cut.rows:  # the one row past the cut, asked for to tell
            data = msgspec.json.encode(msgspec.json.decode(data, type=list[msgspec.Raw])[:cut.rows])
            row_count, truncated = cut.rows, True
        # The engine indents its JSON; the rows are passed on as they are, only compacted.
        return JsonAnswer(columns=result.meta, rows=msgspec.Raw(msgspec.json.format(data, indent=0)),
                          row_count=row_count,
                          elapsed_ms=round((time.monotonic() - started) * 1000, 3),
                          rows_read=int(result.statistics.get("rows_read", 0)),
                          bytes_read=int(result.statistics.get("bytes_read", 0)),
                          truncated=truncated)

    def open(self, project_id: int, sql: str, params: dict[str, Any] | None = None, fmt: Format = "arrow",
             limits: QueryLimits | None = None, max_rows: int | None = None, *, key_id: str = "") -> ResultStream:
        """Start a query whose output streams as `fmt` (ndjson, csv, arrow or parquet); close the result.
        With `max_rows`, the result is cut after that many rows (see ResultStream.truncated)."""
        if fmt not in formats.FORMATS or fmt == "json":
            raise InvalidRequest(f"format must be one of ndjson, csv, arrow, parquet for a stream, not {fmt!r}")
        started = time.monotonic()
        effective = limits_module.narrowed(limits or self.defaults, max_rows, json=False)
        cut = Cut(max_rows) if max_rows is not None else None
        release = self.slots.acquire(project_id, key_id)
        try:
            session = self._open_session(project_id, effective, cut)
        except BaseException:
            release()
            raise
        try:
            prepared = self._prepare(session, sql, params or {})
            if fmt == "ndjson":
                chunks = session.chunks(prepared.sql, prepared.params, "JSONEachRow")
                if cut is not None:
                    chunks = formats.cut_lines(chunks, cut)
            else:
                batches = with_times(session, prepared.sql, prepared.params,
                                     session.batches(prepared.sql, prepared.params))
                if cut is not None:
                    batches = formats.cut_batches(batches, cut)
                chunks = encoded(batches, fmt)
        except BaseException:
            session.close()
            release()
            raise
        return ResultStream(fmt, chunks, session, release, started, effective.max_seconds, cut)

    @contextmanager
    def batches(self, project_id: int, sql: str, params: dict[str, Any] | None = None,
                limits: QueryLimits | None = None, max_rows: int | None = None) -> Iterator[Iterator[pa.RecordBatch]]:
        """The result as Arrow record batches, for exports (`exports.stream.write_batches`) and dashboards;
        with `max_rows`, at most that many (the engine's `limit`: a sorted result is then a top-N sort)."""
        effective = limits or self.defaults
        cut = Cut(max_rows) if max_rows is not None else None
        with self._session(project_id, effective, cut=cut) as session:
            prepared = self._prepare(session, sql, params or {})
            batches = with_times(session, prepared.sql, prepared.params, session.batches(prepared.sql, prepared.params))
            yield formats.cut_batches(batches, cut) if cut is not None else batches

    def settings_for(self, project_id: int, limits: QueryLimits, cut: Cut | None = None) -> list[tuple[str, SettingValue]]:
        """The session settings of one query, readonly last: once it is set, nothing else can change. A cut
        (max_rows) is the engine's `limit`, which caps the outermost result (a UNION's too) and no subquery."""
        database = self.address.database
        filters: dict[str, str] = {}
        for table, column in policy.PROJECT_TABLES.items():
            condition = f"{column} = {int(project_id)}"
            # The engine matches a filter by bare or qualified name; give both the same condition, and to a
            # cluster's shard-local table too (what a Distributed table's shards read: nexus.store.cluster).
            for name in (table, table + LOCAL_SUFFIX):
                filters[name] = condition
                filters[f"{database}.{name}"] = condition
        return [
            ("session_timezone", "UTC"),
            ("output_format_arrow_string_as_string", 1),
            ("output_format_json_quote_64bit_integers", 0),
            ("max_execution_time", int(limits.max_seconds)),
            ("timeout_overflow_mode", "throw"),
            ("max_memory_usage", int(limits.max_memory_bytes)),
            ("max_rows_to_read", int(limits.max_rows_to_read)),
            ("read_overflow_mode", "throw"),
            ("max_result_rows", int(limits.max_result_rows)),
            ("max_result_bytes", int(limits.max_result_bytes)),
            ("result_overflow_mode", "throw"),
            ("additional_table_filters", filters),
            *policy.NO_METADATA_SHORTCUTS,
            *([("limit", cut.engine_limit)] if cut is not None else []),
            ("readonly", 1),
        ]

    @contextmanager
    def _session(self, project_id: int, limits: QueryLimits, key_id: str = "", cut: Cut | None = None) -> Iterator[Session]:
        release = self.slots.acquire(project_id, key_id)
        try:
            session = self._open_session(project_id, limits, cut)
            try:
                yield session
            finally:
                session.close()
        finally:
            release()

    def _open_session(self, project_id: int, limits: QueryLimits, cut: Cut | None = None) -> Session:
        return open_session(self.address, self.client, self.settings_for(project_id, limits, cut))

    def _prepare(self, session: Session, sql: str, params: dict[str, Any] | None) -> Prepared:
        if not sql.strip():
            raise InvalidRequest("the query is empty")
        try:
            first = session.scalar("SELECT parseQueryToJSON({sql:String})", {"sql": sql})
        except QueryFailed as e:
            if "parseQueryToJSON" in str(e):  # a statement (DESCRIBE, INSERT ... VALUES) with no JSON form
                raise QueryRefused(f"only SELECT queries can run here ({e})") from None
            if "Multi-statements are not allowed" in str(e):  # refused before anything runs, like the rest
                raise QueryRefused("only a single SELECT can run here: the query has more than one statement") from None
            raise
        canonical = session.scalar("SELECT formatQueryFromJSON({ast:String})", {"ast": first})
        catalog, visible = self._metadata()
        try:
            ast = json.loads(session.scalar("SELECT parseQueryToJSON({sql:String})", {"sql": canonical}))
            checked = check(ast, visible, catalog)
        except RecursionError:
            raise QueryRefused("the query is nested too deeply") from None
        bound = {} if params is None else bind_parameters(checked, params)
        return Prepared(canonical, bound, checked)

    def _metadata(self) -> tuple[functions.FunctionCatalog, VisibleTables]:
        with self._lock:
            if self._catalog is None or self._visible is None:
                self._catalog = functions.load(self.client)
                tables = self.client.query("SELECT name FROM system.tables WHERE database = {d:String}",
                                           parameters={"d": self.address.database}).result_rows
                self._visible = VisibleTables(self.address.database, frozenset(name for (name,) in tables))
            return self._catalog, self._visible


def bind_parameters(checked: Checked, params: dict[str, Any]) -> dict[str, Any]:
    """The values for the query's `{name:Type}` placeholders: every one given, no stranger."""
    wanted = {p.name: p.type for p in checked.parameters}
    unknown = sorted(set(params) - set(wanted))
    if unknown:
        expected = ", ".join(f"{{{n}:{t}}}" for n, t in wanted.items()) or "none"
        raise InvalidRequest(f"unknown parameter {unknown[0]!r}: the query's parameters are {expected}")
    missing = [f"{{{n}:{t}}}" for n, t in wanted.items() if n not in params]
    if missing:
        raise InvalidRequest(f"missing value for parameter {missing[0]}: pass it in params")
    return {name: _value(params[name], wanted[name]) for name in wanted}


def _value(value: Any, kind: str) -> Any:
    """A JSON value in the shape the session binds for `kind`: objects become JSON text unless they fill a
    Map, booleans 0/1 (which every integer and Bool type reads)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict) and not kind.replace("Nullable(", "").startswith("Map("):
        return msgspec.json.encode(value).decode()  # a JSON (or String) parameter takes the object as text
    return value


_DATETIME = re.compile(r"^(?:Nullable\()?DateTime(?:\('([^']*)'\))?\)?$")


def with_times(session: Session, sql: str, params: dict[str, Any],
               batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches of `sql` with each DateTime column as timestamps. The engine's Arrow output gives a
    DateTime as its seconds (uint32) with nothing to tell it from a number, so CSV, Parquet and Arrow readers
    showed epoch numbers; the query's column types (DESCRIBE, which runs nothing) say which columns are
    times. A statement that cannot be described (`nexus sql` runs any, SHOW included) passes as it is."""
    try:
        described = msgspec.json.decode(session.text(f"DESCRIBE TABLE ({sql})", params, "JSONCompact"),
                                        type=_EngineJson)
    except NexusError:
        yield from batches
        return
    columns = msgspec.json.decode(described.data, type=list[list[str]])
    zones = {i: match[1] or "UTC" for i, (_, kind, *_) in enumerate(columns) if (match := _DATETIME.match(kind))}
    for batch in batches:
        if not zones:
            yield batch
            continue
        arrays = [column.cast(pa.int64()).cast(pa.timestamp("s", tz=zones[i])) if i in zones else column
                  for i, column in enumerate(batch.columns)]
        yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
