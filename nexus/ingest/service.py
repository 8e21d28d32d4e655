"""The write path's entry point for the API and the CLI: process a batch, hand it to the writer, wait."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import redis

from nexus.ingest import metrics, pipeline
from nexus.ingest.identity import Link
from nexus.ingest.wire import Message, Rejection, as_text
from nexus.ingest.writer import GroupCommitWriter
from nexus.settings import Settings


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
            skew_flag=timedelta(seconds=settings.skew_flag_seconds),
            ip_mode=settings.ip_mode, ip_salt=ip_salt, max_event_bytes=settings.max_event_bytes,
        )
        # Back-fills may be of any age (from 2000 on); everything else is checked as for live events.
        self.import_rules = msgspec.structs.replace(self.live_rules, max_past=None)

    def ingest(self, messages: list[Message | Rejection], source: pipeline.Source, *, backfill: bool = False) -> IngestResult:
        """Store what is valid in `messages`; returns counts and the reason for each message not stored."""
        processed = pipeline.process(messages, source, self.import_rules if backfill else self.live_rules)
        links = [(i, link) for i, event in enumerate(processed.accepted) if (link := _link(event, source)) is not None]
        result = self.writer.submit(processed.rows, links).result()
        metrics.record(self.redis, source.project_id, len(messages), processed, result.stored, result.duplicates,
                       self.skew_flag_ms)
        return IngestResult(result.stored, result.duplicates, processed.rejections)


def _link(event: pipeline.Event, source: pipeline.Source) -> Link | None:
    m = event.message
    if m.type == "identify":
        user_id, other = as_text(m.user_id), as_text(m.anonymous_id)
        return Link(source.project_id, user_id or other, other if user_id else "", m.traits, event.row["ts"])
    if m.type == "alias":
        return Link(source.project_id, as_text(m.user_id), as_text(m.previous_id), None, event.row["ts"])
    return None
