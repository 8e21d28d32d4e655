"""Bulk back-fill: a file of events (NDJSON, Arrow, Parquet) through the same pipeline and writer as
live events, chunk by chunk, so memory stays bounded whatever the file's size. Back-filled events may
be of any age from 2000 on; their IP comes only from the events (never from whoever uploads the file)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from nexus.ingest.importer import read_messages
from nexus.ingest.pipeline import Source
from nexus.ingest.service import Ingestor
from nexus.ingest.wire import Rejection

MAX_REPORTED = 1000  # rejections listed in a summary; all are counted


class ImportSummary(msgspec.Struct):
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[Rejection] = []  # the first MAX_REPORTED, index = 0-based line or row of the file


def import_file(ingestor: Ingestor, path: Path, project_id: int, fmt: str | None = None, *,
                max_event_bytes: int = 32_768, progress: Callable[[int], None] = lambda n: None) -> ImportSummary:
    summary = ImportSummary(errors=[])
    for chunk in (c.items for c in read_messages(path, fmt, max_event_bytes=max_event_bytes)):
        offset = summary.events
        # The pipeline numbers rejections by position in what it is given: make the chunk's own zero-based.
        local = [Rejection(m.index - offset, m.field, m.reason) if isinstance(m, Rejection) else m for m in chunk]
        result = ingestor.ingest(local, Source(project_id, datetime.now(timezone.utc)), backfill=True)
        summary.events += len(chunk)
        summary.stored += result.stored
        summary.duplicates += result.duplicates
        summary.rejected += len(result.rejections)
        room = MAX_REPORTED - len(summary.errors)
        summary.errors.extend(Rejection(r.index + offset, r.field, r.reason) for r in result.rejections[:room])
        progress(len(chunk))
    return summary
