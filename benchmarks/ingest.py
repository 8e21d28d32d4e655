"""Ingestion throughput end to end, next to the engine's own ceiling, in one run.

Starts `nexus serve` on a fresh data dir, sends realistic Segment batches (about 400 bytes an event,
500 events a request) from several client processes, with gzip on and off, and reports events/s and the
server's peak RSS. Then, in this process on another chDB dir, inserts the same rows into the same
events table, the two ways the engine takes them — clickhouse-connect's insert_arrow, and the writer's
own json_insert (each project's rows cast to JSON in an INSERT … SELECT, so no client's values change
another's) — and compares the server with the faster of the two: the raw ceiling.
It also accounts for the CPU each event costs — the insert, the pipeline (decoding, enrichment and
Arrow columns, run in one thread as the server runs it under one GIL), the server with its Redis, and
the load generator — next to what the machine's cores allow per event at the issue's target rate.

Each server run is made once per acknowledgement mode asked for (NEXUS_ACK: stored answers once inserted,
logged once in the fsync'd log).

Run: python benchmarks/ingest.py [--events N] [--clients C] [--acks stored,logged]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from serving import served_url  # benchmarks/serving.py (benchmarks run as scripts from this folder)

BATCH = 500
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
]
EVENTS = ["page", "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Signed Up"]


def template(seed: int) -> bytes:
    """One request body; REQNUMBER is replaced per request so every messageId is unique."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).isoformat()
    batch = []
    for i in range(BATCH):
        kind = rng.choice(EVENTS)
        user = f"user-{rng.randrange(100_000)}"
        event = {
            "type": "page" if kind == "page" else "track",
            "messageId": f"REQNUMBER-{i:03d}",
            "anonymousId": f"anon-{rng.randrange(200_000)}",
            "userId": user if rng.random() < 0.6 else None,
            "timestamp": now,
            "context": {
                "ip": f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "userAgent": rng.choice(AGENTS).format(v=rng.randrange(100, 125)),
                "page": {"url": f"https://shop.example.com/p/{rng.randrange(500)}?utm_source={rng.choice(['google', 'newsletter', 'x'])}",
                         "referrer": rng.choice(["https://www.google.com/", "", "https://t.co/abc"])},
                "library": {"name": "analytics.js", "version": "5.2.0"},
            },
            "properties": {"sku": f"SKU-{rng.randrange(5000)}", "price": round(rng.uniform(5, 200), 2), "currency": "USD"},
        }
        if kind != "page":
            event["event"] = kind
        batch.append({k: v for k, v in event.items() if v is not None})
    return json.dumps({"batch": batch, "sentAt": now}).encode()


def client(args: tuple) -> int:
    """One client process: `connections` threads, each a keep-alive connection sending its share."""
    host, port, key, first, count, compress, client_id, connections = args
    share = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    with ThreadPoolExecutor(connections) as pool:
        starts = [first + sum(share[:i]) for i in range(connections)]
        return sum(pool.map(lambda i: connection_loop(host, port, key, starts[i], share[i], compress,
                                                       client_id * 1000 + i), range(connections)))


def connection_loop(host: str, port: int, key: str, first: int, count: int, compress: bool, client_id: int) -> int:
    body = template(client_id % 64)
    connection = http.client.HTTPConnection(host, port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
    if compress:
        headers["Content-Encoding"] = "gzip"
    sent = 0
    for n in range(first, first + count):
        payload = body.replace(b"REQNUMBER", b"c%d-r%09d" % (client_id, n))
        if compress:
            payload = gzip.compress(payload, compresslevel=1)
        connection.request("POST", "/v1/batch", body=payload, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"server answered {response.status}")
        sent += BATCH
    return sent


def rss_peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status)[1]) / 1024


TARGET = 150_000  # events/s, the target


class Rate(NamedTuple):
    events_per_s: float
    cpu_us: float  # CPU microseconds per event


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(pid: int) -> Counter[str]:
    """CPU used so far by the server, split into its Python threads, the engine's own threads (inserts,
    merges: chDB names them, Python threads keep the process's name) and the Redis it started."""
    tick = os.sysconf("SC_CLK_TCK")
    found: Counter[str] = Counter()
    for stat in [*Path(f"/proc/{pid}/task").glob("*/stat"), *Path("/proc").glob("[0-9]*/stat")]:
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text.rpartition(")")[2].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if stat.parent.parent.name == "task":
            found["Python" if name == Path(sys.executable).name[:15] else "ClickHouse"] += seconds
        elif fields[1] == str(pid):  # fields[1]: the parent's pid
            found["Redis"] += seconds
    return found


class ServerRun(NamedTuple):
    rate: Rate  # CPU of the server and its Redis
    server_cpu_us: dict[str, float]  # Python, ClickHouse, Redis
    client_cpu_us: float  # CPU of the load generator per event
    peak_rss_mb: float


def run_server_phase(events: int, clients: int, connections: int, compress: bool, ack: str, data_dir: Path) -> ServerRun:
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "NEXUS_LOG_LEVEL": "warning", "NEXUS_RATE_LIMIT": "0",
           "NEXUS_ACK": ack}
    nexus = [sys.executable, "-m", "nexus"]
    subprocess.run([*nexus, "project", "create", "bench"], env=env, check=True, capture_output=True)
    key = subprocess.run([*nexus, "key", "create", "--project", "bench", "--scope", "write"], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([*nexus, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, text=True)
    url = served_url(server)
    host, port = url.removeprefix("http://").split(":")
    requests = events // BATCH
    share = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    jobs = [(host, int(port), key, sum(share[:i]), share[i], compress, i, connections) for i in range(clients)]
    started, server_cpu = time.perf_counter(), server_cpu_seconds(server.pid)
    clients_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    with multiprocessing.Pool(clients) as pool:
        sent = sum(pool.map(client, jobs))
    elapsed = time.perf_counter() - started
    server_cpu = server_cpu_seconds(server.pid) - server_cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = after.ru_utime + after.ru_stime - clients_cpu.ru_utime - clients_cpu.ru_stime
    peak = rss_peak_mb(server.pid)
    server.terminate()
    server.wait()
    stored = subprocess.run([*nexus, "sql", "SELECT count() FROM events", "--format", "csv"], env=env,
                            capture_output=True, text=True).stdout.splitlines()[1]
    assert int(stored) == sent, f"stored {stored} of {sent}"
    return ServerRun(Rate(sent / elapsed, server_cpu.total() / sent * 1e6),
                     {part: seconds / sent * 1e6 for part, seconds in server_cpu.items()}, client_cpu / sent * 1e6, peak)


def columns_of(body: bytes) -> dict[str, list]:
    """The events-table columns the server builds from one request body: decoded and enriched."""
    import msgspec

    from nexus.ingest.pipeline import Rules, Source, process
    from nexus.ingest.wire import BatchEnvelope, decode_message

    envelope = msgspec.json.decode(body, type=BatchEnvelope)
    messages = [decode_message(raw, i) for i, raw in enumerate(envelope.batch)]
    source = Source(1, datetime.now(timezone.utc), "", envelope.sent_at, envelope.context)
    return process(messages, source, Rules()).columns


def pipeline_rate(events: int) -> Rate:
    """Decoding, enrichment and Arrow columns in one thread, caches warm: the most one GIL can do."""
    from nexus.ingest.columns import events_table

    bodies = [template(seed).replace(b"REQNUMBER", b"x") for seed in range(64)]

    def run(count: int) -> int:
        done = 0
        while done < count:
            done += events_table(columns_of(bodies[done // BATCH % len(bodies)])).num_rows
        return done

    run(len(bodies) * BATCH)  # warm the enrichment caches, as a running server's are
    started, cpu = time.perf_counter(), cpu_seconds()
    done = run(events)
    return Rate(done / (time.perf_counter() - started), (cpu_seconds() - cpu) / done * 1e6)


def ceiling(events: int, how: str) -> Rate:
    """The same rows, as the server builds them, inserted into the same table by `how`: insert_arrow or
    json_insert."""
    from nexus.ingest.columns import events_table
    from nexus.store import json_insert
    from nexus.store.database import open_database

    client = open_database(f"chdb://{tempfile.mkdtemp(prefix='nexus-ceiling-')}/clickhouse")
    columns = columns_of(template(0).replace(b"REQNUMBER", b"x"))
    copies = 200  # 100,000-row blocks, as the writer's default NEXUS_WRITER_MAX_ROWS
    block = {name: values * copies for name, values in columns.items()}
    block["message_id"] = [f"{i}-{m}" for i, m in enumerate(block["message_id"])]
    table = events_table(block)
    started, cpu = time.perf_counter(), cpu_seconds()
    inserted = 0
    while inserted < events:
        if how == "insert_arrow":
            client.insert_arrow("events", table)
        else:
            json_insert.insert(client, "events", table)
        inserted += table.num_rows
    return Rate(inserted / (time.perf_counter() - started), (cpu_seconds() - cpu) / inserted * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections per client process")
    parser.add_argument("--encodings", default="plain,gzip", help="request bodies to try: plain, gzip or both")
    parser.add_argument("--acks", default="stored,logged", help="NEXUS_ACK modes to try: stored, logged or both")
    args = parser.parse_args()
    engine = {how: ceiling(args.events, how) for how in ("insert_arrow", "json_insert")}
    raw = max(engine.values(), key=lambda rate: rate.events_per_s)
    pipeline = pipeline_rate(min(args.events, 500_000))
    runs = []
    for ack in args.acks.split(","):
        for compress in [name == "gzip" for name in args.encodings.split(",")]:
            with tempfile.TemporaryDirectory(prefix="nexus-ingest-bench-") as directory:
                runs.append((f"ack {ack}, {'gzip' if compress else 'plain JSON'}",
                             run_server_phase(args.events, args.clients, args.connections, compress, ack,
                                              Path(directory))))
    cores = os.cpu_count() or 1
    print(f"{args.events:,} events per run, {BATCH} per request, {args.clients} client processes x "
          f"{args.connections} connections, {cores} cores")
    print(f"| {'path':<44} | {'events/s':>10} | {'vs ceiling':>10} | {'CPU µs/event':>12} | {'server peak RSS':>15} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 12}|{'-' * 14}|{'-' * 17}|")
    for how, rate in engine.items():
        print(f"| {'engine: ' + how + ' of the same rows':<44} | {rate.events_per_s:>10,.0f} | "
              f"{rate.events_per_s / raw.events_per_s:>10.2f} | {rate.cpu_us:>12.1f} | {'':>15} |")
    print(f"| {'pipeline alone, one thread (no HTTP, dedup)':<44} | {pipeline.events_per_s:>10,.0f} | "
          f"{pipeline.events_per_s / raw.events_per_s:>10.2f} | {pipeline.cpu_us:>12.1f} | {'':>15} |")
    for name, run in runs:
        print(f"| {'HTTP /v1/batch, dedup, ' + name:<44} | {run.rate.events_per_s:>10,.0f} | "
              f"{run.rate.events_per_s / raw.events_per_s:>10.2f} | {run.rate.cpu_us:>12.1f} | {run.peak_rss_mb:>12,.0f} MB |")
    # The target as a CPU budget: what every event may cost, all processes on this machine together.
    budget = cores / TARGET * 1e6
    load_generator = min(run.client_cpu_us for _, run in runs)
    floor = raw.cpu_us + pipeline.cpu_us + load_generator
    print(f"\nCPU budget at {TARGET:,} events/s on {cores} cores: {budget:.1f} µs per event, for everything. "
          f"Insert + pipeline + load generator alone: {floor:.1f} µs (load generator "
          f"{load_generator:.1f}); server with its Redis, measured: "
          f"{min(run.rate.cpu_us for _, run in runs):.1f}.")
    for name, run in runs:
        print(f"server CPU per event, {name}: " + ", ".join(f"{part} {us:.1f} µs" for part, us in sorted(run.server_cpu_us.items())))


if __name__ == "__main__":
    main()
