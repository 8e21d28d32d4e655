"""Message ids of imported rows: a deterministic one for each row sent without, and which are stored already.

A row without a messageId is named by its project, its position in the file (0-based line or row) and its
content, so the same file imported again — whole, or from where a failed import stopped — names every row
as before and each is stored once; two identical rows at different positions stay two events.

Dedup in Redis remembers ids for NEXUS_DEDUP_HOURS only, and history is often imported again weeks later
(a corrected export, a resumed import), so the importer also asks ClickHouse, the source of truth, which of
a batch's ids the project holds. It looks in the batch's time span alone: an imported event's time is its
timestamp as sent, so an earlier import of the same row lies in that span (a row without a timestamp was
stored at the time it arrived, so a batch holding one is looked up at any time). Ids are sent as 64-bit
hashes, checked exactly on the way back, all in one text parameter: binding 10,000 strings costs chDB
about 0.1 s, 10,000 UInt64 a quarter of that, and one text of their digits a few milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.ingest.pipeline import EPOCH_FLOOR
from nexus.ingest.wire import Message

# Most blocks of a back-fill lie where the project has no events yet: one count says so without an id.
_ANY = """
SELECT count() FROM events
WHERE project_id = {project_id:UInt32}
  AND ts BETWEEN {earliest:DateTime64(3, 'UTC')} AND {latest:DateTime64(3, 'UTC')}
"""
_STORED = """
SELECT message_id FROM events
WHERE project_id = {project_id:UInt32}
  AND ts BETWEEN {earliest:DateTime64(3, 'UTC')} AND {latest:DateTime64(3, 'UTC')}
  AND reinterpretAsUInt64(MD5(message_id)) IN (SELECT toUInt64(arrayJoin(splitByChar(',', {hashes:String}))))
"""
_MARGIN = timedelta(seconds=1)  # stored times are milliseconds; sent ones may carry microseconds
_encode = msgspec.json.Encoder().encode
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def derive(project_id: int, position: int, message: Message) -> str:
    """The messageId of a row sent without one: 32 hex digits, like the ids live events get."""
    return hashlib.blake2b(f"{project_id}:{position}:".encode() + _encode(message), digest_size=16).hexdigest()


def stored(clickhouse: Client, project_id: int, ids: Sequence[str], times_ms: Sequence[int | None],
           now: datetime) -> set[str]:
    """Which of `ids` the project's events hold already; `times_ms` are their events' times as sent, in
    milliseconds since the epoch (None: sent without one)."""
    wanted = set(ids)
    if not wanted:
        return set()
    earliest, latest = _span(times_ms, now)
    span = {"project_id": project_id, "earliest": earliest, "latest": latest}
    if not clickhouse.query(_ANY, parameters=span).result_rows[0][0]:  # unavailable: StorageUnavailable
        return set()
    hashes = _Digits(",".join(str(_hash(i)) for i in wanted))
    rows = clickhouse.query(_STORED, parameters={**span, "hashes": hashes}).result_rows
    return {message_id for (message_id,) in rows} & wanted


class _Digits:
    """Text of digits and commas, bound as it is: clickhouse-connect escapes a str parameter character by
    character in Python (~1 s for 100,000 hashes), and these characters need no escaping."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def _hash(message_id: str) -> int:
    """ClickHouse's reinterpretAsUInt64(MD5(message_id))."""
    return int.from_bytes(hashlib.md5(message_id.encode()).digest()[:8], "little")


def _span(times_ms: Sequence[int | None], now: datetime) -> tuple[datetime, datetime]:
    """Where the events lie if they are stored: their times as sent (imports correct no clock skew),
    within the times the pipeline accepts at all."""
    floor, ceiling = EPOCH_FLOOR, now + timedelta(days=1)
    if not times_ms or any(t is None for t in times_ms):  # stored at the time it arrived, whenever that was
        return floor, ceiling
    earliest = _EPOCH + timedelta(milliseconds=min(times_ms))  # type: ignore[type-var]
    latest = _EPOCH + timedelta(milliseconds=max(times_ms))  # type: ignore[type-var]
    return min(max(earliest, floor), ceiling) - _MARGIN, min(max(latest, floor), ceiling) + _MARGIN
