"""Identity: which person each distinct id belongs to, kept up to date by identify and alias calls.

`identify(userId, anonymousId)` and `alias(previousId, userId)` put both ids on one person: a new one
when neither id is known, the known one's person when one is, and when both ids already belong to
different persons, the second person is merged into the first (its ids move, its traits merge
underneath, and it is marked deleted). `identify` traits are merged into the person's, latest value
winning. Events keep the ids they were sent with; analyses resolve ids to persons through the
identities table, falling back to the id itself for ids that were never identified.

Links are applied before the events that carry them are inserted, and applying one twice changes
nothing, so a retried batch after a crash cannot lose a link.

Several processes may write one store (the API and a `nexus import`, on a ClickHouse server): they
take turns through a Redis lock, and a process drops its cache of id → person when another one has
linked ids since its own last turn (a merge may have moved the ids it remembers).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from redis import Redis
from redis.lock import Lock

from nexus.meta import records
from nexus.store import json_insert

_CACHE_SIZE = 200_000
_LOCK = "nexus:identity:lock"
_TURNS = "nexus:identity:turns"  # counts every process's turns: a jump means another process wrote
_LOCK_SECONDS = 120  # the lock expires after this (a process died holding it); a turn waits as long for it
_PERSON_SCHEMA = pa.schema([("project_id", pa.uint32()), ("person_id", pa.string()), ("properties", pa.string()),
                            ("created_at", pa.timestamp("ms", tz="UTC")), ("version", pa.uint64()),
                            ("is_deleted", pa.uint8())])


class Link(msgspec.Struct, frozen=True):
    """One identify or alias call: tie `other_id` (anonymous or previous id) to `user_id`'s person."""

    project_id: int
    user_id: str
    other_id: str
    traits: dict[str, Any] | None
    ts: datetime


def lock(redis: Redis) -> Lock:
    """The lock links are applied under, in every process: while it is held no identify or alias moves an id."""
    return redis.lock(_LOCK, timeout=_LOCK_SECONDS, blocking_timeout=_LOCK_SECONDS)


@contextmanager
def turn(redis: Redis) -> Iterator[None]:
    """Hold the lock and end with a turn, which makes every resolver drop its cache of id → person: for a
    writer of links other than a resolver (an erasure)."""
    with lock(redis):
        try:
            yield
        finally:
            redis.incr(_TURNS)


class IdentityResolver:
    """Applies links in order; caches id → person for the ids it has seen (one writer per process,
    processes taking turns through Redis)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._person_of: OrderedDict[tuple[int, str], uuid.UUID] = OrderedDict()
        self._turn: int | None = None  # the turn counter after this process's last turn

    def apply(self, clickhouse: Client, links: list[Link]) -> None:
        if not links:
            return
        with lock(self.redis):
            if self._turn != int(self.redis.get(_TURNS) or 0):
                self._person_of.clear()  # another process linked ids since our last turn
            try:
                self._apply(clickhouse, links)
            except BaseException:
                self._person_of.clear()  # partly written: the store, not the cache, now says who is who
                raise
            finally:
                self._turn = self.redis.incr(_TURNS)

    def _apply(self, clickhouse: Client, links: list[Link]) -> None:
        self._load_persons(clickhouse, links)
        traits_of: dict[tuple[int, uuid.UUID], dict[str, Any]] = {}
        created: dict[tuple[int, uuid.UUID], datetime] = {}
        merged_into: dict[tuple[int, uuid.UUID], uuid.UUID] = {}
        identity_rows: list[list[Any]] = []
        # Links made by this call: remembered only once stored, so a failed insert leaves nothing behind
        # that would make its retry look done already.
        linked: dict[tuple[int, str], uuid.UUID] = {}
        version = time.time_ns()

        def link(project_id: int, distinct_id: str, person: uuid.UUID) -> None:
            nonlocal version
            version += 1
            linked[(project_id, distinct_id)] = person
            identity_rows.append([project_id, distinct_id, str(person), version, 0])

        def person_of(key: tuple[int, str]) -> uuid.UUID | None:
            return linked.get(key) or self._person_of.get(key)

        for item in links:
            ids = [i for i in (item.user_id, item.other_id) if i]
            known = [person_of((item.project_id, i)) for i in ids]
            person = next((p for p in known if p is not None), None)
            if person is None:
                person = uuid.uuid4()
                created[(item.project_id, person)] = item.ts
            for distinct_id, current in zip(ids, known):
                if current is None:
                    link(item.project_id, distinct_id, person)
                elif current != person:
                    moving = set(self._ids_of(clickhouse, item.project_id, current))
                    moving |= {i for (p, i), who in linked.items() if p == item.project_id and who == current}
                    for moved in sorted(moving):
                        link(item.project_id, moved, person)
                    merged_into[(item.project_id, current)] = person
                    traits_of.setdefault((item.project_id, current), {})
            if item.traits:
                traits_of.setdefault((item.project_id, person), {}).update(item.traits)
            else:
                traits_of.setdefault((item.project_id, person), {})
        if identity_rows:
            clickhouse.insert("identities", identity_rows,
                              column_names=["project_id", "distinct_id", "person_id", "version", "is_deleted"])
        self._write_persons(clickhouse, traits_of, created, merged_into, version)
        for key, person in linked.items():
            self._remember(key, person)

    def _load_persons(self, clickhouse: Client, links: list[Link]) -> None:
        by_project: dict[int, set[str]] = {}
        for item in links:
            for i in (item.user_id, item.other_id):
                if i and (item.project_id, i) not in self._person_of:
                    by_project.setdefault(item.project_id, set()).add(i)
        for project_id, ids in by_project.items():
            rows = clickhouse.query(
                "SELECT distinct_id, person_id FROM identities FINAL "
                "WHERE project_id = {p:UInt32} AND distinct_id IN {ids:Array(String)}",
                parameters={"p": project_id, "ids": sorted(ids)},
            ).result_rows
            for distinct_id, person in rows:
                self._remember((project_id, distinct_id), person)

    def _ids_of(self, clickhouse: Client, project_id: int, person: uuid.UUID) -> list[str]:
        stored = clickhouse.query(
            "SELECT distinct_id FROM identities FINAL WHERE project_id = {p:UInt32} AND person_id = {person:UUID}",
            parameters={"p": project_id, "person": person},
        ).result_rows
        cached = [i for (p, i), who in self._person_of.items() if p == project_id and who == person]
        return sorted({r[0] for r in stored} | set(cached))

    def _write_persons(self, clickhouse: Client, traits_of: dict[tuple[int, uuid.UUID], dict[str, Any]],
                       created: dict[tuple[int, uuid.UUID], datetime],
                       merged_into: dict[tuple[int, uuid.UUID], uuid.UUID], version: int) -> None:
        current = _current_persons(clickhouse, list(traits_of))
        for (project_id, person), survivor in merged_into.items():
            # The merged person's traits go under the survivor's, which win on conflicts.
            old = current.get((project_id, person), ({}, None))[0]
            traits_of[(project_id, survivor)] = {**old, **traits_of.get((project_id, survivor), {})}
        rows = []
        for (project_id, person), traits in traits_of.items():
            version += 1
            stored_traits, stored_created = current.get((project_id, person), ({}, None))
            created_at = stored_created or created.get((project_id, person)) or records.now()
            deleted = (project_id, person) in merged_into
            rows.append((project_id, str(person), json.dumps({**stored_traits, **traits}), created_at, version,
                         int(deleted)))
        # One insert holds persons of many projects: each project's traits are parsed apart, as sent.
        columns = [pa.array(values, field.type) for values, field in zip(zip(*rows), _PERSON_SCHEMA)]
        if rows:
            json_insert.insert(clickhouse, "persons", pa.table(columns, schema=_PERSON_SCHEMA))

    def _remember(self, key: tuple[int, str], person: uuid.UUID) -> None:
        self._person_of[key] = person
        self._person_of.move_to_end(key)
        if len(self._person_of) > _CACHE_SIZE:
            self._person_of.popitem(last=False)


def _current_persons(clickhouse: Client, keys: list[tuple[int, uuid.UUID]]) -> dict[tuple[int, uuid.UUID], tuple[dict, datetime]]:
    by_project: dict[int, list[str]] = {}
    for project_id, person in keys:
        by_project.setdefault(project_id, []).append(str(person))
    found = {}
    for project_id, persons in by_project.items():
        rows = clickhouse.query(
            "SELECT person_id, toJSONString(properties), created_at FROM persons FINAL "
            "WHERE project_id = {p:UInt32} AND person_id IN {ids:Array(UUID)}",
            parameters={"p": project_id, "ids": persons},
        ).result_rows
        for person, properties, created_at in rows:
            found[(project_id, person)] = (json.loads(properties), created_at)
    return found
