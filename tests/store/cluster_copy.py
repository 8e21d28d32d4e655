"""`nexus copy` against a store in the cluster layout with real Distributed tables over two shards, in a chDB of its
own (run as a program: chDB allows one engine per process, and this one needs a cluster in its configuration).

The layout is created as tests/analyses/cluster_plan.py creates it; no shard answers (chDB is no server), so a
read or insert that goes through a Distributed table stops at the network, naming the shards — which is the proof
that it went there and not to this node's `_local` table. Prints one JSON object: the placement read from the
store, the tables a copy from it would export, the client setting the loader set, and how loading and verifying
stopped.
"""

from __future__ import annotations

import json
import sys

import msgspec

from nexus.store import placement, transfer
from tests.analyses.cluster_plan import cluster_store


def main() -> None:
    client, directory = cluster_store()
    found = placement.of(client)
    tables = transfer.copied_tables(client)
    staging = directory / "staging"
    staging.mkdir()
    plan = transfer.Plan(1, "copied", transfer.applied_migrations(client), tables,
                         {table: transfer.json_columns(client, table) for table in tables})
    (staging / "plan.json").write_bytes(msgspec.json.encode(plan))
    (staging / "exported.jsonl").write_bytes(msgspec.json.encode(transfer.Slice("events", "(202610)", 1, 0, "x.arrow")))
    report = {"cluster": found.cluster, "sharded": sorted(found.sharded), "copied": list(tables)}
    for step, run in (("load", lambda: transfer.load(client, staging, lambda _: None)),
                      ("verify", lambda: transfer.verify(client, staging, 1))):
        try:
            run()
            report[step] = "finished"
        except Exception as e:  # the engine's refusal is the answer
            report[step] = str(e)[:1000]
    report["foreground"] = client.get_client_setting("distributed_foreground_insert")
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
