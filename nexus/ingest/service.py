"""The write path's entry point for the API and the CLI: process a batch, hand it to the writer, wait."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone

import msgspec
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus import changes
from nexus.ingest import metrics, pipeline
from nexus.ingest.columns import events_table, select
from nexus.ingest.dedup import Claim, Dedup
from nexus.ingest.enrich import geo
from nexus.ingest.identity import Link
from nexus.ingest.wire import Message, Rejection, as_text
from nexus.ingest.writer import GroupCommitWriter, Outcome
from nexus.settings import Settings

log = logging.getLogger("nexus.ingest")


class Submitted(msgspec.Struct):
    """A batch handed to the writer: wait on `stored`, then `Ingestor.finish` it."""

    source: pipeline.Source
    sent: int
    processed: pipeline.Processed
    claim: Claim  # the events this request is storing
    rows: list[int]  # the position in `processed` of each row handed to the writer
    stored: Future  # resolves to the writer's Outcome


class Claimed(msgspec.Struct):
    """Keys claimed for one request or block: `rows` are their positions in what was claimed."""

    claim: Claim
    rows: list[int]
    keys: list[tuple[int, str]]  # the key of each of `rows`


class Queued(msgspec.Struct):
    """Rows handed to the writer: `rows` are their positions in what was queued; `stored` resolves to the
    writer's Outcome for them."""

    claim: Claim
    rows: list[int]
    stored: Future


class IngestResult(msgspec.Struct):
    stored: int
    duplicates: int
    rejections: list[Rejection]


class Ingestor:
    """Process → deduplicate → hand to the writer → mark stored. Dedup and Arrow conversion happen in
    the request's own thread, so the one writer thread only inserts."""

    def __init__(self, writer: GroupCommitWriter, dedup: Dedup, clickhouse: Client,
                 recorder: metrics.MetricsRecorder, settings: Settings, ip_salt: bytes):
        self.writer = writer
        self.dedup = dedup
        self.clickhouse = clickhouse
        self.metrics = recorder
        self.live_rules = pipeline.Rules(
            max_future=timedelta(seconds=settings.max_future_seconds),
            max_past=timedelta(days=settings.max_past_days),
            ip_mode=settings.ip_mode, ip_salt=ip_salt, max_event_bytes=settings.max_event_bytes,
            locate=geo.database_lookup(settings.geoip_database) if settings.geoip_database else geo.lookup,
        )
        # Back-fills may be of any age (from 2000 on) and keep their timestamps as sent.
        self.import_rules = msgspec.structs.replace(self.live_rules, max_past=None, correct_skew=False)

    def submit(self, messages: list[Message | Rejection], source: pipeline.Source, *, backfill: bool = False) -> Submitted:
        """Process `messages` and queue the new ones for the writer, without waiting for it."""
        processed = pipeline.process(messages, source, self.import_rules if backfill else self.live_rules)
        columns = processed.columns

        def rows_of(keep: list[int]) -> tuple[pa.Table, list[Link], list[int]]:
            links, link_rows = [], []
            for row, p in enumerate(keep):
                if link := _link(processed.messages[p], columns["ts"][p], source.project_id):
                    links.append(link)
                    link_rows.append(row)
            return events_table(columns if len(keep) == processed.count else select(columns, keep)), links, link_rows

        queued = self.queue(list(zip(columns.get("project_id", ()), columns.get("message_id", ()))),
                            source.project_id, rows_of)
        return Submitted(source, len(messages), processed, queued.claim, queued.rows, queued.stored)

    def claim_block(self, table: pa.Table, project_id: int) -> Claimed:
        """Claim the new rows of an events table the bulk pipeline built (`bulk`); hand them to the writer
        with `write_block`, or give them up with `dedup.release(claimed.claim)`."""
        return self.claim([(project_id, message_id) for message_id in table.column("message_id").to_pylist()])

    def write_block(self, claimed: Claimed, table: pa.Table, links: list[Link], link_rows: list[int],
                    project_id: int) -> Queued:
        """Hand the writer the claimed rows of `table`, with the links that came with them (`link_rows`: the
        row of `table` of each)."""
        keep = claimed.rows

        def rows_of() -> tuple[pa.Table, list[Link], list[int]]:
            if len(keep) == table.num_rows:
                return table, links, link_rows
            row_of = {row: i for i, row in enumerate(keep)}
            kept = [(link, row_of[row]) for link, row in zip(links, link_rows) if row in row_of]
            return table.take(pa.array(keep, pa.int64())), [link for link, _ in kept], [row for _, row in kept]

        return self.write(claimed, project_id, rows_of)

    def queue(self, keys: list[tuple[int, str]], project_id: int,
              rows_of: Callable[[list[int]], tuple[pa.Table, list[Link], list[int]]]) -> Queued:
        """Claim the new keys and hand the writer their rows, which `rows_of(positions)` builds with their
        links; settled (committed or released) once written."""
        claimed = self.claim(keys)
        return self.write(claimed, project_id, lambda: rows_of(claimed.rows))

    def claim(self, keys: list[tuple[int, str]]) -> Claimed:
        """Claim the new keys, for one request or block (a repeat among them is a duplicate)."""
        first: dict[tuple[int, str], int] = {}
        for position, k in enumerate(keys):
            first.setdefault(k, position)
        claim = self.dedup.claim(self.clickhouse, list(first))
        keep = sorted(first[k] for k in claim.keys)
        return Claimed(claim, keep, [keys[p] for p in keep])

    def write(self, claimed: Claimed, project_id: int, rows_of: Callable[[], tuple[pa.Table, list[Link], list[int]]]) -> Queued:
        """Hand the writer the claimed rows (`rows_of()` builds them with their links); the claim is settled
        once they are written."""
        claim = claimed.claim
        try:
            table, links, link_rows = rows_of()
            stored = self.writer.submit(table, links, link_rows)
        except BaseException:  # nothing reached the writer: free the claim, or the SDK's retry would be dropped
            self.dedup.release(claim)
            raise
        # Settled when the writer is done, whoever waits (or stopped waiting, e.g. a client that hung up):
        # stored events are committed; refused and failed ones released, so that a corrected event or the
        # SDK's retry is stored.
        stored.add_done_callback(lambda done: self._settle(claim, claimed.keys, done, project_id))
        return Queued(claim, claimed.rows, stored)

    def _settle(self, claim: Claim, keys: list[tuple[int, str]], done: Future, project_id: int) -> None:
        try:
            if done.exception() is not None:
                self.dedup.release(claim)
                return
            outcome: Outcome = done.result()
            unstored = [keys[r.row] for r in outcome.refused] + [keys[row] for row in outcome.unstored]
            if unstored:  # released first: the commit then covers only what the claim still holds
                self.dedup.release(Claim(claim.mark, unstored, []))
            if len(unstored) < len(keys):
                self.dedup.commit(claim)
                changes.mark_changed(self.dedup.redis, {project_id})
        except Exception:  # Redis unreachable: the keys stay pending and are settled against ClickHouse
            log.exception("settling dedup claims failed")

    def finish(self, submitted: Submitted) -> IngestResult:
        """Once `submitted.stored` is done: count it and say what happened to each message (raises the
        writer's error if it failed, also when it stored only some of them)."""
        outcome: Outcome = submitted.stored.result()
        processed = submitted.processed
        duplicates = processed.count - len(submitted.claim.keys)
        stored = len(submitted.claim.keys) - len(outcome.refused) - len(outcome.unstored)
        if outcome.refused:
            refused = [Rejection(processed.indexes[submitted.rows[r.row]], r.field, r.reason) for r in outcome.refused]
            processed = msgspec.structs.replace(
                processed, rejections=sorted(processed.rejections + refused, key=lambda r: r.index))
        self.metrics.add(submitted.source.project_id, submitted.sent, processed, stored, duplicates)
        if outcome.unstored:
            raise outcome.error
        return IngestResult(stored, duplicates, processed.rejections)

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
