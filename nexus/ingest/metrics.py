"""Ingestion counters per project: events received, stored, duplicate and rejected (by field), time per
pipeline step, and clock skew per SDK library.

Requests add to counters in memory; a background thread adds them to Redis hashes once a second (and
at stop), so every API process contributes to one set of numbers without a Redis round trip per request.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import msgspec
import redis

from nexus.ingest.pipeline import Processed
from nexus.observe.metrics import metrics

FLUSH_SECONDS = 1.0


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


class MetricsRecorder:
    def __init__(self, client: redis.Redis, skew_flag_ms: int):
        self.redis = client
        self.skew_flag_ms = skew_flag_ms
        self._lock = threading.Lock()
        self._pending: dict[int, _Counts] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_regularly, name="nexus-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def add(self, project_id: int, received: int, processed: Processed, stored: int, duplicates: int) -> None:
        # Prometheus gets the installation's totals; per project they stay in Redis (projects are not labels).
        events = metrics().events
        events.labels("received").inc(received)
        events.labels("stored").inc(stored)
        events.labels("rejected").inc(len(processed.rejections))
        events.labels("deduplicated").inc(duplicates)
        with self._lock:
            counts = self._pending.setdefault(project_id, _Counts())
            counts.add(received, processed, stored, duplicates, self.skew_flag_ms)

    def flush(self) -> None:
        """Add what was counted since the last flush to Redis."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        pipe = self.redis.pipeline(transaction=False)
        for project_id, counts in pending.items():
            counts.write(pipe, project_id)
        pipe.execute()

    def _flush_regularly(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except redis.RedisError:  # metrics are best effort: a failed flush drops that second's counts
                pass


def _counted_as(field: str) -> str:
    """The name a rejection is counted under: a path inside properties or traits is the sender's own key
    (`properties.p.q`), so it is counted as its column's, or every new key would add a Redis field."""
    if field.startswith(("properties.", "properties[", "traits.", "traits[")):
        return field.split(".", 1)[0].split("[", 1)[0]
    return field or "(body)"


class _Counts:
    def __init__(self) -> None:
        self.totals: dict[str, int] = defaultdict(int)
        self.rejected: dict[str, int] = defaultdict(int)
        self.steps: dict[str, float] = defaultdict(float)
        self.skew: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # events, sum, max, flagged

    def add(self, received: int, processed: Processed, stored: int, duplicates: int, flag_ms: int) -> None:
        self.totals["received"] += received
        self.totals["stored"] += stored
        self.totals["duplicates"] += duplicates
        self.totals["rejected"] += len(processed.rejections)
        for rejection in processed.rejections:
            self.rejected[_counted_as(rejection.field)] += 1
        for step, seconds in processed.step_seconds.items():
            self.steps[step] += seconds
        for library, correction in zip(processed.columns.get("library", ()), processed.columns.get("skew_ms", ())):
            entry = self.skew[library or "(unknown)"]
            magnitude = abs(correction)
            entry[0] += 1
            entry[1] += magnitude
            entry[2] = max(entry[2], magnitude)
            entry[3] += magnitude > flag_ms

    def write(self, pipe: Any, project_id: int) -> None:
        for name, value in self.totals.items():
            pipe.hincrby(f"ingest:{project_id}:counts", name, value)
        for field, value in self.rejected.items():
            pipe.hincrby(f"ingest:{project_id}:rejected", field, value)
        for step, seconds in self.steps.items():
            pipe.hincrbyfloat(f"ingest:{project_id}:steps", step, seconds)
        for library, (events, total, largest, flagged) in self.skew.items():
            key = f"ingest:{project_id}:skew:{library}"
            pipe.hincrby(key, "events", events)
            pipe.hincrby(key, "sum_abs_ms", total)
            pipe.hincrby(key, "flagged", flagged)
            pipe.eval("if tonumber(redis.call('HGET', KEYS[1], 'max_abs_ms') or '0') < tonumber(ARGV[1]) then "
                      "redis.call('HSET', KEYS[1], 'max_abs_ms', ARGV[1]) end", 1, key, largest)
            pipe.sadd(f"ingest:{project_id}:libraries", library)


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
