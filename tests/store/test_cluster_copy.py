"""`nexus copy` and a store in the cluster layout: it copies tables under the names that reach every shard, and
loads and verifies through them — run against real Distributed tables over two shards (tests/store/cluster_copy.py).

No shard answers in chDB, so the copy cannot finish here: what is shown is where each step goes. Reading the
cluster-shaped store finds the layout, a copy from it exports `events` (not a node's `events_local`, nor the rollups
its views fill), and loading into it and verifying it both reach for the shards, as only the Distributed tables
do (this node's `events_local` would have answered). The embedded copy, start to end: tests/test_cli_operations.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nexus.store import cluster
from tests.analyses.cluster_plan import UNREACHABLE

ROOT = Path(__file__).resolve().parents[2]


def test_a_copy_reads_loads_and_verifies_a_cluster_through_its_distributed_tables():
    done = subprocess.run([sys.executable, "-m", "tests.store.cluster_copy"], check=False, capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    layout = cluster.layout("nexus")
    assert (report["cluster"], report["sharded"]) == ("nexus", layout.sharded)
    assert "events" in report["copied"] and report["copied"][-1] == "projects"
    assert not [t for t in report["copied"] if t.endswith(cluster.LOCAL_SUFFIX) or t in layout.sharded and t != "events"]
    assert set(report["copied"]) - {"events"} <= set(layout.everywhere)
    for step in ("load", "verify"):
        assert any(code in report[step] for code in UNREACHABLE), report[step]
    # An insert returns once every shard has its part, so the copy's journal records rows that are stored.
    assert report["foreground"] == "1"
