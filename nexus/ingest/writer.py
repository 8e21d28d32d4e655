"""The group-commit writer: merges concurrent requests' events into large ClickHouse inserts.

ClickHouse wants few, large inserts (thousands of rows, about one a second per table), while SDKs send
many small batches. Requests hand their (already deduplicated) Arrow tables to one writer thread and
wait; the writer takes everything queued, and keeps taking while more arrives: it stops at
NEXUS_WRITER_MAX_ROWS rows, after NEXUS_WRITER_MAX_DELAY_MS, or once nothing new came for IDLE_GAP
(every sender is waiting on this block, so waiting longer only adds latency). While a block is being
inserted the next one fills up, so under load blocks grow by themselves. For each block it applies the
identify/alias links, inserts the events, and only then answers every request in it: an answered
request's events are in ClickHouse.

One block holds requests of many projects, so one event the store refuses must not fail the others.
The pipeline refuses what it knows the JSON column cannot store (nexus.ingest.properties); should an
insert still fail for its content (a ClickHouse code for bad data, not for an unavailable store), the
writer isolates it: it stores the block's requests in halves, then a failing request's events in halves,
until each refused event is alone. Only those are refused (answered 400, never retried); the rest is
stored. ClickHouse raises a content error while it parses the block, before it writes anything, so no
row of a split reaches the table or the rollups its materialized views feed twice. What a request
learns is its own: a refusal's reason comes from an insert of that event alone, and an unavailable store
is named by its error code (the log has the whole text), never by a text that may quote another
request's rows.

With NEXUS_ACK=logged the writer answers once a request's events are fsync'd to the acknowledgement log
(nexus.ingest.ack_log) and inserts the log's segments as blocks of their own, NEXUS_WRITER_MAX_ROWS events
or after at least LOGGED_MIN_DELAY, whatever the number of requests in flight. A failed insert of a logged
block is retried until it is stored (a retry, and a replay at start, inserts only what ClickHouse does not
hold yet). An event ClickHouse refuses for its content can no longer be answered: it goes to
`<data dir>/ack-log/rejected.ndjson` with its reason, and to the log and the nexus_ingest_events metric
(outcome "refused_after_ack").
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus import changes
from nexus.errors import StorageUnavailable
from nexus.ingest.ack_log import Record, Segment, WriteAheadLog
from nexus.ingest.dedup import stored_in_clickhouse
from nexus.ingest.identity import IdentityResolver, Link
from nexus.observe.metrics import metrics
from nexus.store import json_insert
from nexus.store.client import describe_error

log = logging.getLogger("nexus.ingest.writer")

IDLE_GAP = 0.005  # seconds without a new request after which the block is complete
# Logged mode: no sender waits on a block, so it may fill for longer; ClickHouse wants about one insert a second.
LOGGED_MIN_DELAY = 1.0
RETRY_MAX_WAIT = 5.0  # seconds between attempts to insert an acknowledged block while the store fails

# ClickHouse codes that blame the inserted data, not the store: the same rows would fail again.
CONTENT_ERRORS = {
    6: "CANNOT_PARSE_TEXT", 25: "CANNOT_PARSE_ESCAPE_SEQUENCE", 26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 38: "CANNOT_PARSE_DATE", 41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH", 69: "ARGUMENT_OUT_OF_BOUND", 70: "CANNOT_CONVERT_TYPE", 72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA", 128: "TOO_LARGE_ARRAY_SIZE", 131: "TOO_LARGE_STRING_SIZE", 306: "TOO_DEEP_RECURSION",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", 376: "CANNOT_PARSE_UUID", 407: "DECIMAL_OVERFLOW",
    467: "CANNOT_PARSE_BOOL",
}


class Refusal(msgspec.Struct, frozen=True):
    """A row ClickHouse refused for its content, alone: it is answered as rejected, never retried."""

    row: int  # in the request's table
    field: str
    reason: str


class Outcome(msgspec.Struct):
    """What became of a request's rows: all stored but the `refused` ones and, when the store failed while
    the writer was isolating a refused event, the `unstored` ones (`error` says why; retry them)."""

    refused: list[Refusal] = []
    unstored: list[int] = []
    error: Any = None  # StorageUnavailable when some rows are unstored


class _Pending(msgspec.Struct):
    table: pa.Table
    links: list[Link]
    link_rows: list[int]  # the row of `table` each link came with (-1: the whole request's)
    future: Future


class _TraitsRefused(Exception):
    """ClickHouse refused a person's traits: the text may quote traits stored by earlier requests."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.code = getattr(error, "code", None)


# Part of a block: requests, each with the rows of its table taken.
_Slice = list[tuple[_Pending, list[int]]]

_STOP = object()


class GroupCommitWriter:
    def __init__(self, clickhouse: Client, identity: IdentityResolver, *, max_rows: int, max_delay_ms: int,
                 ack_log: WriteAheadLog | None = None):
        self.clickhouse = clickhouse
        self.identity = identity
        self.max_rows = max_rows
        self.max_delay = max_delay_ms / 1000
        self.ack_log = ack_log  # set: answer once logged (NEXUS_ACK=logged); None: once inserted
        self._stopping = False
        # What waits in memory is bounded in rows, not requests: submit blocks while two blocks wait.
        self._queued_rows = 0
        self._room = threading.Condition()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nexus-writer", daemon=True)
        self._committing = threading.Lock()  # held by a block's commit, or by `paused`

    @property
    def queued_rows(self) -> int:
        """Events handed in and not yet taken into a block."""
        return self._queued_rows

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No block is inserted while inside: the one being inserted finishes first, the next waits."""
        with self._committing:
            yield

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop (in logged mode, a block the store keeps failing stays in the log)."""
        self._stopping = True
        if self.ack_log is not None:
            self.ack_log.close()
        else:
            self._queue.put(_STOP)
        self._thread.join()
        if self.ack_log is not None:
            self.ack_log.join()

    def replay(self) -> None:
        """Insert what an earlier process acknowledged and may not have inserted (logged mode), before any
        request is taken: dedup settles a dead process's keys by asking ClickHouse, which must hold them."""
        assert self.ack_log is not None
        segments = self.ack_log.take_replayed()
        if segments:
            log.warning("inserting %d acknowledged events from the ack log of an earlier run",
                        sum(segment.rows for segment in segments))
        for segment in segments:
            self._store_logged(segment, settle=True)
            self.ack_log.remove(segment)

    def submit(self, table: pa.Table, links: list[Link], link_rows: list[int] | None = None) -> Future:
        """Queue events for the next block; the future resolves to an Outcome once the writer is done with
        them, or fails with StorageUnavailable when none was stored. `link_rows` names the row each link
        came with, so that a refused event's link is refused with it (default: the whole request's)."""
        future: Future = Future()
        if not table.num_rows and not links:
            future.set_result(Outcome())
            return future
        with self._room:
            if not self._room.wait_for(lambda: self._queued_rows < 2 * self.max_rows, timeout=30):
                raise StorageUnavailable("the event writer is saturated; retry shortly")
            self._queued_rows += table.num_rows
            metrics().writer_queued.set(self._queued_rows)
        rows = link_rows if link_rows is not None and len(link_rows) == len(links) else [-1] * len(links)
        if self.ack_log is None:
            self._queue.put(_Pending(table, links, rows, future))
            return future
        try:
            logged = self.ack_log.append(Record(table, links, rows))
        except OSError as e:
            self._taken(table.num_rows)
            raise StorageUnavailable(f"events were not logged: {e}") from None
        logged.add_done_callback(lambda _: future.set_result(Outcome()))
        return future

    def _taken(self, rows: int) -> None:
        """`rows` no longer wait: room for more."""
        with self._room:
            self._queued_rows -= rows
            metrics().writer_queued.set(self._queued_rows)
            self._room.notify_all()

    def _run(self) -> None:
        if self.ack_log is not None:
            self._run_logged(self.ack_log)
            return
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            block, size = [first], first.table.num_rows
            deadline = time.monotonic() + self.max_delay
            while size < self.max_rows:
                try:
                    item = self._queue.get(timeout=max(0.0, min(IDLE_GAP, deadline - time.monotonic())))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                block.append(item)
                size += item.table.num_rows
            self._taken(size)
            with self._committing:
                self._commit([(pending, list(range(pending.table.num_rows))) for pending in block])

    def _run_logged(self, ack_log: WriteAheadLog) -> None:
        while (segment := ack_log.take(self.max_rows, max(self.max_delay, LOGGED_MIN_DELAY))) is not None:
            settle, wait = False, 0.1
            while True:
                try:
                    self._store_logged(segment, settle)
                    break
                except Exception as e:
                    if self._stopping:
                        log.error("%d acknowledged events stay in the ack log, inserted at the next start: %s",
                                  segment.rows, without_rows(e))
                        return
                    log.error("inserting %d acknowledged events failed, retrying in %.1f s: %s",
                              segment.rows, wait, without_rows(e))
                    time.sleep(wait)
                    settle, wait = True, min(wait * 2, RETRY_MAX_WAIT)  # some may be stored now
            ack_log.remove(segment)
            self._taken(segment.rows)

    def _store_logged(self, segment: Segment, settle: bool) -> None:
        """Insert a segment of the log as one block; with `settle`, only the events ClickHouse does not hold
        (nor refused before). Raises when some are not stored."""
        refused = segment.refused
        keys = [list(zip(record.table.column("project_id").to_pylist(), record.table.column("message_id").to_pylist()))
                if settle or refused else [] for record in segment.records]
        skip = refused | (stored_in_clickhouse(self.clickhouse, [k for ks in keys for k in ks]) if settle else set())
        block: _Slice = [(_Pending(record.table, record.links, record.link_rows, Future()),
                          [row for row, k in enumerate(record_keys) if k not in skip] if skip
                          else list(range(record.table.num_rows)))
                         for record, record_keys in zip(segment.records, keys)]
        with self._committing:
            self._commit(block)
        projects = {p for record in segment.records for p in record.table.column("project_id").unique().to_pylist()}
        try:  # answered requests marked their projects changed before their events were queryable: again now
            changes.mark_changed(self.identity.redis, projects)
        except Exception:  # Redis unreachable: cached answers may stay stale until the next write
            log.exception("marking the inserted projects changed failed")
        failure = None
        for pending, _ in block:
            try:
                outcome: Outcome = pending.future.result()
            except StorageUnavailable as e:
                failure = e
                continue
            if outcome.refused:
                self._keep_refused(pending, outcome.refused, refused)
            failure = failure or outcome.error
        if failure is not None:
            raise failure

    def _keep_refused(self, pending: _Pending, refusals: list[Refusal], refused: set[tuple[int, str]]) -> None:
        """Acknowledged events ClickHouse refused: to the rejected file, the log and the metrics."""
        assert self.ack_log is not None
        at = datetime.now(UTC)
        lines = []
        for r in refusals:
            event = pending.table.slice(r.row, 1).to_pylist()[0] if r.row >= 0 else None
            if event is not None:
                refused.add((event["project_id"], event["message_id"]))
            lines.append(msgspec.json.encode({"refused_at": at, "field": r.field, "reason": r.reason, "event": event,
                                              "links": pending.links if r.row < 0 else []}) + b"\n")
        with open(self.ack_log.directory / "rejected.ndjson", "ab") as file:
            file.writelines(lines)
        log.error("ClickHouse refused %d acknowledged events for their content; they are in %s",
                  len(refusals), self.ack_log.directory / "rejected.ndjson")
        metrics().events.labels("refused_after_ack").inc(len(refusals))

    def _commit(self, whole: _Slice) -> None:
        try:
            self._store(whole)
        except Exception as e:
            if not is_content_error(e):  # every request in the block learns it; SDKs retry on 503
                self._fail(whole, e)
            else:
                log.warning("ClickHouse refused a block of %d requests for its content; storing them apart: %s",
                            len(whole), without_rows(e))
                self._isolate(whole, e)
            return
        for pending, _ in whole:
            pending.future.set_result(Outcome())

    def _store(self, part: _Slice) -> None:
        """Links, then events, of these rows."""
        links, tables = [], []
        for pending, rows in part:
            whole = len(rows) == pending.table.num_rows
            wanted = set(rows)
            links += [link for link, row in zip(pending.links, pending.link_rows) if row < 0 or whole or row in wanted]
            tables.append(pending.table if whole else pending.table.take(pa.array(rows, pa.int64())))
        # Links first: applying one twice changes nothing, so a crash before the insert loses none.
        try:
            self.identity.apply(self.clickhouse, links)
        except Exception as e:
            if is_content_error(e):
                raise _TraitsRefused(e) from e
            raise
        # Each project's properties are parsed apart, with no type inference that rewrites a value.
        events = pa.concat_tables(tables)
        started = time.perf_counter()
        json_insert.insert(self.clickhouse, "events", events)
        metrics().insert_seconds.observe(time.perf_counter() - started)
        metrics().insert_rows.observe(events.num_rows)

    def _isolate(self, block: _Slice, error: Exception) -> None:
        """Store a refused block but its refused rows; answer each request for its own rows."""
        refused: dict[int, list[Refusal]] = {id(pending): [] for pending, _ in block}
        done: dict[int, set[int]] = {id(pending): set() for pending, _ in block}
        try:
            self._split(block, error, refused, done)
        except Exception as e:  # the store failed midway: what is not done yet is unstored
            log.error("isolating a refused block failed: %s", without_rows(e))
            failure = unavailable(e)
            for pending, rows in block:
                left = [r for r in rows if r not in done[id(pending)]]
                if len(left) == len(rows):
                    pending.future.set_exception(failure)
                else:
                    pending.future.set_result(Outcome(refused[id(pending)], left, failure) if left
                                              else Outcome(refused[id(pending)]))
            return
        for pending, _ in block:
            pending.future.set_result(Outcome(refused[id(pending)]))

    def _split(self, part: _Slice, error: Exception, refused: dict[int, list[Refusal]],
               done: dict[int, set[int]]) -> None:
        """`part` failed for its content: store each half of it (by request, then by row), splitting a
        failing half again, until a refused row is alone. A non-content error is raised."""
        if len(part) == 1 and len(part[0][1]) <= 1:
            pending, rows = part[0]
            row = rows[0] if rows else -1  # -1: a request of links only
            refused[id(pending)].append(refusal(row, error))
            done[id(pending)].update(rows)
            return
        if len(part) > 1:
            halves = [part[: len(part) // 2], part[len(part) // 2:]]
        else:
            pending, rows = part[0]
            halves = [[(pending, rows[: len(rows) // 2])], [(pending, rows[len(rows) // 2:])]]
        for half in halves:
            try:
                self._store(half)
            except Exception as e:
                if not is_content_error(e):
                    raise
                self._split(half, e, refused, done)
            else:
                for pending, rows in half:
                    done[id(pending)].update(rows)

    def _fail(self, block: _Slice, error: Exception) -> None:
        log.error("writing %d events failed: %s", sum(len(rows) for _, rows in block), without_rows(error))
        failure = unavailable(error)
        for pending, _ in block:
            pending.future.set_exception(failure)


def is_content_error(error: BaseException) -> bool:
    """ClickHouse refused the data itself: the same rows would fail again, whenever they are sent."""
    return getattr(error, "code", None) in CONTENT_ERRORS


def unavailable(error: BaseException) -> StorageUnavailable:
    """The error a request sees when its events could not be stored now (and should be sent again)."""
    code = getattr(error, "code", None)
    if code is None:  # the driver, the OS or Redis: about the store, never about the rows
        return StorageUnavailable(f"events were not stored: {describe_error(error)}")
    # ClickHouse's own text may quote any row of the block, of any request: only its code goes out.
    name = getattr(error, "name", None) or "error"
    full = " (the disk is full)" if "No space left on device" in str(error) or name == "NOT_ENOUGH_SPACE" else ""
    return StorageUnavailable(f"events were not stored: ClickHouse error {code} {name}{full}; retry shortly")


def without_rows(error: BaseException) -> str:
    """An insert's error for the log: ClickHouse's code and name only, since its text may quote events."""
    code = getattr(error, "code", None)
    if code is None:
        return describe_error(error)
    return f"ClickHouse error {code} {getattr(error, 'name', None) or CONTENT_ERRORS.get(code, 'error')}"


def refusal(row: int, error: BaseException) -> Refusal:
    """Why one row, inserted alone, was refused: the event's own data, so ClickHouse's text may be quoted."""
    code = getattr(error, "code", None)
    name = CONTENT_ERRORS.get(code or 0, "error")
    if isinstance(error, _TraitsRefused):
        return Refusal(row, "traits", f"ClickHouse refused the person's traits ({name} {code})")
    text = describe_error(error)
    # The column is named as such, or (JSON text cast by nexus.store.json_insert) in its CAST.
    column = re.search(r"column `(\w+)`|CAST\((?:\w+\.)?(\w+)\b[^,]*, 'JSON'", text)
    # The engine's message, without its code, file names and pipeline trail.
    message = re.sub(r"^(Code: \d+\. DB::Exception: )+", "", text)
    message = re.split(r": while |\. You can |:? \(in file|: While |\. \(", message)[0][:300]
    field = (column[1] or column[2]) if column else ""
    return Refusal(row, field, f"ClickHouse refused the event ({name} {code}): {message}")
