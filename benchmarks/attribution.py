"""Attribution speed against issue 17's target (all models over 10M events under 2 s), beside the pandas formulation
of the rule-based models on the same rows in the same run.

For each size (`--events 1M,10M`) the demo's events (nexus.demo: 8 weeks ending END, campaigns of unequal
effectiveness) are stored in a project of a fresh embedded store and every table is merged to one part per
partition (OPTIMIZE TABLE ... FINAL). The question, over the whole data: purchases with their revenue, by
channel under the default channel rules, 30-day lookback, 30-minute sessions, last non-direct.

Contenders, each the median of `--repeat` runs after one untimed run:
- Nexus, all seven models: `attribution.run` (the analysis as the read service calls it: scope, rules, goal,
  one ClickHouse statement for the rule-based credits and the path counts, Markov and Shapley in numpy).
- Nexus, the five rule-based models only (the same statement; no solver).
- Nexus, conversion paths (`conversion_paths.run`).
- pandas, the rule-based models: from the events already in memory (person resolved as Nexus resolves it,
  time, event, revenue, the entry-source columns), each event's channel from its distinct source (the
  rules applied once per distinct source), sessions split in pandas, their first events as touches, and
  tests/analyses/attribution_reference.py's `attribute` (lookbacks matched by searchsorted, no per-row loop).
  Reading the rows out of ClickHouse is not timed. Its answer is checked against Nexus's.

Printed as Markdown: a row per size with each contender's wall and CPU seconds and pandas ÷ Nexus.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nexus.analyses import attribution, conversion_paths, persons, registry
from nexus.demo.load import event_count, load
from nexus.meta import channels, projects
from nexus.store.database import open_database
from tests.analyses.attribution_reference import attribute
from tests.analyses.channel_reference import python_channel

END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(weeks=8)
BODY = {"conversion": {"event": "purchase", "value_property": "revenue"},
        "date_range": {"date_from": f"{START:%Y-%m-%d}", "date_to": f"{END - timedelta(days=1):%Y-%m-%d}"},
        "timezone": "UTC"}
SOURCE_COLUMNS = ["utm_source", "utm_medium", "utm_campaign", "referrer_class", "referrer_domain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1M,10M", help="demo events per size, e.g. 1M,10M or 200k")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (the median is shown)")
    parser.add_argument("--data-root", type=Path, help="keep each size's store here and reuse it (default: temp)")
    args = parser.parse_args()
    print("Seconds as wall / CPU (medians); the load is the 1-minute load average after the size's runs.\n")
    print("| events | Nexus, 7 models | Nexus, 5 rule-based | Nexus, conversion paths | pandas, 5 rule-based "
          "| pandas ÷ Nexus, rule-based (wall / CPU) | conversions | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in [_count(text) for text in args.events.split(",")]:
        if args.data_root:
            measure(args.data_root / f"events-{size}", size, args.repeat)
            continue
        with tempfile.TemporaryDirectory(prefix="nexus-attribution-") as root:
            measure(Path(root), size, args.repeat)


def measure(root: Path, size: int, repeat: int) -> None:
    # A kept store is read as it was written: migrations added since (by work in progress) need not apply to it.
    client = open_database(f"chdb://{root}/clickhouse?database=bench", migrate=not (root / "clickhouse").exists())
    stored = [p.project_id for p in projects.list_all(client) if p.name == "attribution-bench"]
    project = stored[0] if stored else projects.create(client, "attribution-bench").project_id
    if not stored:
        load(client, project, size, end=END)
        for (table,) in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                     "AND engine LIKE '%MergeTree'").result_rows:
            client.command(f"OPTIMIZE TABLE {table} FINAL")
    elif event_count(client, project) != size:
        raise SystemExit(f"{root} holds a store of another size (or a load cut short): remove it")
    every = registry.decode("attribution", BODY)
    rule_based = registry.decode("attribution", {**BODY, "models": list(attribution.RULE_BASED)})
    paths = registry.decode("conversion_paths", BODY)
    all_seconds, result = timed(lambda: attribution.run(client, project, every, now=END), repeat)
    rule_seconds, _ = timed(lambda: attribution.run(client, project, rule_based, now=END), repeat)
    paths_seconds, _ = timed(lambda: conversion_paths.run(client, project, paths, now=END), repeat)
    rows = events_frame(client, project)
    pandas_seconds, expected = timed(lambda: pandas_rule_based(rows), repeat)
    check(result, expected)
    cells = " | ".join(f"{wall:.2f} / {cpu:.2f}" for wall, cpu in (all_seconds, rule_seconds, paths_seconds,
                                                                     pandas_seconds))
    ratio = " / ".join(f"{p / n:.1f}×" for p, n in zip(pandas_seconds, rule_seconds))
    print(f"| {size:,} | {cells} | {ratio} | {result.conversions:,} | {os.getloadavg()[0]:.1f} |", flush=True)
    client.close()


def timed(run: Callable[[], Any], repeat: int) -> tuple[tuple[float, float], Any]:
    """(median wall seconds, median CPU seconds of the process: chDB runs inside it, so its threads count) and
    the answer. CPU time holds up on a loaded machine, where wall time mostly measures the other processes."""
    answer = run()
    wall, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        answer = run()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return (statistics.median(wall), statistics.median(cpu)), answer


def events_frame(client, project: int) -> pd.DataFrame:
    """Every event of the range's reach with its person as Nexus resolves it, read once, untimed."""
    frame = client.query_df(
        f"SELECT {persons.PERSON} AS person, e.ts AS ts, toString(e.event) AS event,"
        f" toFloat64OrZero(toString(e.properties.revenue)) AS revenue, {', '.join('e.' + c for c in SOURCE_COLUMNS)}\n"
        f"FROM events AS e\n{persons.IDENTITIES_JOIN}\nWHERE e.project_id = {{project_id:UInt32}}",
        parameters={"project_id": project})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def pandas_rule_based(events: pd.DataFrame) -> pd.DataFrame:
    """The five rule-based models by channel, as the analysis defines them, in pandas."""
    settings = channels.DEFAULT_SETTINGS
    order = {name: i for i, name in enumerate(channels.channels(settings))}
    # Groups numbered in order of first appearance, as drop_duplicates keeps them: the rules run once per source.
    codes = events.groupby(SOURCE_COLUMNS, observed=True, sort=False).ngroup().to_numpy()
    named = np.array([python_channel(r, settings) for r in events[SOURCE_COLUMNS].drop_duplicates().to_dict("records")])
    channel = pd.Series(named[codes], index=events.index)
    frame = events.assign(channel=channel, rank=channel.map(order))
    frame = frame.sort_values(["person", "ts", "rank"], kind="stable")
    first = frame["person"].ne(frame["person"].shift()) | frame["ts"].diff().gt(pd.Timedelta(minutes=30))
    touches = frame.loc[first, ["person", "ts", "channel"]].assign(source="", campaign="")
    bought = frame[frame["event"] == "purchase"]
    conversions = pd.DataFrame({"person": bought["person"], "ts": bought["ts"], "value": bought["revenue"]})
    return attribute(touches, conversions, by="channel")


def check(result: attribution.AttributionResult, expected: pd.DataFrame) -> None:
    found = {(row.model, row.label): row.conversions for row in result.rows if row.model in attribution.RULE_BASED}
    for (model, label), row in expected.iterrows():
        if abs(found.get((model, label), 0.0) - row["conversions"]) > 1e-6:
            raise SystemExit(f"answers differ: {model} {label}: Nexus {found.get((model, label))}, pandas "
                             f"{row['conversions']}")


def _count(text: str) -> int:
    text = text.strip().lower()
    for suffix, factor in (("m", 1_000_000), ("k", 1_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


if __name__ == "__main__":
    main()
