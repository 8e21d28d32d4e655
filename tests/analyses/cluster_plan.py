"""Plans every analysis kind's SQL against the cluster layout's real Distributed tables, in a chDB of its own
(run as a program: chDB allows one engine per process, and this one needs a cluster in its configuration).

The engine is given a cluster of two shards in `remote_servers`; the layout's Distributed tables and views are
created as rendered, its Replicated tables as their plain counterparts (no Keeper runs here). The metadata an
analysis reads while it builds its SQL (the project, the example cohort) is written into the layout's tables, then
each kind's SQL is planned (`EXPLAIN PLAN`, which reads no shard) with `distributed_product_mode = 'deny'`:

- planned: the query reads Distributed tables at one level only, joined with tables every node holds whole, so
  each shard's part is valid on its own: `local`;
- refused as "Double-distributed": it reads events inside a query over events (a cohort's members); planned
  again under `global` (the cluster profile's mode: the inner read runs once over every shard and is sent to
  each), which must pass the analysis — planned, or stopped only on reaching for a shard: `global`;
- reaching for a shard while planning: a scalar subquery over Distributed tables, which the node that received
  the query runs over every shard first and sends to each as a constant: `initiator`;
- anything else (an unknown table or column, a type the Distributed table does not have) is printed as the error.

Every case of the SQL snapshots (tests/analyses/test_sql_snapshots.py: each kind, and the variants that take
other paths through the code) is planned. Prints one JSON object: case → "local", "global", "initiator" or the
error.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from nexus.analyses import registry
from nexus.meta import projects
from nexus.store import cluster, migrations
from tests.analyses.example_cohort import save_example_cohort
from tests.analyses.test_sql_snapshots import CASES, NOW, ZONE

CLUSTER = "nexus"
CONFIG = f"""<clickhouse><remote_servers><{CLUSTER}>
<shard><replica><host>localhost</host><port>9000</port></replica></shard>
<shard><replica><host>localhost</host><port>9000</port></replica></shard>
</{CLUSTER}></remote_servers></clickhouse>"""
UNREACHABLE = ("Code: 279", "Code: 210")  # all connection tries failed / connection refused


def plain_replicas(statement: str) -> str:
    """The layout's statement for one engine without Keeper: ON CLUSTER dropped, Replicated engines plain."""
    statement = statement.replace(f" ON CLUSTER `{CLUSTER}`", "")
    return re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?", r"ENGINE = \1(", statement)


def cluster_store() -> tuple[Client, Path]:
    """A chDB in a new directory whose config declares CLUSTER, with the cluster layout's tables (replicas
    plain): its Distributed tables are real, their shards unreachable. The client and the directory."""
    directory = Path(tempfile.mkdtemp())
    (directory / "config.xml").write_text(CONFIG)
    client = clickhouse_connect.get_client(dsn=f"chdb://{directory / 'data'}",
                                           chdb_options={"config-file": str(directory / "config.xml")})
    migrations.use_database(client, "nexus")
    for statement in cluster.layout(CLUSTER).statements:
        client.command(plain_replicas(statement))
    return client, directory


def main() -> None:
    client, _ = cluster_store()
    project = projects.create(client, "plans", ZONE).project_id
    save_example_cohort(client, project)
    plans = {}
    for case, body in CASES.items():
        kind = case.split("__")[0]
        sql, params = registry.explain(client, project, kind, registry.decode(kind, body), now=NOW)
        plans[case] = plan(client, sql, params)
    json.dump(plans, sys.stdout)


def plan(client: Client, sql: str, params: dict[str, Any]) -> str:
    try:
        client.query(f"EXPLAIN PLAN {sql}", parameters=params, settings={"distributed_product_mode": "deny"})
        return "local"
    except Exception as e:  # the engine's refusal is the answer
        if any(code in str(e) for code in UNREACHABLE):
            return "initiator"  # a scalar subquery over the shards, run while planning, its value sent to each
        if "Double-distributed" not in str(e):
            return str(e)[:500]
    try:  # planned, or stopped only on reaching for a shard: either way past the engine's analysis
        client.query(f"EXPLAIN PLAN {sql}", parameters=params, settings={"distributed_product_mode": "global"})
        return "global"
    except Exception as e:
        return "global" if any(code in str(e) for code in UNREACHABLE) else str(e)[:500]


if __name__ == "__main__":
    main()
