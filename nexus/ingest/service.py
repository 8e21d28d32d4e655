"""The write path's entry point for the API and the CLI: process a batch, hand it to the writer, wait."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import datetime, timedelta, timezone

import msgspec
import redis

from nexus.ingest import metrics, pipeline
from nexus.ingest.identity import Link
from nexus.ingest.wire import Message, Rejection, as_text
from nexus.ingest.writer import GroupCommitWriter, WriteResult
from nexus.settings import Settings


class Submitted(msgspec.Struct):
    """A batch handed to the writer: wait on `stored`, then `Ingestor.finish` it."""

    source: pipeline.Source
    sent: int
    processed: pipeline.Processed
    stored: Future


class IngestResult(msgspec.Struct):
    stored: int
    duplicates: int
    rejections: list[Rejection]

    @property
    def accepted(self) -> int:
        return self.stored + self.duplicates


class Ingestor:
    def __init__(self, writer: GroupCommitWriter, redis_client: redis.Redis, settings: Settings, ip_salt: bytes):
        self.writer = writer
        self.redis = redis_client
        self.skew_flag_ms = settings.skew_flag_seconds * 1000
        self.live_rules = pipeline.Rules(
            max_future=timedelta(seconds=settings.max_future_seconds),
            max_past=timedelta(days=settings.max_past_days),
            ip_mode=settings.ip_mode, ip_salt=ip_salt, max_event_bytes=settings.max_event_bytes,
        )
        # Back-fills may be of any age (from 2000 on); everything else is checked as for live events.
        self.import_rules = msgspec.structs.replace(self.live_rules, max_past=None)

    def submit(self, messages: list[Message | Rejection], source: pipeline.Source, *, backfill: bool = False) -> Submitted:
        """Process `messages` and queue the valid ones for the writer, without waiting for it."""
        processed = pipeline.process(messages, source, self.import_rules if backfill else self.live_rules)
        links = [(i, link) for i, (m, ts) in enumerate(zip(processed.messages, processed.columns.get("ts", ())))
                 if (link := _link(m, ts, source.project_id)) is not None]
        return Submitted(source, len(messages), processed, self.writer.submit(processed.columns, links))

    def finish(self, submitted: Submitted) -> IngestResult:
        """Once `submitted.stored` is done: count it in the metrics and say what happened to each message."""
        result: WriteResult = submitted.stored.result()
        metrics.record(self.redis, submitted.source.project_id, submitted.sent, submitted.processed, result.stored,
                       result.duplicates, self.skew_flag_ms)
        return IngestResult(result.stored, result.duplicates, submitted.processed.rejections)

    def ingest(self, messages: list[Message | Rejection], source: pipeline.Source, *, backfill: bool = False) -> IngestResult:
        """Store what is valid in `messages`, waiting for the writer; counts and a reason per message not stored."""
        return self.finish(self.submit(messages, source, backfill=backfill))


def _link(m: Message, ts_ms: int, project_id: int) -> Link | None:
    if m.type not in ("identify", "alias"):
        return None
    ts = datetime.fromtimestamp(ts_ms / 1000, timezone.utc)
    if m.type == "identify":
        user_id, other = as_text(m.user_id), as_text(m.anonymous_id)
        return Link(project_id, user_id or other, other if user_id else "", m.traits, ts)
    return Link(project_id, as_text(m.user_id), as_text(m.previous_id), None, ts)
