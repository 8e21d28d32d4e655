"""Answers "run this analysis for this project" the way every client needs it: decode and validate the
request, read the cache or run it, and hand back the result with the SQL and parameters that produced it
and, on request, its table in a file format.

The cache (Redis) keeps a result together with its explain, so the SQL shown for a cached answer is the
SQL that computed it, not a new one built against a later "now". A key holds the project's change
generation (nexus.changes: new data makes older answers unreachable) and the version of the analyses'
definitions (a digest of their code), so after an upgrade no answer of an older definition is served.
Relative date ranges move with the clock, so entries also expire after CACHE_SECONDS.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import msgspec
import pyarrow as pa
import redis
from clickhouse_connect.driver.client import Client

import nexus.analyses
from nexus import changes
from nexus.analyses import registry, tables
from nexus.analyses.sql import ENGINE_SETTINGS
from nexus.exports.stream import write_batches
from nexus.meta import projects
from nexus.observe.metrics import metrics

CACHE_SECONDS = 60

TableFormat = Literal["csv", "arrow", "parquet", "ndjson"]
MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "arrow": "application/vnd.apache.arrow.stream",
                               "parquet": "application/vnd.apache.parquet", "ndjson": "application/x-ndjson"}


def _definitions_version() -> str:
    """A digest of the code that defines every analysis: any change to it is a new version."""
    digest = hashlib.sha256()
    for path in sorted(Path(nexus.analyses.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


DEFINITIONS = _definitions_version()


class Explain(msgspec.Struct, frozen=True):
    """The SQL behind a result, runnable as shown through POST /v1/query with `params`; `settings` are
    planner hints sent with it, which change how it runs, never what it answers."""

    sql: str
    params: dict[str, Any]
    settings: dict[str, Any]


class Answer(msgspec.Struct, frozen=True):
    kind: str
    cached: bool
    computed_at: datetime
    result: msgspec.Raw  # the result as JSON, exactly as cached
    explain: Explain

    def decoded(self) -> msgspec.Struct:
        """The result as its analysis's Result struct."""
        return msgspec.json.decode(self.result, type=registry.module(self.kind).Result)

    def table(self) -> pa.Table:
        return tables.table(self.kind, self.decoded())

    def table_bytes(self, fmt: TableFormat) -> bytes:
        """The result's table as a file: CSV (formula-safe), Arrow IPC stream, Parquet or NDJSON."""
        table = self.table()
        sink = io.BytesIO()
        # An empty table still has its columns: one empty batch carries them into the file.
        write_batches(table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)], fmt, sink)
        return sink.getvalue()


class _Cached(msgspec.Struct, frozen=True):
    computed_at: datetime
    result: msgspec.Raw
    explain: Explain


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AnalysisService:
    def __init__(self, clickhouse: Client, redis_client: redis.Redis, clock: Callable[[], datetime] = utc_now):
        self.clickhouse = clickhouse
        self.redis = redis_client
        self.clock = clock

    def answer(self, project_id: int, kind: str, request: bytes | dict[str, Any] | msgspec.Struct) -> Answer:
        """The analysis `kind` for the project, from the cache when an equal request was answered since
        the project's data last changed; `request` is a JSON body, a parsed one, or a decoded Request."""
        analysis = request if isinstance(request, msgspec.Struct) else registry.decode(kind, request or b"{}")
        name = self._key(project_id, kind, analysis)
        stored = self.redis.get(name)
        if stored is not None:
            metrics().analysis_answers.labels(kind, "hit").inc()
            cached = msgspec.json.decode(stored, type=_Cached)
            return Answer(kind, True, cached.computed_at, cached.result, cached.explain)
        metrics().analysis_answers.labels(kind, "miss").inc()
        # One instant for the run and its explain: relative ranges resolve the same way in both.
        now = self.clock()
        analysis = _zoned(self.clickhouse, project_id, analysis)
        started = time.perf_counter()
        result = msgspec.json.encode(registry.run(self.clickhouse, project_id, kind, analysis, now=now))
        metrics().analysis_seconds.labels(kind).observe(time.perf_counter() - started)
        sql, params = registry.explain(self.clickhouse, project_id, kind, analysis, now=now)
        fresh = _Cached(now, msgspec.Raw(result), Explain(sql, {k: _as_bound(v) for k, v in params.items()},
                                                          ENGINE_SETTINGS))
        self.redis.set(name, msgspec.json.encode(fresh), ex=CACHE_SECONDS)
        return Answer(kind, False, fresh.computed_at, fresh.result, fresh.explain)

    def _key(self, project_id: int, kind: str, analysis: msgspec.Struct) -> str:
        # msgspec encodes a Struct's fields in declaration order, so equal requests encode equally; the saved
        # definitions it names (goals) are part of the question, so changing one changes the key.
        saved = registry.saved_definitions(self.clickhouse, project_id, kind, analysis)
        digest = hashlib.sha256(msgspec.json.encode(analysis) + b"\0" + saved).hexdigest()[:32]
        generation = changes.generation(self.redis, project_id)
        return f"result:{project_id}:{generation}:{DEFINITIONS}:{kind}:{digest}"


def _zoned(clickhouse: Client, project_id: int, request: msgspec.Struct) -> msgspec.Struct:
    """The request with the project's time zone when it names none (what the analysis would read): looked
    up once for the run and its explain, instead of once by each (a query to the store apiece)."""
    if "timezone" in request.__struct_fields__ and getattr(request, "timezone") is None:
        return msgspec.structs.replace(request, timezone=projects.get(clickhouse, project_id).timezone)
    return request


def _as_bound(value: Any) -> Any:
    """A parameter as ClickHouse reads it back when bound by hand (times in UTC, without the 'T' and 'Z';
    milliseconds only when there are some, since a DateTime parameter refuses them and DateTime64 reads both)."""
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%d %H:%M:%S") + (f".{utc.microsecond // 1000:03d}" if utc.microsecond else "")
    if isinstance(value, list):
        return [_as_bound(v) for v in value]
    return value
