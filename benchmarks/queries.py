"""Query speed: Nexus's funnel, retention and trends next to DuckDB and pandas on the same events.

Generates N demo events (default 10M) into a temporary embedded store, exports the events and the
resolved identities once as Parquet, loads them into DuckDB (an in-memory table) and pandas, and times
the same three questions on each engine, checking that the answers agree:
- funnel: page_view → signup → add_to_cart → purchase, 7-day window, entries in the last `--days` days;
- retention: first signup per person (cohort = day), return = any event, 14 day periods;
- trends: page views per day over the last `--days` days — Nexus from the hourly rollup (and, for
  reference, from raw events); DuckDB and pandas from the raw events, since they have no rollup.
Every engine resolves distinct ids to persons itself, from the same identities. The funnel is also timed
against the engine's own ceiling: ClickHouse's built-in windowFunnel, which gives only the depth each
person reaches, on the same persons. Run:
python benchmarks/queries.py [--events N] [--days D] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from nexus.analyses import funnels, persons, retention, trends
from nexus.analyses.dates import DateRange
from nexus.analyses.funnels import FunnelRequest, FunnelStep
from nexus.analyses.retention import RetentionEvent, RetentionRequest
from nexus.analyses.trends import Series, TrendsRequest
from nexus.demo.load import load
from nexus.meta import projects
from nexus.store.database import open_database

END = datetime(2026, 11, 1, tzinfo=timezone.utc)
STEPS = ["page_view", "signup", "add_to_cart", "purchase"]
WINDOW = timedelta(days=7)
PERIODS = 14
TARGETS = {"funnel": 0.5, "retention": 0.5, "trends": 0.05}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nexus-queries-"))
    client = open_database(f"chdb://{work}/clickhouse")
    project = projects.create(client, "bench").project_id
    started = time.perf_counter()
    load(client, project, args.events, end=END)
    for table in ("events", "identities", "events_hourly"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")  # the steady state background merges reach
    print(f"generated and stored {args.events:,} events in {time.perf_counter() - started:.0f} s; "
          f"window {args.days} days ending {END:%Y-%m-%d}; median of {args.repeat} runs after a warm-up")

    start = END - timedelta(days=args.days)
    days = DateRange(start.date().isoformat(), (END - timedelta(days=1)).date().isoformat())
    events, identities = export(client, project, work)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_parquet('{events}')")
    con.execute(f"CREATE TABLE ids AS SELECT * FROM read_parquet('{identities}')")
    frame = pd.read_parquet(events)
    person_of = pd.read_parquet(identities).set_index("distinct_id")["person"]

    nexus_runs = {
        "funnel": lambda: [s.persons for s in funnels.run(client, project, FunnelRequest(
            steps=[FunnelStep(s) for s in STEPS], window=7, date_range=days, timezone="UTC"), now=END).groups[0].steps],
        "retention": lambda: retention_cells(retention.run(client, project, RetentionRequest(
            start=RetentionEvent("signup"), returning=RetentionEvent(), periods=PERIODS,
            date_range=days, timezone="UTC"), now=END)),
        "trends": lambda: trends_values(client, project, days, "auto"),
        "trends (raw events)": lambda: trends_values(client, project, days, "events"),
    }
    duck_runs = {"funnel": lambda: duck_funnel(con, start), "retention": lambda: duck_retention(con, start),
                 "trends": lambda: duck_trends(con, start)}
    panda_runs = {"funnel": lambda: pandas_funnel(frame, person_of, start),
                  "retention": lambda: pandas_retention(frame, person_of, start),
                  "trends": lambda: pandas_trends(frame, start)}

    print(f"\n{'question':<22}{'nexus s':>10}{'duckdb s':>10}{'pandas s':>10}{'duckdb/nexus':>14}"
          f"{'pandas/nexus':>14}{'target':>9}  answers")
    measured = {}
    for name, nexus in nexus_runs.items():
        ours, answer = timed(nexus, args.repeat)
        measured[name] = ours, answer
        peer = name.split(" ")[0]
        duck, duck_answer = timed(duck_runs[peer], args.repeat) if name in duck_runs else (None, None)
        panda, panda_answer = timed(panda_runs[peer], max(1, args.repeat // 2)) if name in panda_runs else (None, None)
        agree = "" if duck is None else ("agree" if answer == duck_answer == panda_answer else
                                         f"DIFFER {answer} {duck_answer} {panda_answer}")
        target = TARGETS.get(name)
        print(f"{name:<22}{ours:>10.3f}{_cell(duck)}{_cell(panda)}{_ratio(duck, ours)}{_ratio(panda, ours)}"
              f"{'' if target is None else ('met' if ours < target else 'MISSED'):>9}  {agree}")
    print("\ntargets: funnel and retention < 0.5 s, trends from rollups < 0.05 s, >= 3x DuckDB, >= 20x pandas")
    ceiling, ceiling_answer = timed(lambda: window_funnel(client, project, start), args.repeat)
    ours, answer = measured["funnel"]
    print(f"engine's own ceiling for the funnel: ClickHouse's windowFunnel (depths only: no step times, medians or "
          f"entry event), same persons: {ceiling:.3f} s, {'agrees' if ceiling_answer == answer else 'DIFFERS'}; "
          f"Nexus's funnel takes {ours / ceiling:.2f}x that")
    api_latencies(work, project, days, max(20, args.repeat * 4))


def api_latencies(work: Path, project: int, days: DateRange, calls: int) -> None:
    """p50 and p95 of POST /v1/analyses/{kind} through the real HTTP server, computed afresh each call
    (the project is marked changed before each, so the cache misses) and served from the cache."""
    import logging
    import socket
    import threading

    import httpx
    import uvicorn

    from nexus import changes
    from nexus.api.app import create_app
    from nexus.meta import keys
    from nexus.runtime import open_runtime
    from nexus.settings import load as load_settings

    range_ = {"date_from": days.date_from, "date_to": days.date_to}
    bodies = {
        "funnel": {"steps": [{"event": s} for s in STEPS], "window": 7, "date_range": range_, "timezone": "UTC"},
        "retention": {"start": {"event": "signup"}, "returning": {}, "periods": PERIODS, "date_range": range_,
                      "timezone": "UTC"},
        "trends": {"series": [{"event": "page_view"}], "date_range": range_, "timezone": "UTC"},
    }
    settings = load_settings({"NEXUS_DATA_DIR": str(work), "NEXUS_LOG_LEVEL": "warning", "NEXUS_RATE_LIMIT": "0"})
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, as serve's
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    with open_runtime(settings) as runtime:
        secret = keys.create(runtime.clickhouse, project, "read")[1]
        server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/analyses"
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the app's logging config reports each request
        print(f"\nAPI, {calls} calls each   {'fresh p50':>10}{'fresh p95':>10}{'cached p50':>11}{'cached p95':>11}")
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {secret}"}) as http:
            for kind, body in bodies.items():
                fresh, cached = [], []
                for _ in range(calls):
                    changes.mark_changed(runtime.redis.client, {project})
                    for sink in (fresh, cached):
                        started = time.perf_counter()
                        answer = http.post(f"{url}/{kind}", json=body)
                        sink.append(time.perf_counter() - started)
                        assert answer.status_code == 200, answer.text
                print(f"{kind:<24}{_quantile(fresh, 0.5):>10.3f}{_quantile(fresh, 0.95):>10.3f}"
                      f"{_quantile(cached, 0.5):>11.3f}{_quantile(cached, 0.95):>11.3f}")
        server.should_exit = True
        thread.join()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def export(client, project: int, work: Path) -> tuple[Path, Path]:
    """Events and identities (latest version per id) as Parquet, once: the peers' input."""
    events = client.query_arrow(
        "SELECT ts, toString(event) AS event, distinct_id FROM events WHERE project_id = {p:UInt32}",
        parameters={"p": project})
    identities = client.query_arrow(
        "SELECT distinct_id, toString(argMax(person_id, version)) AS person FROM identities "
        "WHERE project_id = {p:UInt32} GROUP BY distinct_id HAVING argMax(is_deleted, version) = 0",
        parameters={"p": project})
    pq.write_table(events, work / "events.parquet")
    pq.write_table(identities, work / "identities.parquet")
    return work / "events.parquet", work / "identities.parquet"


def timed(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    answer = run()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer


def retention_cells(result) -> list[int]:
    """Persons per k (0..PERIODS) summed over cohorts, counting only observed cells."""
    return [sum(c.counts[k] or 0 for c in result.cohorts) for k in range(PERIODS + 1)]


def trends_values(client, project: int, days: DateRange, source: str) -> list[int]:
    result = trends.run(client, project, TrendsRequest(series=[Series("page_view")], timezone="UTC", source=source,
                                                       date_range=days), now=END)
    return [int(v) for v in result.lines[0].values]


def window_funnel(client, project: int, start: datetime) -> list[int]:
    """Persons per step by ClickHouse's built-in windowFunnel, persons resolved as Nexus resolves them."""
    conditions = ", ".join([f"e.event = {{s0:String}} AND e.ts < {{end:DateTime64(3, 'UTC')}}",
                            *(f"e.event = {{s{k}:String}}" for k in range(1, len(STEPS)))])
    rows = client.query(
        f"SELECT depth, count() FROM (SELECT {persons.PERSON_KEY} AS person, windowFunnel({{window:UInt64}})"
        f"(toUInt64(toUnixTimestamp64Milli(e.ts)), {conditions}) AS depth\n"
        f"FROM events AS e\n{persons.IDENTITIES_JOIN}\n"
        f"WHERE e.project_id = {{project_id:UInt32}} AND e.ts >= {{start:DateTime64(3, 'UTC')}}"
        f" AND e.ts < {{stop:DateTime64(3, 'UTC')}} AND e.event IN {{steps:Array(String)}}\n"
        f"GROUP BY person) GROUP BY depth",
        parameters={"project_id": project, "window": int(WINDOW.total_seconds() * 1000), "start": start, "end": END,
                    "stop": END + WINDOW, "steps": STEPS, **{f"s{k}": step for k, step in enumerate(STEPS)}}).result_rows
    reached = dict(rows)
    return [sum(n for depth, n in reached.items() if depth > k) for k in range(len(STEPS))]


# DuckDB: ASOF joins, DuckDB's own tool for "the next event at or after": from every entry, the first
# event of each next step at or after the previous one, kept while within the window — the greedy route
# to windowFunnel's depth (faster in DuckDB than the same machine as window functions: 1.5 s vs 2.2 s).
def duck_funnel(con, start: datetime) -> list[int]:
    levels = [f"c0 AS (SELECT person, ts AS t0, ts AS at FROM steps WHERE event = '{STEPS[0]}' AND ts < $end)"]
    for k, step in enumerate(STEPS[1:], 1):
        levels.append(f"c{k} AS (SELECT c.person, c.t0, s.ts AS at FROM c{k - 1} c ASOF JOIN "
                      f"(SELECT person, ts FROM steps WHERE event = '{step}') s ON c.person = s.person AND s.ts >= c.at "
                      f"WHERE s.ts - c.t0 <= INTERVAL {WINDOW.days} DAY)")
    counts = " UNION ALL ".join(f"SELECT {k} AS k, count(DISTINCT person) FROM c{k}" for k in range(len(STEPS)))
    rows = con.execute(
        f"WITH steps AS (SELECT coalesce(i.person, e.distinct_id) AS person, e.ts, e.event FROM ev e "
        f"LEFT JOIN ids i USING (distinct_id) WHERE e.ts >= $start AND e.ts < $stop "
        f"AND e.event IN ({', '.join(repr(s) for s in STEPS)})),\n" + ",\n".join(levels) + f"\n{counts}",
        {"start": start, "end": END, "stop": END + WINDOW}).fetchall()
    return [n for _, n in sorted(rows)]


def duck_retention(con, start: datetime) -> list[int]:
    rows = con.execute(
        "WITH e AS (SELECT coalesce(i.person, e.distinct_id) AS person, e.ts, e.event FROM ev e "
        "LEFT JOIN ids i USING (distinct_id)), "
        "firsts AS (SELECT person, min(date_trunc('day', ts)) AS cohort FROM e WHERE event = 'signup' "
        "AND ts < $cohorts_end GROUP BY person HAVING min(date_trunc('day', ts)) >= $start), "
        "active AS (SELECT DISTINCT person, date_trunc('day', ts) AS day FROM e WHERE ts >= $start) "
        "SELECT datediff('day', cohort, day) AS k, count(*) FROM firsts JOIN active USING (person) "
        "WHERE day >= cohort AND datediff('day', cohort, day) <= $periods AND day < $end GROUP BY k",
        {"start": start, "cohorts_end": END, "end": END, "periods": PERIODS}).fetchall()
    found = dict(rows)
    return [found.get(k, 0) for k in range(PERIODS + 1)]


def duck_trends(con, start: datetime) -> list[int]:
    rows = con.execute("SELECT date_trunc('day', ts) AS d, count(*) FROM ev WHERE event = 'page_view' "
                       "AND ts >= $start AND ts < $end GROUP BY d ORDER BY d",
                       {"start": start, "end": END}).fetchall()
    return [n for _, n in rows]


# pandas: from every entry, the next step at or after the previous one (merge_asof), within the window:
# the greedy route to the same depth.
def pandas_funnel(frame: pd.DataFrame, person_of: pd.Series, start: datetime) -> list[int]:
    rows = frame[(frame["ts"] >= start) & (frame["ts"] < END + WINDOW) & frame["event"].isin(STEPS)]
    rows = rows.assign(person=rows["distinct_id"].map(person_of).fillna(rows["distinct_id"]))
    chains = rows[(rows["event"] == STEPS[0]) & (rows["ts"] < END)][["person", "ts"]].rename(columns={"ts": "t0"})
    chains = chains.assign(at=chains["t0"], depth=1).sort_values("at")
    for k, step in enumerate(STEPS[1:], 1):
        targets = rows[rows["event"] == step][["person", "ts"]].sort_values("ts")
        matched = pd.merge_asof(chains, targets, left_on="at", right_on="ts", by="person", direction="forward")
        moved = matched["ts"].notna() & (matched["ts"] - matched["t0"] <= WINDOW) & (matched["depth"] == k)
        chains = matched.assign(depth=matched["depth"] + moved, at=matched["ts"].where(moved, matched["at"]))
        chains = chains.drop(columns="ts").sort_values("at")
    deepest = chains.groupby("person")["depth"].max()
    return [int((deepest > k).sum()) for k in range(len(STEPS))]


def pandas_retention(frame: pd.DataFrame, person_of: pd.Series, start: datetime) -> list[int]:
    # Only the rows the answer needs (every signup, any event from `start`) are resolved to persons.
    rows = frame[((frame["event"] == "signup") & (frame["ts"] < END)) | (frame["ts"] >= start)]
    rows = rows.assign(person=rows["distinct_id"].map(person_of).fillna(rows["distinct_id"]),
                       day=rows["ts"].dt.floor("D"))
    signups = rows[(rows["event"] == "signup") & (rows["ts"] < END)]
    cohorts = signups.groupby("person")["day"].min()
    cohorts = cohorts[cohorts >= start].rename("cohort").reset_index()
    active = rows[rows["ts"] >= start][["person", "day"]].drop_duplicates()
    cells = cohorts.merge(active, on="person")
    k = (cells["day"] - cells["cohort"]).dt.days
    counts = k[(k >= 0) & (k <= PERIODS)].value_counts()
    return [int(counts.get(i, 0)) for i in range(PERIODS + 1)]


def pandas_trends(frame: pd.DataFrame, start: datetime) -> list[int]:
    views = frame[(frame["event"] == "page_view") & (frame["ts"] >= start) & (frame["ts"] < END)]
    return [int(n) for n in views.groupby(views["ts"].dt.floor("D")).size()]


def _cell(seconds: float | None) -> str:
    return f"{'':>10}" if seconds is None else f"{seconds:>10.3f}"


def _ratio(peer: float | None, ours: float) -> str:
    return f"{'':>14}" if peer is None else f"{peer / ours:>13.1f}x"


if __name__ == "__main__":
    main()
