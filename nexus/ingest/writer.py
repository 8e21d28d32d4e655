"""The group-commit writer: merges concurrent requests' events into large ClickHouse inserts.

ClickHouse wants few, large inserts (thousands of rows, about one a second per table), while SDKs send
many small batches. Requests hand their rows to one writer thread and wait; the writer takes everything
queued, and keeps taking while more arrives: it stops at NEXUS_WRITER_MAX_ROWS rows, after
NEXUS_WRITER_MAX_DELAY_MS, or once nothing new came for IDLE_GAP (every sender is waiting on this block,
so waiting longer only adds latency). While a block is being inserted the next one fills up, so under
load blocks grow by themselves. For the
whole block: drops messageIds already stored (dedup), applies identify/alias links, inserts the events,
marks them stored, and only then answers every request in the block. An answered request's events are in
ClickHouse; an unanswered one can be resent and is stored exactly once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import StorageUnavailable
from nexus.ingest.columns import concat, events_table, select
from nexus.ingest.dedup import Dedup
from nexus.ingest.identity import IdentityResolver, Link
from nexus.store.client import describe_error

log = logging.getLogger("nexus.ingest.writer")

IDLE_GAP = 0.005  # seconds without a new request after which the block is complete


class WriteResult(msgspec.Struct, frozen=True):
    stored: int
    duplicates: int


class _Pending(msgspec.Struct):
    columns: dict[str, list[Any]]
    size: int
    links: list[tuple[int, Link]]  # (position, link): applied only if that event is new
    future: Future


_STOP = object()


class GroupCommitWriter:
    def __init__(self, clickhouse: Client, dedup: Dedup, *, max_rows: int, max_delay_ms: int):
        self.clickhouse = clickhouse
        self.dedup = dedup
        self.identity = IdentityResolver()
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

    def submit(self, columns: dict[str, list[Any]], links: list[tuple[int, Link]] | None = None) -> Future:
        """Queue events for the next block; the future resolves to a WriteResult once they are stored."""
        future: Future = Future()
        size = len(columns.get("message_id", ()))
        if not size:
            future.set_result(WriteResult(0, 0))
            return future
        with self._room:
            if not self._room.wait_for(lambda: self._queued_rows < 2 * self.max_rows, timeout=30):
                raise StorageUnavailable("the event writer is saturated; retry shortly")
            self._queued_rows += size
        self._queue.put(_Pending(columns, size, links or [], future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            block, size = [first], first.size
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
                size += item.size
            with self._room:
                self._queued_rows -= size
                self._room.notify_all()
            self._commit(block)

    def _commit(self, block: list[_Pending]) -> None:
        columns = concat([p.columns for p in block])
        keys = list(zip(columns["project_id"], columns["message_id"]))
        first_seen: dict[tuple[int, str], int] = {}
        for position, k in enumerate(keys):
            first_seen.setdefault(k, position)  # a repeat inside the block is a duplicate
        unique = list(first_seen)
        claimed: list[tuple[int, str]] = []
        try:
            new = {k for k, fresh in zip(unique, self.dedup.claim(self.clickhouse, unique)) if fresh}
            claimed = list(new)
            keep = [p for k, p in first_seen.items() if k in new]
            keep.sort()
            kept = set(keep)
            counts, links, offset = [], [], 0
            for pending in block:
                stored = sum(1 for p in range(offset, offset + pending.size) if p in kept)
                counts.append(WriteResult(stored, pending.size - stored))
                links.extend(link for p, link in pending.links if offset + p in kept)
                offset += pending.size
            self.identity.apply(self.clickhouse, links)
            if keep:
                self.clickhouse.insert_arrow("events", events_table(columns if len(keep) == len(keys) else select(columns, keep)))
            self.dedup.commit(claimed)
        except Exception as e:  # every request in the block learns the reason; SDKs retry on 503
            log.error("writing %d events failed: %s", len(keys), e)
            try:
                self.dedup.release(claimed)
            except Exception:  # Redis down too: the keys stay pending and are checked on retry
                log.exception("releasing dedup claims failed")
            error = StorageUnavailable(f"events were not stored: {describe_error(e)}")
            for pending in block:
                pending.future.set_exception(error)
            return
        for pending, result in zip(block, counts):
            pending.future.set_result(result)
