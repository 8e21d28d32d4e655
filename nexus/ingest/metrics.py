"""Ingestion counters per project in Redis: events received, stored, duplicate and rejected (by field),
time per pipeline step, and clock skew per SDK library. Shared by every API process."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import redis

from nexus.ingest.pipeline import Processed


class SkewStats(msgspec.Struct):
    events: int
    mean_abs_skew_ms: float
    max_abs_skew_ms: int
    flagged: int


class IngestMetrics(msgspec.Struct):
    received: int
    stored: int
    duplicates: int
    rejected: int
    rejected_by_field: dict[str, int]
    step_seconds: dict[str, float]
    skew_by_library: dict[str, SkewStats]


def record(client: redis.Redis, project_id: int, received: int, processed: Processed, stored: int,
           duplicates: int, skew_flag_ms: int) -> None:
    counts = f"ingest:{project_id}:counts"
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(counts, "received", received)
    pipe.hincrby(counts, "stored", stored)
    pipe.hincrby(counts, "duplicates", duplicates)
    pipe.hincrby(counts, "rejected", len(processed.rejections))
    for rejection in processed.rejections:
        pipe.hincrby(f"ingest:{project_id}:rejected", rejection.field or "(body)", 1)
    for step, seconds in processed.step_seconds.items():
        pipe.hincrbyfloat(f"ingest:{project_id}:steps", step, seconds)
    skew: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # events, sum |skew|, max |skew|, flagged
    for library, correction in zip(processed.columns.get("library", ()), processed.columns.get("skew_ms", ())):
        entry = skew[library or "(unknown)"]
        magnitude = abs(correction)
        entry[0] += 1
        entry[1] += magnitude
        entry[2] = max(entry[2], magnitude)
        entry[3] += magnitude > skew_flag_ms
    for library, (events, total, largest, flagged) in skew.items():
        key = f"ingest:{project_id}:skew:{library}"
        pipe.hincrby(key, "events", events)
        pipe.hincrby(key, "sum_abs_ms", total)
        pipe.hincrby(key, "flagged", flagged)
        pipe.eval("if tonumber(redis.call('HGET', KEYS[1], 'max_abs_ms') or '0') < tonumber(ARGV[1]) then "
                  "redis.call('HSET', KEYS[1], 'max_abs_ms', ARGV[1]) end", 1, key, largest)
        pipe.sadd(f"ingest:{project_id}:libraries", library)
    pipe.execute()


def read(client: redis.Redis, project_id: int) -> IngestMetrics:
    counts = _ints(client.hgetall(f"ingest:{project_id}:counts"))
    skew = {}
    for library in sorted(m.decode() for m in client.smembers(f"ingest:{project_id}:libraries")):
        stats = _ints(client.hgetall(f"ingest:{project_id}:skew:{library}"))
        events = stats.get("events", 0)
        skew[library] = SkewStats(events, stats.get("sum_abs_ms", 0) / events if events else 0.0,
                                  stats.get("max_abs_ms", 0), stats.get("flagged", 0))
    steps = {k.decode(): float(v) for k, v in client.hgetall(f"ingest:{project_id}:steps").items()}
    return IngestMetrics(
        received=counts.get("received", 0), stored=counts.get("stored", 0),
        duplicates=counts.get("duplicates", 0), rejected=counts.get("rejected", 0),
        rejected_by_field=_ints(client.hgetall(f"ingest:{project_id}:rejected")),
        step_seconds=steps, skew_by_library=skew,
    )


def _ints(mapping: dict[Any, Any]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in mapping.items()}
