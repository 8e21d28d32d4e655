"""Reads bulk import files (NDJSON, gzipped NDJSON, Parquet, Arrow IPC) into chunks of Segment messages.

Files are read as streams, so memory is bounded by the chunk size (NDJSON), the Parquet row group, or
the Arrow record batch slice — never by the file. Each item of a chunk is a `Message` or a `Rejection`
whose index is the item's 0-based line (NDJSON, blank lines counted) or row (Parquet, Arrow) in the
file, so a caller can report "line 1234: field: reason" and store every other event.

Columnar files (Parquet, Arrow) are read by `columnar`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from nexus.errors import InvalidRequest
from nexus.ingest.columnar import ARROW_FILE_MAGIC, Item, arrow_pieces, parquet_pieces
from nexus.ingest.wire import Message, Rejection, decode_message

Format = Literal["ndjson", "arrow", "parquet"]
FORMATS: tuple[Format, ...] = ("ndjson", "arrow", "parquet")

_SNIFF_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ARROW_CONTINUATION = b"\xff\xff\xff\xff"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"


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
    path: Path, fmt: str | None = None, chunk_size: int = 10_000, max_event_bytes: int = 32 * 1024,
) -> Iterator[list[Message | Rejection]]:
    """Chunks of at most `chunk_size` messages or rejections, in file order; only the last is shorter.

    The format is detected (and an unreadable file refused) now, before the first chunk is asked for;
    a file found corrupt later raises `InvalidRequest` after the chunks read so far.
    `max_event_bytes` bounds one NDJSON line, which is never read whole when longer.
    """
    if chunk_size < 1:
        raise InvalidRequest(f"chunk size must be at least 1, not {chunk_size}")
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "ndjson":
        return _ndjson_chunks(path, chunk_size, max_event_bytes)
    if fmt == "parquet":
        return _rechunk(parquet_pieces(path, chunk_size), chunk_size)
    if fmt == "arrow":
        return _rechunk(arrow_pieces(path, chunk_size), chunk_size)
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

def _ndjson_chunks(path: Path, chunk_size: int, max_event_bytes: int) -> Iterator[list[Item]]:
    compressed = _head(path).startswith(_GZIP_MAGIC)
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            yield from _ndjson_lines(f, chunk_size, max_event_bytes)
    except (OSError, EOFError, zlib.error) as e:
        raise InvalidRequest(f"cannot read the NDJSON file: {e}") from None


def _ndjson_lines(f: Any, chunk_size: int, max_event_bytes: int) -> Iterator[list[Item]]:
    # readline(limit) keeps a runaway line (a file with no newlines) from being read into memory whole:
    # a read that fills the limit without a newline is over it, and its rest is skipped, not kept.
    limit = max_event_bytes + 2  # room for "\r\n"
    chunk: list[Item] = []
    index = 0
    while line := f.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            size = len(line) + _skip_line(f)
            chunk.append(Rejection(index, "", f"event is {size} bytes, over the limit of {max_event_bytes}"))
        else:
            if index == 0:
                line = line.removeprefix(_BOM)
            event = line.rstrip(b"\r\n")
            if not event or event.isspace():
                index += 1
                continue
            if len(event) > max_event_bytes:
                chunk.append(Rejection(index, "", f"event is {len(event)} bytes, over the limit of {max_event_bytes}"))
            else:
                chunk.append(decode_message(event, index))
        index += 1
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _skip_line(f: Any) -> int:
    """Reads past the rest of the current line; returns its length without the line ending."""
    skipped = 0
    while piece := f.readline(64 * 1024):
        if piece.endswith(b"\n"):
            return skipped + len(piece.rstrip(b"\r\n"))
        skipped += len(piece)
    return skipped


def _rechunk(pieces: Iterator[list[Item]], chunk_size: int) -> Iterator[list[Item]]:
    """Regroups pieces of any size (Parquet row groups end where they will) into chunks of chunk_size."""
    chunk: list[Item] = []
    for piece in pieces:
        chunk.extend(piece)
        while len(chunk) >= chunk_size:
            yield chunk[:chunk_size]
            chunk = chunk[chunk_size:]
    if chunk:
        yield chunk
