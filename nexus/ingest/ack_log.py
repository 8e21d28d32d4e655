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
from concurrent.futures import Future
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
        self._changed = threading.Condition()  # guards all below; notified on append, seal and close
        self._open: Segment | None = None
        self._opened_at = 0.0  # monotonic time of the open segment's first record
        self._file: io.FileIO | None = None
        self._size = 0  # bytes of whole records in the open file
        # What the syncer has to make durable, in order: a record's file (then its future is resolved), a new
        # file's name (the directory), a sealed file (closed once synced).
        self._unsynced: list[tuple[str, io.FileIO | None, Future | None]] = []
        self._closed = False
        self._syncer = threading.Thread(target=self._sync, name="nexus-ack-log", daemon=True)
        self._syncer.start()

    def append(self, record: Record) -> Future:
        """Write the record to the open segment; the future resolves once it is on disk (fsync'd, with the
        appends made while the previous fsync ran). Raises OSError when it could not be written."""
        frame = _frame(record)
        done: Future = Future()
        with self._changed:
            if self._closed:
                raise OSError("the ack log is closed")
            if self._file is None:
                self._start_segment()
            assert self._file is not None and self._open is not None
            try:
                written = 0
                while written < len(frame):  # unbuffered: in the OS once written, for the next fsync to carry
                    written += self._file.write(memoryview(frame)[written:]) or 0
            except OSError:
                # A record cut short would hide every later one from the replay: cut it off.
                os.ftruncate(self._file.fileno(), self._size)
                raise
            self._size += len(frame)
            self._open.records.append(record)
            self._unsynced.append(("record", self._file, done))
            self._changed.notify_all()
        return done

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
                    self._unsynced.append(("seal", self._file, None))
                    self._file, self._open = None, None
                    self._changed.notify_all()
                    return segment
                if self._closed:
                    return None
                self._changed.wait(max_delay - waited if segment else None)

    def remove(self, segment: Segment) -> None:
        """The segment's events are in ClickHouse: forget them."""
        segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        """No more appends: `take` hands out what is open, then None; the syncer ends once all is synced."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def join(self) -> None:
        """Wait for the syncer, after `close` and the last `take`; close what it left (every record it synced:
        none is appended once closed)."""
        self._syncer.join()
        for file in [file for _, file, _ in self._unsynced] + [self._file]:
            if file is not None:
                file.close()

    def _start_segment(self) -> None:
        path = self.directory / f"{self._next_number:012d}{_SUFFIX}"
        self._next_number += 1
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 — closed by the syncer once sealed
        self._size = 0
        self._open = Segment(path, [], False)
        self._opened_at = time.monotonic()
        self._unsynced.append(("directory", None, None))  # the new name must survive a crash with its records

    def _sync(self) -> None:
        """Group commit: one fsync per file for every append made meanwhile, in a thread of its own so that no
        request's thread waits on the disk."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._unsynced or self._closed)
                if not self._unsynced:
                    return
                batch, self._unsynced = self._unsynced, []
            files = list({id(file): file for _, file, _ in batch if file is not None}.values())
            try:
                for file in files:
                    os.fdatasync(file.fileno())
                if any(kind == "directory" for kind, _, _ in batch):
                    _sync_directory(self.directory)
            except OSError as e:
                # Which of these records will reach the disk is unknowable now (a failed fsync may have dropped
                # the pages), and they are in the segment the writer inserts: answering 503 would free their
                # claims, so the SDK's resend would be stored twice. Like PostgreSQL, stop: the next start
                # replays what is on disk and settles the unanswered claims against ClickHouse.
                log.critical("the ack log could not be synced to disk, stopping: %s", e)
                os._exit(70)
            for kind, file, done in batch:
                if done is not None:
                    done.set_result(None)
                if kind == "seal" and file is not None:
                    file.close()


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
