"""Back-fill throughput (`nexus import`, `POST /v1/import`) next to the engine's own insert of the same rows.

Writes N Segment-shaped events (~540 bytes of NDJSON each: track and page calls with context, page URLs,
referrers, UTM tags, ~20,000 IPs and ~125 user agents, three properties; every row with a messageId, as
Segment's exports have them; timestamps of 2025) as NDJSON, Parquet and Arrow IPC files. Then, each on a
fresh embedded store (chDB and its Redis, as `nexus import` opens them), it imports each file with
`nexus.ingest.backfill.import_file` — what `nexus import` and `/v1/import` run — and reports events/s and
the CPU each event costs (this process: Python and the engine's threads; the Redis it started).

The ceiling is the engine alone storing the same rows: the events table the import builds, in blocks of
the writer's size (100,000 rows), inserted one after the other by the writer's own `json_insert` (each
project's JSON cast in an INSERT … SELECT) into a fresh store. With `--before DIR` (a copy of the code
before the bulk path, e.g. `git archive <commit> | tar -x -C DIR`), the same files are also imported by
that code, in a process of its own, in the same run.

Run: python benchmarks/import.py [--events N] [--formats ndjson,parquet,arrow] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
]
EVENTS = ["page", "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Signed Up"]
FORMATS = {"ndjson": "events.ndjson", "parquet": "events.parquet", "arrow": "events.arrow"}
BLOCK_ROWS = 100_000


class Rate(NamedTuple):
    events: int
    seconds: float
    cpu_us: float  # CPU per event: this process (Python and the engine's threads) and its Redis

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def events(n: int, seed: int = 1):
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    ips = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
           for _ in range(20_000)]
    for i in range(n):
        kind = rng.choice(EVENTS)
        event = {
            "type": "page" if kind == "page" else "track", "event": None if kind == "page" else kind,
            "messageId": f"m-{seed}-{i:09d}", "anonymousId": f"anon-{rng.randrange(200_000)}",
            "userId": f"user-{rng.randrange(100_000)}" if rng.random() < 0.6 else None,
            "timestamp": (start + timedelta(seconds=i * 15 + rng.randrange(15))).isoformat().replace("+00:00", "Z"),
            "context": {
                "ip": rng.choice(ips), "userAgent": rng.choice(AGENTS).format(v=rng.randrange(100, 125)),
                "page": {"url": f"https://shop.example.com/p/{rng.randrange(500)}?utm_source="
                                f"{rng.choice(['google', 'newsletter', 'x'])}",
                         "referrer": rng.choice(["https://www.google.com/", "", "https://t.co/abc"])},
                "library": {"name": "analytics.js", "version": "5.2.0"},
            },
            "properties": {"sku": f"SKU-{rng.randrange(5000)}", "price": round(rng.uniform(5, 200), 2), "currency": "USD"},
        }
        yield event


def write_files(n: int, directory: Path) -> None:
    """The same events as NDJSON (null fields left out), Parquet and an Arrow IPC file, 100,000 at a time."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    parquet = arrow = None
    with open(directory / FORMATS["ndjson"], "w") as ndjson:
        batch = []
        for event in events(n):
            ndjson.write(json.dumps({k: v for k, v in event.items() if v is not None}) + "\n")
            batch.append(event)
            if len(batch) == BLOCK_ROWS or len(batch) == n % BLOCK_ROWS and event["messageId"].endswith(f"{n - 1:09d}"):
                table = pa.Table.from_pylist(batch)
                table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                                         pa.array([datetime.fromisoformat(e["timestamp"]) for e in batch],
                                                  pa.timestamp("ms", tz="UTC")))
                if parquet is None:
                    parquet = pq.ParquetWriter(directory / FORMATS["parquet"], table.schema)
                    arrow = ipc.new_file(str(directory / FORMATS["arrow"]), table.schema)
                parquet.write_table(table)
                arrow.write_table(table)
                batch = []
    parquet.close()
    arrow.close()


def cpu_seconds(redis_pid: int | None = None) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = usage.ru_utime + usage.ru_stime
    if redis_pid:
        fields = Path(f"/proc/{redis_pid}/stat").read_text().rpartition(")")[2].split()
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def import_rates(directory: Path, formats: list[str]) -> dict[str, Rate]:
    """Each file imported by this process's `nexus` into a fresh embedded store."""
    from nexus.ingest.backfill import import_file
    from nexus.meta import projects
    from nexus.runtime import open_runtime
    from nexus.settings import load

    rates = {}
    for fmt in formats:
        with tempfile.TemporaryDirectory(prefix="nexus-import-bench-") as data_dir:
            with open_runtime(load({"NEXUS_DATA_DIR": data_dir, "NEXUS_LOG_LEVEL": "warning"})) as runtime:
                project_id = projects.create(runtime.clickhouse, "bench").project_id
                redis_pid = _redis_pid()
                started, cpu = time.perf_counter(), cpu_seconds(redis_pid)
                summary = import_file(runtime.ingest(), directory / FORMATS[fmt], project_id)
                elapsed = time.perf_counter() - started
                assert summary.error is None and summary.stored == summary.events, summary
                rates[fmt] = Rate(summary.stored, elapsed, (cpu_seconds(redis_pid) - cpu) / summary.stored * 1e6)
    return rates


def _redis_pid() -> int | None:
    """The embedded redis-server this process started (a child of ours), for its CPU."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rpartition(")")[2].split()
        if fields[1] == str(os.getpid()) and "redis" in text[text.index("(") + 1:text.rindex(")")]:
            return int(stat.parent.name)
    return None


def ceiling(directory: Path, n: int) -> Rate:
    """The engine alone storing the rows the import builds: json_insert of 100,000-row blocks."""
    from nexus.ingest import bulk
    from nexus.ingest.importer import read_rows
    from nexus.ingest.pipeline import Rules
    from nexus.store import json_insert
    from nexus.store.database import open_database

    now = datetime.now(timezone.utc)
    tables = [bulk.process(rows, 1, now, Rules(max_past=None, correct_skew=False)).table
              for rows in read_rows(directory / FORMATS["parquet"], 1, block_rows=BLOCK_ROWS)]
    with tempfile.TemporaryDirectory(prefix="nexus-import-ceiling-") as store:
        client = open_database(f"chdb://{store}/clickhouse")
        started, cpu = time.perf_counter(), cpu_seconds()
        for table in tables:
            json_insert.insert(client, "events", table)
        elapsed = time.perf_counter() - started
        rate = Rate(n, elapsed, (cpu_seconds() - cpu) / n * 1e6)
        client.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="ndjson,parquet,arrow")
    parser.add_argument("--before", type=Path, help="a copy of the code before the bulk path, imported in the same run")
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)  # import these files only, print JSON
    args = parser.parse_args()
    formats = args.formats.split(",")
    if args.files:
        print(json.dumps({fmt: rate._asdict() for fmt, rate in import_rates(args.files, formats).items()}))
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nexus-import-files-") as files:
        directory = Path(files)
        write_files(args.events, directory)
        engine = ceiling(directory, args.events)
        now = import_rates(directory, formats)
        before = {}
        if args.before:
            env = {**os.environ, "PYTHONPATH": str(args.before.resolve())}
            answer = subprocess.run([sys.executable, __file__, "--files", files, "--formats", args.formats],
                                    env=env, check=True, capture_output=True, text=True, cwd=args.before)
            before = {fmt: Rate(**rate) for fmt, rate in json.loads(answer.stdout.splitlines()[-1]).items()}
    load_after = os.getloadavg()
    print(f"{args.events:,} events per file; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} cores)")
    print(f"| {'path':<48} | {'events/s':>10} | {'vs ceiling':>10} | {'CPU µs/event':>12} |")
    print(f"|{'-' * 50}|{'-' * 12}|{'-' * 12}|{'-' * 14}|")
    rows = [("engine: json_insert of the same rows (ceiling)", engine)]
    rows += [(f"nexus import, {fmt}", rate) for fmt, rate in now.items()]
    rows += [(f"nexus import before the bulk path, {fmt}", rate) for fmt, rate in before.items()]
    for name, rate in rows:
        print(f"| {name:<48} | {rate.per_second:>10,.0f} | {rate.per_second / engine.per_second:>10.2f} | "
              f"{rate.cpu_us:>12.1f} |")


if __name__ == "__main__":
    main()
