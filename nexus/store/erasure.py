"""Erases a person (GDPR): every row that holds their data, in every table, and everything derived from those
rows; then records that it was done, without the person's data (nexus.meta.erasures).

A person is named as analyses name them (nexus.analyses.persons.PERSON): by the person's UUID when their ids
were linked by identify or alias, else by the one distinct id their events carry. Any distinct id linked to a
person names that whole person too: the data subject is the person, whichever of their ids they quote.

What goes, in this order (their ids are found while holding the identity resolver's lock):
1. events_hourly and events_daily: every (project, month) partition that held their events, its touched
   buckets recomputed from the other ids' events and the partition swapped in atomically (nexus.store.rebuild),
   so their uniqState no longer holds the person's ids.
2. sessions: the rows of the sessions their events belonged to, written again from the events of other ids
   those sessions have, if any shared the session id.
3. events: every row of every one of their distinct ids, all months.
4. cohort_members: static-cohort rows naming one of their ids; person_predictions: their scores.
5. identities: every row (every version) of the person's distinct ids or of their person ids; persons: every
   row of the person and of the persons merged into them earlier (their ids all moved to this person, and
   their rows keep the traits they had) — including, since a merged person cannot always be traced to whom it
   joined, every merged-away person of the project that no link names any more (deleted rows no reader sees;
   their traits live on in their survivors). Last, so that an erasure cut short can be run again by any of
   their ids; under the identity resolver's lock, followed by a turn that makes every resolver drop its cache
   of id → person, so no link to the erased person survives in a running process.
6. cached answers: the project is marked changed (nexus.changes), so no cached analysis is served again.

The ids are written to a staging table (dropped at the end) that the deletes read through a subquery, so the
mutation commands ClickHouse keeps (system.mutations, the table's mutation_*.txt) name that table, not the ids.
A process killed mid-erasure leaves its staging tables behind (the erasure's holds the person's ids): every
erasure first drops those older than an hour, far longer than one runs, so another process's running erasure
keeps its own.

On a cluster (nexus.store.placement) every delete is a mutation of the shards' `_local` tables (or, for tables
every node holds, of the table) ON CLUSTER, the staging table is on every node and synced before any shard reads
it, and each shard rebuilds its own rollup partitions and sessions from its own events.

Events of the person arriving while the erasure runs may be stored (an insert after a delete is not deleted);
after it, they start a new person: their ids are unknown again, so identify or alias links them to a new UUID.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from nexus import changes
from nexus.errors import NotFound
from nexus.ingest import identity
from nexus.meta import erasures, records
from nexus.meta.erasures import Erasure
from nexus.store import placement as placements
from nexus.store import rebuild
from nexus.store.placement import Placement

# Persons merged into another whose links are gone (merged away by ClickHouse, or never stored: a merge within
# one batch replaces the old link before it is written). Nothing traces them to the person they joined, and
# their last row keeps the traits they had (their survivor has them too), so every erasure removes them all.
_MERGED_AWAY = (
    "SELECT person_id FROM persons WHERE project_id = {project:UInt32} GROUP BY person_id "
    "HAVING argMax(is_deleted, version) = 1 "
    "AND person_id NOT IN (SELECT person_id FROM identities WHERE project_id = {project:UInt32})"
)

# The staging tables of an erasure (`_staging`) and of a rollup rebuild (`rebuild.rollup_month`).
_STAGING = r"^(erasure_[0-9a-f]{16}|[a-z_]+_rebuild_[0-9a-f]{12}(_local)?)$"
LEFTOVER_AGE = timedelta(hours=1)

_DISTINCT_ID = "distinct_id"
_PERSON_ID = "person_id"
_SESSION_ID = "session_id"


class Person(msgspec.Struct, frozen=True):
    """Who is erased: their live person id (None for an unlinked id), every distinct id of theirs, and the
    person ids whose rows hold their data (their own, and those of persons merged into them)."""

    person_id: str | None
    distinct_ids: list[str]
    person_ids: list[str]


def erase(client: Client, project_id: int, person: str, erased_by: str, redis_client: redis.Redis | None = None,
          placement: Placement | None = None) -> Erasure:
    """Erase `person` (a person id or any of their distinct ids) from the project; NotFound when the project
    has no such person. `redis_client` is None only where no other process can be running on the store (the
    embedded CLI): then there is no resolver cache and no cached answer to invalidate. `placement` is read from
    the store unless given."""
    started = time.perf_counter()
    placement = placement or placements.of(client)
    drop_leftovers(client, placement)
    rows: dict[str, int] = {}
    with _staging(client, placement) as staging_table:
        staging = staging_table.name
        ids = f"SELECT value FROM {staging} WHERE kind = '{_DISTINCT_ID}'"
        person_ids = f"SELECT toUUID(value) FROM {staging} WHERE kind = '{_PERSON_ID}'"
        scope = {"project": project_id}
        with identity.lock(redis_client) if redis_client else nullcontext():
            found = find(client, project_id, person)  # while no identify or alias moves their ids
        _stage(client, staging_table, project_id, found)
        touched: dict[int, set[tuple[datetime, str]]] = {}  # month → the (UTC hour, event name) of their events
        for month, hour, event in client.query(
                "SELECT DISTINCT toYYYYMM(ts), toDateTime(toStartOfHour(ts), 'UTC'), event FROM events "
                f"WHERE project_id = {{project:UInt32}} AND distinct_id IN ({ids})", parameters=scope).result_rows:
            touched.setdefault(month, set()).add((hour, event))
        # What events derive is rebuilt without their events before these go: an erasure cut short after the
        # delete would find no event left to say which rollup buckets and sessions they were in.
        for month, hours in sorted(touched.items()):
            for table in rebuild.ROLLUPS:
                rebuild.rollup_month(client, table, project_id, month, hours, ids, placement)
        rows["sessions"] = rebuild.sessions(
            client, project_id, f"SELECT value FROM {staging} WHERE kind = '{_SESSION_ID}'", ids, placement)
        rows["events"] = rebuild.delete_rows(
            client, "events", f"project_id = {{project:UInt32}} AND distinct_id IN ({ids})", scope, placement)
        named = f"(SELECT value FROM {staging} WHERE kind IN ('{_DISTINCT_ID}', '{_PERSON_ID}'))"
        rows["cohort_members"] = rebuild.delete_rows(
            client, "cohort_members", f"project_id = {{project:UInt32}} AND member_id IN {named}", scope, placement)
        rows["person_predictions"] = rebuild.delete_rows(
            client, "person_predictions", f"project_id = {{project:UInt32}} AND person_id IN {named}", scope,
            placement)
        # Their links go last: an erasure stopped before this point (a crash, a timeout) can be run again by
        # any of their ids and still finds the whole person.
        with identity.turn(redis_client) if redis_client else nullcontext():
            rows["identities"] = rebuild.delete_rows(
                client, "identities",
                f"project_id = {{project:UInt32}} AND (distinct_id IN ({ids}) OR person_id IN ({person_ids}))", scope,
                placement)
            rows["persons"] = rebuild.delete_rows(
                client, "persons", f"project_id = {{project:UInt32}} AND (person_id IN ({person_ids}) OR person_id IN "
                f"({_MERGED_AWAY}))", scope, placement)
    if redis_client is not None:
        changes.mark_changed(redis_client, {project_id})
    return erasures.save(client, Erasure(
        project_id=project_id, erasure_id=erasures.new_id(), erased_at=records.now(), erased_by=erased_by,
        distinct_ids=len(found.distinct_ids), rows=rows, rebuilt_partitions=len(touched) * len(rebuild.ROLLUPS),
        duration_ms=round((time.perf_counter() - started) * 1000)))


def find(client: Client, project_id: int, person: str) -> Person:
    """The person `person` names in the project (see the module doc); NotFound if none."""
    scope = {"project": project_id, "person": person}
    linked = client.query(
        "SELECT toString(person_id) FROM identities FINAL WHERE project_id = {project:UInt32} "
        "AND (distinct_id = {person:String} OR toString(person_id) = {person:String}) "
        "ORDER BY toString(person_id) = {person:String} DESC LIMIT 1",
        parameters=scope).result_rows
    if not linked:
        has_events = client.query(
            "SELECT count() FROM events WHERE project_id = {project:UInt32} AND distinct_id = {person:String}",
            parameters=scope).result_rows[0][0]
        if not has_events:
            raise NotFound(f"no person {person!r} in this project")
        return Person(None, [person], [])
    person_id = linked[0][0]
    distinct_ids = [row[0] for row in client.query(
        "SELECT distinct_id FROM identities FINAL WHERE project_id = {project:UInt32} AND person_id = {person:UUID} "
        "ORDER BY distinct_id", parameters={"project": project_id, "person": uuid.UUID(person_id)}).result_rows]
    # Every person id these ids were ever linked to (rows of older versions, until merged away): this person,
    # and persons merged into it, whose persons rows keep their traits. One still linked to another id is a
    # live person of its own, and stays.
    person_ids = [row[0] for row in client.query(
        "SELECT DISTINCT toString(person_id) AS id FROM identities WHERE project_id = {project:UInt32} "
        "AND distinct_id IN {ids:Array(String)} AND id NOT IN (SELECT toString(person_id) FROM identities FINAL "
        "WHERE project_id = {project:UInt32} AND distinct_id NOT IN {ids:Array(String)}) ORDER BY id",
        parameters={"project": project_id, "ids": distinct_ids}).result_rows]
    return Person(person_id, distinct_ids, sorted({person_id, *person_ids}))


def _stage(client: Client, staging: placements.Staging, project_id: int, person: Person) -> None:
    """The person's ids, then their sessions' ids; each synced to every node before a shard reads them."""
    rows = [[_DISTINCT_ID, i] for i in person.distinct_ids] + [[_PERSON_ID, p] for p in person.person_ids]
    client.insert(staging.name, rows, column_names=["kind", "value"])
    for statement in staging.sync:
        client.command(statement)
    client.command(
        f"INSERT INTO {staging.name} SELECT DISTINCT '{_SESSION_ID}', session_id FROM events "
        f"WHERE project_id = {{project:UInt32}} AND distinct_id IN "
        f"(SELECT value FROM {staging.name} WHERE kind = '{_DISTINCT_ID}') AND session_id != ''",
        parameters={"project": project_id})
    for statement in staging.sync:
        client.command(statement)


def drop_leftovers(client: Client, placement: Placement = placements.ONE_SERVER) -> list[str]:
    """Drop the staging tables older than `LEFTOVER_AGE` that killed erasures left (on a cluster, on every node);
    their names."""
    names = [row[0] for row in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND match(name, {staging:String}) "
        "AND metadata_modification_time < now() - toIntervalSecond({age:UInt32})",
        parameters={"staging": _STAGING, "age": int(LEFTOVER_AGE.total_seconds())}).result_rows]
    for name in names:  # matched by _STAGING: a name Nexus made
        client.command(f"DROP TABLE IF EXISTS {name}{placement.on} SYNC")
    return names


@contextmanager
def _staging(client: Client, placement: Placement) -> Iterator[placements.Staging]:
    """A table for the erased person's ids while the erasure runs, dropped after it (also on failure)."""
    staging = placement.staging_everywhere(f"erasure_{secrets.token_hex(8)}",
                                           "kind LowCardinality(String), value String", "ORDER BY (kind, value)")
    for statement in staging.create:
        client.command(statement)
    try:
        yield staging
    finally:
        for statement in staging.drop:
            client.command(statement)
