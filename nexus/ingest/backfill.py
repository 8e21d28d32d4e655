"""Bulk back-fill: a file of events (NDJSON, Arrow, Parquet) through the same pipeline and writer as
live events, chunk by chunk, so memory stays bounded whatever the file's size. Back-filled events may
be of any age from 2000 on; their IP comes only from the events (never from whoever uploads the file).

An import stores every valid row of its file, or stops and says exactly how far it got. Chunks are stored
one after the other, each written before the next is read, so when the file turns out corrupt or cut
short, or the store fails, every line (or row) before `resume_from` is settled — stored, a duplicate, or
rejected with its reason — and the chunk that failed is counted only for what it stored even so (an
insert spread over several partitions can land in part). Rows get deterministic ids (`import_ids`), so
importing the file again, from `resume_from` or whole, stores each row once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import msgspec

from nexus.errors import InvalidRequest, StorageUnavailable
from nexus.ingest import import_ids
from nexus.ingest.importer import Chunk, read_messages
from nexus.ingest.pipeline import Source
from nexus.ingest.service import Ingestor, Submitted
from nexus.ingest.wire import Message, Rejection, as_text

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
                max_event_bytes: int = 32_768, progress: Callable[[int], None] = lambda n: None) -> ImportSummary:
    """Store the file's events from line or row `resume_from` on. What goes wrong once the import has begun
    is not raised but reported: the summary says how far the import got and why it stopped."""
    summary = ImportSummary(errors=[], resume_from=resume_from)
    try:
        for chunk in read_messages(path, fmt, max_event_bytes=max_event_bytes, start=resume_from):
            if not _store(ingestor, project_id, chunk, summary):
                break
            progress(len(chunk.items))
    except InvalidRequest as e:  # the file: unreadable from here on (_store reports its own errors)
        summary.stop("file", str(e))
    return summary


def _store(ingestor: Ingestor, project_id: int, chunk: Chunk, summary: ImportSummary) -> bool:
    """Store one chunk and count it in; False when it failed (the summary then says why)."""
    source = Source(project_id, datetime.now(timezone.utc))
    items = import_ids.with_ids(project_id, chunk.items, chunk.positions)
    try:
        # What the project holds is a duplicate, even once Redis has forgotten its id.
        known = import_ids.stored(ingestor.clickhouse, project_id,
                                  [m for m in items if isinstance(m, Message)], source.received_at)
        todo = [i for i, m in enumerate(items) if isinstance(m, Rejection) or as_text(m.message_id) not in known]
        # The pipeline numbers what it rejects by position in what it is given.
        given = [Rejection(n, m.field, m.reason) if isinstance(m, Rejection) else m
                 for n, m in enumerate(items[i] for i in todo)]
        submitted = ingestor.submit(given, source, backfill=True)
    except Exception as e:  # nothing of this chunk reached the writer
        summary.stop(*_reason(e))
        return False
    try:
        result = ingestor.finish(submitted)
    except Exception as e:
        by, error = _reason(e)
        summary.stop(by, error + _landed(ingestor, project_id, submitted, summary))
        return False
    summary.events += len(items)
    summary.stored += result.stored
    summary.duplicates += len(items) - len(todo) + result.duplicates
    summary.rejected += len(result.rejections)
    room = MAX_REPORTED - len(summary.errors)
    summary.errors.extend(Rejection(chunk.positions[todo[r.index]], r.field, r.reason)
                          for r in result.rejections[:room])
    summary.resume_from = chunk.positions[-1] + 1
    return True


def _landed(ingestor: Ingestor, project_id: int, submitted: Submitted, summary: ImportSummary) -> str:
    """Count what a failed chunk stored even so; '' or why that could not be checked."""
    claimed = {message_id for _, message_id in submitted.claim.keys}
    messages = [m for m in submitted.processed.messages if as_text(m.message_id) in claimed]
    try:
        landed = import_ids.stored(ingestor.clickhouse, project_id, messages, submitted.source.received_at)
    except StorageUnavailable as e:
        return f"; whether some of its events were stored even so could not be checked ({e})"
    summary.stored += len(landed)
    return ""


def _reason(error: Exception) -> tuple[Stop, str]:
    if isinstance(error, StorageUnavailable):
        return "store", str(error)
    log.exception("an import stopped on an unexpected error")
    return "internal", f"an unexpected {type(error).__name__} stopped the import (the log has the details)"
