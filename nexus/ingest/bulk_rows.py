"""A block of imported rows as the bulk pipeline (`bulk`) takes them: the Segment fields it reads, as columns.

Two ways in. NDJSON lines are decoded into `Message`s (msgspec's C decoder, which also names what is
wrong with a bad line) and their fields gathered into columns (`from_items`). Parquet and Arrow rows are
already columns: `from_arrow` maps them with Arrow compute — ids cast to text, times to milliseconds,
`context`'s fields taken out of its struct — and never builds a `Message` for a row that has a messageId.
Where a file's column holds something the Message type would refuse or convert (a type name it does not
know, a mistyped context field, JSON text that is not an object, a time past year 9999), `from_arrow`
answers None and the block is read row by row instead (`columnar.messages` → `from_items`), so every row
is stored or rejected exactly as that reading says.

Rows sent without a messageId get the one `import_ids.derive` gives them, from the Message the row stands
for: the same file always names its rows the same way, whichever way it was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, get_args

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from nexus.ingest import columnar, import_ids
from nexus.ingest.pipeline import _ms
from nexus.ingest.wire import (
    CallType,
    Campaign,
    Context,
    Library,
    Message,
    Page,
    Rejection,
    as_text,
)

CALL_TYPES = pa.array(get_args(CallType))
_TEXT = pa.string()
_BLANK = Message(type="track")  # stands in for a line that could not be read (it is rejected already)
# A time Python's datetime can hold, in microseconds since the epoch: years 1 to 9999.
_FIRST_US, _LAST_US = -62_135_596_800_000_000, 253_402_300_799_999_999
# context's fields the pipeline reads: (column of Rows, path in the context) — all text.
_CONTEXT_TEXT = {
    "ip": ("ip",), "user_agent": ("userAgent",), "url": ("page", "url"), "path": ("page", "path"),
    "referrer": ("page", "referrer"), "utm_source": ("campaign", "source"), "utm_medium": ("campaign", "medium"),
    "utm_campaign": ("campaign", "name"), "utm_term": ("campaign", "term"), "utm_content": ("campaign", "content"),
    "library": ("library", "name"), "library_version": ("library", "version"),
}
_CONTEXT_STRUCTS: dict[str, type[msgspec.Struct]] = {"page": Page, "campaign": Campaign, "library": Library}
_CONTEXT_OBJECTS = frozenset({"device", "os", "app", "referrer"})


class Rows(msgspec.Struct):
    """Column i of every field belongs to the row at positions[i]. Text is "" where the message has none
    (as `as_text` and the pipeline read it); event, name and category keep null apart from ""."""

    positions: list[int]
    type: pa.Array
    event: pa.Array
    name: pa.Array
    category: pa.Array
    user_id: pa.Array
    anonymous_id: pa.Array
    group_id: pa.Array
    previous_id: pa.Array
    message_id: pa.Array
    happened_ms: pa.Array  # timestamp, else originalTimestamp; null when neither
    sent_ms: pa.Array
    properties: list[Any]  # dict or None
    traits: list[Any]
    ip: pa.Array
    user_agent: pa.Array
    url: pa.Array  # context.page's url, path and referrer
    path: pa.Array
    referrer: pa.Array
    utm_source: pa.Array  # context.campaign's source, medium, name, term and content
    utm_medium: pa.Array
    utm_campaign: pa.Array
    utm_term: pa.Array
    utm_content: pa.Array
    library: pa.Array  # context.library's name and version
    library_version: pa.Array
    session_id: pa.Array
    time_out_of_range: list[int] = []  # rows whose times Python cannot place (rejected by put_time)
    unreadable: dict[int, tuple[str, str]] = {}  # rows rejected while reading: (field, reason)

    def __len__(self) -> int:
        return len(self.positions)


def from_items(project_id: int, items: Sequence[Message | Rejection], positions: Sequence[int]) -> Rows:
    """The rows of messages read one by one (a Rejection is a row that could not be read)."""
    unreadable = {i: (m.field, m.reason) for i, m in enumerate(items) if isinstance(m, Rejection)}
    messages = [_BLANK if isinstance(m, Rejection) else m for m in items]
    ids = [as_text(m.message_id) or import_ids.derive(project_id, p, m) if i not in unreadable else ""
           for i, (m, p) in enumerate(zip(messages, positions))]
    happened, sent, out_of_range = _times(messages)
    contexts = [m.context for m in messages]
    return Rows(
        positions=list(positions), type=pa.array([m.type for m in messages], _TEXT),
        event=pa.array([m.event for m in messages], _TEXT), name=pa.array([m.name for m in messages], _TEXT),
        category=pa.array([m.category for m in messages], _TEXT),
        user_id=pa.array([as_text(m.user_id) for m in messages], _TEXT),
        anonymous_id=pa.array([as_text(m.anonymous_id) for m in messages], _TEXT),
        group_id=pa.array([as_text(m.group_id) for m in messages], _TEXT),
        previous_id=pa.array([as_text(m.previous_id) for m in messages], _TEXT),
        message_id=pa.array(ids, _TEXT), happened_ms=pa.array(happened, pa.int64()), sent_ms=pa.array(sent, pa.int64()),
        properties=[m.properties for m in messages], traits=[m.traits for m in messages],
        **_context_of_structs(contexts),
        time_out_of_range=out_of_range, unreadable=unreadable,
    )


def _times(messages: list[Message]) -> tuple[list[int | None], list[int | None], list[int]]:
    """Each message's time and sentAt in milliseconds, and the rows where either cannot be placed."""
    try:
        return ([_ms(t) if (t := m.timestamp or m.original_timestamp) is not None else None for m in messages],
                [_ms(m.sent_at) if m.sent_at else None for m in messages], [])
    except (ValueError, OverflowError, OSError):  # a date Python cannot place (year 1, 9999 + offset)
        pass
    happened: list[int | None] = []
    sent: list[int | None] = []
    out_of_range = []
    for i, m in enumerate(messages):
        try:
            moment = m.timestamp or m.original_timestamp
            happened.append(_ms(moment) if moment is not None else None)
            sent.append(_ms(m.sent_at) if m.sent_at else None)
        except (ValueError, OverflowError, OSError):
            happened.append(None), sent.append(None), out_of_range.append(i)
    return happened, sent, out_of_range


def from_arrow(project_id: int, batch: pa.RecordBatch, columns: dict[str, str], first: int) -> Rows | None:
    """The rows of a Parquet or Arrow block (file column → Message field, as `columnar.columns` maps
    them; `first` is its first row in the file), or None when it must be read row by row."""
    try:
        return _mapped(project_id, batch, columns, first)
    except (pa.ArrowException, TypeError, ValueError):  # a shape the mapping does not foresee: row by row
        return None


def _mapped(project_id: int, batch: pa.RecordBatch, columns: dict[str, str], first: int) -> Rows | None:
    fields = {field: _plain(batch.column(name)) for name, field in columns.items()}
    n = batch.num_rows
    typed = "type" in fields and not pa.types.is_null(fields["type"].type)
    kind = pc.fill_null(fields["type"], "track") if typed else pa.array(["track"] * n, _TEXT)
    if not _is_text(kind.type) or not pc.all(pc.is_in(kind, CALL_TYPES)).as_py():
        return None
    names = {}
    for field in ("event", "name", "category"):
        names[field] = fields.get(field, pa.nulls(n, _TEXT))
        if not _is_text(names[field].type) and names[field].null_count < n:
            return None
    ids = {}
    for field in ("userId", "anonymousId", "groupId", "previousId", "messageId"):
        ids[field] = _id_text(fields.get(field, pa.nulls(n, _TEXT)))
        if ids[field] is None:
            return None
    times = {}
    for field in ("timestamp", "originalTimestamp", "sentAt"):
        times[field] = _ms_column(fields.get(field, pa.nulls(n)))
        if times[field] is None:
            return None
    objects = {}
    for field in ("properties", "traits", "integrations"):
        objects[field] = _object_values(fields[field], field) if field in fields else [None] * n
        if objects[field] is None:
            return None
    context = _context(fields["context"]) if "context" in fields else _no_context(n)
    if context is None:
        return None
    message_id = ids["messageId"]
    missing = pc.indices_nonzero(pc.equal(message_id, "")).to_pylist()
    if missing:
        derived = _derived_ids(project_id, batch, columns, first, missing)
        if derived is None:
            return None
        message_id = pc.replace_with_mask(message_id, pc.equal(message_id, ""), pa.array(derived, _TEXT))
    return Rows(
        positions=list(range(first, first + n)), type=kind.cast(_TEXT), event=names["event"].cast(_TEXT),
        name=names["name"].cast(_TEXT), category=names["category"].cast(_TEXT), user_id=ids["userId"],
        anonymous_id=ids["anonymousId"], group_id=ids["groupId"], previous_id=ids["previousId"],
        message_id=message_id, happened_ms=pc.coalesce(times["timestamp"], times["originalTimestamp"]),
        sent_ms=times["sentAt"], properties=objects["properties"], traits=objects["traits"], **context,
    )


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _id_text(array: pa.Array) -> pa.Array | None:
    """Ids as `as_text` writes them; None for a column the Message type would refuse or convert."""
    if pa.types.is_floating(array.type):  # pandas' integer column with gaps: whole numbers are ids again
        try:
            array = array.cast(pa.int64())
        except pa.ArrowInvalid:
            return None
    if not (_is_text(array.type) or pa.types.is_integer(array.type) or pa.types.is_null(array.type)):
        return None
    return pc.fill_null(array.cast(_TEXT), "")


def _ms_column(array: pa.Array) -> pa.Array | None:
    """Milliseconds since the epoch, as `pipeline._ms` makes them of the times the Message would hold."""
    if pa.types.is_null(array.type):
        return array.cast(pa.int64())
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        # Stored as UTC since the epoch whatever the zone, so the integer is exact (see columnar).
        us = array.cast(pa.timestamp("us", getattr(array.type, "tz", None)), safe=False).cast(pa.int64())
        bounds = pc.min_max(us)
        if bounds["min"].is_valid and (bounds["min"].as_py() < _FIRST_US or bounds["max"].as_py() > _LAST_US):
            return None
        return pc.divide(us, 1000)
    if _is_text(array.type):
        try:
            moments = msgspec.convert(array.to_pylist(), list[datetime | None])
            return pa.array([_ms(t) if t is not None else None for t in moments], pa.int64())
        except (msgspec.ValidationError, ValueError, OverflowError, OSError):
            return None
    return None


def _object_values(array: pa.Array, field: str) -> list[Any] | None:
    """The column's objects (dict or None), as `columnar` reads them; None if any row's is not one."""
    failed: dict[int, Rejection] = {}
    values = columnar.values_of(array, field, 0, failed)
    if failed or not all(type(v) is dict or v is None for v in values):
        return None
    return values


def _no_context(n: int) -> dict[str, pa.Array]:
    empty = pa.array([""] * n, _TEXT)
    return {**{name: empty for name in _CONTEXT_TEXT}, "session_id": empty}


def _context(array: pa.Array) -> dict[str, pa.Array] | None:
    """context's fields the pipeline reads: straight from a struct column whose fields are the types the
    Context type takes as they are, else through that type (None if a row does not convert)."""
    if pa.types.is_struct(array.type):
        array = columnar.camel_struct(array)
        if _plain_context(array.type):
            found = {f.name for f in array.type}

            def text(*path: str) -> pa.Array:
                value = array
                for step in path:
                    if not pa.types.is_struct(value.type) or step not in {f.name for f in value.type}:
                        return pa.array([""] * len(array), _TEXT)
                    value = pc.struct_field(value, step)
                return pc.fill_null(value.cast(_TEXT), "")

            session = text("sessionId") if "sessionId" in found else pa.array([""] * len(array), _TEXT)
            return {**{name: text(*path) for name, path in _CONTEXT_TEXT.items()}, "session_id": session}
    values = _object_values(array, "context")
    if values is None:
        return None
    try:
        contexts = msgspec.convert(values, list[Context | None])
    except msgspec.ValidationError:
        return None
    return _context_of_structs(contexts)


def _plain_context(kind: pa.StructType) -> bool:
    """Does every field of this struct type that Context reads hold what Context takes unchanged?"""
    known = {f.encode_name for f in msgspec.structs.fields(Context)}
    names = [field.name for field in kind]
    if len(set(names)) < len(names):  # user_agent beside userAgent: the Context type keeps the last
        return False
    for field in kind:
        if field.name not in known:
            continue
        if field.name in _CONTEXT_STRUCTS:
            inner = {f.encode_name for f in msgspec.structs.fields(_CONTEXT_STRUCTS[field.name])}
            if not pa.types.is_struct(field.type) or not all(
                    _is_text(f.type) or pa.types.is_null(f.type) for f in field.type if f.name in inner):
                return False
        elif field.name in _CONTEXT_OBJECTS:
            if not pa.types.is_struct(field.type):
                return False
        elif field.name == "sessionId":
            if not (_is_text(field.type) or pa.types.is_integer(field.type) or pa.types.is_null(field.type)):
                return False
        elif not (_is_text(field.type) or pa.types.is_null(field.type)):
            return False
    return True


def _context_of_structs(contexts: list[Context | None]) -> dict[str, pa.Array]:
    pages = [c.page if c is not None else None for c in contexts]
    campaigns = [c.campaign if c is not None else None for c in contexts]
    libraries = [c.library if c is not None else None for c in contexts]

    def text(values: Any) -> pa.Array:
        return pa.array([v or "" for v in values], _TEXT)

    return {
        "ip": text(c.ip if c is not None else None for c in contexts),
        "user_agent": text(c.user_agent if c is not None else None for c in contexts),
        "url": text(p.url if p is not None else None for p in pages),
        "path": text(p.path if p is not None else None for p in pages),
        "referrer": text(p.referrer if p is not None else None for p in pages),
        "utm_source": text(c.source if c is not None else None for c in campaigns),
        "utm_medium": text(c.medium if c is not None else None for c in campaigns),
        "utm_campaign": text(c.name if c is not None else None for c in campaigns),
        "utm_term": text(c.term if c is not None else None for c in campaigns),
        "utm_content": text(c.content if c is not None else None for c in campaigns),
        "library": text(lib.name if lib is not None else None for lib in libraries),
        "library_version": text(lib.version if lib is not None else None for lib in libraries),
        "session_id": pa.array([as_text(c.session_id) if c is not None else "" for c in contexts], _TEXT),
    }


def _derived_ids(project_id: int, batch: pa.Table, columns: dict[str, str], first: int,
                 rows: list[int]) -> list[str] | None:
    """The derived messageIds of these rows, from the Messages they stand for (None if one is not one)."""
    messages = columnar.messages(batch.take(pa.array(rows, pa.int64())), columns, 0)
    if not all(isinstance(m, Message) for m in messages):
        return None
    return [import_ids.derive(project_id, first + row, m) for row, m in zip(rows, messages)]
