"""Message ids of imported rows: a deterministic one for each row sent without, and which are stored already.

A row without a messageId is named by its project, its position in the file (0-based line or row) and its
content, so the same file imported again — whole, or from where a failed import stopped — names every row
as before and each is stored once; two identical rows at different positions stay two events.

Dedup in Redis remembers ids for NEXUS_DEDUP_HOURS only, and history is often imported again weeks later
(a corrected export, a resumed import), so the importer also asks ClickHouse, the source of truth, which of
a batch's ids the project holds. It looks in the batch's time span alone: an imported event's time is its
timestamp as sent, so an earlier import of the same row lies in that span (a row without a timestamp was
stored at the time it arrived, so a batch holding one is looked up at any time). Ids are sent as 64-bit
hashes, checked exactly on the way back: binding 10,000 strings costs chDB about 0.1 s, 10,000 UInt64
a quarter of that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.ingest.pipeline import EPOCH_FLOOR
from nexus.ingest.wire import Message, Rejection, as_text

_STORED = """
SELECT message_id FROM events
WHERE project_id = {project_id:UInt32}
  AND ts BETWEEN {earliest:DateTime64(3, 'UTC')} AND {latest:DateTime64(3, 'UTC')}
  AND reinterpretAsUInt64(MD5(message_id)) IN {hashes:Array(UInt64)}
"""
_MARGIN = timedelta(seconds=1)  # stored times are milliseconds; sent ones may carry microseconds
_encode = msgspec.json.Encoder().encode


def derive(project_id: int, position: int, message: Message) -> str:
    """The messageId of a row sent without one: 32 hex digits, like the ids live events get."""
    return hashlib.blake2b(f"{project_id}:{position}:".encode() + _encode(message), digest_size=16).hexdigest()


def with_ids(project_id: int, items: Sequence[Message | Rejection],
             positions: Sequence[int]) -> list[Message | Rejection]:
    """The items, each message without a messageId given its derived one."""
    return [msgspec.structs.replace(item, message_id=derive(project_id, position, item))
            if isinstance(item, Message) and not as_text(item.message_id) else item
            for item, position in zip(items, positions)]


def stored(clickhouse: Client, project_id: int, messages: Sequence[Message], now: datetime) -> set[str]:
    """The messageIds of `messages` that the project's events hold already."""
    ids = {as_text(m.message_id) for m in messages}
    if not ids:
        return set()
    earliest, latest = _span(messages, now)
    rows = clickhouse.query(_STORED, parameters={  # an unavailable store raises StorageUnavailable
        "project_id": project_id, "earliest": earliest, "latest": latest, "hashes": [_hash(i) for i in ids],
    }).result_rows
    return {message_id for (message_id,) in rows} & ids


def _hash(message_id: str) -> int:
    """ClickHouse's reinterpretAsUInt64(MD5(message_id))."""
    return int.from_bytes(hashlib.md5(message_id.encode()).digest()[:8], "little")


def _span(messages: Sequence[Message], now: datetime) -> tuple[datetime, datetime]:
    """Where the messages' events lie if they are stored: their times as sent (imports correct no clock
    skew), within the times the pipeline accepts at all."""
    floor, ceiling = EPOCH_FLOOR, now + timedelta(days=1)
    times = [min(max(_utc(t), floor), ceiling)
             for m in messages if (t := m.timestamp or m.original_timestamp) is not None]
    if len(times) < len(messages):  # stored at the time it arrived, whenever that was
        return floor, ceiling
    return min(times) - _MARGIN, max(times) + _MARGIN


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
