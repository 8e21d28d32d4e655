"""Erasure and the rollup rebuild on the cluster layout: what each statement names, and what it does to two shards.

No ClickHouse cluster or Keeper runs here, and chDB reaches no shard through a Distributed table (it is no server,
so no replica is local to it). So the cluster is played by one chDB with a database per node (`TwoShards`): the
layout's DDL runs on it as test_cluster_layout.py runs it (ON CLUSTER dropped, Replicated engines plain, each
Distributed table a Merge table over both nodes' local tables), and every statement the erasure sends is run where
ClickHouse would run it — ON CLUSTER on a `_local` table or a view on each node; ON CLUSTER on a table every node
holds once, on the node whose copy stands for all (the other node reads it through a Merge table: replication is
instant here); an INSERT … SELECT under `parallel_distributed_insert_select = 2` on each node, with its target and
first table replaced by their local tables as ClickHouse's rewrite does (an alias kept). What this cannot show:
Keeper running the DDL, replicas syncing, the engine's own per-shard rewrite — docs/deployment.md says so.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from nexus.ingest.identity import IdentityResolver
from nexus.meta import projects
from nexus.store import cluster, erasure
from nexus.store.placement import Placement
from tests.analyses.journeys import insert_events
from tests.analyses.test_cluster_layout import single_node
from tests.store.test_erasure import BYSTANDER_EVENTS, MARKERS, PERSON_EVENTS, links

LAYOUT = cluster.layout("nexus")
PLACEMENT = Placement("nexus", frozenset(LAYOUT.sharded))
ON = " ON CLUSTER `nexus`"
_TARGET = re.compile(r"^(?:ALTER TABLE|CREATE TABLE IF NOT EXISTS|CREATE MATERIALIZED VIEW IF NOT EXISTS|DROP TABLE IF EXISTS|"
                     r"TRUNCATE TABLE|SYSTEM SYNC REPLICA ON CLUSTER `nexus`) (\w+)")


class TwoShards:
    """One chDB playing a cluster of two single-replica shards, nodes `<base>_s1` (where the erasure connects) and
    `<base>_s2`; records every statement with its settings."""

    def __init__(self, client: Client, base: str) -> None:
        self.client, self.nodes = client, [f"{base}_s1", f"{base}_s2"]
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def on(self, node: str) -> Iterator[Client]:
        previous, self.client.database = self.client.database, node
        try:
            yield self.client
        finally:
            self.client.database = previous

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        with self.on(self.nodes[0]) as client:
            return client.query(sql, parameters=parameters, settings=settings)

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        with self.on(self.nodes[0]) as client:
            return client.insert(table, *args, **kwargs)

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        settings = dict(settings or {})
        self.sent.append((sql, dict(settings)))
        if settings.pop("parallel_distributed_insert_select", 0) == 2:
            sql = re.sub(r"^INSERT INTO (\w+)", rf"INSERT INTO \1{cluster.LOCAL_SUFFIX}", sql)
            sql = re.sub(r"\bFROM (\w+)", rf"FROM \1{cluster.LOCAL_SUFFIX}", sql, count=1)
            return self._run(self.nodes, sql, parameters, settings)
        if ON not in sql:
            return self._run(self.nodes[:1], sql, parameters, settings)
        name = _TARGET.match(sql)[1]
        if sql.startswith("SYSTEM SYNC REPLICA"):
            return None  # one copy stands for every replica
        sql = single_node(sql).replace("currentDatabase()", f"REGEXP('^({'|'.join(self.nodes)})$')")
        if name.endswith(cluster.LOCAL_SUFFIX) or sql.startswith(("CREATE MATERIALIZED VIEW", "DROP TABLE")):
            return self._run(self.nodes, sql, parameters, settings)
        self._run(self.nodes[:1], sql, parameters, settings)
        if sql.startswith("CREATE TABLE") and "ENGINE = Merge(" not in sql:  # a table on every node
            self._run(self.nodes[1:], f"CREATE TABLE IF NOT EXISTS {name} AS {self.nodes[0]}.{name} "
                                      f"ENGINE = Merge('{self.nodes[0]}', '^{name}$')", None, {})
        return None

    def _run(self, nodes: list[str], sql: str, parameters: dict | None, settings: dict) -> None:
        for node in nodes:
            with self.on(node) as client:
                client.command(sql, parameters=parameters, settings=settings or None)


@pytest.fixture(scope="module")
def shards(client: Client, redis) -> dict[str, Any]:
    """The person and a bystander on the two-shard layout, erased; the statements the erasure sent."""
    project_id = projects.create(client, f"cluster-erasure-{uuid.uuid4().hex[:6]}").project_id
    insert_events(client, project_id, {**PERSON_EVENTS, **BYSTANDER_EVENTS})
    IdentityResolver(redis.client).apply(client, links(project_id))
    person = erasure.find(client, project_id, "erase-me").person_id
    source, base = client.database, f"t_cluster_erasure_{uuid.uuid4().hex[:6]}"
    played = TwoShards(client, base)
    for node in played.nodes:
        client.command(f"CREATE DATABASE {node}")
    for statement in LAYOUT.statements:
        played.command(statement)
    for shard, node in enumerate(played.nodes):  # each event on the shard its id hashes to, through the views
        client.command(f"INSERT INTO {node}.events_local SELECT * FROM {source}.events WHERE project_id = {project_id} "
                       f"AND {cluster.SHARDING_KEY} % 2 = {shard}")
    for table in LAYOUT.everywhere:
        if table != "schema_migrations":
            client.command(f"INSERT INTO {played.nodes[0]}.{table} SELECT * FROM {source}.{table} "
                           f"WHERE project_id = {project_id}")
    before = {node: ids_on(client, node, project_id) for node in played.nodes}
    played.sent.clear()
    record = erasure.erase(played, project_id, person, "k_test", placement=PLACEMENT)  # type: ignore[arg-type]
    yield {"project": project_id, "nodes": played.nodes, "sent": played.sent, "before": before, "record": record}
    for node in played.nodes:
        client.command(f"DROP DATABASE IF EXISTS {node} SYNC")


def ids_on(client: Client, node: str, project_id: int) -> set[str]:
    return {row[0] for row in client.query(f"SELECT DISTINCT distinct_id FROM {node}.events_local "
                                           f"WHERE project_id = {project_id}").result_rows}


def test_every_change_names_a_shard_s_local_table_or_a_table_on_every_node_on_the_whole_cluster(shards):
    altered = [(m[1], sql) for sql, _ in shards["sent"] if (m := re.match(r"ALTER TABLE (\w+)", sql))]
    assert {name for name, _ in altered} >= {"events_local", "events_hourly_local", "events_daily_local",
                                              "sessions_local", "identities", "persons"}
    for name, sql in altered:
        assert sql.startswith(f"ALTER TABLE {name}{ON} "), sql
        assert name not in LAYOUT.sharded, f"a mutation of the Distributed {name}: {sql}"
    for sql, _ in shards["sent"]:
        if re.match(r"(CREATE|DROP|TRUNCATE|SYSTEM)\b", sql):
            assert ON in sql.splitlines()[0], sql
        for swapped in re.findall(r"REPLACE PARTITION .* FROM (\w+)", sql):
            assert swapped.endswith(cluster.LOCAL_SUFFIX) and "_rebuild_" in swapped, sql
    # A rollup's rows are recomputed on each shard from its own events: an INSERT … SELECT the engine runs per shard.
    inserts = [(m[1], settings) for sql, settings in shards["sent"]
               if (m := re.match(r"INSERT INTO (\w+?)(?:_rebuild_[0-9a-f]+)?\s+SELECT", sql))]
    assert {name for name, settings in inserts if settings == PLACEMENT.per_shard} == {
        "events_hourly", "events_daily", "sessions"}
    # The erased ids' table is one on every node: its insert reads events across the cluster on the node it runs on.
    assert all(name.startswith("erasure_") and not settings for name, settings in inserts
               if settings != PLACEMENT.per_shard)


def test_every_statement_sent_is_accepted_by_clickhouse_s_parser(client, shards):
    for sql, _ in shards["sent"]:
        client.query("SELECT formatQuery({q:String})", parameters={"q": sql})


def test_the_person_s_rows_leave_both_shards_and_the_bystander_s_stay(client, shards):
    person_ids = set(PERSON_EVENTS)
    assert all(shards["before"][node] & person_ids for node in shards["nodes"]), "the person must span both shards"
    for node in shards["nodes"]:
        assert ids_on(client, node, shards["project"]) == shards["before"][node] - person_ids
    assert set(BYSTANDER_EVENTS) <= set().union(*(ids_on(client, n, shards["project"]) for n in shards["nodes"]))
    first = shards["nodes"][0]
    for table in ("identities", "persons"):
        found = client.query(f"SELECT count() FROM {first}.{table} WHERE project_id = {shards['project']} "
                             "AND multiSearchAny(formatRow('TSV', *), {m:Array(String)})",
                             parameters={"m": MARKERS}).result_rows[0][0]
        assert found == 0, table
    assert shards["record"].rows["events"] == sum(len(v) for v in PERSON_EVENTS.values())


@pytest.mark.parametrize(("rollup", "bucket"), [("events_hourly", "hour"), ("events_daily", "day")])
def test_each_shard_s_rollup_equals_its_remaining_events(client, shards, rollup, bucket):
    raw = "toStartOfHour(ts)" if bucket == "hour" else "toDate(ts)"
    for node in shards["nodes"]:
        rolled = client.query(f"SELECT {bucket}, event, sum(events), uniqMerge(distinct_ids) FROM {node}.{rollup}_local "
                              f"WHERE project_id = {shards['project']} GROUP BY ALL HAVING sum(events) > 0 "
                              "ORDER BY ALL").result_rows
        counted = client.query(f"SELECT {raw} AS b, event, count(), uniq(distinct_id) FROM {node}.events_local "
                               f"WHERE project_id = {shards['project']} GROUP BY ALL ORDER BY ALL").result_rows
        assert rolled == counted, node


def test_each_shard_s_sessions_are_written_again_from_its_remaining_events(client, shards):
    for node in shards["nodes"]:
        stored = client.query(f"SELECT session_id, sum(events) FROM {node}.sessions_local "
                              f"WHERE project_id = {shards['project']} GROUP BY session_id ORDER BY session_id").result_rows
        counted = client.query(f"SELECT session_id, count() FROM {node}.events_local WHERE project_id = "
                               f"{shards['project']} AND session_id != '' GROUP BY session_id ORDER BY session_id").result_rows
        assert stored == counted, node
