"""Ad-hoc SQL streaming throughput: 10M rows through POST /v1/query as Arrow and as Parquet, next to the
engine's own `query_arrow` of the same query in the same run, with the server's peak RSS.

Prepares a data dir with a demo project and a read key (`nexus project create`, `nexus demo`, `nexus key
create`), measures the engine first in a child process (a chDB data dir belongs to one process), then
starts `nexus serve --port 0` on the same dir and streams the query through HTTP, reading the Arrow
stream with pyarrow as a client would. The server's peak RSS is read after a 1M-row run and again after
the 10M-row runs: bounded streaming means it does not grow with the result.

Run: python benchmarks/query_stream.py [--events 10000000] [--data-dir DIR (kept, reused)]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from serving import served_url  # benchmarks/serving.py (benchmarks run as scripts from this folder)

QUERY = ("SELECT ts, event, distinct_id, session_id, url, path, referrer_domain, country, browser, os, device_type "
         "FROM events")


def nexus(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "NEXUS_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "nexus", *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def prepare(data_dir: Path, events: int) -> str:
    """A demo project of `events` events and a read key, made once per data dir."""
    state = data_dir / "query-bench.json"
    if state.exists() and json.loads(state.read_text())["events"] == events:
        return json.loads(state.read_text())["key"]
    nexus(data_dir, "project", "create", "bench")
    started = time.perf_counter()
    nexus(data_dir, "demo", "--events", str(events), "--project", "bench")
    print(f"loaded {events:,} demo events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    key = nexus(data_dir, "key", "create", "--project", "bench", "--scope", "read")
    state.write_text(json.dumps({"events": events, "key": key}))
    return key


def engine_phase(data_dir: Path) -> None:
    """In a child process: the engine's query_arrow of QUERY (whole result in memory), then the same
    query through the sandbox's own stream without HTTP; prints JSON."""
    import resource

    from nexus.adhoc.sandbox import QueryService
    from nexus.meta import projects
    from nexus.store.client import parse_url
    from nexus.store.database import open_database

    url = f"chdb://{data_dir}/clickhouse"
    client = open_database(url)
    project_id = projects.get(client, "bench").project_id
    scoped = QUERY + f" WHERE project_id = {project_id}"
    started = time.perf_counter()
    table = client.query_arrow(scoped)
    arrow_seconds = time.perf_counter() - started
    result = {"rows": table.num_rows, "bytes": table.nbytes, "seconds": arrow_seconds}
    del table
    service = QueryService(parse_url(url), client)
    started = time.perf_counter()
    rows = size = 0
    with service.batches(project_id, QUERY) as batches:
        for batch in batches:
            rows += batch.num_rows
            size += batch.nbytes
    result["stream"] = {"rows": rows, "bytes": size, "seconds": time.perf_counter() - started}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    client.close()
    print(json.dumps(result))


class Counting:
    """A file-like view of an HTTP response that counts the bytes read through it."""

    def __init__(self, response):
        self.response = response
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.response.read(size)
        self.bytes += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def closed(self) -> bool:
        return False


def stream(url: str, key: str, fmt: str, sql: str, scratch: Path) -> tuple[int, int, float]:
    """Rows, bytes and seconds of one query through POST /v1/query, read as a client would."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    request = urllib.request.Request(f"{url}/v1/query", method="POST",
                                     data=json.dumps({"sql": sql, "format": fmt}).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        body = Counting(response)
        if fmt == "arrow":
            rows = sum(batch.num_rows for batch in ipc.open_stream(body))
        else:
            target = scratch / "result.parquet"
            with target.open("wb") as sink:
                while chunk := body.read(1 << 20):
                    sink.write(chunk)
            rows = pq.ParquetFile(target).metadata.num_rows
    return rows, body.bytes, time.perf_counter() - started


def rss_peak_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, help="keep the demo data here and reuse it in later runs")
    parser.add_argument("--server-command", default=f"{shlex.quote(sys.executable)} -m nexus serve --port 0",
                        help="command that serves NEXUS_DATA_DIR and prints 'Nexus is serving URL'")
    parser.add_argument("--engine-phase", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_phase:
        engine_phase(args.engine_phase)
        return
    with tempfile.TemporaryDirectory(prefix="nexus-query-bench-") as scratch:
        data_dir = (args.data_dir or Path(scratch) / "data").resolve()
        key = prepare(data_dir, args.events)
        child = subprocess.run([sys.executable, __file__, "--engine-phase", str(data_dir)], capture_output=True,
                               text=True)
        if child.returncode:
            sys.exit(f"the engine phase failed:\n{child.stderr}")
        engine = json.loads(child.stdout)
        env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "NEXUS_LOG_LEVEL": "warning", "NEXUS_RATE_LIMIT": "0"}
        server = subprocess.Popen(shlex.split(args.server_command), env=env, stdout=subprocess.PIPE, text=True)
        try:
            url = served_url(server)
            runs = []
            small = stream(url, key, "arrow", QUERY + " LIMIT 1000000", Path(scratch))
            runs.append(("HTTP arrow, 1M rows", *small, rss_peak_mb(server.pid)))
            for fmt in ("arrow", "parquet"):
                runs.append((f"HTTP {fmt}", *stream(url, key, fmt, QUERY, Path(scratch)), rss_peak_mb(server.pid)))
        finally:
            server.terminate()
            server.wait(timeout=60)
    ceiling = engine["rows"] / engine["seconds"]
    print(f"{engine['rows']:,} rows x 11 columns of demo events ({engine['bytes'] / 1e6:,.0f} MB as Arrow), "
          f"{os.cpu_count()} cores")
    print(f"| {'path':<40} | {'rows/s':>11} | {'MB/s':>7} | {'vs query_arrow':>14} | {'peak RSS':>9} |")
    print(f"|{'-' * 42}|{'-' * 13}|{'-' * 9}|{'-' * 16}|{'-' * 11}|")
    print(f"| {'engine: query_arrow (whole result)':<40} | {ceiling:>11,.0f} | "
          f"{engine['bytes'] / 1e6 / engine['seconds']:>7,.0f} | {1:>14.2f} | {engine['peak_rss_mb']:>6,.0f} MB |")
    own = engine["stream"]
    print(f"| {'sandbox stream, no HTTP (same process)':<40} | {own['rows'] / own['seconds']:>11,.0f} | "
          f"{own['bytes'] / 1e6 / own['seconds']:>7,.0f} | {own['rows'] / own['seconds'] / ceiling:>14.2f} | {'':>9} |")
    for name, rows, size, seconds, peak in runs:
        print(f"| {name:<40} | {rows / seconds:>11,.0f} | {size / 1e6 / seconds:>7,.0f} | "
              f"{rows / seconds / ceiling:>14.2f} | {peak:>6,.0f} MB |")
    print("MB/s: Arrow in memory for the engine rows, bytes on the wire for HTTP (Parquet is compressed). "
          "Peak RSS of the server, read after each run, cumulative.")


if __name__ == "__main__":
    main()
