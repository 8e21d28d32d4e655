"""Exactly-once storage of messageIds: a Redis key per (project, messageId), claimed before the insert.

A request claims its new keys under a mark naming this process (its epoch, random per start) and the
request; once ClickHouse has the request's events, one commit key per request says they are stored. A
key whose request never committed, under another epoch, means a process died between claim and commit:
whether its insert landed is settled by asking ClickHouse, the source of truth. A key claimed by a
request of this same process that has not committed yet is in flight right now: a duplicate (should
that insert fail, its own request is answered 503 and its SDK resends it). So a batch resent after a
crash at any moment is stored exactly once. Keys expire after the dedup window (NEXUS_DEDUP_HOURS).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections import defaultdict
from enum import IntEnum

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from nexus.store.sql_files import load

_LONG_ID = 64  # longer messageIds are keyed by their hash, to bound Redis memory


class State(IntEnum):
    NEW = 0
    STORED = 1
    UNCERTAIN = 2
    IN_FLIGHT = 3


class Claim(msgspec.Struct):
    """What one request claimed: commit it once stored, release it if the insert failed."""

    mark: str
    keys: list[tuple[int, str]]
    fresh: list[bool]  # per key asked: True when it is new and now this request's


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
        self._requests = itertools.count()
        self._claim = client.register_script(load("lua/dedup_claim.lua"))
        self._set = client.register_script(load("lua/dedup_set.lua"))
        self._release = client.register_script(load("lua/dedup_release.lua"))

    def claim(self, clickhouse: Client, keys: list[tuple[int, str]]) -> Claim:
        """Claim the keys that are new, for one request."""
        request = str(next(self._requests))
        mark = f"p:{self.epoch}:{request}"
        if not keys:
            return Claim(mark, [], [])
        names = [key(p, m) for p, m in keys]
        states = [State(int(s)) for s in self._claim(args=[self.ttl, self.epoch, request, "\n".join(names)]).decode()]
        uncertain = [i for i, s in enumerate(states) if s is State.UNCERTAIN]
        if uncertain:
            stored = stored_in_clickhouse(clickhouse, [keys[i] for i in uncertain])
            for i in uncertain:
                states[i] = State.STORED if keys[i] in stored else State.NEW
            self._set_all([names[i] for i in uncertain if states[i] is State.STORED], "s")
            self._set_all([names[i] for i in uncertain if states[i] is State.NEW], mark)
        fresh = [s is State.NEW for s in states]
        return Claim(mark, [k for k, new in zip(keys, fresh) if new], fresh)

    def commit(self, claim: Claim) -> None:
        """The claim's events are in ClickHouse."""
        if claim.keys:
            self.redis.set("c:" + claim.mark[2:], 1, ex=self.ttl)

    def release(self, claim: Claim) -> None:
        """Give up a claim whose insert failed, so a retry is stored."""
        if claim.keys:
            self._release(args=[claim.mark, "\n".join(key(p, m) for p, m in claim.keys)])

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


def stored_in_clickhouse(clickhouse: Client, keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, message_id in keys:
        by_project[project_id].append(message_id)
    return {(p, m) for p, ids in by_project.items() for m in stored_message_ids(clickhouse, p, ids)}
