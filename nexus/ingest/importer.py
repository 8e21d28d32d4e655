"""Reads bulk import files (NDJSON, gzipped NDJSON, Parquet, Arrow IPC) into chunks of Segment messages.

Files are read as streams, so memory is bounded by the chunk size (NDJSON), the Parquet row group, or
the Arrow record batch slice — never by the file. Each item of a chunk is a `Message` or a `Rejection`,
at its position: its 0-based line (NDJSON, blank lines counted) or row (Parquet, Arrow) in the file, so a
caller can report "line 1234: field: reason" and store every other event.

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

from nexus.errors import InvalidRequest
from nexus.ingest.columnar import ARROW_FILE_MAGIC, Item, arrow_pieces, parquet_pieces
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
    if chunk_size < 1:
        raise InvalidRequest(f"chunk size must be at least 1, not {chunk_size}")
    if start < 0:
        raise InvalidRequest(f"the line or row to start from is 0 or more, not {start}")
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "ndjson":
        return _ndjson_chunks(path, chunk_size, max_event_bytes, start)
    if fmt == "parquet":
        _check_end(path, _PARQUET_MAGIC, "Parquet file", "its footer")
        return _rechunk(parquet_pieces(path, chunk_size), chunk_size, start)
    if fmt == "arrow":
        if _head(path).startswith(ARROW_FILE_MAGIC):
            _check_end(path, ARROW_FILE_MAGIC, "Arrow IPC file", "its footer")
            return _rechunk(arrow_pieces(path, chunk_size), chunk_size, start)
        return _rechunk(_ended_stream(path, arrow_pieces(path, chunk_size)), chunk_size, start)
    raise InvalidRequest(f"unknown import format {fmt!r}: expected one of {', '.join(FORMATS)}")


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


def _rechunk(pieces: Iterator[list[Item]], chunk_size: int, start: int) -> Iterator[Chunk]:
    """Regroups pieces of rows (Parquet row groups end where they will) into chunks of chunk_size, from
    row `start` on; the rows read before a refusal are handed out first."""
    items: list[Item] = []
    row = 0  # the row after the last piece read: items are the rows just before it

    def chunk(size: int) -> Chunk:
        first = row - len(items)
        return Chunk(items[:size], list(range(first, first + min(size, len(items)))))

    try:
        for piece in pieces:
            row += len(piece)
            items.extend(piece[max(0, start - (row - len(piece))):])
            while len(items) >= chunk_size:
                yield chunk(chunk_size)
                items = items[chunk_size:]
    except InvalidRequest:
        if items:
            yield chunk(len(items))
        raise
    if items:
        yield chunk(len(items))
