"""Parquet and Arrow IPC import files, a record batch (or slice) at a time, and their rows as Segment messages.

One message per row, columns named as Segment's fields (`userId`) or in snake case (`user_id`);
`properties`, `traits`, `context` and `integrations` may be struct, map or JSON-text columns. A file
without a `type` column, or a row whose type is null, is a `track` call. Naive timestamps are UTC. A row
that cannot be a message becomes a `Rejection` with its 0-based row in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import repeat
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from nexus.errors import InvalidRequest
from nexus.ingest.wire import Message, Rejection, rejection_from
from nexus.json_input import UnreadableJson, decode_json

Item = Message | Rejection

ARROW_FILE_MAGIC = b"ARROW1"
_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(Message))
_TIME_FIELDS = frozenset({"timestamp", "originalTimestamp", "sentAt"})
_ID_FIELDS = frozenset({"userId", "anonymousId", "groupId", "previousId", "messageId"})
_OBJECT_FIELDS = frozenset({"properties", "traits", "context", "integrations"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = pa.timestamp("us")


def parquet_batches(path: Path, batch_rows: int) -> Iterator[tuple[dict[str, str], pa.RecordBatch]]:
    """The file's record batches of at most `batch_rows` rows, each with the Segment columns it maps."""
    try:
        with pq.ParquetFile(path) as parquet:
            mapped = columns(parquet.schema_arrow)
            # Only the Segment columns are read: Parquet skips the others' pages entirely.
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(mapped)):
                yield mapped, batch
    except (pa.ArrowException, OSError) as e:
        raise InvalidRequest(f"cannot read the Parquet file: {e}") from None


def arrow_batches(path: Path, batch_rows: int) -> Iterator[tuple[dict[str, str], pa.RecordBatch]]:
    """The file's (or stream's) record batches, sliced to at most `batch_rows` rows, each with the
    Segment columns it maps."""
    try:
        # Memory-mapped, batches are views of the file: a large batch costs only the slice converted.
        with pa.memory_map(str(path)) as source:
            is_file = source.read(len(ARROW_FILE_MAGIC)) == ARROW_FILE_MAGIC
            source.seek(0)
            if is_file:
                reader = pa.ipc.open_file(source)
                batches: Iterator[pa.RecordBatch] = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                reader = pa.ipc.open_stream(source)
                batches = iter(reader)
            mapped = columns(reader.schema)
            for batch in batches:
                for offset in range(0, batch.num_rows, batch_rows):
                    yield mapped, batch.slice(offset, batch_rows)
    except (pa.ArrowException, OSError) as e:
        raise InvalidRequest(f"cannot read the Arrow IPC file: {e}") from None


def columns(schema: pa.Schema) -> dict[str, str]:
    """File column → Message field (camelCase); a Segment name wins over its snake_case spelling."""
    columns = {name: name for name in schema.names if name in _FIELDS}
    for name in schema.names:
        field = _camel(name)
        if name not in columns and field in _FIELDS and field not in columns.values():
            columns[name] = field
    if not columns:
        raise InvalidRequest(f"the file has no Segment message columns (it has {', '.join(schema.names) or 'none'}); "
                             "expected some of type, event, userId, anonymousId, timestamp, properties, ...")
    return columns


def messages(batch: pa.RecordBatch, columns: dict[str, str], start: int) -> list[Item]:
    """The batch's rows as Messages, or Rejections naming their row (`start` is the first's)."""
    # Column-wise to_pylist, then msgspec.convert on plain dicts: per-value Arrow access is ~10x slower.
    failed: dict[int, Rejection] = {}
    fields = list(columns.values())
    values: list[Iterable[Any]] = [values_of(batch.column(name), field, start, failed)
                                   for name, field in columns.items()]
    if "type" not in fields:
        fields.append("type")
        values.append(repeat("track"))
    rows = [dict(zip(fields, row)) for row in zip(*values)]
    if not failed:
        # One convert call for the whole piece is ~2x faster than one per row; a piece with a bad row
        # is converted again row by row, so every other row is kept and the bad one says why.
        try:
            return msgspec.convert(rows, list[Message])
        except msgspec.ValidationError:
            pass
    items: list[Item] = []
    for index, row in enumerate(rows, start):
        if index in failed:
            items.append(failed[index])
            continue
        try:
            items.append(msgspec.convert(row, Message))
        except msgspec.ValidationError as e:
            items.append(rejection_from(index, e))
    return items


def values_of(array: pa.Array, field: str, start: int, failed: dict[int, Rejection]) -> list[Any]:
    """One column as Python values msgspec can convert into the Message field."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if field == "type":
        return [call if call is not None else "track" for call in array.to_pylist()]
    if field in _TIME_FIELDS and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        return _utc_datetimes(array, field, start, failed)
    if field in _ID_FIELDS and pa.types.is_floating(kind):
        # pandas stores an integer id column with gaps as float64; whole numbers are ids again.
        try:
            return array.cast(pa.int64()).to_pylist()
        except pa.ArrowInvalid:
            return array.to_pylist()
    if field in _OBJECT_FIELDS:
        return _objects(array, field, start, failed)
    return array.to_pylist()


def _utc_datetimes(array: pa.Array, field: str, start: int, failed: dict[int, Rejection]) -> list[datetime | None]:
    # Arrow stores every timestamp as UTC since the epoch (a time zone is only display metadata), so the
    # integer is exact for any unit and zone; tz-aware to_pylist would be ~5x slower than this.
    if not pa.types.is_timestamp(array.type) or array.type.unit != "us":
        array = array.cast(_MICROSECOND if not pa.types.is_timestamp(array.type)
                           else pa.timestamp("us", array.type.tz), safe=False)
    values: list[datetime | None] = []
    for index, us in enumerate(array.cast(pa.int64()).to_pylist(), start):
        try:
            values.append(None if us is None else _EPOCH + timedelta(microseconds=us))
        except OverflowError:  # past year 9999 (or before year 1)
            failed.setdefault(index, Rejection(index, field, "the time is out of range"))
            values.append(None)
    return values


def _objects(array: pa.Array, field: str, start: int, failed: dict[int, Rejection]) -> list[Any]:
    kind = array.type
    if pa.types.is_struct(kind):
        if field == "context":
            return camel_struct(array).to_pylist()
        objects = array.to_pylist()
        if not any(array.field(i).null_count for i in range(kind.num_fields)):
            return objects
        # A struct column has every key in every row: null is how it spells "this row has no such key".
        return [None if d is None else {k: v for k, v in d.items() if v is not None} for d in objects]
    if pa.types.is_map(kind):
        keys_are_text = pa.types.is_string(kind.key_type) or pa.types.is_large_string(kind.key_type)
        return [None if pairs is None else {k if keys_are_text else str(k): v for k, v in pairs}
                for pairs in array.to_pylist()]
    if _is_text(kind):
        return _json_objects(array.to_pylist(), field, start, failed)
    return array.to_pylist()


def _json_objects(texts: list[str | bytes | None], field: str, start: int,
                  failed: dict[int, Rejection]) -> list[Any]:
    values: list[Any] = []
    for index, text in enumerate(texts, start):
        if text is None or not text.strip():
            values.append(None)
            continue
        try:
            values.append(decode_json(text))
        except UnreadableJson as e:
            failed.setdefault(index, Rejection(index, field, e.reason))
            values.append(None)
    return values


def camel_struct(array: pa.StructArray) -> pa.Array:
    """context's fields renamed to Segment's camelCase (user_agent → userAgent), one level deep."""
    names = [field.name for field in array.type]
    renamed = [_camel(name) for name in names]
    if renamed == names:
        return array
    children = [array.field(i) for i in range(len(names))]
    return pa.StructArray.from_arrays(children, names=renamed, mask=array.is_null())


def _is_text(kind: pa.DataType) -> bool:
    checks: list[Callable[[pa.DataType], bool]] = [
        pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
    ]
    for name in ("is_string_view", "is_binary_view"):  # pyarrow >= 16
        if hasattr(pa.types, name):
            checks.append(getattr(pa.types, name))
    return any(check(kind) for check in checks)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
