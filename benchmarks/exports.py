"""Export speed: demo events written as CSV, NDJSON, Parquet and Excel through POST /v1/exports, next to the
engine's own ceiling and to pandas on the same rows, in the same run, with each one's peak RSS.

For each size (`--events 1000000,10000000`) a store of that many demo events lives under `--data-root`, kept:
a rerun reuses it (made only when missing, in a child process: nexus.demo.load with a fixed end, so the rows
and the date range stay the same from run to run, and a read key). Every contender writes the same rows:
the columns COLUMNS of every event of the demo project, oldest first (ORDER BY ts, message_id), as the
"events" export source selects them; Excel the first `--excel-rows` of them.

- Nexus: the path a user takes. `nexus serve --port 0` (embedded, one worker thread) is started afresh for
  each format, the export is posted with the read key and GET /v1/jobs/{id} polled every 50 ms until done:
  rows/s from the POST to done (and, beside it, from the job's own started_at to finished_at). Its peak RSS
  is the serve process's VmHWM read when the job is done: a fresh server per format, so it is the peak of
  its start and of that one export alone, never of an earlier format's (the RSS after start is shown too).
  The embedded redis-server is a process of its own and not counted.
- ceiling: the engine with no Nexus code in between, in a child process once the server has stopped (a chDB
  data dir belongs to one process): clickhouse-connect's `query_arrow_stream` of the same SQL into
  pyarrow.csv.CSVWriter / pyarrow.parquet.ParquetWriter, the engine's own JSONEachRow (`raw_stream`) copied
  to a file for NDJSON, and openpyxl's write-only mode fed straight from the Arrow batches for Excel.
- pandas: `query_df` of the same SQL, then `to_csv`, `to_json(orient="records", lines=True)`, `to_parquet`,
  `to_excel(engine="openpyxl")`, in a child process too.
Each child's peak RSS is its own ru_maxrss. Times run from the query sent to the file closed (a child's
start and the engine's opening are not counted; the server's start is not counted either).

Checked in the same run: every file has the rows expected and, for CSV, NDJSON and Parquet, the same first
and last row (times compared as instants, as each writer spells them its own way).

Nexus reads an events export in windows of whole UTC days, each sorted on its own (~200k rows), so the default
query memory limit (NEXUS_QUERY_MAX_MEMORY_BYTES, 1 GB) holds at 10M. The ceiling and pandas keep the best single
query: one ORDER BY over every row, which the engine sorts whole in memory (no limit in their child), so they get
the same order at a memory cost that grows with the rows: their peak RSS in the table shows it.
`--server-env NAME=VALUE` changes a server setting for a run.

Run: python benchmarks/exports.py [--events 1000000,10000000] [--excel-rows 1000000] [--formats csv,ndjson,...]
                                  [--data-root DIR] [--server-env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from serving import served_url  # benchmarks/serving.py (benchmarks run as scripts from this folder)
from sizes import load_average, parse_size, size_label

FORMATS = ("csv", "ndjson", "parquet", "xlsx")
COLUMNS = ["ts", "event", "distinct_id", "session_id", "url", "country", "browser", "properties"]
# The demo's events end before END and span its 8 weeks; the range holds them all, in UTC.
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
START = datetime(2026, 9, 1, tzinfo=timezone.utc)
DATE_RANGE = {"date_from": "2026-09-01", "date_to": "2026-10-31"}
# The SQL the ceiling and pandas run: what the events source selects, written by hand. LowCardinality
# columns as text, as the source hands them out (their dictionaries would otherwise reach every writer).
SQL = ("SELECT ts, toString(event) AS event, distinct_id, session_id, url, toString(country) AS country, "
       "toString(browser) AS browser, toJSONString(properties) AS properties FROM events "
       "WHERE project_id = {project:UInt32} AND ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')} "
       "ORDER BY ts, message_id")
# Targets from the issue: Nexus ÷ ceiling and ÷ pandas (rows/s), and the peak RSS of every format.
CEILING_TARGET = 0.8
PANDAS_TARGET = {"csv": 5.0, "ndjson": 5.0, "parquet": 5.0, "xlsx": 2.0}
RSS_TARGET_MB = 1024
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Store:
    data_dir: Path
    events: int
    project_id: int
    read_key: str


@dataclass
class Run:
    rows: int
    seconds: float
    cpu_seconds: float  # all the process's threads, over the same span
    peak_rss_mb: float
    path: Path
    job_seconds: float = 0.0  # Nexus: the job's own started_at → finished_at
    rss_at_start_mb: float = 0.0  # Nexus: the server's RSS before the export was posted

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,10000000", help="store sizes, comma-separated (1M, 10M or digits)")
    parser.add_argument("--excel-rows", type=parse_size, default=1_000_000, help="rows of the Excel exports at most")
    parser.add_argument("--formats", default=",".join(FORMATS), help="which formats, comma-separated")
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/nexus-bench-exports"),
                        help="a store per size under it, kept for the next run")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the Nexus server, e.g. NEXUS_QUERY_MAX_MEMORY_BYTES=0 (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # JSON: what a child process does
    args = parser.parse_args()
    if args.child:
        return print(json.dumps(run_child(json.loads(args.child))))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    server_env = dict(pair.split("=", 1) for pair in args.server_env)
    if server_env:
        print(f"Nexus server settings: {server_env}")
    if unknown := set(formats) - set(FORMATS):
        raise SystemExit(f"unknown formats {sorted(unknown)}: use {', '.join(FORMATS)}")
    print(f"{os.cpu_count()} cores; load average at start: {load_average()}")
    for size in (parse_size(s) for s in args.events.split(",") if s.strip()):
        store = prepare(args.data_root.resolve() / f"events-{size_label(size)}", size)
        scratch = Path(tempfile.mkdtemp(prefix="nexus-bench-exports-", dir=args.data_root))
        try:
            child(store, {"role": "warm"})  # the store's parts in the page cache before anyone is timed
            results = {fmt: measure(store, fmt, min(size, args.excel_rows) if fmt == "xlsx" else size, scratch, server_env)
                       for fmt in formats}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        report(store, results)
    print(f"load average at the end: {load_average()}")


# ---------------------------------------------------------------- the stores

def prepare(data_dir: Path, events: int) -> Store:
    """The store of `events` demo events at `data_dir` and its read key, made when missing."""
    state = data_dir / "exports-bench.json"
    if not state.exists():
        if data_dir.exists():
            shutil.rmtree(data_dir)  # a load that did not finish
        data_dir.mkdir(parents=True)
        started = time.perf_counter()
        made = run_in_child({"role": "load", "data_dir": str(data_dir), "events": events})
        print(f"stored {events:,} demo events in {data_dir} in {time.perf_counter() - started:.0f} s")
        state.write_text(json.dumps(made))
    made = json.loads(state.read_text())
    return Store(data_dir, events, made["project_id"], made["read_key"])


def load_store(data_dir: Path, events: int) -> dict[str, Any]:
    from nexus.demo.load import load
    from nexus.meta import keys, projects
    from nexus.store.database import open_database

    client = open_database(f"chdb://{data_dir}/clickhouse")
    project = projects.create(client, "bench")
    load(client, project.project_id, events, end=END)
    _, secret = keys.create(client, project.project_id, "read", name="exports benchmark")
    return {"project_id": project.project_id, "read_key": secret}


# ---------------------------------------------------------------- one format, three contenders

def measure(store: Store, fmt: str, rows: int, scratch: Path, server_env: dict[str, str]) -> dict[str, Run]:
    """Nexus, the ceiling and pandas writing `rows` rows in `fmt`, one after another, each file checked."""
    found = {"Nexus": through_nexus(store, fmt, rows, server_env)}
    for contender in ("ceiling", "pandas"):
        path = scratch / f"{contender}.{fmt}"
        answer = child(store, {"role": contender, "format": fmt, "rows": rows, "path": str(path)})
        found[contender] = Run(answer["rows"], answer["seconds"], answer["cpu_seconds"], answer["peak_rss_mb"], path)
    print(f"{fmt}, {rows:,} rows: " + ", ".join(f"{name} {run.seconds:.1f} s" for name, run in found.items()),
          file=sys.stderr)
    check(fmt, rows, found)
    for run in found.values():
        run.path.unlink(missing_ok=True)
    return found


def through_nexus(store: Store, fmt: str, rows: int, server_env: dict[str, str]) -> Run:
    """POST /v1/exports of the events source to a fresh `nexus serve`, timed until the job is done. A one-row
    export runs first, untimed: the worker is up and the start's own jobs (the hourly cleanup) are done."""
    env = {**os.environ, "NEXUS_DATA_DIR": str(store.data_dir), "NEXUS_ADMIN_KEY": "nx_bench_" + secrets.token_urlsafe(32),
           "NEXUS_WORKER_THREADS": "1", "NEXUS_RATE_LIMIT": "0", "NEXUS_LOG_LEVEL": "warning", **server_env}
    server = subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--port", "0"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = served_url(server)
        source = {"type": "events", "request": {"date_range": DATE_RANGE, "timezone": "UTC", "columns": COLUMNS}}
        with httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {store.read_key}"}) as http:
            export(http, {"source": source, "format": "csv", "max_rows": 1})
            at_start, cpu_before = rss_mb(server.pid, "VmRSS"), cpu_seconds(server.pid)
            started = time.perf_counter()
            job = export(http, {"source": source, "format": fmt, **({"max_rows": rows} if rows < store.events else {})})
            seconds = time.perf_counter() - started
            peak, cpu = rss_mb(server.pid, "VmHWM"), cpu_seconds(server.pid) - cpu_before
        job_seconds = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
        path = store.data_dir / "exports" / str(store.project_id) / job["job_id"]
        return Run(job["rows"], seconds, cpu, peak, path, job_seconds, at_start)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def export(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """The export's job once done, polled every POLL_SECONDS."""
    job = checked(http.post("/v1/exports", json=body)).json()
    while job["state"] not in ("done", "failed", "cancelled"):
        time.sleep(POLL_SECONDS)
        job = checked(http.get(f"/v1/jobs/{job['job_id']}")).json()
    if job["state"] != "done":
        raise SystemExit(f"the {body['format']} export ended {job['state']}: {job['error']}")
    return job


def cpu_seconds(pid: int) -> float:
    """CPU a process has used so far, all its threads (Python's and the engine's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response


def rss_mb(pid: int, field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())[1]) / 1024


# ---------------------------------------------------------------- child processes: the engine and pandas

def child(store: Store, task: dict[str, Any]) -> dict[str, Any]:
    return run_in_child({**task, "data_dir": str(store.data_dir), "project_id": store.project_id})


def run_in_child(task: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {task['role']} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(task: dict[str, Any]) -> dict[str, Any]:
    data_dir = Path(task["data_dir"])
    if task["role"] == "load":
        return load_store(data_dir, task["events"])
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{data_dir}/clickhouse", database="nexus")
    params = {"project": task["project_id"], "start": START, "end": END}
    if task["role"] == "warm":
        sql = ("SELECT sum(cityHash64(ts, event, distinct_id, session_id, url, country, browser, message_id, "
               "toJSONString(properties))) FROM events WHERE project_id = {project:UInt32}")
        started = time.perf_counter()
        client.query(sql, parameters=params)
        return {"seconds": time.perf_counter() - started}
    sql = SQL + (f" LIMIT {int(task['rows'])}" if task["format"] == "xlsx" else "")
    write = {"ceiling": ceiling, "pandas": with_pandas}[task["role"]]
    started, cpu_before = time.perf_counter(), own_cpu()
    rows = write(client, sql, params, task["format"], Path(task["path"]))
    seconds, cpu = time.perf_counter() - started, own_cpu() - cpu_before
    return {"rows": rows, "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling(client: Any, sql: str, params: dict[str, Any], fmt: str, path: Path) -> int:
    """The engine's rows straight into each format's fastest writer: no Nexus code in between."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if fmt == "ndjson":  # the engine writes it itself
        with client.raw_stream(sql, parameters=params, fmt="JSONEachRow") as raw, path.open("wb") as sink:
            lines = 0
            while chunk := raw.read(1 << 20):
                sink.write(chunk)
                lines += chunk.count(b"\n")
        return lines
    rows = 0
    writer: Any = None
    with client.query_arrow_stream(sql, parameters=params, use_strings=True) as stream:
        for batch in stream:
            if fmt == "csv":
                # Arrow formats a zoned timestamp ~25× slower than a plain one (2.2 against 0.09 s of CPU per 1M
                # values here): the UTC wall time as text with its Z is the same cell, at the plain one's cost.
                wall_time = batch.column("ts").cast(pa.timestamp("ms")).cast(pa.string())
                batch = batch.set_column(0, "ts", pc.binary_join_element_wise(wall_time, "Z", ""))
                writer = writer or pa_csv.CSVWriter(str(path), batch.schema)
                writer.write(batch)
            elif fmt == "parquet":
                # Dictionaries for the columns that repeat, statistics for the time only: pyarrow's fastest
                # settings for these columns, a row group per engine block.
                writer = writer or pq.ParquetWriter(str(path), batch.schema, use_dictionary=["event", "country", "browser"],
                                                    write_statistics=["ts"])
                writer.write(batch)
            else:
                writer = writer or excel_sheet(batch.schema.names)
                naive = batch.set_column(0, "ts", batch.column("ts").cast(pa.timestamp("ms")))
                for row in zip(*(column.to_pylist() for column in naive.columns)):
                    writer[1].append(row)
            rows += batch.num_rows
    if fmt == "xlsx":
        writer[0].save(path)
    else:
        writer.close()
    return rows


def excel_sheet(header: list[str]) -> tuple[Any, Any]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Events")
    sheet.append(header)
    return workbook, sheet


def with_pandas(client: Any, sql: str, params: dict[str, Any], fmt: str, path: Path) -> int:
    """pandas as an analyst writes it: a DataFrame of the query, then the format's `to_*`."""
    frame = client.query_df(sql, parameters=params)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "ndjson":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame["ts"] = frame["ts"].dt.tz_localize(None)  # Excel has no time zones: pandas refuses aware times
        frame.to_excel(path, index=False, engine="openpyxl")
    return len(frame)


# ---------------------------------------------------------------- the files checked

def check(fmt: str, rows: int, runs: dict[str, Run]) -> None:
    """Every file holds `rows` rows; CSV, NDJSON and Parquet the same first and last rows."""
    seen = {name: read_back(fmt, run.path) for name, run in runs.items()}
    for name, (count, first, last) in seen.items():
        if count != rows or runs[name].rows != rows:
            raise SystemExit(f"{fmt}: {name}'s file has {count:,} rows (it said {runs[name].rows:,}), not {rows:,}")
    reference = seen["Nexus"]
    for name, (_, first, last) in seen.items():
        if (first, last) != reference[1:]:
            raise SystemExit(f"{fmt}: {name}'s first/last rows differ from Nexus's:\n{first}\n{last}\n"
                             f"Nexus: {reference[1]}\n{reference[2]}")


def read_back(fmt: str, path: Path) -> tuple[int, tuple | None, tuple | None]:
    """(rows, first row, last row) of a file; no rows compared for Excel, only counted."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if fmt == "xlsx":
        return excel_rows(path), None, None
    if fmt == "parquet":
        file = pq.ParquetFile(path)
        first = file.read_row_group(0).slice(0, 1).to_pylist()[0]
        tail = file.read_row_group(file.num_row_groups - 1)
        last = tail.slice(tail.num_rows - 1).to_pylist()[0]
        return file.metadata.num_rows, comparable(first), comparable(last)
    if fmt == "ndjson":
        count, first, last = 0, None, None
        with path.open("rb") as lines:
            for line in lines:
                first = first or line
                last = line
                count += 1
        return count, comparable(json.loads(first)), comparable(json.loads(last))
    as_text = pa_csv.ConvertOptions(column_types={name: "string" for name in COLUMNS})
    count, first, last = 0, None, None
    for batch in pa_csv.open_csv(path, convert_options=as_text):
        if batch.num_rows:
            first = first or batch.slice(0, 1).to_pylist()[0]
            last = batch.slice(batch.num_rows - 1).to_pylist()[0]
            count += batch.num_rows
    return count, comparable(first), comparable(last)


def comparable(row: dict[str, Any]) -> tuple:
    """The row's values in COLUMNS' order as text, the time as a UTC instant however it is spelt."""
    import pandas as pd

    moment = pd.Timestamp(row["ts"])
    moment = moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment
    return (moment, *(str(row[name]) for name in COLUMNS[1:]))


def excel_rows(path: Path) -> int:
    """Data rows over every sheet (a header each), counted in the sheets' XML without building cells."""
    rows = 0
    with zipfile.ZipFile(path) as book:
        for name in book.namelist():
            if name.startswith("xl/worksheets/sheet"):
                with book.open(name) as sheet:
                    found = 0
                    tail = b""
                    while chunk := sheet.read(1 << 22):
                        found += (tail + chunk).count(b"<row ") - tail.count(b"<row ")
                        tail = chunk[-8:]
                    rows += max(found - 1, 0)
    return rows


# ---------------------------------------------------------------- the report

def report(store: Store, results: dict[str, dict[str, Run]]) -> None:
    print(f"\n{store.events:,} demo events, columns {', '.join(COLUMNS)}, ORDER BY ts, message_id; rows/s from the "
          f"query (Nexus: the POST) to the file closed (Nexus: the job done); RSS in MB, peak of each process")
    header = (f"| {'format':<7} | {'rows':>10} | {'Nexus rows/s':>12} | {'job rows/s':>10} | {'ceiling rows/s':>14} | "
              f"{'pandas rows/s':>13} | {'÷ ceiling':>9} | {'÷ pandas':>8} | {'Nexus RSS':>9} | {'(at start)':>10} | "
              f"{'ceiling RSS':>11} | {'pandas RSS':>10} | targets")
    print(header)
    print("|" + "|".join("-" * (len(cell) + 2) for cell in header.split(" | ")[:-1]) + "|" + "-" * 9 + "|")
    for fmt, runs in results.items():
        nexus, top, pandas = runs["Nexus"], runs["ceiling"], runs["pandas"]
        to_ceiling, to_pandas = nexus.rate / top.rate, nexus.rate / pandas.rate
        verdicts = [] if fmt == "xlsx" else [f"÷ ceiling ≥ {CEILING_TARGET} {met(to_ceiling >= CEILING_TARGET)}"]
        verdicts += [f"÷ pandas ≥ {PANDAS_TARGET[fmt]:g} {met(to_pandas >= PANDAS_TARGET[fmt])}",
                     f"RSS < {RSS_TARGET_MB} {met(nexus.peak_rss_mb < RSS_TARGET_MB)}"]
        print(f"| {fmt:<7} | {nexus.rows:>10,} | {nexus.rate:>12,.0f} | {nexus.rows / nexus.job_seconds:>10,.0f} | "
              f"{top.rate:>14,.0f} | {pandas.rate:>13,.0f} | {to_ceiling:>9.2f} | {to_pandas:>8.2f} | "
              f"{nexus.peak_rss_mb:>9,.0f} | {nexus.rss_at_start_mb:>10,.0f} | {top.peak_rss_mb:>11,.0f} | "
              f"{pandas.peak_rss_mb:>10,.0f} | {'; '.join(verdicts)}")
    print("seconds, wall (CPU, all threads of the process): " + "; ".join(
        f"{fmt} Nexus {runs['Nexus'].seconds:.1f} ({runs['Nexus'].cpu_seconds:.1f}; the job alone "
        f"{runs['Nexus'].job_seconds:.1f}), ceiling {runs['ceiling'].seconds:.1f} ({runs['ceiling'].cpu_seconds:.1f}), "
        f"pandas {runs['pandas'].seconds:.1f} ({runs['pandas'].cpu_seconds:.1f})" for fmt, runs in results.items()))
    print("by CPU (Nexus's CPU seconds against each one's, the measure others' load on the machine disturbs least): " +
          "; ".join(f"{fmt} ÷ ceiling {runs['ceiling'].cpu_seconds / runs['Nexus'].cpu_seconds:.2f}, ÷ pandas "
                    f"{runs['pandas'].cpu_seconds / runs['Nexus'].cpu_seconds:.2f}" for fmt, runs in results.items()))


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"



if __name__ == "__main__":
    main()
