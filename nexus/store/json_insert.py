"""Inserts rows that carry clients' JSON (event properties, person traits): each value stored as sent.

ClickHouse's JSON column gives every value it parses a type of its own, inferred from the text, and while it
parses a chunk of rows it first tries the types that earlier rows of the chunk gave the same path. Left as
they are, both let one tenant change another's data in a shared insert: with date inference on, project
A's `{"x": "2024-01-02"}` makes `x` a Date, and project B's `{"x": "2024-13-45"}` in the same chunk is
then read as that Date, 1970-01-01; A's float array `[1.5]` at a path makes B's `[9007199254740993]` a
Float64 array, 9007199254740992. So:

- JSON_INPUT_SETTINGS turns off the inferences that change a value (a string stays a string) and pins
  the ones that keep values at the values that do;
- each project's rows are a chunk of their own (one Arrow record batch, which the engine reads, casts and
  only then squashes with the others into the one insert), so no project's value picks the type of
  another's. Within a project the engine's habit remains: an integer beyond 2^53 in an array is rounded
  when an earlier row of the project in the insert had floats in an array at that path.

Arrow's own input format (clickhouse-connect's insert_arrow) ignores the inference settings, so the JSON text
travels as a String column and is cast in an `INSERT … SELECT`, the same statement on every engine but for
where it reads the rows: on a ClickHouse server the request body through `input()`; on embedded chDB the
Arrow table in place through `Python()` (its fastest insert), or a temporary file through `file()` where
that chDB cannot find the table.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client

# How the JSON column reads a client's text: each setting here changes what some value is stored as
# (measured on chDB 26.9; tests/store/test_json_insert.py holds one example of each).
JSON_INPUT_SETTINGS = {
    # On by default: a date-like string becomes a Date or DateTime, read leniently ("2024-01-02 25:00:00"
    # is stored as the next day, "1900-01-01" as 1970-01-01), and later strings at the path in the chunk
    # are forced into that type ("2024-13-45" as 1970-01-01). Off, a string is stored as the string it is.
    "input_format_try_infer_dates": 0,
    "input_format_try_infer_datetimes": 0,
    # On by default, an array mixing integers and floats becomes a Float64 array, which rounds integers
    # beyond 2^53 ([9007199254740993, 1.5]); one mixing booleans with numbers or strings stores them as
    # 1/0 or "true"/"false" ([1, true], ["a", true]). Off, each element keeps its own type (Array(Dynamic));
    # numbers and booleans elsewhere are stored as before.
    "input_format_try_infer_integers": 0,
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_bools_as_strings": 0,
    # Pinned at their defaults, which a server's profile could change: a numeric string stays a string
    # (["1"] is not [1]), an array of different types is not turned into strings ([1, "a"] is not
    # ["1", "a"]), and an array of nulls or empty arrays ([null], [[]]) is stored instead of refused.
    "input_format_json_try_infer_numbers_from_strings": 0,
    "input_format_json_infer_array_of_dynamic_from_array_of_different_types": 1,
    "input_format_json_infer_incomplete_types_as_strings": 1,
}

# The ClickHouse type each Arrow column is read as (the insert converts it to the table's column type).
_ARROW_TYPES = {
    pa.uint8(): "UInt8", pa.uint16(): "UInt16", pa.uint32(): "UInt32", pa.uint64(): "UInt64",
    pa.int8(): "Int8", pa.int16(): "Int16", pa.int32(): "Int32", pa.int64(): "Int64",
    pa.float32(): "Float32", pa.float64(): "Float64", pa.bool_(): "Bool", pa.string(): "String",
    pa.large_string(): "String",
}
_TIME_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_FORMAT = "ArrowStream"
_python_objects: bool | None = None  # see _reads_python_objects

Source = Literal["server", "python", "file"]

log = logging.getLogger("nexus.store.json_insert")


def insert(client: Client, table: str, rows: pa.Table, json_columns: Iterable[str] = ("properties",),
           tenant: str = "project_id") -> None:
    """Insert `rows` (named as `table`'s columns) in one insert; `json_columns` hold JSON text for
    `table`'s JSON columns, parsed per `tenant` value (one chunk each) under JSON_INPUT_SETTINGS."""
    if not rows.num_rows:
        return
    nexus_rows = _by_tenant(rows, tenant)
    if not client.uri.startswith("chdb:"):
        # The body is the data of input() (ClickHouse's HTTP interface; the statement ends with its FORMAT).
        client.command(statement(table, nexus_rows, json_columns, "server"), data=_arrow_stream(nexus_rows))
    elif _reads_python_objects(client):
        # chDB reads the Arrow table where it is, the fastest insert it has (no file, no copy): Python(name)
        # names a variable of the code that calls the client, here `nexus_rows` above.
        client.command(statement(table, nexus_rows, json_columns, "python"))
    else:
        # chDB's client makes a command's body SQL text: the stream goes through a file instead.
        with tempfile.NamedTemporaryFile(suffix=".arrows", delete=False) as file:
            file.write(_arrow_stream(nexus_rows))
        try:
            client.command(statement(table, nexus_rows, json_columns, "file"),
                           parameters={"path": file.name, "structure": _structure(nexus_rows)})
        finally:
            os.unlink(file.name)


def statement(table: str, rows: pa.Table, json_columns: Iterable[str], source: Source) -> str:
    """The INSERT … SELECT that stores `rows` read from `source`: the HTTP body (`server`), the caller's
    `nexus_rows` (`python`), or the file `{path:String}` of columns `{structure:String}` (`file`)."""
    names = rows.schema.names
    json_columns = set(json_columns)
    select = ", ".join(f"CAST({quote_identifier(n)}, 'JSON') AS {quote_identifier(n)}" if n in json_columns
                       else quote_identifier(n) for n in names)
    settings = ", ".join(f"{name} = {value}" for name, value in JSON_INPUT_SETTINGS.items())
    origin = {"server": f"input({_quote(_structure(rows))})", "python": "Python(nexus_rows)",
              "file": f"file({{path:String}}, '{_FORMAT}', {{structure:String}})"}[source]
    return (f"INSERT INTO {quote_identifier(table)} ({', '.join(quote_identifier(n) for n in names)}) "
            f"SELECT {select} FROM {origin} SETTINGS {settings}" + (f" FORMAT {_FORMAT}" if source == "server" else ""))


def _reads_python_objects(client: Client) -> bool:
    """Does chDB find `Python(name)` among the variables of the code that called the client (it looks the
    name up in the calling frames)? Asked once: a chDB that stops doing so costs the file() route's
    speed, not failed inserts."""
    global _python_objects
    if _python_objects is None:
        nexus_probe = pa.table({"n": pa.array([1], pa.uint8())})  # noqa: F841
        try:
            _python_objects = client.query("SELECT sum(n) FROM Python(nexus_probe)").result_rows == [(1,)]
        except Exception as e:
            log.warning("chDB does not read Arrow tables in place here (%s): inserts go through a file", e)
            _python_objects = False
    return _python_objects


def _by_tenant(rows: pa.Table, tenant: str) -> pa.Table:
    """The rows as one record batch per tenant. A batch of one tenant (a writer's request) is taken whole;
    the rows of a tenant are then put together (one copy, cheaper for the engine than a chunk per request)."""
    groups: dict[Any, list[pa.RecordBatch]] = {}
    for batch in rows.to_batches():
        keys = batch.column(tenant)
        bounds = pc.min_max(keys)
        if bounds["min"] == bounds["max"]:
            groups.setdefault(bounds["min"].as_py(), []).append(batch)
            continue
        for key in pc.unique(keys):
            groups.setdefault(key.as_py(), []).append(batch.filter(pc.equal(keys, key)))
    batches = [pa.Table.from_batches(group, rows.schema).combine_chunks().to_batches()[0]
               for group in groups.values() if sum(b.num_rows for b in group)]
    return pa.Table.from_batches(batches, rows.schema)


def _arrow_stream(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue().to_pybytes()


def _structure(rows: pa.Table) -> str:
    """The rows' columns as ClickHouse reads them from Arrow: `name Type, …` (Nullable where they hold nulls)."""
    columns = []
    for field, column in zip(rows.schema, rows.columns):
        if pa.types.is_timestamp(field.type):
            zone = f", {_quote(field.type.tz)}" if field.type.tz else ""
            kind = f"DateTime64({_TIME_DIGITS[field.type.unit]}{zone})"
        else:
            kind = _ARROW_TYPES[field.type]
        columns.append(f"{quote_identifier(field.name)} {f'Nullable({kind})' if column.null_count else kind}")
    return ", ".join(columns)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
