"""Dashboard speed in the real browser: time from navigation to all charts drawn, next to the floor of the
stack (a bare Panel page with one Bokeh plot) and the read service's own time for the same analyses.

For each size (`--sizes 1M,10M`) starts `nexus serve --demo N` on free ports over a data dir of its own
under `--data-root`, kept: a rerun reuses the stored events instead of generating them again
(`--regenerate` starts afresh). It makes a read key with the instance admin key (NEXUS_ADMIN_KEY: a reused
store printed its demo keys on its first start only), an admin key, and with it a saved dashboard of 8 tiles
(POST /v1/dashboards). Then it drives Debian's chromium with playwright, on a browser profile on disk (as
an analyst's: the static files stay in its HTTP cache, V8 keeps their compiled code): sign in once, then
for each page a warm-up load and `--loads` rounds of three loads, each in a new tab:
- the floor: a bare Panel server's page with one Bokeh plot, served by Panel's defaults from another
  process here (nothing we build can draw faster than that);
- fresh: the project's change generation is bumped first in the server's own Redis (nexus.changes, over
  the embedded redis-server's unix socket under the data dir), so every analysis of the page misses the
  read service's cache and runs;
- cached: the same page again right after, every analysis answered from the cache.
The three take turns so that all meet the same machine (2 cores shared with others: its load comes and goes).

"All charts drawn", measured in the page (performance.now(), from navigation start, checked on every
animation frame), is the first moment when all of these hold:
- every card of the page has drawn its answer (a card shows its "Show me the SQL" action only once its
  analysis answered and its chart is built): as many as the page has cards;
- every Bokeh plot and table of the document has a view in the page that has painted (has_finished);
- no Panel loading spinner is left (no model carries the pn-loading class);
- the page's numbers are shown: the Overview's six KPIs and the live panel's.
A card that shows an error instead stops the run with its message.

Where the time goes, per load: from the browser's navigation timing the HTML received (the server builds
the page's document before it answers) and the scripts run (DOMContentLoaded); the browser's main-thread
CPU (CDP Performance metrics: all tasks, and script alone); the server process's CPU (/proc, all threads,
ClickHouse's included). And, after the loads, the read service alone: the page's analyses through POST
/v1/analyses/{kind}, fresh, one after another. Server RSS: the serve process's resident memory, sampled
every 100 ms while the pages are open (peak).

Run: python benchmarks/dashboard.py [--sizes 1M,10M] [--loads 5] [--data-root DIR] [--regenerate] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from playwright.sync_api import BrowserContext, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sizes import load_average, parse_size, size_label  # benchmarks/sizes.py (benchmarks run as scripts from this folder)

from nexus import changes
from nexus.dashboard import tiles as dashboard_tiles
from nexus.dashboard.pages import live
from nexus.dashboard.shell import Context, View

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 120_000
BENCH_DASHBOARD = "Benchmark: 8 tiles"
# Targets from the issue, seconds: (page, size) -> fresh target; cached pages under CACHED_TARGET.
TARGETS = {("overview", 1_000_000): 1.0, ("overview", 10_000_000): 2.0, ("dashboard", 10_000_000): 2.0}
CACHED_TARGET = 0.3
RSS_TARGET_MB = 1200
FUNNEL = ["page_view", "signup", "add_to_cart", "purchase"]

# The saved dashboard of 8 tiles: the Default dashboard's but its sessions tile (6), purchases per day and a
# funnel; every tile a Bokeh chart. On the page each runs under the page's date range and time zone.
TILES: list[dict[str, Any]] = [
    {"title": "Events per day", "kind": "trends", "chart": "line", "request": {"series": [{"metric": "events"}]}},
    {"title": "Unique persons per day", "kind": "trends", "chart": "line",
     "request": {"series": [{"metric": "persons"}]}},
    {"title": "Top events", "kind": "trends", "chart": "bar",
     "request": {"series": [{"metric": "events"}], "breakdown": {"key": "event", "source": "column", "limit": 10}}},
    {"title": "Purchases per day", "kind": "trends", "chart": "bar", "request": {"series": [{"event": "purchase"}]}},
    {"title": "Lifecycle", "kind": "lifecycle", "chart": "stacked_bar", "request": {"period": "week"}},
    {"title": "Days active", "kind": "stickiness", "chart": "bar", "request": {"period": "day"}},
    {"title": "Checkout funnel", "kind": "funnel", "chart": "funnel",
     "request": {"steps": [{"event": e} for e in FUNNEL], "window": 7}},
    {"title": "Weekly retention", "kind": "retention", "chart": "heatmap",
     "request": {"start": {}, "returning": {}, "period": "week", "periods": 8}, "width": 12, "height": 400},
]

# The predicate the page is polled with (on every animation frame): performance.now() at the first frame
# when every card has drawn, every plot and table has painted (and at least spec.plots of them), no spinner is left and the page's numbers are shown;
# false until then. An error notice in place of a card ends the wait with its text.
DRAWN_JS = """
(spec) => {
  const B = window.Bokeh;
  if (B == null || B.documents == null || B.documents.length == 0 || B.index == null) return false;
  // Cheap checks first, on the models alone: this runs every frame while the page loads, on the page's
  // own main thread.
  let cards = 0, kpis = 0, lives = 0;
  const wanted = [];
  for (const doc of B.documents) {
    for (const model of doc._all_models.values()) {
      const classes = model.css_classes ?? [];
      if (classes.includes("pn-loading")) return false;
      if (classes.includes("nx-show-sql")) { cards += 1; wanted.push(model); }
      if (["Figure", "Plot", "GMap", "DataTable"].includes(model.type)) wanted.push(model);
      const text = typeof model.text == "string" ? model.text : "";
      if (text.includes("nx-notice nx-warning") || text.includes("nx-notice nx-danger")) {
        return "ERROR " + text.replace(/<[^>]*>/g, " ").slice(0, 300);
      }
      if (text.includes("data-kpi=")) { kpis += (text.match(/data-kpi=/g) || []).length; wanted.push(model); }
      if (text.includes("data-live=")) { lives += 1; wanted.push(model); }
    }
  }
  if (cards < spec.cards || kpis < spec.kpis || lives < spec.live) return false;
  // Then the views: every card, plot, table and number shown, every plot and table painted.
  const views = new Map();
  for (const view of B.index.all_views()) views.set(view.model, view);
  let plots = 0;
  for (const model of wanted) {
    const view = views.get(model);
    if (view == null || !view.el.isConnected || !view.has_finished()) return false;
    if (["Figure", "Plot", "GMap", "DataTable"].includes(model.type)) plots += 1;
  }
  return plots >= spec.plots ? performance.now() : false;
}
"""

# What the page shows now, when it is not drawn in time: the same counts as DRAWN_JS.
SHOWN_JS = """
() => {
  const B = window.Bokeh, found = {documents: 0, loading: 0, cards: 0, plots: 0, painted: 0, kpis: 0, live: 0};
  if (B == null || B.documents == null) return found;
  const views = new Map();
  for (const view of B.index.all_views()) views.set(view.model, view);
  for (const doc of B.documents) {
    found.documents += 1;
    for (const model of doc.all_models) {
      const classes = model.css_classes ?? [], view = views.get(model);
      const text = typeof model.text == "string" ? model.text : "";
      if (classes.includes("pn-loading")) {
        found.loading += 1;
        found.spinning = [...(found.spinning ?? []), `${model.type} ${model.id} ${(model.children ?? []).length} children`];
      }
      if (classes.includes("nx-show-sql") && view != null) found.cards += 1;
      if (["Figure", "Plot", "GMap", "DataTable"].includes(model.type)) {
        found.plots += 1;
        if (view != null && view.has_finished()) found.painted += 1;
      }
      if (text.includes("data-kpi=") && view != null) found.kpis += (text.match(/data-kpi=/g) || []).length;
      if (text.includes("data-live=") && view != null) found.live += 1;
    }
  }
  return found;
}
"""

PHASES_JS = """
() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {html: n.responseEnd, ttfb: n.responseStart, scripts: n.domContentLoadedEventEnd};
}
"""


@dataclass
class Load:
    drawn: float  # seconds from navigation start to all charts drawn
    ttfb: float
    html: float  # the page's HTML received (the server builds the page's document before it answers)
    scripts: float  # DOMContentLoaded: Bokeh's and Panel's scripts have run
    script_cpu: float  # the browser's main thread running script during the load, seconds
    task_cpu: float  # the browser's main thread busy at all (script, style, layout, paint)
    server_cpu: float  # the server process's CPU during the load (all threads, its queries included)


@dataclass
class PageResult:
    page: str
    size: int
    fresh: list[Load] = field(default_factory=list)
    cached: list[Load] = field(default_factory=list)
    floor: list[Load] = field(default_factory=list)
    warmup: Load | None = None
    queries: float = 0.0  # the read service's fresh time for the page's analyses, summed
    query_detail: str = ""


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    spec: dict[str, int]  # what "drawn" waits for: cards, plots, kpis, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M", help="demo events per run, e.g. 1M,10M or 200k")
    parser.add_argument("--loads", type=int, default=5, help="fresh and cached loads per page")
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/nexus-bench-dashboard"),
                        help="one data dir per size under it, kept for the next run")
    parser.add_argument("--regenerate", action="store_true", help="delete the stored demo data and generate it again")
    parser.add_argument("--code", type=Path, help="serve the nexus package of this checkout instead (e.g. an earlier "
                        "commit: git archive COMMIT | tar -x -C DIR), to compare two versions on the same data")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        return serve_floor()
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    results: list[PageResult] = []
    notes: list[str] = [f"load average at start: {load_average()} on {os.cpu_count()} cores"]
    rss: dict[int, tuple[float, float]] = {}
    profile = Path(tempfile.mkdtemp(prefix="nexus-bench-chromium-"))
    with sync_playwright() as playwright, floor_server() as floor_url:
        # A profile on disk, as an analyst's browser has: its HTTP cache keeps the static files between page
        # loads and V8 caches their compiled code (an incognito context keeps neither for long).
        browser = playwright.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                                viewport=VIEWPORT)
        load_once(browser, floor_url, FLOOR_SPEC)  # the browser caches Bokeh's and Panel's files
        for size in sizes:
            with served(size, args.data_root / f"demo-{size_label(size)}", args.regenerate, notes, args.code) as server:
                results += measure_size(browser, server, size, args.loads, lambda: load_once(browser, floor_url, FLOOR_SPEC))
                rss[size] = (server.rss_at_start, server.monitor.peak_mb)
        browser.close()
    shutil.rmtree(profile, ignore_errors=True)
    notes.append(f"load average at the end: {load_average()} on {os.cpu_count()} cores")
    report(results, rss, notes)


# ---------------------------------------------------------------- the server under test

@dataclass
class Server:
    process: subprocess.Popen
    api: str
    dashboard: str
    admin_key: str
    data_dir: Path
    monitor: RssMonitor
    rss_at_start: float = 0.0
    read_key: str = ""
    project_id: int = 1
    dashboard_id: str = ""


class RssMonitor:
    """The peak resident memory of a process, sampled every 100 ms while `active`."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_mb = 0.0
        self.active = threading.Event()
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def now_mb(self) -> float:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0.0
        found = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(found[1]) / 1024 if found else 0.0

    def _run(self) -> None:
        while not self.stopped.wait(0.1):
            if self.active.is_set():
                self.peak_mb = max(self.peak_mb, self.now_mb())


@contextmanager
def served(size: int, data_dir: Path, regenerate: bool, notes: list[str], code: Path | None = None) -> Iterator[Server]:
    """`nexus serve --demo size` on free ports over `data_dir` (the demo is loaded only into an empty store)."""
    if regenerate and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    admin_key = "nx_bench_" + secrets.token_urlsafe(32)
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "NEXUS_ADMIN_KEY": admin_key, "NEXUS_RATE_LIMIT": "0",
           "NEXUS_LOG_LEVEL": "warning"}
    if code is not None:  # that checkout's nexus package, not this one's
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--port", "0", "--demo", str(size)], env=env,
                               text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    try:
        api = dashboard = ""
        generated = False
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Loading "):
                generated = True
            if found := re.search(r"Dashboard: (http://\S+)", line):
                dashboard = found[1].rstrip("/")
            if found := re.search(r"Nexus is serving (http://\S+)", line):
                api = found[1]
                break
        if not api or not dashboard:
            raise SystemExit(f"nexus serve stopped before it served ({data_dir})")
        took = time.perf_counter() - started
        notes.append(f"{size_label(size)}: " + (f"generated and stored {size:,} demo events, serving after {took:.0f} s"
                                                if generated else f"reused the stored demo events in {data_dir} "
                                                f"(serving after {took:.0f} s)"))
        log = open(data_dir / "serve.log", "a")  # the rest of serve's output, for when something fails
        threading.Thread(target=lambda: [log.write(line) or log.flush() for line in process.stdout], daemon=True).start()
        server = Server(process, api, dashboard, admin_key, data_dir, RssMonitor(process.pid))
        server.rss_at_start = server.monitor.now_mb()
        prepare(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prepare(server: Server) -> None:
    """Keys made with the instance admin key (a reused store printed its demo keys on its first start
    only) and the saved dashboard of 8 tiles (made, or set to TILES again, on a reused store)."""
    with httpx.Client(base_url=server.api, timeout=60, headers={"Authorization": f"Bearer {server.admin_key}"}) as http:
        demo = next(p for p in checked(http.get("/v1/projects")).json() if p["name"] == "demo")
        server.project_id = demo["project_id"]
        make = {"project_id": server.project_id, "name": "dashboard benchmark"}
        server.read_key = checked(http.post("/v1/keys", json={**make, "scope": "read"})).json()["secret"]
        admin = checked(http.post("/v1/keys", json={**make, "scope": "admin"})).json()["secret"]
        headers = {"Authorization": f"Bearer {admin}"}
        existing = checked(http.get("/v1/dashboards", headers=headers)).json()["dashboards"]
        found = next((d for d in existing if d["name"] == BENCH_DASHBOARD), None)
        body = {"name": BENCH_DASHBOARD, "tiles": TILES}
        found = checked(http.post("/v1/dashboards", headers=headers, json=body) if found is None else
                        http.put(f"/v1/dashboards/{found['dashboard_id']}", headers=headers, json=body)).json()
        server.dashboard_id = found["dashboard_id"]


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response


def mark_changed(server: Server) -> None:
    """Bump the project's change generation in the server's own Redis: every cached answer misses."""
    socket = server.data_dir / "redis" / "redis.sock"
    client = redis.Redis(unix_socket_path=str(socket))
    try:
        changes.mark_changed(client, [server.project_id])
    finally:
        client.close()


# ---------------------------------------------------------------- loads in the browser

def measure_size(context: BrowserContext, server: Server, size: int, loads: int,
                 floor: Callable[[], Load]) -> list[PageResult]:
    """Each page: a warm-up load, then `loads` rounds of the floor, the page fresh and the page cached, in
    turn, so that all three meet the same machine (others' work on it comes and goes)."""
    sign_in(context, server.dashboard, server.read_key)
    pages = [Page("overview", "/overview", {"cards": 1, "plots": 1, "kpis": 6, "live": 1}),
             Page("dashboard", f"/dashboards?dashboard={server.dashboard_id}",
                  {"cards": len(TILES), "plots": 1, "kpis": 0, "live": 0})]
    results = []
    server.monitor.active.set()
    for page in pages:
        result = PageResult(page.name, size)
        url = server.dashboard + page.path
        mark_changed(server)
        result.warmup = load_once(context, url, page.spec, server.process.pid)
        for _ in range(loads):
            result.floor.append(floor())
            mark_changed(server)
            result.fresh.append(load_once(context, url, page.spec, server.process.pid))
            result.cached.append(load_once(context, url, page.spec, server.process.pid))
        result.queries, result.query_detail = query_time(server, page.name, loads)
        results.append(result)
    server.monitor.active.clear()
    return results


def sign_in(context: BrowserContext, base: str, key: str) -> None:
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=key]", key)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.close()


def load_once(context: BrowserContext, url: str, spec: dict[str, int], server_pid: int | None = None) -> Load:
    """One navigation in a new tab, timed in the page from navigation start to all charts drawn."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        before, cpu_before = metrics(cdp), process_cpu(server_pid)
        page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
        try:
            drawn = page.wait_for_function(DRAWN_JS, arg=spec, polling="raf", timeout=TIMEOUT_MS).json_value()
        except PlaywrightTimeout:
            raise SystemExit(f"{url}: not drawn after {TIMEOUT_MS / 1000:.0f} s; waiting for {spec}, the page has "
                             f"{page.evaluate(SHOWN_JS)}") from None
        if isinstance(drawn, str):
            raise SystemExit(f"{url}: a card shows an error: {drawn}")
        after, cpu_after = metrics(cdp), process_cpu(server_pid)
        phases = page.evaluate(PHASES_JS)
        used = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in ("ScriptDuration", "TaskDuration")}
        return Load(drawn / 1000, phases["ttfb"] / 1000, phases["html"] / 1000, phases["scripts"] / 1000,
                    used["ScriptDuration"], used["TaskDuration"], cpu_after - cpu_before)
    finally:
        cdp.detach()
        page.close()


def process_cpu(pid: int | None) -> float:
    """CPU seconds a process (all its threads: Python's and ClickHouse's) has used so far."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


# ---------------------------------------------------------------- the read service alone

def page_requests(server: Server, page: str) -> list[tuple[str, dict[str, Any]]]:
    """The analyses the page asks for, with the bodies it sends (the page's default global settings)."""
    ctx = Context(None, View(tz="UTC"), page)  # type: ignore[arg-type]  # common() needs no reader with tz set
    if page == "overview":
        return [("overview", ctx.common()), ("live", {"minutes": live.MINUTES, "latest": 15})]
    return [(t["kind"], dashboard_tiles.on_dashboard(ctx, t["kind"], t["request"])) for t in TILES]


def query_time(server: Server, page: str, loads: int) -> tuple[float, str]:
    """The median over `loads` of the page's analyses answered fresh one after another through the API."""
    requests = page_requests(server, page)
    runs: list[list[float]] = []
    with httpx.Client(base_url=server.api, timeout=120,
                      headers={"Authorization": f"Bearer {server.read_key}"}) as http:
        for _ in range(loads):
            mark_changed(server)
            times = []
            for kind, body in requests:
                started = time.perf_counter()
                answer = checked(http.post(f"/v1/analyses/{kind}", json=body))
                times.append(time.perf_counter() - started)
                assert answer.headers.get("content-type", "").startswith("application/json")
            runs.append(times)
    per_kind = [statistics.median(run[i] for run in runs) for i in range(len(requests))]
    detail = ", ".join(f"{kind} {t * 1000:.0f}" for (kind, _), t in zip(requests, per_kind))
    return statistics.median(sum(run) for run in runs), detail


# ---------------------------------------------------------------- the floor: a bare Panel page

FLOOR_SPEC = {"cards": 0, "plots": 1, "kpis": 0, "live": 0}


def serve_floor() -> None:
    """A bare Panel server (this process): one page with one Bokeh line plot, Panel's defaults."""
    import panel as pn
    from bokeh.plotting import figure

    def floor_page() -> Any:
        plot = figure(height=300, sizing_mode="stretch_width", x_axis_type="datetime")
        plot.line(list(range(30)), [i % 7 for i in range(30)])
        return pn.Column(pn.pane.Bokeh(plot, sizing_mode="stretch_width"), sizing_mode="stretch_width")

    server = pn.serve({"floor": floor_page}, port=0, address="127.0.0.1", show=False, start=False,
                      websocket_origin="*")
    print(f"floor serving http://127.0.0.1:{server.port}/floor", flush=True)
    server.start()
    server.io_loop.start()


@contextmanager
def floor_server() -> Iterator[str]:
    """The floor's bare Panel server, in a process of its own; yields its page's URL."""
    process = subprocess.Popen([sys.executable, __file__, "--floor-server"], text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        url = next((found[1] for line in process.stdout if (found := re.search(r"floor serving (\S+)", line))), None)
        if url is None:
            raise SystemExit("the floor's Panel server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


# ---------------------------------------------------------------- the report

def report(results: list[PageResult], rss: dict[int, tuple[float, float]], notes: list[str]) -> None:
    for note in notes:
        print(note)
    loads = len(results[0].fresh) if results else 0
    print(f"\nseconds from navigation to all charts drawn, p50/p95 of {loads} loads; fresh: every analysis of the "
          "page misses the cache; floor: a bare Panel page with one Bokeh plot, loaded in turn with the page; "
          "queries: the read service alone, the page's analyses one after another, fresh")
    print(f"{'page':<11}{'size':>5}{'fresh p50':>11}{'fresh p95':>11}{'cached p50':>12}{'cached p95':>12}"
          f"{'floor p50':>11}{'queries':>9}{'target':>14}  met?")
    for r in results:
        fresh, cached = [x.drawn for x in r.fresh], [x.drawn for x in r.cached]
        target = TARGETS.get((r.page, r.size))
        met = ("yes" if quantile(fresh, 0.5) < target else "NO") if target else "-"
        met += "/" + ("yes" if quantile(cached, 0.5) < CACHED_TARGET else "NO")
        label = f"<{target:g} / <{CACHED_TARGET:g}" if target else f"- / <{CACHED_TARGET:g}"
        print(f"{r.page:<11}{size_label(r.size):>5}{quantile(fresh, 0.5):>11.3f}{quantile(fresh, 0.95):>11.3f}"
              f"{quantile(cached, 0.5):>12.3f}{quantile(cached, 0.95):>12.3f}"
              f"{quantile([x.drawn for x in r.floor], 0.5):>11.3f}{r.queries:>9.3f}{label:>14}  {met}")
    print("\nwhere the time goes (medians, seconds): from navigation start, the HTML received (the server builds "
          "the page's document first), the scripts run (DOMContentLoaded) and all drawn; CPU during the load: "
          "the browser's main thread (all of it, and running script) and the server process (all threads)")
    print(f"{'load':<24}{'ttfb':>7}{'html':>7}{'scripts':>9}{'drawn':>8}{'browser':>9}{'script':>8}{'server':>8}")
    rows = [(f"{r.page} {size_label(r.size)} {kind}", measured) for r in results
            for kind, measured in (("floor", r.floor), ("fresh", r.fresh), ("cached", r.cached))]
    for name, measured in rows:
        print(f"{name:<24}" + "".join(f"{statistics.median(getattr(x, a) for x in measured):>{w}.3f}"
                                      for a, w in (("ttfb", 7), ("html", 7), ("scripts", 9), ("drawn", 8),
                                                   ("task_cpu", 9), ("script_cpu", 8), ("server_cpu", 8))))
    print("first loads (fresh; Bokeh's and Panel's files in the browser's cache, the page's own files not yet): " +
          ", ".join(f"{r.page} {size_label(r.size)} {r.warmup.drawn:.3f} s" for r in results if r.warmup))
    print("\nthe read service alone, fresh, one after another (ms, median): " +
          "; ".join(f"{r.page} {size_label(r.size)}: {r.query_detail}" for r in results))
    for size, (start, peak) in rss.items():
        print(f"server RSS {size_label(size)}: {start:,.0f} MB after start, peak {peak:,.0f} MB while pages were open "
              f"(target < {RSS_TARGET_MB:,} MB on 10M: {'met' if peak < RSS_TARGET_MB else 'MISSED'})")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
