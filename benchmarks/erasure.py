"""How long erasing one person takes (nexus.store.erasure) on demo data, beside its floor measured in the same
run: a bare ALTER DELETE of another person's events alone (no identities, sessions, rollups or record).

    .venv/bin/python benchmarks/erasure.py --events 1M,10M [--persons 3] [--work DIR]

Data is generated once per size into a folder of its own under --work (default: a temporary folder), and
reused by later runs given the same --work.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from clickhouse_connect.driver.client import Client
from sizes import (  # benchmarks/sizes.py (benchmarks run as scripts from this folder)
    load_average,
    parse_size,
    size_label,
)

from nexus.demo.load import event_count, load
from nexus.meta import projects
from nexus.store import erasure, rebuild
from nexus.store.database import open_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="1M", help="Sizes, comma-separated (default 1M).")
    parser.add_argument("--persons", type=int, default=3, help="Persons erased per size (and as many deleted bare).")
    parser.add_argument("--work", type=Path, help="Where the stores are kept (default: a new temporary folder).")
    args = parser.parse_args()
    work: Path = args.work or Path(tempfile.mkdtemp(prefix="nexus-erasure-"))
    persons: int = args.persons
    rows = []
    for size in map(parse_size, args.events.split(",")):
        # chDB holds one data folder per process: every size lives in a database of its own in one folder.
        client = open_database(f"chdb://{work}/clickhouse?database=erasure_{size_label(size)}")
        project_id = demo_project(client, size)
        candidates = identified_persons(client, project_id, 2 * persons)
        erased, events = [], []
        for person in candidates[:persons]:
            started = time.perf_counter()
            record = erasure.erase(client, project_id, person, "benchmark")
            erased.append(time.perf_counter() - started)
            events.append(record.rows["events"])
        bare = [bare_delete(client, project_id, person) for person in candidates[persons:]]
        rows.append((size_label(size), event_count(client, project_id), statistics.median(events),
                     statistics.median(erased), max(erased), statistics.median(bare)))
        client.close()
    print(f"load average {load_average()}")
    print(f"{'events':>8} {'stored':>10} {'person events':>14} {'erase median':>13} {'erase max':>10} "
          f"{'bare delete':>12}")
    for label, stored, person_events, median, worst, floor in rows:
        print(f"{label:>8} {stored:>10,} {person_events:>14.0f} {median:>12.2f}s {worst:>9.2f}s {floor:>11.2f}s")


def demo_project(client: Client, size: int) -> int:
    found = client.query("SELECT project_id FROM projects FINAL WHERE name = 'erasure-bench'").result_rows
    project_id = found[0][0] if found else projects.create(client, "erasure-bench").project_id
    if not event_count(client, project_id):
        load(client, project_id, size)
    return project_id


def identified_persons(client: Client, project_id: int, count: int) -> list[str]:
    """Persons with several linked ids and events (an earlier run's bare deletes left some with none), picked
    in a fixed pseudo-random order."""
    return [row[0] for row in client.query(
        "SELECT toString(person_id) AS person FROM identities FINAL WHERE project_id = {p:UInt32} "
        "AND distinct_id IN (SELECT DISTINCT distinct_id FROM events WHERE project_id = {p:UInt32}) "
        "GROUP BY person HAVING count() >= 2 ORDER BY cityHash64(person) LIMIT {n:UInt32}",
        parameters={"p": project_id, "n": count}).result_rows]


def bare_delete(client: Client, project_id: int, person: str) -> float:
    ids = erasure.find(client, project_id, person).distinct_ids
    started = time.perf_counter()
    rebuild.delete_rows(client, "events", "project_id = {p:UInt32} AND distinct_id IN {ids:Array(String)}",
                        {"p": project_id, "ids": ids})
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
