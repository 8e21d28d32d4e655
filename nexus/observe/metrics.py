"""The Prometheus metrics of a Nexus process, with the official prometheus-client.

One process (embedded mode) keeps them in memory. Where several processes serve on one machine (server
mode: `nexus api` and `nexus worker` beside each other), each writes its values to files in
PROMETHEUS_MULTIPROC_DIR (`metrics` under the data dir unless set) and /metrics adds every process's up;
prometheus-client picks its value store when a metric's first value is made, so `use_directory` runs
before `registry()` is first called (nexus.serve, nexus.jobs.service).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "exposed", "exposition", "metrics", "use_directory"]

_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
_ROWS = (1, 10, 100, 1_000, 10_000, 50_000, 100_000, 500_000, 1_000_000)


class Metrics:
    """Every metric Nexus records; names follow Prometheus's conventions (unit suffix, _total)."""

    def __init__(self, registry: CollectorRegistry | None):
        def made(kind: type, name: str, help_text: str, labels: tuple[str, ...] = (), **options: object):
            return kind(name, help_text, labels, registry=registry, **options)

        self.requests = made(Counter, "nexus_http_requests", "HTTP requests answered, by route template and status",
                             ("method", "route", "status"))
        self.request_seconds = made(Histogram, "nexus_http_request_duration_seconds",
                                    "Time to answer an HTTP request, by route template", ("method", "route"),
                                    buckets=_SECONDS)
        self.events = made(Counter, "nexus_ingest_events", "Events by what became of them: received, stored, "
                           "rejected, deduplicated", ("outcome",))
        self.writer_queued = made(Gauge, "nexus_writer_queued_events", "Events waiting for the group-commit writer",
                                  multiprocess_mode="livesum")
        self.insert_rows = made(Histogram, "nexus_writer_insert_rows", "Events per ClickHouse insert of the writer",
                                buckets=_ROWS)
        self.insert_seconds = made(Histogram, "nexus_writer_insert_duration_seconds",
                                   "Time of one ClickHouse insert of the writer (links and events)", buckets=_SECONDS)
        self.analysis_seconds = made(Histogram, "nexus_analysis_query_duration_seconds",
                                     "Time to compute an analysis (its ClickHouse queries and the reading of their rows; "
                                     "not answers from the cache), by kind",
                                     ("kind",), buckets=_SECONDS)
        self.analysis_answers = made(Counter, "nexus_analysis_answers", "Analyses answered, by kind and whether "
                                     "the cache had the answer", ("kind", "cache"))
        self.jobs = made(Counter, "nexus_jobs", "Job attempts ended, by kind and outcome (done, failed, retried, "
                         "cancelled, interrupted)", ("kind", "outcome"))
        self.job_seconds = made(Histogram, "nexus_job_duration_seconds", "Time of a job attempt, by kind", ("kind",),
                                buckets=_SECONDS)
        self.up = made(Gauge, "nexus_dependency_up", "1 when the dependency answered its last check (at scrape)",
                       ("dependency",), multiprocess_mode="livemax")
        self.engine_memory = made(Gauge, "nexus_engine_memory_bytes", "Memory ClickHouse reports at the last check: "
                                  "all it tracks, each cache's share, and its allocator's summary (allocator_*)",
                                  ("kind",), multiprocess_mode="livemax")


def use_directory(directory: Path) -> None:
    """Keep this process's values in files under `directory` (unless PROMETHEUS_MULTIPROC_DIR names one),
    added up with the other processes' there at every scrape."""
    path = Path(os.environ.setdefault(_DIRECTORY, str(directory)))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    values.ValueClass = values.get_value_class()


def forget_process() -> None:
    """At exit: this process's live gauges (the writer's queue) no longer count."""
    if os.environ.get(_DIRECTORY):
        multiprocess.mark_process_dead(os.getpid())


@cache
def metrics() -> Metrics:
    """This process's metrics: in prometheus-client's default registry, or in its files (multiprocess)."""
    return Metrics(None if os.environ.get(_DIRECTORY) else _REGISTRY)


_REGISTRY = CollectorRegistry(auto_describe=True)


def exposed() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or one adding up every process's files."""
    metrics()
    if directory := os.environ.get(_DIRECTORY):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return registry
    return _REGISTRY


def exposition() -> bytes:
    """Every metric in Prometheus's text format."""
    return generate_latest(exposed())
