"""The clients and services one Nexus process holds, opened at start and closed at stop: ClickHouse,
Redis, the read services (analyses and ad-hoc SQL) and, in a process that ingests, the ingest writer
(which gets a ClickHouse client of its own, so inserts never wait behind queries on a shared
connection)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import msgspec
from clickhouse_connect.driver.client import Client

from nexus import redis_server
from nexus.adhoc import limits
from nexus.adhoc.sandbox import QueryService
from nexus.errors import MigrationError, NexusError
from nexus.ingest.ack_log import WriteAheadLog
from nexus.ingest.dedup import Dedup
from nexus.ingest.identity import IdentityResolver
from nexus.ingest.metrics import MetricsRecorder
from nexus.ingest.service import Ingestor
from nexus.ingest.writer import GroupCommitWriter
from nexus.jobs.worker import JobSystem
from nexus.observe.metrics import metrics
from nexus.permissions import private_files, warn_if_open
from nexus.services.analyses import AnalysisService
from nexus.settings import Settings
from nexus.store import backup, migrations
from nexus.store.backup import BackupSummary
from nexus.store.client import describe_error, parse_url
from nexus.store.database import open_database


class Runtime(msgspec.Struct):
    settings: Settings
    clickhouse: Client
    redis: redis_server.RedisHandle
    analyses: AnalysisService
    queries: QueryService
    ingestor: Ingestor | None  # None in a process that only reads (a dashboard, a worker in server mode)
    jobs: JobSystem | None = None  # the job broker; its worker threads run where `jobs.start` is called

    def ingest(self) -> Ingestor:
        if self.ingestor is None:
            raise RuntimeError("this process was opened to read only: it has no ingest writer")
        return self.ingestor

    def readiness(self) -> dict[str, str]:
        """Whether ClickHouse and Redis answer a ping now, every migration is applied and the event writer
        keeps up: "ok" for each, else why not (never raises)."""
        checks = {}
        try:
            checks["clickhouse"] = "ok" if self.clickhouse.ping() else "does not answer"
        except Exception as e:  # any failure means not ready; the reason is reported, not raised
            checks["clickhouse"] = describe_error(e)
        try:
            self.redis.client.ping()
            checks["redis"] = "ok"
        except Exception as e:
            checks["redis"] = str(e) or type(e).__name__
        if checks["clickhouse"] == "ok":
            try:
                waiting = [m.file_name for m in migrations.pending(self.clickhouse)]
                checks["migrations"] = f"not applied: {', '.join(waiting)}" if waiting else "ok"
            except Exception as e:
                checks["migrations"] = describe_error(e)
        if self.ingestor is not None:
            queued, bound = self.ingestor.writer.queued_rows, self.ingestor.writer.max_rows * 2
            checks["writer"] = "ok" if queued < bound else f"backlogged: {queued:,} events wait (requests block at {bound:,})"
        return checks

    def workers_alive(self) -> int | None:
        """Job workers whose heartbeat is fresh in Redis (server mode), None in embedded mode, where the
        workers are threads of this process."""
        if not self.settings.redis_url or self.jobs is None:
            return None
        try:
            return self.jobs.workers_alive()
        except Exception:  # Redis down: the redis check says so
            return 0

    def record_dependencies(self) -> None:
        """Set the nexus_dependency_up gauges from a check now (at every scrape), and the engine's memory."""
        checks = self.readiness()
        for name in ("clickhouse", "redis"):
            metrics().up.labels(name).set(1 if checks.get(name) == "ok" else 0)
        if checks.get("clickhouse") == "ok":
            try:
                found = self.clickhouse.query("SELECT metric, value FROM system.metrics WHERE metric IN "
                                              "{names:Array(String)}", parameters={"names": list(ENGINE_MEMORY)})
            except NexusError:  # gone since the check: the gauges keep their last values
                return
            for metric, value in found.result_rows:
                metrics().engine_memory.labels(ENGINE_MEMORY[metric]).set(value)
            for kind, value in self._engine_allocator().items():
                metrics().engine_memory.labels(f"allocator_{kind}").set(value)

    def _engine_allocator(self) -> dict[str, int]:
        """The engine's jemalloc summary (allocated, active, metadata, resident, mapped, retained bytes):
        what it holds beyond the memory it tracks (freed pages not yet returned, its own bookkeeping).
        Empty for an engine built without jemalloc."""
        try:
            rows = self.clickhouse.query("SELECT * FROM system.jemalloc_stats").result_rows
        except NexusError:
            return {}
        summary = re.search(r"^Allocated: .*$", rows[0][0], re.MULTILINE) if rows else None
        return {k.lower(): int(v) for k, v in re.findall(r"(\w+): (\d+)", summary[0])} if summary else {}

    def backup(self, path: Path) -> BackupSummary:
        """A backup of the store while this process serves: the event writer holds its next insert until
        every table is backed up, so events, rollups and identities are cut at the same insert."""
        with self.ingestor.writer.paused() if self.ingestor is not None else nullcontext():
            return backup.backup(self.clickhouse, parse_url(self.settings.clickhouse_url), path)


# The engine's own memory figures (system.metrics) → nexus_engine_memory_bytes's `kind`: a process whose RSS
# grows shows here whether the engine's caches hold the growth.
ENGINE_MEMORY = {"MemoryTracking": "tracked", "MarkCacheBytes": "mark_cache",
                 "UncompressedCacheBytes": "uncompressed_cache", "PrimaryIndexCacheBytes": "primary_index_cache",
                 "QueryCacheBytes": "query_cache"}


@contextmanager
def open_runtime(settings: Settings, *, ingest: bool = True) -> Iterator[Runtime]:
    """Open ClickHouse, Redis (embedded unless NEXUS_REDIS_URL is set), the read services and, with
    `ingest`, the writer; on exit, drain the writer, then close everything in reverse order. A process
    that ingests also migrates the store first; one opened to read only expects it migrated (server
    mode: compose's `migrate` service). Files this process creates from here on (parts, Redis's,
    spooled uploads, exports) are its user's only."""
    private_files()
    for directory in (settings.data_dir, settings.data_dir / "spool"):
        warn_if_open(directory)
    with ExitStack() as stack:
        clickhouse = open_database(settings.clickhouse_url, migrate=ingest, cluster=settings.clickhouse_cluster)
        stack.callback(clickhouse.close)
        if not ingest and (waiting := migrations.pending(clickhouse)):
            # Said at start, not as a missing table at the first request that reads one.
            raise MigrationError(f"the store is not migrated ({len(waiting)} migrations pending, from "
                                 f"{waiting[0].file_name}): run `nexus migrate` first")
        if settings.redis_url:
            redis = redis_server.connect(settings.redis_url)
        else:
            redis = redis_server.start_embedded(settings.data_dir)
        stack.callback(redis.close)
        queries = QueryService(parse_url(settings.clickhouse_url), clickhouse, limits.from_settings(settings),
                               max_concurrent=settings.query_max_concurrent,
                               max_json_bytes=settings.query_max_json_bytes)
        analyses = AnalysisService(clickhouse, redis.client)
        if not ingest:
            yield _with_jobs(stack, Runtime(settings, clickhouse, redis, analyses, queries, None))
            return
        writer_client = open_database(settings.clickhouse_url, migrate=False)
        stack.callback(writer_client.close)
        ack_log = WriteAheadLog(settings.data_dir / "ack-log") if settings.ack == "logged" else None
        writer = GroupCommitWriter(writer_client, IdentityResolver(redis.client), max_rows=settings.writer_max_rows,
                                   max_delay_ms=settings.writer_max_delay_ms, ack_log=ack_log)
        if ack_log is not None:
            writer.replay()
        writer.start()
        stack.callback(writer.stop)
        recorder = MetricsRecorder(redis.client, settings.skew_flag_seconds * 1000)
        recorder.start()
        stack.callback(recorder.stop)
        dedup = Dedup(redis.client, settings.dedup_hours)
        yield _with_jobs(stack, Runtime(settings, clickhouse, redis, analyses, queries,
                                        Ingestor(writer, dedup, clickhouse, recorder, settings, _ip_salt(redis))))


def _with_jobs(stack: ExitStack, runtime: Runtime) -> Runtime:
    """The runtime with its job system, stopped (workers first) before the rest closes."""
    from nexus.jobs.handlers import handlers

    runtime.jobs = JobSystem(runtime, handlers())
    stack.callback(runtime.jobs.stop)
    return runtime


def _ip_salt(redis: redis_server.RedisHandle) -> bytes:
    """One secret per installation for NEXUS_IP_MODE=hash, shared by every process through Redis."""
    redis.client.set("nexus:ip_salt", secrets.token_hex(16), nx=True)
    return redis.client.get("nexus:ip_salt")
