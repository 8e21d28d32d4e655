"""Disk per event: demo events written into a fresh embedded store, every table merged (OPTIMIZE FINAL), then the
bytes on disk of each table per stored event, beside the same data uncompressed (the ceiling compression beats).
docs/deployment.md sizes stores from it ("disk per billion events" is this, multiplied).

Run: python benchmarks/disk.py [--events 1M]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone

from sizes import load_average, parse_size  # benchmarks/sizes.py (benchmarks run as scripts from this folder)
from nexus.demo.load import load
from nexus.meta import projects
from nexus.store.database import open_database

END = datetime(2026, 11, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1M", help="demo events to write (200k, 1M, ...)")
    events = parse_size(parser.parse_args().events)
    with tempfile.TemporaryDirectory() as directory:
        client = open_database(f"chdb://{directory}")
        project = projects.create(client, "disk")
        load(client, project.project_id, events, seed=7, end=END)
        tables = client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                              "AND engine LIKE '%MergeTree'").result_rows
        for (name,) in tables:
            client.command(f"OPTIMIZE TABLE `{name}` FINAL")  # names from system.tables
        rows = client.query(
            "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
            "WHERE database = currentDatabase() AND active GROUP BY table HAVING sum(rows) > 100 ORDER BY 3 DESC"
        ).result_rows
    print(f"{events:,} demo events, merged (load average {load_average()})")
    print("| table | rows | on disk, MB | bytes per event | uncompressed bytes per event |")
    print("| --- | --- | --- | --- | --- |")
    for table, count, disk, uncompressed in rows:
        print(f"| {table} | {count:,} | {disk / 1e6:.2f} | {disk / events:.1f} | {uncompressed / events:.1f} |")
    total, uncompressed_total = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"| all | | {total / 1e6:.2f} | {total / events:.1f} | {uncompressed_total / events:.1f} |")


if __name__ == "__main__":
    main()
