"""Writes a stream of Arrow record batches to a binary sink as CSV, JSON, NDJSON, Parquet or Arrow IPC.

Batches are written as they arrive, so a result of any size passes through in bounded memory.
Extension types (ClickHouse JSON arrives as `arrow.json`) are written as their plain storage type; CSV
cells that a spreadsheet would run as formulas are written as text (see exports.cells).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO, Literal

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from nexus.exports.cells import neutralized

StreamFormat = Literal["csv", "json", "ndjson", "parquet", "arrow"]


def write_batches(batches: Iterable[pa.RecordBatch], output_format: StreamFormat, sink: BinaryIO) -> int:
    """Write every batch in `output_format`; returns the number of rows written."""
    writer = None
    rows = 0
    first = True
    for raw in batches:
        batch = _plain(raw)
        if output_format == "csv":
            batch = _flat(batch)
        if writer is None:
            writer = _open(output_format, batch.schema, sink)
        if output_format == "json":
            for row in batch.to_pylist():
                sink.write(b"[" if first else b",\n")
                sink.write(msgspec.json.encode(row))
                first = False
        elif output_format == "ndjson":
            sink.writelines(msgspec.json.encode(row) + b"\n" for row in batch.to_pylist())
        elif output_format == "csv":
            writer.write(neutralized(batch))
        else:
            writer.write(batch)
        rows += batch.num_rows
    if output_format == "json":
        sink.write(b"[]\n" if first else b"]\n")
    elif writer is not None and writer is not sink:  # the caller's sink stays open: it may be a buffer
        writer.close()
    return rows


def _open(output_format: StreamFormat, schema: pa.Schema, sink: BinaryIO):
    if output_format == "csv":
        return pa_csv.CSVWriter(sink, schema)
    if output_format == "parquet":
        return pq.ParquetWriter(sink, schema)
    if output_format == "arrow":
        return pa_ipc.new_stream(sink, schema)
    return sink  # json and ndjson write rows themselves


def _flat(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Arrays, maps and tuples as JSON text (a map as an object): a CSV cell holds one value, and
    pyarrow's CSV writer refuses nested types."""
    if not any(pa.types.is_nested(f.type) for f in batch.schema):
        return batch
    columns = []
    for column in batch.columns:
        if pa.types.is_nested(column.type):
            values = column.to_pylist()
            if pa.types.is_map(column.type):
                values = [None if v is None else dict(v) for v in values]
            column = pa.array([None if v is None else msgspec.json.encode(v).decode() for v in values], pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(isinstance(f.type, pa.BaseExtensionType) for f in batch.schema):
        return batch
    columns = [c.storage if isinstance(c.type, pa.BaseExtensionType) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
