"""The acknowledgement log (NEXUS_ACK=logged): a write-ahead log of the events handed to the writer, on the
data dir's disk, that lets a request be answered once its events are fsync'd there instead of once inserted.

Records are appended to numbered segment files under `<data dir>/ack-log`, each framed by its length and a
CRC-32, and fsync'd before `append` returns: appends that arrive while one fsync runs share the next one.
The writer takes the open segment whole (`take`) once it holds NEXUS_WRITER_MAX_ROWS events or has waited
long enough, inserts it as one block, and only then deletes it (`remove`). Segments found at start are what
a previous process acknowledged and may not have inserted, or inserted in part before it died: they are
taken first, marked `replayed`, and the writer inserts only those of their events ClickHouse does not hold.
A record cut short by a crash was never acknowledged (its fsync had not returned): reading stops there.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import msgspec
import pyarrow as pa

from nexus.ingest.identity import Link

log = logging.getLogger("nexus.ingest.ack_log")

_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
_SUFFIX = ".log"


class Record(msgspec.Struct):
    """What one request (or import block) handed to the writer."""

    table: pa.Table
    links: list[Link]
    link_rows: list[int]  # the row of `table` each link came with (-1: the whole request's)


class Segment(msgspec.Struct):
    """Records of one segment file, in the order they were acknowledged."""

    path: Path
    records: list[Record]
    replayed: bool  # written by an earlier process: some of its events may be in ClickHouse already
    refused: set[tuple[int, str]] = msgspec.field(default_factory=set)  # (project, messageId) ClickHouse refused

    @property
    def rows(self) -> int:
        return sum(record.table.num_rows for record in self.records)


class _Wire(msgspec.Struct, array_like=True):
    table: bytes  # Arrow IPC stream
    links: list[Link]
    link_rows: list[int]


class WriteAheadLog:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._replayed = [Segment(path, _read(path), True) for path in sorted(directory.glob("*" + _SUFFIX))]
        self._next_number = max((int(s.path.stem) for s in self._replayed), default=0) + 1
        self._changed = threading.Condition()  # guards the open segment; notified on append and close
        self._open: Segment | None = None
        self._opened_at = 0.0  # monotonic time of the open segment's first record
        self._file: io.BufferedWriter | None = None
        self._written = 0  # bytes appended to the open file
        self._synced = threading.Lock()  # one fsync at a time; later appends share the next
        self._synced_upto: tuple[int, int] = (0, 0)  # (segment number, bytes) known durable
        self._closed = False

    def append(self, record: Record) -> None:
        """Write the record to the open segment; returns once it is on disk (fsync'd)."""
        frame = _frame(record)
        with self._changed:
            if self._file is None:
                self._start_segment()
            assert self._file is not None and self._open is not None
            self._file.write(frame)
            self._file.flush()  # to the OS, so that whichever fsync runs next carries it
            self._written += len(frame)
            mine, file = (int(self._open.path.stem), self._written), self._file
            self._open.records.append(record)
            self._changed.notify_all()
        with self._synced:
            if self._synced_upto < mine:
                upto = (mine[0], self._written if self._file is file else mine[1])
                try:
                    os.fdatasync(file.fileno())
                except ValueError:  # the segment was taken (and closed after its own fsync) meanwhile
                    pass
                self._synced_upto = max(self._synced_upto, upto)

    def take_replayed(self) -> list[Segment]:
        """The segments an earlier process left, oldest first (each time: the ones not taken yet)."""
        segments, self._replayed = self._replayed, []
        return segments

    def take(self, max_rows: int, max_delay: float) -> Segment | None:
        """The open segment, once it holds `max_rows` events or its first record waited `max_delay` seconds;
        None once closed and empty."""
        with self._changed:
            while True:
                segment = self._open
                rows = segment.rows if segment else 0
                waited = time.monotonic() - self._opened_at
                if segment and (rows >= max_rows or waited >= max_delay or self._closed):
                    self._seal()
                    return segment
                if self._closed:
                    return None
                self._changed.wait(max_delay - waited if segment else None)

    def remove(self, segment: Segment) -> None:
        """The segment's events are in ClickHouse: forget them."""
        segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        """No more appends: `take` hands out what is open, then None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _start_segment(self) -> None:
        path = self.directory / f"{self._next_number:012d}{_SUFFIX}"
        self._next_number += 1
        self._file = open(path, "ab")  # noqa: SIM115 — closed when the segment is sealed
        self._written = 0
        self._open = Segment(path, [], False)
        self._opened_at = time.monotonic()
        _sync_directory(self.directory)  # the new file's name must survive a crash with its records

    def _seal(self) -> None:
        assert self._file is not None
        with self._synced:  # its records were all fsync'd by their appends (or are being now)
            os.fdatasync(self._file.fileno())
            self._file.close()
        self._file, self._open = None, None


def _frame(record: Record) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, record.table.schema) as stream:
        stream.write_table(record.table)
    payload = msgspec.msgpack.encode(_Wire(sink.getvalue().to_pybytes(), record.links, record.link_rows))
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _read(path: Path) -> list[Record]:
    data, records, at = path.read_bytes(), [], 0
    while at + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, at)
        payload = data[at + _FRAME.size: at + _FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("%s ends in a record cut short by a crash (never acknowledged); it is skipped", path.name)
            break
        wire = msgspec.msgpack.decode(payload, type=_Wire)
        records.append(Record(pa.ipc.open_stream(wire.table).read_all(), wire.links, wire.link_rows))
        at += _FRAME.size + length
    return records


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
