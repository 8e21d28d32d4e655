"""How long erasing one person takes (nexus.store.erasure) on demo data, and where the time goes: deleting their
events (the floor: one ALTER DELETE rewriting the parts that hold them, which any erasure needs), their
identities and traits, their sessions, and rebuilding the rollup partitions — each measured inside the same
erasures, by timing nexus.store.rebuild's steps as the erasure calls them.

    .venv/bin/python benchmarks/erasure.py --events 1M,10M [--persons 3] [--work DIR]

Data is generated once per size into a folder of its own under --work (default: a temporary folder), and
reused by later runs given the same --work (each run erases other persons; the rollups stay consistent).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    parser.add_argument("--persons", type=int, default=3, help="Persons erased per size.")
    parser.add_argument("--work", type=Path, help="Where the stores are kept (default: a new temporary folder).")
    args = parser.parse_args()
    work: Path = args.work or Path(tempfile.mkdtemp(prefix="nexus-erasure-"))
    persons: int = args.persons
    rows = []
    for size in map(parse_size, args.events.split(",")):
        # chDB holds one data folder per process: every size lives in a database of its own in one folder.
        client = open_database(f"chdb://{work}/clickhouse?database=erasure_{size_label(size)}")
        project_id = demo_project(client, size)
        erased, events, steps = [], [], []
        for person in identified_persons(client, project_id, persons):
            with timed_steps() as step_seconds:
                started = time.perf_counter()
                record = erasure.erase(client, project_id, person, "benchmark")
                erased.append(time.perf_counter() - started)
            events.append(record.rows["events"])
            steps.append(step_seconds)
        medians = {step: statistics.median(s[step] for s in steps) for step in STEPS}
        rows.append((size_label(size), event_count(client, project_id), statistics.median(events),
                     statistics.median(erased), max(erased), medians))
        client.close()
    print(f"load average {load_average()}")
    print(f"{'events':>8} {'stored':>10} {'person events':>14} {'erase median':>13} {'erase max':>10} "
          + " ".join(f"{step:>14}" for step in STEPS))
    for label, stored, person_events, median, worst, medians in rows:
        print(f"{label:>8} {stored:>10,} {person_events:>14.0f} {median:>12.2f}s {worst:>9.2f}s "
              + " ".join(f"{medians[step]:>13.2f}s" for step in STEPS))


# The steps timed, by what they work on (medians per size; "rollups" is both tables, every touched month).
STEPS = ["events", "identities+persons", "sessions", "rollups"]


@contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Seconds spent in each step of the erasures run inside, by wrapping nexus.store.rebuild's functions that
    nexus.store.erasure calls (a benchmark's instrument, undone on exit)."""
    spent = dict.fromkeys(STEPS, 0.0)
    originals = {name: getattr(rebuild, name) for name in ("delete_rows", "sessions", "rollup_month")}

    def timed(name: str, step_of: Callable[[tuple], str | None]) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                if (step := step_of(args)) is not None:
                    spent[step] += time.perf_counter() - started
        return run

    rebuild.delete_rows = timed("delete_rows", lambda a: {"events": "events", "identities": "identities+persons",
                                                          "persons": "identities+persons"}.get(a[1]))
    rebuild.sessions = timed("sessions", lambda a: "sessions")
    rebuild.rollup_month = timed("rollup_month", lambda a: "rollups")
    try:
        yield spent
    finally:
        for name, original in originals.items():
            setattr(rebuild, name, original)


def demo_project(client: Client, size: int) -> int:
    found = client.query("SELECT project_id FROM projects FINAL WHERE name = 'erasure-bench'").result_rows
    project_id = found[0][0] if found else projects.create(client, "erasure-bench").project_id
    if not event_count(client, project_id):
        load(client, project_id, size)
    return project_id


def identified_persons(client: Client, project_id: int, count: int) -> list[str]:
    """Persons with several linked ids and some events, picked in a fixed pseudo-random order."""
    return [row[0] for row in client.query(
        "SELECT toString(person_id) AS person FROM identities FINAL WHERE project_id = {p:UInt32} "
        "AND distinct_id IN (SELECT DISTINCT distinct_id FROM events WHERE project_id = {p:UInt32}) "
        "GROUP BY person HAVING count() >= 2 ORDER BY cityHash64(person) LIMIT {n:UInt32}",
        parameters={"p": project_id, "n": count}).result_rows]


if __name__ == "__main__":
    main()
