"""The events insert: the writer's (nexus.store.json_insert) next to the designs it was chosen from, in one run.

Inserts the same realistic rows (the server's columns of benchmarks/ingest.py's Segment batches, 100,000-row
blocks of 500-event requests, one Arrow chunk per request as the writer hands them over) into the events
table of a fresh chDB store, with merges stopped so that only the inserts are timed, taking turns for
--rounds rounds; prints the median rows/s and CPU µs per row of each (this process: Python and the
engine's threads). The designs:

- insert_arrow: clickhouse-connect's Arrow insert, as before; fast, but Arrow's input format infers a type
  per path for the whole block, and ignores the settings that turn that off (it stores one project's
  "2024-13-45" as 1970-01-01 when another's "2024-01-02" shares the block);
- json_insert, Python(): the writer's insert on chDB; each project's rows one chunk, cast to JSON in an
  INSERT … SELECT from the Arrow table in place, under JSON_INPUT_SETTINGS;
- json_insert, file(): the same from a temporary Arrow stream file (chDB's route when it cannot read the
  table in place; a server reads the same stream from the request body);
- insert with settings: clickhouse-connect's Native insert of the same rows with JSON_INPUT_SETTINGS, from
  Python lists (right about dates, but every project's rows share one chunk).

Run: python benchmarks/json_insert.py [--projects P] [--rounds R]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from ingest import columns_of, template

from nexus.ingest.columns import events_table
from nexus.store import json_insert
from nexus.store.database import open_database

ROWS, REQUEST = 100_000, 500


def block(projects: int) -> pa.Table:
    """100,000 event rows, one chunk per 500-row request, the requests' projects taking turns."""
    columns = columns_of(template(0).replace(b"REQNUMBER", b"x"))
    rows = {name: values * (ROWS // len(values)) for name, values in columns.items()}
    rows["message_id"] = [f"{i}-{m}" for i, m in enumerate(rows["message_id"])]
    table = events_table(rows)
    return pa.concat_tables(
        pa.table(table.slice(start, REQUEST).columns, schema=table.schema)
        .set_column(0, "project_id", pa.array([1 + start // REQUEST % projects] * REQUEST, pa.uint32()))
        for start in range(0, table.num_rows, REQUEST))


def via_file(client: Client, table: pa.Table) -> None:
    in_place, json_insert._python_objects = json_insert._python_objects, False
    try:
        json_insert.insert(client, "events", table)
    finally:
        json_insert._python_objects = in_place


def native(client: Client, table: pa.Table) -> None:
    client.insert("events", [column.to_pylist() for column in table.columns], column_names=table.column_names,
                  column_oriented=True, settings=json_insert.JSON_INPUT_SETTINGS)


DESIGNS: dict[str, Callable[[Client, pa.Table], None]] = {
    "insert_arrow (before: wrong values)": lambda client, table: client.insert_arrow("events", table),
    "json_insert, Python() (the writer's)": lambda client, table: json_insert.insert(client, "events", table),
    "json_insert, file()": via_file,
    "Native insert with the settings": native,
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=1, help="projects taking turns in a block's requests")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    client = open_database(f"chdb://{tempfile.mkdtemp(prefix='nexus-json-insert-')}/clickhouse")
    for table in ("events", "events_hourly", "events_daily", "sessions"):
        client.command(f"SYSTEM STOP MERGES {table}")
    table = block(args.projects)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in DESIGNS}
    for insert in DESIGNS.values():
        insert(client, table)  # warm up
    for _ in range(args.rounds):
        for name, insert in DESIGNS.items():
            started, cpu = time.perf_counter(), cpu_seconds()
            insert(client, table)
            times[name].append((table.num_rows / (time.perf_counter() - started),
                                (cpu_seconds() - cpu) / table.num_rows * 1e6))
    print(f"{ROWS:,}-row blocks of {REQUEST}-event requests from {args.projects} project(s), median of {args.rounds}")
    print(f"| {'design':<38} | {'rows/s':>9} | {'CPU µs/row':>10} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 12}|")
    for name, measured in times.items():
        print(f"| {name:<38} | {statistics.median(r for r, _ in measured):>9,.0f} | "
              f"{statistics.median(c for _, c in measured):>10.1f} |")


if __name__ == "__main__":
    main()
