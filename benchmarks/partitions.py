"""What partitioning by project costs (migration 008): the same events written to and read from the
layout before it (partitions by month, parts shared by every project) and the layout after it (by
project and month), in the same run on the same rows.

Many small projects are the case that costs: one insert block of the group-commit writer holds events of
every project that sent at that moment, and writes one part per partition it touches. The run writes
`--projects` projects (one large, the others small) in blocks that each mix all of them, as the writer
does, then lets the engine merge (OPTIMIZE FINAL), and times one small project's and the large
project's questions, fresh parts and merged.

Run: python benchmarks/partitions.py [--projects 10,30,300] [--events 1000000] [--block 50000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import pyarrow as pa

from nexus.store.database import open_database

LAYOUTS = {
    "by month (before)": "toYYYYMM(ts)",
    "by project and month": "(project_id, toYYYYMM(ts))",
}

QUESTIONS = {
    "events per name, 28 days": "SELECT event, count(), uniq(distinct_id) FROM {table} WHERE project_id = {{p:UInt32}} "
                                "AND ts >= {{start:DateTime64(3)}} GROUP BY event",
    "one person's timeline": "SELECT ts, event FROM {table} WHERE project_id = {{p:UInt32}} AND "
                             "distinct_id = {{who:String}} ORDER BY ts DESC LIMIT 100",
}


def rows(projects: int, events: int, seed: int = 7) -> pa.Table:
    """Half the events in project 1, the rest spread over the small projects, over two months."""
    rng = np.random.default_rng(seed)
    large = events // 2
    project = np.concatenate([np.ones(large, dtype=np.uint32),
                              rng.integers(2, projects + 1, events - large, dtype=np.uint32)])
    rng.shuffle(project)
    start = np.datetime64("2026-09-01T00:00:00", "ms")
    ts = start + rng.integers(0, 60 * 86_400_000, events).astype("timedelta64[ms]")
    person = rng.integers(0, 5_000, events)
    names = np.array(["page_view", "signup", "purchase", "search", "add_to_cart"])
    return pa.table({
        "project_id": project,
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "event": names[rng.integers(0, len(names), events)],
        "distinct_id": np.char.add("u", person.astype(str)),
        "message_id": np.char.add("m", np.arange(events).astype(str)),
    })


def timed(function, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", default="10,30,300", help="project counts to run, comma-separated")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=50_000, help="rows per insert, as the writer's blocks")
    args = parser.parse_args()
    client = open_database(f"chdb://{tempfile.mkdtemp()}/clickhouse?database=bench")
    print(f"{args.events:,} events over two months, half in one large project and half over the small ones, "
          f"inserted in blocks of {args.block:,} rows that each mix every project\n")
    print("| projects | layout | insert rows/s | parts written | parts after merges | "
          + " | ".join(f"small project: {q} (ms, fresh / merged)" for q in QUESTIONS)
          + " | large project: events per name (ms, merged) |")
    print("| --- " * (6 + len(QUESTIONS)) + "|")
    for projects in (int(n) for n in args.projects.split(",")):
        data = rows(projects, args.events)
        small = 2
        who = data.filter(pa.compute.equal(data["project_id"], small))["distinct_id"][0].as_py()
        parameters = {"p": small, "start": "2026-10-03 00:00:00", "who": who}
        for name, partition in LAYOUTS.items():
            table = f"events_{projects}_" + ("by_month" if "before" in name else "by_project")
            print(f"| {projects:,} | {name} | " + measure(client, table, partition, data, args.block, parameters))


def measure(client, table: str, partition: str, data: pa.Table, block: int, parameters: dict) -> str:
    """Insert in blocks with merges stopped (to count the parts written), time the questions, merge, time
    them again: the rest of a table row."""
    client.command(f"CREATE TABLE {table} AS events ENGINE = MergeTree PARTITION BY {partition} "
                   "ORDER BY (project_id, distinct_id, ts)")
    client.command(f"SYSTEM STOP MERGES {table}")
    started = time.perf_counter()
    for offset in range(0, data.num_rows, block):
        client.insert_arrow(table, data.slice(offset, block))
    rate = data.num_rows / (time.perf_counter() - started)
    parts_sql = f"SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = '{table}' AND active"
    parts = client.query(parts_sql).result_rows[0][0]
    fresh = [timed(lambda q=q: client.query(q.format(table=table), parameters=parameters)) for q in QUESTIONS.values()]
    client.command(f"SYSTEM START MERGES {table}")
    client.command(f"OPTIMIZE TABLE {table} FINAL")
    merged_parts = client.query(parts_sql).result_rows[0][0]
    merged = [timed(lambda q=q: client.query(q.format(table=table), parameters=parameters)) for q in QUESTIONS.values()]
    large = timed(lambda: client.query(QUESTIONS["events per name, 28 days"].format(table=table),
                                       parameters={**parameters, "p": 1}))
    cells = " | ".join(f"{f * 1000:.1f} / {m * 1000:.1f}" for f, m in zip(fresh, merged))
    return f"{rate:,.0f} | {parts:,} | {merged_parts:,} | {cells} | {large * 1000:.1f} |"

if __name__ == "__main__":
    main()
