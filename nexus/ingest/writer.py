"""The group-commit writer: merges concurrent requests' events into large ClickHouse inserts.

ClickHouse wants few, large inserts (thousands of rows, about one a second per table), while SDKs send
many small batches. Requests hand their (already deduplicated) Arrow tables to one writer thread and
wait; the writer takes everything queued, and keeps taking while more arrives: it stops at
NEXUS_WRITER_MAX_ROWS rows, after NEXUS_WRITER_MAX_DELAY_MS, or once nothing new came for IDLE_GAP
(every sender is waiting on this block, so waiting longer only adds latency). While a block is being
inserted the next one fills up, so under load blocks grow by themselves. For each block it applies the
identify/alias links, inserts the events, and only then answers every request in it: an answered
request's events are in ClickHouse.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import msgspec
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus.errors import StorageUnavailable
from nexus.ingest.identity import IdentityResolver, Link
from nexus.store.client import describe_error

log = logging.getLogger("nexus.ingest.writer")

IDLE_GAP = 0.005  # seconds without a new request after which the block is complete


class _Pending(msgspec.Struct):
    table: pa.Table
    links: list[Link]
    future: Future


_STOP = object()


class GroupCommitWriter:
    def __init__(self, clickhouse: Client, identity: IdentityResolver, *, max_rows: int, max_delay_ms: int):
        self.clickhouse = clickhouse
        self.identity = identity
        self.max_rows = max_rows
        self.max_delay = max_delay_ms / 1000
        # What waits in memory is bounded in rows, not requests: submit blocks while two blocks wait.
        self._queued_rows = 0
        self._room = threading.Condition()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nexus-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join()

    def submit(self, table: pa.Table, links: list[Link]) -> Future:
        """Queue events for the next block; the future resolves (to None) once they are stored."""
        future: Future = Future()
        if not table.num_rows and not links:
            future.set_result(None)
            return future
        with self._room:
            if not self._room.wait_for(lambda: self._queued_rows < 2 * self.max_rows, timeout=30):
                raise StorageUnavailable("the event writer is saturated; retry shortly")
            self._queued_rows += table.num_rows
        self._queue.put(_Pending(table, links, future))
        return future

    def _run(self) -> None:
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
            with self._room:
                self._queued_rows -= size
                self._room.notify_all()
            self._commit(block)

    def _commit(self, block: list[_Pending]) -> None:
        try:
            # Links first: applying one twice changes nothing, so a crash before the insert loses none.
            self.identity.apply(self.clickhouse, [link for pending in block for link in pending.links])
            table = pa.concat_tables([pending.table for pending in block])
            if table.num_rows:
                self.clickhouse.insert_arrow("events", table)
        except Exception as e:  # every request in the block learns the reason; SDKs retry on 503
            log.error("writing %d events failed: %s", sum(p.table.num_rows for p in block), e)
            error = StorageUnavailable(f"events were not stored: {describe_error(e)}")
            for pending in block:
                pending.future.set_exception(error)
            return
        for pending in block:
            pending.future.set_result(None)
