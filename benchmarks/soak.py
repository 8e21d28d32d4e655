"""Soak: `nexus serve` under mixed ingestion and reads for `--minutes`, stopped with SIGTERM and killed with
`kill -9` on the way, then checked: every acknowledged event stored exactly once, no 5xx outside the
restarts, its memory flat, each route's latency.

Method. A fresh data dir gets a project with a write and a read key (the CLI, before the server starts);
`nexus serve` then runs as a child process on a free loopback port. Client threads send for the whole run:
Segment batches (POST /v1/batch, `messageId`s) and PostHog batches (POST /batch, `uuid`s), each event with
an id of its own, paced to `--rate` events/s in all. A batch answered 200 is acknowledged: its ids are
recorded. One answered 5xx or 429, or cut by a lost connection, is sent again, the same body with the same
ids, until acknowledged (dedup by message id must keep such a retry from storing an event twice); a 4xx is
a client's mistake and not retried. Reader threads meanwhile ask for analyses (trends and a funnel,
POST /v1/analyses/{kind}), ad-hoc SQL (POST /v1/query) and CSV exports (POST /v1/exports, the job polled
at GET /v1/jobs/{id}, its file fetched at GET /v1/exports/{id}/file).

At a third of the run the server gets SIGTERM and, once it has exited, starts again on the same data dir
and port; at two thirds it gets SIGKILL (`kill -9`, its embedded Redis goes with it) and starts again. A
restart window runs from the signal until /health/ready answers 200 again: a request overlapping one may
fail (5xx, connection refused or cut); outside them none may. When the run ends the clients stop, the
server is stopped with SIGTERM, and the store is read directly (`nexus sql`): the count of rows per
message id of every acknowledged event must be exactly 1 (unacknowledged ones may be stored or not).

The server process's RSS (VmRSS) is sampled every `--sample-seconds` while it is ready; its slope, MB per
minute by least squares, is reported per server lifetime over the samples after the first minute of it
(start-up fills caches and the engine's pools), or over all of them in a lifetime shorter than two minutes.
Latencies are those of answered requests outside the restart windows. The program exits 1 when an
acknowledged event is missing or stored twice, or a 5xx or a lost connection happened outside the windows.

Run: python benchmarks/soak.py [--no-restarts] [--minutes 10] [--segment-clients 3] [--posthog-clients 2] [--readers 2]
[--rate 1500] [--batch 100] [--sample-seconds 5] [--ack stored|logged]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import socket
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from random import Random

import httpx
from serving import served_url  # benchmarks/serving.py and sizes.py (benchmarks run as scripts from this folder)
from sizes import load_average

NEXUS = [sys.executable, "-m", "nexus"]
EVENTS = ["page_view", "page_view", "page_view", "signup", "add_to_cart", "purchase"]
PERSONS = 5_000
CONNECTION_LOST = 0  # the status recorded for a request that got no answer
RETRY_PAUSE = 0.5  # seconds before an unacknowledged batch is sent again
READER_PAUSE = 1.0  # seconds between a reader's requests
EXPORT_WAIT = 120.0  # seconds a reader waits for its export job before it counts it as unfinished


@dataclass(frozen=True)
class Call:
    route: str
    started: float  # time.monotonic()
    ended: float
    status: int  # CONNECTION_LOST when no answer came


@dataclass
class Journal:
    """What the clients saw, shared by their threads."""

    calls: list[Call] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # ids of events answered 200
    exports: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # how export jobs ended
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, http: httpx.Client, method: str, route: str, url: str, **request: object) -> httpx.Response | None:
        """One request, recorded under `route` (a template: ids are not part of it); None without an answer."""
        started = time.monotonic()
        try:
            response = http.request(method, url, **request)  # type: ignore[arg-type]
        except httpx.TransportError:
            response = None
        call = Call(route, started, time.monotonic(), response.status_code if response is not None else CONNECTION_LOST)
        with self.lock:
            self.calls.append(call)
        return response


@dataclass(frozen=True)
class Window:
    cause: str
    started: float  # the signal
    stopped: float  # the server's exit
    ended: float  # its successor ready
    exit_status: int  # the stopped server's


class Server:
    """`nexus serve` on the soak's data dir: started, signalled, started again on the same port."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.serving = 0  # the pid of the server while it is ready, else 0

    def start(self) -> None:
        # The dashboard is served too, as in production; its port is any free one.
        with self.log.open("a") as log:
            self.process = subprocess.Popen([*NEXUS, "serve", "--port", str(self.port), "--dashboard-port", "0"],
                                            env=self.env, stdout=subprocess.PIPE, stderr=log, text=True)
        self.url = served_url(self.process)
        self.port = int(self.url.rsplit(":", 1)[1])
        while not self.ready():
            time.sleep(0.1)
        self.serving = self.process.pid

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int) -> int:
        """The exit status of the stopped server."""
        assert self.process is not None
        self.serving = 0
        self.process.send_signal(sig)
        self.process.communicate(timeout=300)
        return self.process.returncode

    def logged_errors(self) -> Counter[str]:
        """The messages of the server's error lines (JSON lines on stderr), all its lifetimes."""
        lines = (json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{"))
        return Counter(line["message"][:120] for line in lines if line["level"] in ("error", "critical"))


def segment_body(ids: list[str], rng: Random) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    batch = []
    for message_id in ids:
        name = rng.choice(EVENTS)
        event = {"messageId": message_id, "anonymousId": f"person-{rng.randrange(PERSONS)}", "timestamp": now,
                 "context": {"page": {"url": f"https://shop.example.com/p/{rng.randrange(200)}"}},
                 "properties": {"revenue": round(rng.uniform(5, 200), 2)} if name == "purchase" else {}}
        batch.append({**event, "type": "page"} if name == "page_view" else {**event, "type": "track", "event": name})
    return {"batch": batch, "sentAt": now}


def posthog_body(ids: list[str], rng: Random, key: str) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    batch = []
    for event_id in ids:
        name = rng.choice(EVENTS)
        batch.append({"event": "$pageview" if name == "page_view" else name, "uuid": event_id,
                      "distinct_id": f"person-{rng.randrange(PERSONS)}", "timestamp": now,
                      "properties": {"$current_url": f"https://shop.example.com/p/{rng.randrange(200)}"}})
    return {"api_key": key, "sent_at": now, "batch": batch}


def ingest(journal: Journal, server: Server, stop: threading.Event, name: str, route: str,
           body: Callable[[list[str], Random], dict], new_id: Callable[[int], str], key: str, batch: int,
           rate: float) -> None:
    """One client: a batch every batch/rate seconds, each sent until acknowledged, the run stops or a 4xx."""
    rng = Random(name)
    headers = {"Authorization": f"Bearer {key}"}
    ids = (new_id(n) for n in itertools.count())
    started = time.monotonic()
    with httpx.Client(timeout=60) as http:
        for sent in itertools.count():
            if stop.wait(max(0.0, started + sent * batch / rate - time.monotonic())):
                return
            events = list(itertools.islice(ids, batch))
            content = body(events, rng)
            while not stop.is_set():
                # The server's URL, read at each try: it is the same after a restart (the same port).
                response = journal.send(http, "POST", route, f"{server.url}{route.split()[1]}", json=content,
                                        headers=headers)
                if response is not None and response.status_code == 200:
                    with journal.lock:
                        journal.acknowledged.extend(events)
                    break
                if response is not None and response.status_code < 500 and response.status_code != 429:
                    break
                stop.wait(RETRY_PAUSE)


def read(journal: Journal, server: Server, stop: threading.Event, key: str) -> None:
    """One reader: analyses, SQL and an export in turn, a pause between requests."""
    headers = {"Authorization": f"Bearer {key}"}
    last_day = {"date_from": "-1d"}
    asks = itertools.cycle([
        ("POST /v1/analyses/trends", {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"},
                                                 {"event": "page_view"}], "interval": "hour", "date_range": last_day}),
        ("POST /v1/query", {"sql": "SELECT event, count() AS events, uniq(distinct_id) AS persons FROM events "
                                   "WHERE ts > now() - INTERVAL 1 HOUR GROUP BY event ORDER BY event"}),
        ("POST /v1/analyses/funnel", {"steps": [{"event": "page_view"}, {"event": "add_to_cart"},
                                                {"event": "purchase"}], "date_range": last_day}),
        ("export", {}),
    ])
    with httpx.Client(timeout=60, headers=headers) as http:
        for route, body in asks:
            if stop.wait(READER_PAUSE):
                return
            if route == "export":
                export(journal, server, stop, http)
            else:
                journal.send(http, "POST", route, f"{server.url}{route.split()[1]}", json=body)


def export(journal: Journal, server: Server, stop: threading.Event, http: httpx.Client) -> None:
    """A CSV export of recent events: queued, polled until it ends, its file fetched."""
    asked = journal.send(http, "POST", "POST /v1/exports", f"{server.url}/v1/exports", json={
        "source": {"type": "sql", "query": "SELECT message_id, event, ts FROM events ORDER BY ts DESC LIMIT 10000"},
        "format": "csv"})
    if asked is None or asked.status_code != 202:
        return
    job_id = asked.json()["job_id"]
    deadline = time.monotonic() + EXPORT_WAIT
    state = f"unfinished after {EXPORT_WAIT:.0f} s"
    while time.monotonic() < deadline:
        if stop.wait(0.5):
            state = "still running at the run's end"
            break
        polled = journal.send(http, "GET", "GET /v1/jobs/{id}", f"{server.url}/v1/jobs/{job_id}")
        if polled is not None and polled.status_code == 200 and polled.json()["state"] in ("done", "failed"):
            state = polled.json()["state"]
            break
    if state == "done":
        got = journal.send(http, "GET", "GET /v1/exports/{id}/file", f"{server.url}/v1/exports/{job_id}/file")
        state = "done, file fetched" if got is not None and got.status_code == 200 else "done, file not fetched"
    with journal.lock:
        journal.exports[state] += 1


# What each memory sample holds besides its time, in MB: the process's RSS, whole and split as the kernel counts
# it — anonymous (heaps: Python's, glibc's, the engine's jemalloc) and file-backed (mapped files, the engine's
# ~500 MB library among them, paged in as its code is first run) — then the engine's own figures
# (nexus_engine_memory_bytes on the server's metrics port): all it tracks, its mark cache, and what its
# allocator holds resident (tracked memory, freed pages not yet returned, the allocator's own bookkeeping).
ENGINE_KINDS = {"engine tracked": "tracked", "engine mark cache": "mark_cache",
                "engine allocator resident": "allocator_resident"}
MEMORY = ("RSS", "RSS anonymous", "RSS file-backed", *ENGINE_KINDS)


def sample_rss(server: Server, stop: threading.Event, every: float,
               lifetimes: list[list[tuple[float, ...]]], metrics_url: str) -> None:
    """(time, *MEMORY) of the server while it is ready, one list per server process."""
    pid = 0
    while not stop.wait(every):
        if not server.serving:
            continue
        if server.serving != pid:
            pid = server.serving
            lifetimes.append([])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # ended meanwhile
            continue
        try:
            text = httpx.get(metrics_url, timeout=5).text
        except httpx.TransportError:
            continue
        engine = [float(m[1]) / 2**20 if (m := re.search(rf'^nexus_engine_memory_bytes{{kind="{kind}"}} (\S+)$', text,
                                                         re.MULTILINE)) else float("nan")
                  for kind in ENGINE_KINDS.values()]
        rss = [int(re.search(rf"{field}:\s+(\d+)", status)[1]) / 1024 for field in ("VmRSS", "RssAnon", "RssFile")]
        lifetimes[-1].append((time.monotonic(), *rss, *engine))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slope_mb_per_minute(samples: list[tuple[float, ...]], column: int = 1) -> float:
    """Least squares of one column over the samples after the lifetime's first minute (all of them in a short
    lifetime)."""
    first = samples[0][0]
    settled = [(s[0], s[column]) for s in samples if s[0] - first >= 60 or samples[-1][0] - first < 120]
    if len(settled) < 2:
        return float("nan")
    return statistics.linear_regression([t / 60 for t, _ in settled], [mb for _, mb in settled]).slope


def restart(server: Server, sig: int, cause: str) -> Window:
    started = time.monotonic()
    status = server.stop(sig)
    stopped = time.monotonic()
    server.start()
    return Window(cause, started, stopped, time.monotonic(), status)


def stored_counts(env: dict[str, str]) -> dict[str, int]:
    """Rows per message id in the stopped store."""
    done = subprocess.run([*NEXUS, "sql", "SELECT message_id, count() FROM events GROUP BY message_id",
                           "--format", "csv"], env=env, check=True, capture_output=True, text=True)
    rows = (line.rsplit(",", 1) for line in done.stdout.splitlines()[1:])
    return {message_id.strip('"'): int(count) for message_id, count in rows}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def outcome(call: Call, inside: bool) -> str:
    if call.status == CONNECTION_LOST or call.status >= 500:
        return f"{'no answer' if call.status == CONNECTION_LOST else '5xx'} {'inside' if inside else 'outside'}"
    return f"{call.status // 100}xx"


def report(journal: Journal, windows: list[Window], last_exit: int, errors: Counter[str], counts: dict[str, int],
           lifetimes: list[list[tuple[float, ...]]], args: argparse.Namespace) -> bool:
    """Prints the tables; True when the run passed."""
    def inside(call: Call) -> bool:
        return any(call.started <= w.ended and call.ended >= w.started for w in windows)

    by_route: dict[str, list[Call]] = defaultdict(list)
    for call in journal.calls:
        by_route[call.route].append(call)
    print(f"Soak of {args.minutes:g} minutes, {datetime.now(timezone.utc):%Y-%m-%d}, load average {load_average()}, "
          f"{os.cpu_count()} cores: {args.segment_clients} Segment + {args.posthog_clients} PostHog clients "
          f"({args.rate:g} events/s in batches of {args.batch}), {args.readers} readers, NEXUS_ACK={args.ack}")
    print("| route | requests | 2xx | 4xx | 5xx in / outside restarts | no answer in / outside | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    failures_outside = 0
    for route, calls in sorted(by_route.items()):
        outcomes = Counter(outcome(call, inside(call)) for call in calls)
        failures_outside += outcomes["5xx outside"] + outcomes["no answer outside"]
        answered = [(c.ended - c.started) * 1000 for c in calls if c.status != CONNECTION_LOST and not inside(c)]
        p50, p95 = (percentile(answered, 0.5), percentile(answered, 0.95)) if answered else (float("nan"),) * 2
        print(f"| {route} | {len(calls):,} | {outcomes['2xx']:,} | {outcomes['4xx']:,} | "
              f"{outcomes['5xx inside']} / {outcomes['5xx outside']} | "
              f"{outcomes['no answer inside']} / {outcomes['no answer outside']} | {p50:,.0f} | {p95:,.0f} |")
    acknowledged = journal.acknowledged
    missing = [i for i in acknowledged if i not in counts]
    twice = [i for i in acknowledged if counts.get(i, 0) > 1]
    print(f"\nEvents acknowledged: {len(acknowledged):,} (unique ids: {len(set(acknowledged)):,}); rows stored: "
          f"{sum(counts.values()):,}; acknowledged and missing: {len(missing):,}; stored more than once: "
          f"{len(twice):,} ({sum(1 for n in counts.values() if n > 1):,} ids of all stored). Exactly once: "
          f"{'yes' if not missing and not twice else 'NO'}.")
    print("Restart windows (signal to /health/ready 200): "
          + ("; ".join(f"{w.cause} {w.ended - w.started:.1f} s (exited after {w.stopped - w.started:.1f} s, status "
                       f"{w.exit_status})" for w in windows) or "none")
          + f"; the last stop, SIGTERM: exit status {last_exit}")
    print("Server error lines: " + (", ".join(f"{n} × {message!r}" for message, n in errors.most_common(5)) or "none"))
    print("Exports: " + (", ".join(f"{n} {state}" for state, n in sorted(journal.exports.items())) or "none"))
    for column, name in enumerate(MEMORY, start=1):
        print(f"Server {name} per lifetime (start → end MB, slope MB/min): " + "; ".join(
            f"{samples[0][column]:,.0f} → {samples[-1][column]:,.0f}, {slope_mb_per_minute(samples, column):+.1f}"
            for samples in lifetimes if samples))
    for sample in (missing, twice):
        if sample:
            print("e.g. " + ", ".join(sample[:5]))
    return not missing and not twice and failures_outside == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--segment-clients", type=int, default=3)
    parser.add_argument("--posthog-clients", type=int, default=2)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1500, help="events per second, all clients together")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--sample-seconds", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--no-restarts", action="store_true",
                        help="one server lifetime for the whole run: whether its memory levels off")
    parser.add_argument("--ack", choices=["stored", "logged"], default="stored",
                        help="NEXUS_ACK: answer once events are inserted, or once fsync'd to the acknowledgement log")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="nexus-soak-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_DATA_DIR=str(directory / "data"), NEXUS_LOG_LEVEL="warning", NEXUS_RATE_LIMIT="0",
               NEXUS_ACK=args.ack, PYTHONUNBUFFERED="1", NEXUS_METRICS_PORT=str(free_port()))
    subprocess.run([*NEXUS, "project", "create", "soak"], env=env, check=True, capture_output=True)
    write, read_key = (subprocess.run([*NEXUS, "key", "create", "--project", "soak", "--scope", scope], env=env,
                                      check=True, capture_output=True, text=True).stdout.strip()
                       for scope in ("write", "read"))
    server = Server(env, directory / "server.log")
    server.start()
    journal, stop, sampling = Journal(), threading.Event(), threading.Event()
    lifetimes: list[list[tuple[float, ...]]] = []
    clients = args.segment_clients + args.posthog_clients
    metrics_url = f"http://127.0.0.1:{env['NEXUS_METRICS_PORT']}/metrics"
    threads = [threading.Thread(target=sample_rss, args=(server, sampling, args.sample_seconds, lifetimes, metrics_url))]
    for n in range(args.segment_clients):
        threads.append(threading.Thread(target=ingest, args=(
            journal, server, stop, f"segment-{n}", "POST /v1/batch", segment_body,
            lambda i, n=n: f"soak-s{n}-{i}", write, args.batch, args.rate / clients)))
    for n in range(args.posthog_clients):
        threads.append(threading.Thread(target=ingest, args=(
            journal, server, stop, f"posthog-{n}", "POST /batch", lambda ids, rng: posthog_body(ids, rng, write),
            lambda i: str(uuid.uuid4()), write, args.batch, args.rate / clients)))
    threads += [threading.Thread(target=read, args=(journal, server, stop, read_key)) for _ in range(args.readers)]
    for thread in threads:
        thread.start()
    seconds = args.minutes * 60
    began = time.monotonic()
    windows = []
    stops = [] if args.no_restarts else [(1 / 3, signal.SIGTERM, "SIGTERM"), (2 / 3, signal.SIGKILL, "kill -9")]
    for at, sig, cause in stops:
        time.sleep(max(0.0, began + at * seconds - time.monotonic()))
        windows.append(restart(server, sig, cause))
    time.sleep(max(0.0, began + seconds - time.monotonic()))
    stop.set()
    for thread in threads[1:]:
        thread.join()
    sampling.set()
    threads[0].join()
    last_exit = server.stop(signal.SIGTERM)
    passed = report(journal, windows, last_exit, server.logged_errors(), stored_counts(env), lifetimes, args)
    if passed:
        shutil.rmtree(directory)
    else:
        print(f"FAILED; the data dir and the server's log are kept in {directory}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
