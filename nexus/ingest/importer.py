"""Reads bulk import files (NDJSON, gzipped NDJSON, Parquet, Arrow IPC) into blocks of rows for the bulk
pipeline (`read_rows`), or into chunks of Segment messages (`read_messages`: each row as the Message it
stands for, which the bulk path's columns are tested against).

Files are read as streams, so memory is bounded by the block size — never by the file. Each row has its
position: its 0-based line (NDJSON, blank lines counted) or row (Parquet, Arrow) in the file, so a caller
can report "line 1234: field: reason" and store every other event.

A file found corrupt or cut short part-way raises `InvalidRequest` once every item before the damage has
been handed out: a gzip stream that ends before its end-of-stream marker, an Arrow IPC stream cut inside
a record batch or ending without its end-of-stream marker. Formats that need their end to be read at all
(an Arrow IPC file's footer, Parquet's) are refused before the first chunk.

Columnar files (Parquet, Arrow) are read by `columnar`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import pyarrow as pa

from nexus.errors import InvalidRequest
from nexus.ingest import bulk_rows, columnar
from nexus.ingest.bulk_rows import Rows
from nexus.ingest.columnar import ARROW_FILE_MAGIC, Item
from nexus.ingest.wire import Rejection, decode_message

Format = Literal["ndjson", "arrow", "parquet"]
FORMATS: tuple[Format, ...] = ("ndjson", "arrow", "parquet")

_SNIFF_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ARROW_CONTINUATION = b"\xff\xff\xff\xff"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_ARROW_STREAM_END = _ARROW_CONTINUATION + b"\x00\x00\x00\x00"


class Chunk(msgspec.Struct):
    items: list[Item]
    positions: list[int]  # each item's 0-based line or row in the file, ascending


def detect_format(path: Path) -> Format:
    """The file's format, from its first bytes; gzip-compressed NDJSON is "ndjson"."""
    head = _head(path)
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ARROW_FILE_MAGIC):
        return "arrow"
    # An IPC stream opens with the continuation marker and the (non-empty) schema message's length.
    if head.startswith(_ARROW_CONTINUATION) and int.from_bytes(head[4:8], "little", signed=True) > 0:
        return "arrow"
    if head.startswith(_GZIP_MAGIC):
        if _plausible_ndjson(_gunzipped_head(path)):
            return "ndjson"
        raise InvalidRequest("the file is gzip-compressed, but what it holds is not NDJSON "
                             "(one JSON object per line); only NDJSON may be gzip-compressed")
    if _plausible_ndjson(head):
        return "ndjson"
    raise InvalidRequest(_unknown_format(head))


def read_rows(path: Path, project_id: int, fmt: str | None = None, block_rows: int = 100_000,
              max_event_bytes: int = 32 * 1024, *, start: int = 0) -> Iterator[Rows]:
    """Blocks of at most `block_rows` lines (blank ones aside) or rows, in file order, as `read_messages`
    reads them (the same refusals, positions and rejections), each row sent without a messageId given
    its derived one (`import_ids`) for the project."""
    fmt = _checked(path, fmt, block_rows, start)
    if fmt == "ndjson":
        return _ndjson_rows(project_id, _ndjson_chunks(path, block_rows, max_event_bytes, start))
    return (bulk_rows.from_arrow(project_id, batch, mapped, first)
            or bulk_rows.from_items(project_id, columnar.messages(batch, mapped, first), range(first, first + len(batch)))
            for mapped, batch, first in _batches(path, fmt, block_rows, start))


def _ndjson_rows(project_id: int, chunks: Iterator[Chunk]) -> Iterator[Rows]:
    for chunk in chunks:
        rows = bulk_rows.from_items(project_id, chunk.items, chunk.positions)
        del chunk  # its messages are garbage once in columns: not kept while the next block is read
        yield rows


def read_messages(
    path: Path, fmt: str | None = None, chunk_size: int = 10_000, max_event_bytes: int = 32 * 1024, *,
    start: int = 0,
) -> Iterator[Chunk]:
    """Chunks of at most `chunk_size` messages or rejections, in file order; only the last is shorter.
    Lines or rows before position `start` are passed over (NDJSON lines without being decoded).

    The format is detected (and an unreadable file refused) now, before the first chunk is asked for;
    a file found corrupt or cut short later raises `InvalidRequest` after every item read before the
    damage, the last chunk then being shorter. `max_event_bytes` bounds one NDJSON line, which is never
    read whole when longer.
    """
    fmt = _checked(path, fmt, chunk_size, start)
    if fmt == "ndjson":
        return _ndjson_chunks(path, chunk_size, max_event_bytes, start)
    return (Chunk(columnar.messages(batch, mapped, first), list(range(first, first + len(batch))))
            for mapped, batch, first in _batches(path, fmt, chunk_size, start))


def _checked(path: Path, fmt: str | None, size: int, start: int) -> Format:
    """The file's format, given or detected; refuses a bad size or start, an unknown format and a
    columnar file without its footer."""
    if size < 1:
        raise InvalidRequest(f"chunk size must be at least 1, not {size}")
    if start < 0:
        raise InvalidRequest(f"the line or row to start from is 0 or more, not {start}")
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "parquet":
        _check_end(path, _PARQUET_MAGIC, "Parquet file", "its footer")
    elif fmt == "arrow" and _head(path).startswith(ARROW_FILE_MAGIC):
        _check_end(path, ARROW_FILE_MAGIC, "Arrow IPC file", "its footer")
    elif fmt not in FORMATS:
        raise InvalidRequest(f"unknown import format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def _batches(path: Path, fmt: Format, size: int, start: int) -> Iterator[tuple[dict[str, str], pa.RecordBatch, int]]:
    """A columnar file's rows from `start` on, in record batches of `size` rows (the last shorter), each
    with its column mapping and its first row's position."""
    if fmt == "parquet":
        return _reblock(columnar.parquet_batches(path, size), size, start)
    if _head(path).startswith(ARROW_FILE_MAGIC):
        return _reblock(columnar.arrow_batches(path, size), size, start)
    return _reblock(_ended_stream(path, columnar.arrow_batches(path, size)), size, start)


# --- format detection ---------------------------------------------------------------------------------

def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_SNIFF_BYTES)
    except OSError as e:
        raise InvalidRequest(f"cannot read the import file: {e.strerror or e}") from None


def _gunzipped_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as e:
        raise InvalidRequest(f"the file looks gzip-compressed but cannot be decompressed: {e}") from None


def _tail(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read()
    except OSError as e:
        raise InvalidRequest(f"cannot read the import file: {e.strerror or e}") from None


def _check_end(path: Path, magic: bytes, kind: str, end: str) -> None:
    """Refuses a file that opens like `kind` but does not close with its magic bytes: it was cut short."""
    if _head(path).startswith(magic) and _tail(path, len(magic)) != magic:
        raise InvalidRequest(f"the {kind} is truncated: it does not end with {end}, so none of it can be read")


def _ended_stream(path: Path, pieces: Iterator[list[Item]]) -> Iterator[list[Item]]:
    """The pieces of an Arrow IPC stream, then a refusal if it stops without its end-of-stream marker.

    The format lets a writer end a stream by just closing it, but the Arrow libraries' stream writers
    write the marker when they finish (pyarrow's does): without this check, a stream cut exactly between
    two record batches would read as complete, and the rows after the cut go missing without a word."""
    ended = _tail(path, len(_ARROW_STREAM_END)) == _ARROW_STREAM_END
    try:
        yield from pieces
    except InvalidRequest:
        if ended:
            raise
        raise InvalidRequest("the Arrow IPC stream is truncated: it ends inside a record batch, "
                             "without its end-of-stream marker") from None
    if not ended:
        raise InvalidRequest("the Arrow IPC stream is truncated: it ends without its end-of-stream marker")


def _plausible_ndjson(head: bytes) -> bool:
    """NDJSON of messages opens with an object; an empty or all-blank file is NDJSON with no lines."""
    text = head.removeprefix(_BOM).lstrip()
    return not text or text.startswith(b"{")


def _unknown_format(head: bytes) -> str:
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"["):
        return ("the file is a JSON array; import reads NDJSON, one JSON object per line "
                "(convert with: jq -c '.[]' FILE)")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "the file is zstd-compressed; only gzip compression is supported (for NDJSON)"
    if head.startswith(b"PK\x03\x04"):
        return "the file is a zip archive; extract it and import the NDJSON, Parquet or Arrow file inside"
    return (f"the file is not NDJSON, gzip-compressed NDJSON, Parquet or Arrow IPC "
            f"(it starts with {head[:8]!r})")


# --- NDJSON -------------------------------------------------------------------------------------------

def _ndjson_chunks(path: Path, chunk_size: int, max_event_bytes: int, start: int) -> Iterator[Chunk]:
    compressed = _head(path).startswith(_GZIP_MAGIC)
    chunk, error = Chunk([], []), None
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            for index, item in _ndjson_lines(f, max_event_bytes, start):
                chunk.items.append(item)
                chunk.positions.append(index)
                if len(chunk.items) == chunk_size:
                    yield chunk
                    chunk = Chunk([], [])
    except EOFError:
        # gzip decodes ahead of the lines it hands out: a line the cut runs through is never returned.
        error = InvalidRequest("the gzip-compressed file is truncated: it ends before gzip's end-of-stream marker")
    except (zlib.error, OSError) as e:  # gzip's own errors (a bad CRC, BadGzipFile) are OSErrors
        error = InvalidRequest(f"the gzip-compressed file is corrupt: {e}" if compressed
                               else f"cannot read the NDJSON file: {e}")
    if chunk.items:
        yield chunk
    if error:
        raise error


def _ndjson_lines(f: Any, max_event_bytes: int, start: int) -> Iterator[tuple[int, Item]]:
    # readline(limit) keeps a runaway line (a file with no newlines) from being read into memory whole:
    # a read that fills the limit without a newline is over it, and its rest is skipped, not kept.
    limit = max_event_bytes + 2  # room for "\r\n"
    index = 0
    while line := f.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            size = len(line) + _skip_line(f)
            if index >= start:
                yield index, Rejection(index, "", f"event is {size} bytes, over the limit of {max_event_bytes}")
        elif index >= start:
            if index == 0:
                line = line.removeprefix(_BOM)
            event = line.rstrip(b"\r\n")
            if not event or event.isspace():
                pass
            elif len(event) > max_event_bytes:
                yield index, Rejection(index, "", f"event is {len(event)} bytes, over the limit of {max_event_bytes}")
            else:
                yield index, decode_message(event, index)
        index += 1


def _skip_line(f: Any) -> int:
    """Reads past the rest of the current line; returns its length without the line ending."""
    skipped = 0
    while piece := f.readline(64 * 1024):
        if piece.endswith(b"\n"):
            return skipped + len(piece.rstrip(b"\r\n"))
        skipped += len(piece)
    return skipped


def _reblock(pieces: Iterator[tuple[dict[str, str], pa.RecordBatch]], size: int,
             start: int) -> Iterator[tuple[dict[str, str], pa.RecordBatch, int]]:
    """Regroups record batches (Parquet row groups and Arrow batches end where they will) into batches
    of `size` rows from row `start` on; the rows read before a refusal are handed out first."""
    held: list[pa.RecordBatch] = []
    mapped: dict[str, str] = {}
    row = 0  # the row after the last piece read: the held rows are the ones just before it

    def taken(count: int) -> tuple[dict[str, str], pa.RecordBatch, int]:
        nonlocal held
        table = pa.Table.from_batches(held)
        first = row - table.num_rows
        block = table.slice(0, count).combine_chunks()
        rest = table.slice(count)
        held = rest.combine_chunks().to_batches() if rest.num_rows else []
        return mapped, block.to_batches()[0], first

    def held_rows() -> int:
        return sum(b.num_rows for b in held)

    try:
        for mapped, piece in pieces:
            row += piece.num_rows
            skip = max(0, start - (row - piece.num_rows))
            if skip < piece.num_rows:
                held.append(piece.slice(skip))
            while held_rows() >= size:
                yield taken(size)
    except InvalidRequest:
        if held:
            yield taken(held_rows())
        raise
    if held:
        yield taken(held_rows())
