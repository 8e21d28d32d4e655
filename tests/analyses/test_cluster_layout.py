"""Every analysis against the cluster layout (nexus.store.cluster), on the one engine that runs here.

The layout's DDL is run on chDB as a single node would hold it: ON CLUSTER dropped, each Replicated engine as its
plain counterpart, each Distributed table as a Merge table over its local table (reads pass through to the local
table as a Distributed table's pass to each shard's). The demo project's events are inserted into `events_local`,
so the rollups are filled by the layout's own views, and every other table is copied as is. Each kind of analysis
then answers exactly as on the single-node schema — its SQL names only tables the layout has, with the columns
the layout gives them — and no analysis names a `_local` table, which would read one shard only. Every SQL
snapshot case is also planned against real Distributed tables over two shards (tests/analyses/cluster_plan.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from clickhouse_connect.driver.client import Client

from nexus.analyses import registry
from nexus.store import cluster
from tests.analyses.example_cohort import save_example_cohort
from tests.analyses.test_registry import BODIES
from tests.analyses.test_sql_snapshots import CASES
from tests.conftest import DEMO_END

SIMULATED = "t_cluster_layout"
LAYOUT = cluster.layout("nexus")
ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "clickhouse/cluster/users.xml"
CLUSTER_PROFILE = {setting.tag: setting.text for setting in ET.parse(PROFILE).getroot().find("profiles/default")}


def single_node(statement: str) -> str:
    """A layout statement as one chDB can run it."""
    statement = statement.replace(" ON CLUSTER `nexus`", "")
    statement = re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?", r"ENGINE = \1(", statement)
    return re.sub(r"ENGINE = Distributed\(`nexus`, currentDatabase\(\), (\w+)(?:, .*)?\)(?=\n|$)",
                  r"ENGINE = Merge(currentDatabase(), '^\1$')", statement)


def rounded(value: Any) -> Any:
    """Floats to 12 significant digits: averages over threads add in varying order, on one server too."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


@contextmanager
def database(client: Client, name: str) -> Iterator[None]:
    """Run the analyses of the block on database `name` (the client's unqualified table names resolve there)."""
    previous = client.database
    client.database = name
    try:
        yield
    finally:
        client.database = previous


@pytest.fixture(scope="module")
def simulated(client: Client, demo: int) -> str:
    """The demo project in the layout's tables."""
    save_example_cohort(client, demo)
    source = client.database
    client.command(f"DROP DATABASE IF EXISTS {SIMULATED}")
    client.command(f"CREATE DATABASE {SIMULATED}")
    with database(client, SIMULATED):
        for statement in LAYOUT.statements:
            client.command(single_node(statement))
    client.command(f"INSERT INTO {SIMULATED}.events_local SELECT * FROM {source}.events WHERE project_id = {demo}")
    for table in LAYOUT.everywhere:
        if table != "schema_migrations":
            client.command(f"INSERT INTO {SIMULATED}.{table} SELECT * FROM {source}.{table} WHERE project_id = {demo}")
    return SIMULATED


def test_the_layout_runs_on_one_node_and_its_views_fill_the_local_rollups(client, demo, simulated):
    counts = {}
    for table in ("events", "events_hourly", "sessions"):
        counts[table] = client.query(f"SELECT count() FROM {simulated}.{table}_local").result_rows[0][0]
        # Read through the table standing for the Distributed one.
        assert client.query(f"SELECT count() FROM {simulated}.{table}").result_rows[0][0] == counts[table]
    assert all(counts.values()), counts
    rollup = f"SELECT sum(events) FROM {{db}}.events_hourly WHERE project_id = {demo}"
    assert (client.query(rollup.format(db=simulated)).result_rows
            == client.query(rollup.format(db=client.database)).result_rows)


@pytest.mark.parametrize("kind", BODIES)
def test_each_kind_answers_on_the_layout_as_on_one_server(client, demo, simulated, kind):
    request = registry.decode(kind, BODIES[kind])
    expected = registry.run(client, demo, kind, request, now=DEMO_END)
    with database(client, simulated):
        answer = registry.run(client, demo, kind, request, now=DEMO_END)
        sql, _ = registry.explain(client, demo, kind, request, now=DEMO_END)
    assert rounded(msgspec.to_builtins(answer)) == rounded(msgspec.to_builtins(expected))
    named = re.findall(r"\b(?:FROM|(?<!ARRAY )JOIN)\s+`?(\w+)`?(?!\s*\()", sql)
    common_tables = set(re.findall(r"\b(\w+)\s+AS\s+\(", sql))  # WITH name AS (SELECT ...)
    tables = set(named) - common_tables
    assert tables <= set(LAYOUT.sharded) | set(LAYOUT.everywhere), tables
    assert not any(name.endswith(cluster.LOCAL_SUFFIX) for name in tables)


def test_every_case_plans_on_real_distributed_tables_with_each_shard_s_part_valid_alone():
    """tests/analyses/cluster_plan.py plans every SQL snapshot case against Distributed tables over two shards."""
    done = subprocess.run([sys.executable, "-m", "tests.analyses.cluster_plan"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    plans = json.loads(done.stdout)
    assert set(plans) == set(CASES) and {case.split("__")[0] for case in plans} == set(registry.ANALYSES)
    assert {case: how for case, how in plans.items() if how not in ("local", "global", "initiator")} == {}
    # A cohort's members are read from events inside a query over events: GLOBAL, as the cluster profile says.
    assert {case for case, how in plans.items() if how == "global"} == {
        case for case, body in CASES.items() if '"source": "cohort"' in json.dumps(body)}
    assert CLUSTER_PROFILE["distributed_product_mode"] == "global"
