"""Where a statement that changes stored rows runs: on the one server's tables, or on the cluster layout's
(nexus.store.cluster) — the one place erasure and the rollup rebuild get their targets from.

Reads need nothing of this: a query names `events`, and on a cluster that Distributed table reads every shard.
Changes do, because a Distributed table only forwards reads and inserts:

- a mutation (`ALTER … DELETE`) or a partition change (`REPLACE` / `DROP PARTITION`) is refused by a Distributed
  table, so on a cluster it addresses a sharded table's `<name>_local ON CLUSTER` (each shard changes its own
  rows; a Replicated table runs it on one replica of the shard and replicates it) and any other table
  `<name> ON CLUSTER`;
- a staging table is created on every node: for a sharded table, `<name>_local` per shard (Replicated in the
  shard's group, so whichever replica takes the partition swap holds the rows) under a Distributed `<name>`;
  for ids every shard's statements read, one Replicated table on every node — and after it is written,
  `SYSTEM SYNC REPLICA … ON CLUSTER` waits until every replica has the rows, before any shard reads them;
- an `INSERT … SELECT` from one sharded table into another (a rollup recomputed from events) cannot run on the
  node that receives it: that node holds its own shard's events only, and a rollup's Distributed table takes no
  insert (it has no sharding key: a shard's rollup rows are the aggregate of that shard's events). It runs on
  every shard instead, from the shard's own rows — `parallel_distributed_insert_select = 2`: ClickHouse sends
  it to one replica of each shard with both Distributed names replaced by their local tables (the first table
  of the SELECT; an alias it had is kept) — which is what the views do when events arrive.

On one server (`cluster` empty) every statement is the text the single-node code always ran.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.store.cluster import (
    LOCAL_SUFFIX,
    Table,
    distributed_table,
    on_cluster_clause,
    parse_schema,
    replicated_table,
)
from nexus.store.sql_files import load

_DISTRIBUTED = re.compile(r"Distributed\('([^']+)'")  # system.tables.engine_full: Distributed('cluster', 'db', …)


class Staging(NamedTuple):
    """A table that exists while a change is assembled: the statements that make, empty, settle and drop it."""

    name: str  # what inserts and reads name
    local: str  # what a partition swap takes its parts from: the name itself on one server
    create: list[str]
    truncate: str
    sync: list[str]  # run after writing it, before other statements read it (nothing on one server)
    drop: list[str]


class Placement(msgspec.Struct, frozen=True):
    """One server (`cluster` empty), or the cluster `cluster` whose Distributed tables are `sharded`."""

    cluster: str = ""
    sharded: frozenset[str] = frozenset()

    @property
    def on(self) -> str:
        """The ON CLUSTER clause (with a leading space) on a cluster, nothing on one server."""
        return f" {on_cluster_clause(self.cluster)}" if self.cluster else ""

    def target(self, table: str) -> str:
        """What a mutation or partition change of `table` names: `<table>_local ON CLUSTER` for a sharded table."""
        return (table + LOCAL_SUFFIX if self.cluster and table in self.sharded else table) + self.on

    def whole(self, table: str) -> str:
        """The name that reads and inserts into every shard of `table`: a sharded table's Distributed one for its
        `<name>_local`, any other table itself."""
        logical = table.removesuffix(LOCAL_SUFFIX)
        return logical if self.cluster and logical != table and logical in self.sharded else table

    @property
    def per_shard(self) -> dict[str, Any]:
        """Settings for an INSERT … SELECT between sharded tables: on a cluster, run on every shard from its own rows."""
        return {"parallel_distributed_insert_select": 2} if self.cluster else {}

    @property
    def replace(self) -> dict[str, Any]:
        """Settings for REPLACE PARTITION: on a cluster a shard whose events of the month were all the erased
        person's has an empty staging partition, and its rollup partition must become empty too."""
        return {"allow_replace_partition_from_empty_source": 1} if self.cluster else {}

    def staging_like(self, name: str, table: str) -> Staging:
        """A staging table of the sharded `table`'s structure (same partitioning and order: a partition swap
        needs both)."""
        if not self.cluster:
            return Staging(name, name, [f"CREATE TABLE {name} AS {table}"], f"TRUNCATE TABLE {name}", [],
                           [f"DROP TABLE IF EXISTS {name}"])
        if table not in self.sharded:
            raise ValueError(f"{table} is not sharded: its staging table would be one per node")
        shape = msgspec.structs.replace(_schema_tables()[table], name=name)
        on = on_cluster_clause(self.cluster)
        local = name + LOCAL_SUFFIX
        return Staging(name, local, [replicated_table(shape, on, local=True), distributed_table(shape, on, self.cluster)],
                       f"TRUNCATE TABLE {local} {on}", [f"SYSTEM SYNC REPLICA {on} {local}"],
                       [f"DROP TABLE IF EXISTS {n} {on} SYNC" for n in (name, local)])

    def staging_everywhere(self, name: str, columns: str, clauses: str) -> Staging:
        """A MergeTree staging table (`columns` and the clauses after the engine) every node holds whole."""
        if not self.cluster:
            return Staging(name, name, [f"CREATE TABLE {name} ({columns}) ENGINE = MergeTree {clauses}"],
                           f"TRUNCATE TABLE {name}", [], [f"DROP TABLE IF EXISTS {name} SYNC"])
        on = on_cluster_clause(self.cluster)
        return Staging(name, name, [replicated_table(Table(name, columns, "MergeTree", "", clauses), on, local=False)],
                       f"TRUNCATE TABLE {name} {on}", [f"SYSTEM SYNC REPLICA {on} {name}"],
                       [f"DROP TABLE IF EXISTS {name} {on} SYNC"])


ONE_SERVER = Placement()


def of(client: Client) -> Placement:
    """The store's placement, read from its tables: a database `nexus migrate` made on a cluster has the layout's
    Distributed tables, so every client of the store (API, CLI, dashboard, jobs) finds the same answer, whatever
    its own settings say."""
    rows = client.query("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
                        "AND engine = 'Distributed'").result_rows
    if not rows:
        return ONE_SERVER
    clusters = {match[1] for _, engine in rows if (match := _DISTRIBUTED.match(engine))}
    if len(clusters) != 1:
        raise ValueError(f"the database's Distributed tables name clusters {sorted(clusters)}: one is expected")
    return Placement(clusters.pop(), frozenset(name for name, _ in rows))


@functools.cache
def _schema_tables() -> dict[str, Table]:
    return {table.name: table for table in parse_schema(load("schema.sql"))[0]}
