"""Bulk back-fill: a file of events (NDJSON, Arrow, Parquet) stored in large blocks straight from the file,
through the bulk pipeline (`bulk`: the live pipeline's steps, column by column) and the same dedup and
writer as live events, so memory stays bounded whatever the file's size. Back-filled events may be of any
age from 2000 on; their IP comes only from the events (never from whoever uploads the file).

Blocks are as large as the writer's (NEXUS_WRITER_MAX_ROWS), the size ClickHouse inserts best: at 10,000
rows the engine spends twice the CPU per event (its parts and their merges). While the writer stores one
block, the next is read, enriched and looked up: the engine's threads and Python's work at once.

An import stores every valid row of its file, or stops and says exactly how far it got. Blocks are stored
one after the other, each written before the next is handed to the writer, so when the file turns out
corrupt or cut short, or the store fails, every line (or row) before `resume_from` is settled — stored, a
duplicate, or rejected with its reason — and the block that failed is counted only for what it stored
even so (an insert spread over several partitions can land in part). Rows get deterministic ids
(`import_ids`), so importing the file again, from `resume_from` or whole, stores each row once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nexus.errors import InvalidRequest, StorageUnavailable
from nexus.ingest import bulk, import_ids
from nexus.ingest.bulk import Block
from nexus.ingest.bulk_rows import Rows
from nexus.ingest.importer import read_rows
from nexus.ingest.pipeline import Processed
from nexus.ingest.service import Claimed, Ingestor, Queued
from nexus.ingest.wire import Rejection
from nexus.ingest.writer import Outcome

log = logging.getLogger("nexus.ingest.backfill")

MAX_REPORTED = 1000  # rejections listed in a summary; all are counted

Stop = Literal["file", "store", "internal"]


class ImportSummary(msgspec.Struct):
    events: int = 0  # lines or rows settled (blank lines aside): stored, duplicates and rejected
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[Rejection] = []  # the first MAX_REPORTED, index = 0-based line or row of the file
    resume_from: int = 0  # 0-based line or row: every one before it is settled
    error: str | None = None  # why the import stopped before the end of the file
    stopped_by: Stop | None = None  # the file (corrupt, cut short), the store, or a fault of Nexus

    def stop(self, by: Stop, error: str) -> None:
        self.stopped_by, self.error = by, error


def import_file(ingestor: Ingestor, path: Path, project_id: int, fmt: str | None = None, *, resume_from: int = 0,
                max_event_bytes: int = 32_768, progress: Callable[[int], None] = lambda n: None,
                block_rows: int | None = None) -> ImportSummary:
    """Store the file's events from line or row `resume_from` on, in blocks of `block_rows` (the writer's
    block size unless given). What goes wrong once the import has begun is not raised but reported: the
    summary says how far the import got and why it stopped."""
    summary = ImportSummary(errors=[], resume_from=resume_from)
    size = block_rows or ingestor.writer.max_rows
    # A block's ids are claimed (in Redis) in a thread of their own while the block before is written (by
    # the engine's threads) and the next one read and processed (here): three processes' or threads' work
    # at once. A block is handed to the writer only once the one before is stored.
    with ThreadPoolExecutor(1, thread_name_prefix="nexus-import-claims") as claims:
        writing: _Writing | None = None
        try:
            for rows in read_rows(path, project_id, fmt, size, max_event_bytes, start=resume_from):
                try:
                    prepared = _prepare(ingestor, project_id, rows)
                    del rows  # its objects are garbage once the events table is built
                except Exception as e:  # the store, or a fault of Nexus: the block before still counts
                    if writing is None or _finish(ingestor, writing, summary, progress):
                        summary.stop(*_reason(e))
                    return summary
                claiming = claims.submit(ingestor.claim_block, prepared.block.table, project_id)
                if writing is not None and not _finish(ingestor, writing, summary, progress):
                    _release(ingestor, claiming)
                    return summary
                # Ids the block before had refused are free again, and may be this block's too.
                refused = writing is not None and bool(writing.queued.stored.result().refused)
                writing = _write(ingestor, prepared, claiming, summary, reclaim=refused)
                if writing is None:
                    return summary
        except InvalidRequest as e:  # the file: unreadable from here on (what was read before is stored)
            if writing is None or _finish(ingestor, writing, summary, progress):
                summary.stop("file", str(e))
            return summary
        if writing is not None:
            _finish(ingestor, writing, summary, progress)
    return summary


class _Prepared(msgspec.Struct):
    """A block processed: what the project holds already is left out as duplicates. The rows themselves
    are not kept: their objects (properties, traits) are garbage once the events table is built."""

    project_id: int
    count: int  # lines (blank ones aside) or rows
    end: int  # the line or row after the block's last
    block: Block
    known: int  # rows whose messageId the project's events hold already
    received_at: datetime


def _prepare(ingestor: Ingestor, project_id: int, rows: Rows) -> _Prepared:
    received_at = datetime.now(timezone.utc)
    readable = np.ones(len(rows), dtype=bool)
    readable[list(rows.unreadable)] = False
    ids = rows.message_id.filter(readable).to_pylist()
    times = rows.happened_ms.filter(readable).to_pylist()
    # What the project holds is a duplicate, even once Redis has forgotten its id.
    known = import_ids.stored(ingestor.clickhouse, project_id, ids, times, received_at)
    duplicate = readable & pc.is_in(rows.message_id, pa.array(list(known), pa.string())).to_numpy(zero_copy_only=False)
    block = bulk.process(rows, project_id, received_at, ingestor.import_rules, leave_out=duplicate)
    return _Prepared(project_id, len(rows), rows.positions[-1] + 1, block, int(duplicate.sum()), received_at)


class _Writing(msgspec.Struct):
    prepared: _Prepared
    queued: Queued


def _write(ingestor: Ingestor, prepared: _Prepared, claiming: Future, summary: ImportSummary, *,
           reclaim: bool) -> _Writing | None:
    """Hand the writer the block's claimed rows; None when that failed (the summary then says why)."""
    block = prepared.block
    try:
        claimed: Claimed = claiming.result()
        if reclaim:
            ingestor.dedup.release(claimed.claim)
            claimed = ingestor.claim_block(block.table, prepared.project_id)
        queued = ingestor.write_block(claimed, block.table, block.links, block.link_rows, prepared.project_id)
    except Exception as e:  # nothing of this block reached the writer (write_block frees its claim)
        summary.stop(*_reason(e))
        return None
    return _Writing(prepared, queued)


def _release(ingestor: Ingestor, claiming: Future) -> None:
    """Give up the claim of a block that will not be written, so that its ids stay free."""
    try:
        ingestor.dedup.release(claiming.result().claim)
    except Exception:  # Redis unreachable: the keys stay pending and are settled against ClickHouse
        log.exception("releasing an import's claim failed")


def _finish(ingestor: Ingestor, writing: _Writing, summary: ImportSummary, progress: Callable[[int], None]) -> bool:
    """Wait for the block to be stored and count it in; False when it failed (the summary then says why)."""
    prepared, queued = writing.prepared, writing.queued
    block = prepared.block
    try:
        outcome: Outcome = queued.stored.result()
    except Exception as e:
        by, error = _reason(e)
        summary.stop(by, error + _landed(ingestor, prepared, queued, summary))
        return False
    refused = [Rejection(block.positions[queued.rows[r.row]], r.field, r.reason) for r in outcome.refused]
    rejections = sorted(block.rejections + refused, key=lambda r: r.index) if refused else block.rejections
    stored = len(queued.claim.keys) - len(outcome.refused) - len(outcome.unstored)
    duplicates = block.table.num_rows - len(queued.claim.keys)
    ingestor.metrics.add(prepared.project_id, prepared.count - prepared.known, Processed(
        {"library": block.table.column("library").to_pylist(), "skew_ms": block.table.column("skew_ms").to_pylist()},
        [], [], rejections, block.step_seconds), stored, duplicates)
    if outcome.unstored:
        summary.stop("store", str(outcome.error) + _landed(ingestor, prepared, queued, summary))
        return False
    summary.events += prepared.count
    summary.stored += stored
    summary.duplicates += prepared.known + duplicates
    summary.rejected += len(rejections)
    summary.errors.extend(rejections[:MAX_REPORTED - len(summary.errors)])
    summary.resume_from = prepared.end
    progress(prepared.count)
    return True


def _landed(ingestor: Ingestor, prepared: _Prepared, queued: Queued, summary: ImportSummary) -> str:
    """Count what a failed block stored even so; '' or why that could not be checked."""
    table = prepared.block.table
    rows = queued.rows
    ids = table.column("message_id").take(pa.array(rows, pa.int64())).to_pylist()
    times = table.column("ts").cast(pa.int64()).take(pa.array(rows, pa.int64())).to_pylist()
    try:
        landed = import_ids.stored(ingestor.clickhouse, prepared.project_id, ids, times, prepared.received_at)
    except StorageUnavailable as e:
        return f"; whether some of its events were stored even so could not be checked ({e})"
    summary.stored += len(landed)
    return ""

def _reason(error: Exception) -> tuple[Stop, str]:
    if isinstance(error, StorageUnavailable):
        return "store", str(error)
    log.error("an import stopped on an unexpected error", exc_info=error)
    return "internal", f"an unexpected {type(error).__name__} stopped the import (the log has the details)"
