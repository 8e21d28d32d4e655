"""Predictions against issue 18's targets: per-person feature extraction (nexus.predict.features) for
`--persons` persons over `--events` events in under 3 s, next to pandas computing the same features from the
same rows in the same run (tests/predict/reference.py, the tests' reference, answers compared); the time to
train the churn and LTV models and to score every person; and the peak RSS of the process doing that work
(the worker's part), target under 1.5 GB.

Data: synthetic, vectorised (the demo generator makes ~4 persons per 100 events; the target asks for 50
events a person): each person has a first day spread over `--weeks` weeks and a lifetime (exponential,
mean 30 days, longer on paid plans) after which they send nothing, events spread uniformly over that life,
10 event names (purchases carry revenue and plan), channel, device and country fixed per person; half the
persons are identified, sending some events under an anonymous id and the rest under a user id, both
linked to the person in `identities`. Tables are merged to one part per partition (OPTIMIZE … FINAL).

Each part runs in a process of its own, so that one's memory does not count in another's peak:
`load` generates and stores the data (once per data dir), `nexus` times extraction (median of `--repeat`
after one untimed run), training and scoring and reports its peak RSS, `pandas` reads the same rows,
resolves persons and times the reference's features, and checks them against Nexus's.

Run: python benchmarks/predictions.py [--persons 200000] [--events 10000000] [--weeks 16] [--repeat 3]
[--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

END = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAY_MS = 86_400_000
PROJECT = 1
EVENTS = ["page_view", "page_view", "page_view", "dashboard_viewed", "report_created", "search", "invite_sent",
          "export_downloaded", "add_to_cart", "purchase"]
EVENT_WEIGHTS = [0.25, 0.15, 0.1, 0.12, 0.08, 0.1, 0.05, 0.05, 0.06, 0.04]
PLANS, PLAN_WEIGHTS, PRICES, LOYALTY = ["free", "pro", "team"], [0.6, 0.3, 0.1], [19.0, 49.0, 199.0], [0.7, 1.3, 2.0]
CHANNELS = ["google", "facebook", "newsletter", "twitter", ""]
CLASSES = ["search", "social", "email", "social", "direct"]
DEVICES, COUNTRIES = ["desktop", "mobile", "tablet"], ["US", "GB", "DE", "FR", "IN", "BR", "CA", "JP"]


def load(data_dir: Path, persons: int, events: int, weeks: int) -> None:
    from nexus.store.database import open_database

    client = open_database(f"chdb://{data_dir}")
    if client.query("SELECT count() FROM events").result_rows[0][0]:
        print(f"data already in {data_dir}")
        return
    rng = np.random.default_rng(18)
    start_ms = int(END.timestamp() * 1000) - weeks * 7 * DAY_MS
    span = weeks * 7 * DAY_MS
    plan = rng.choice(3, persons, p=PLAN_WEIGHTS)
    first = start_ms + rng.integers(0, span - DAY_MS, persons)
    life = (rng.exponential(30 * DAY_MS, persons) * np.array(LOYALTY)[plan]).astype(np.int64) + DAY_MS
    last = np.minimum(first + life, start_ms + span - 1)
    channel, device, country = rng.integers(0, 5, persons), rng.integers(0, 3, persons), rng.integers(0, 8, persons)
    identified = rng.random(persons) < 0.5
    person_ids = np.array([str(uuid.UUID(int=int(x), version=4)) for x in rng.integers(0, 2**63, persons)])
    weight = rng.pareto(2.0, persons) + 1
    owner = rng.choice(persons, events, p=weight / weight.sum())
    ts = first[owner] + (rng.random(events) * (last[owner] - first[owner])).astype(np.int64)
    name = rng.choice(len(EVENTS), events, p=EVENT_WEIGHTS)
    anonymous = ~identified[owner] | (rng.random(events) < 0.3)
    distinct = np.where(anonymous, np.char.add("anon-", owner.astype(str)), np.char.add("user-", owner.astype(str)))
    quantity = rng.choice([1, 1, 1, 2, 3], events)
    templates = np.array(["{}"] + [json.dumps({"plan": p}) for p in PLANS]
                         + [json.dumps({"plan": p, "revenue": PRICES[i] * q}) for i, p in enumerate(PLANS)
                            for q in (1, 2, 3)])
    is_purchase, is_feature = name == 9, (name >= 3) & (name <= 8)
    template = np.where(is_purchase, 4 + plan[owner] * 3 + quantity - 1, np.where(is_feature, 1 + plan[owner], 0))
    step = 1_000_000
    for i in range(0, events, step):
        part = slice(i, i + step)
        o = owner[part]
        client.insert_arrow("events", pa.table({
            "project_id": pa.array(np.full(len(o), PROJECT), pa.uint32()),
            "ts": pa.array(ts[part], pa.timestamp("ms", tz="UTC")),
            "event": pa.array(np.array(EVENTS)[name[part]]),
            "type": pa.array(np.where(name[part] < 3, "page", "track")),
            "message_id": pa.array(np.char.add("m-", np.arange(i, i + len(o)).astype(str))),
            "distinct_id": pa.array(distinct[part]),
            "utm_source": pa.array(np.array(CHANNELS)[channel[o]]),
            "referrer_class": pa.array(np.array(CLASSES)[channel[o]]),
            "device_type": pa.array(np.array(DEVICES)[device[o]]),
            "country": pa.array(np.array(COUNTRIES)[country[o]]),
            "properties": pa.array(templates[template[part]]),
            "received_at": pa.array(ts[part], pa.timestamp("ms", tz="UTC")),
        }))
        print(f"  stored {min(i + step, events):,} events", flush=True)
    linked = np.flatnonzero(identified)
    ids = np.concatenate([np.char.add("anon-", linked.astype(str)), np.char.add("user-", linked.astype(str))])
    client.insert_arrow("identities", pa.table({
        "project_id": pa.array(np.full(len(ids), PROJECT), pa.uint32()), "distinct_id": pa.array(ids),
        "person_id": pa.array(np.concatenate([person_ids[linked], person_ids[linked]])),
        "version": pa.array(np.ones(len(ids), np.uint64()))}))
    for table in ("events", "identities"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    print(f"stored {events:,} events of {persons:,} persons in {data_dir}")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def nexus(data_dir: Path, repeat: int, out: Path) -> dict:
    from nexus.predict import churn, features, ltv, scoring, versions
    from nexus.store.database import open_database

    client = open_database(f"chdb://{data_dir}")
    result: dict = {"rss_start_mb": _peak_rss_mb()}
    features.extract(client, PROJECT, END)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        frame = features.extract(client, PROJECT, END)
        times.append(time.perf_counter() - started)
    frame.to_parquet(out)
    result.update(persons=len(frame), extract_s=statistics.median(times), extract_runs=times)
    with tempfile.TemporaryDirectory() as models:
        for kind, train, request in (("churn", churn.train, churn.ChurnRequest()),
                                     ("ltv", ltv.train, ltv.LtvRequest(horizon_days=28))):
            started = time.perf_counter()
            trained = train(client, PROJECT, request)
            result[f"train_{kind}_s"] = time.perf_counter() - started
            result[f"train_{kind}_rows"] = trained.rows
            result[f"{kind}_metrics"] = {k: v for k, v in trained.metrics.items() if k not in ("calibration", "importance")}
            version = versions.save(Path(models), PROJECT, trained)
            versions.activate(Path(models), PROJECT, kind, version.version_id)
        started = time.perf_counter()
        result["scored_rows"] = scoring.score(client, Path(models), PROJECT, "bench", END)
        result["score_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def pandas_peer(data_dir: Path, repeat: int, nexus_frame: Path) -> dict:
    import pandas as pd

    from nexus.store.database import open_database
    from tests.predict import reference

    client = open_database(f"chdb://{data_dir}")
    started = time.perf_counter()
    # The rows as reference.rows reads them, but revenue and plan as columns: 10M property dicts in pandas
    # would take gigabytes.
    rows = client.query_arrow(
        "SELECT toUnixTimestamp64Milli(ts) AS ms, event, distinct_id, utm_source, referrer_class, device_type, "
        "country, ifNull(toFloat64OrNull(toString(properties.revenue)), 0) AS revenue, "
        "toString(properties.plan) AS plan FROM events WHERE project_id = {p:UInt32}",
        parameters={"p": PROJECT}).to_pandas()
    identities = client.query_df(
        "SELECT distinct_id, toString(person_id) AS person_id, version, is_deleted FROM identities "
        "WHERE project_id = {p:UInt32}", parameters={"p": PROJECT})
    latest = identities.sort_values("version").groupby("distinct_id").tail(1)
    latest = latest[latest["is_deleted"] == 0].set_index("distinct_id")["person_id"]
    rows["person_id"] = rows["distinct_id"].map(latest).fillna(rows["distinct_id"])
    read_s = time.perf_counter() - started
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        expected = reference.features(rows, END)
        times.append(time.perf_counter() - started)
    found = pd.read_parquet(nexus_frame).set_index("person_id")
    expected = expected.loc[found.index].set_axis(found.index)
    from nexus.predict.features import CATEGORICAL, NUMERIC

    numeric_equal = bool(np.allclose(found[NUMERIC].to_numpy(), expected[NUMERIC].to_numpy(), rtol=1e-9, atol=1e-9))
    categorical_equal = bool((found[CATEGORICAL].to_numpy() == expected[CATEGORICAL].to_numpy()).all())
    return {"read_s": read_s, "features_s": statistics.median(times), "same_persons": len(expected) == len(found),
            "answers_equal": numeric_equal and categorical_equal, "peak_rss_mb": _peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--weeks", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--phase", choices=["load", "nexus", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"nexus-bench-predictions-{args.persons}-{args.events}"
    if args.phase == "load":
        return load(data_dir, args.persons, args.events, args.weeks)
    if args.phase == "nexus":
        return print(json.dumps(nexus(data_dir, args.repeat, args.out)))
    if args.phase == "pandas":
        return print(json.dumps(pandas_peer(data_dir, args.repeat, args.out)))

    def phase(name: str, *extra: str) -> dict | None:
        command = [sys.executable, __file__, "--phase", name, "--data-dir", str(data_dir), "--persons",
                   str(args.persons), "--events", str(args.events), "--weeks", str(args.weeks), "--repeat",
                   str(args.repeat), *extra]
        done = subprocess.run(command, capture_output=name != "load", text=True)
        if done.returncode:
            sys.exit(f"the {name} part failed:\n{done.stderr or ''}")
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else None

    phase("load")
    frame = data_dir / "nexus_features.parquet"
    ours = phase("nexus", "--out", str(frame))
    peer = phase("pandas", "--out", str(frame))
    print(f"\n{ours['persons']:,} persons, {args.events:,} events ({args.weeks} weeks)\n")
    print("| measure | Nexus | pandas | target |\n| --- | --- | --- | --- |")
    print(f"| features of every person (s, median of {args.repeat}) | {ours['extract_s']:.2f} | "
          f"{peer['features_s']:.2f} (+{peer['read_s']:.1f} s to read the rows) | < 3 |")
    print(f"| answers equal | {peer['answers_equal'] and peer['same_persons']} | | |")
    print(f"| train churn (s; rows {ours['train_churn_rows']}) | {ours['train_churn_s']:.1f} | | |")
    print(f"| train LTV, 28-day horizon (s; rows {ours['train_ltv_rows']}) | {ours['train_ltv_s']:.1f} | | |")
    print(f"| score every person and write person_predictions (s) | {ours['score_s']:.1f} | | |")
    print(f"| peak RSS (MB) | {ours['peak_rss_mb']:.0f} | {peer['peak_rss_mb']:.0f} | < 1,536 (Nexus) |")
    print(f"\nchurn: {json.dumps(ours['churn_metrics'])}\nltv: {json.dumps(ours['ltv_metrics'])}")


if __name__ == "__main__":
    main()
