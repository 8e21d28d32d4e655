"""Exactly-once storage of messageIds: a Redis key per (project, messageId) with a two-phase state.

A process claims new keys as pending under its epoch (a random id per process) before inserting, and
marks them stored after ClickHouse acknowledged the insert. A key found pending under another epoch
means a process died between the two: whether its insert landed is settled by asking ClickHouse, the
source of truth. So a batch resent after a crash at any moment is stored exactly once. A key pending
under this process's own epoch is being inserted right now by a concurrent request: a duplicate (if
that insert fails, its request is answered 503 and its SDK resends it). Keys expire after the dedup
window (NEXUS_DEDUP_HOURS).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from enum import IntEnum

import redis
from clickhouse_connect.driver.client import Client

from nexus.store.sql import load

_LONG_ID = 64  # longer messageIds are keyed by their hash, to bound Redis memory


class Claim(IntEnum):
    NEW = 0
    STORED = 1
    UNCERTAIN = 2
    IN_FLIGHT = 3


def key(project_id: int, message_id: str) -> str:
    """The Redis key of a message; ids that are long or hold control characters (newlines separate
    keys on the way to Redis) are keyed by their hash."""
    if len(message_id) > _LONG_ID or not message_id.isprintable():
        message_id = "#" + hashlib.blake2b(message_id.encode(), digest_size=16).hexdigest()
    return f"d:{project_id}:{message_id}"


class Dedup:
    def __init__(self, client: redis.Redis, window_hours: int):
        self.redis = client
        self.ttl = window_hours * 3600
        self.epoch = uuid.uuid4().hex[:12]
        self._claim = client.register_script(load("lua/dedup_claim.lua"))
        self._set = client.register_script(load("lua/dedup_set.lua"))
        self._release = client.register_script(load("lua/dedup_release.lua"))

    def claim(self, clickhouse: Client, keys: list[tuple[int, str]]) -> list[bool]:
        """For each (project, messageId): True when it is new and now claimed, False when already stored."""
        if not keys:
            return []
        names = [key(p, m) for p, m in keys]
        states = [Claim(int(s)) for s in self._claim(args=[self.ttl, self.epoch, "\n".join(names)]).decode()]
        uncertain = [i for i, s in enumerate(states) if s is Claim.UNCERTAIN]
        if not uncertain:
            return [s is Claim.NEW for s in states]
        stored = _stored_in_clickhouse(clickhouse, [keys[i] for i in uncertain])
        taken_over, settled = [], []
        for i in uncertain:
            if keys[i] in stored:
                states[i] = Claim.STORED
                settled.append(names[i])
            else:
                states[i] = Claim.NEW
                taken_over.append(names[i])
        self._set_all(settled, "s")
        self._set_all(taken_over, f"p:{self.epoch}")
        return [s is Claim.NEW for s in states]

    def commit(self, keys: list[tuple[int, str]]) -> None:
        """Mark claimed keys stored: ClickHouse has them."""
        self._set_all([key(p, m) for p, m in keys], "s")

    def release(self, keys: list[tuple[int, str]]) -> None:
        """Give up claims whose insert failed, so a retry is stored."""
        if keys:
            self._release(args=[self.epoch, "\n".join(key(p, m) for p, m in keys)])

    def _set_all(self, names: list[str], value: str) -> None:
        if names:
            self._set(args=[self.ttl, value, "\n".join(names)])


def stored_message_ids(clickhouse: Client, project_id: int, message_ids: list[str]) -> set[str]:
    """Which of these messageIds the events table holds for the project."""
    if not message_ids:
        return set()
    rows = clickhouse.query(
        "SELECT DISTINCT message_id FROM events WHERE project_id = {p:UInt32} AND message_id IN {ids:Array(String)}",
        parameters={"p": project_id, "ids": message_ids},
    ).result_rows
    return {r[0] for r in rows}


def _stored_in_clickhouse(clickhouse: Client, keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, message_id in keys:
        by_project[project_id].append(message_id)
    return {(p, m) for p, ids in by_project.items() for m in stored_message_ids(clickhouse, p, ids)}
