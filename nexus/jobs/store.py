"""Job records: what each job is and how it stands, durable in ClickHouse (the `jobs` table, the metadata
pattern of nexus.meta.records), with what changes every second kept in Redis:

- progress (`nexus:job:progress:<id>`: percent and rows so far), shown while the job runs;
- liveness (`nexus:job:alive:<id>`): set by the worker that claimed the job and renewed while it runs, so
  a job whose worker died (kill -9, a lost machine) is found out when it expires (nexus.jobs.worker);
- cancellation (`nexus:job:cancel:<id>`): asked by DELETE /v1/jobs/<id>, seen by the job between chunks.

States: queued → running → done | failed | cancelled; a failed attempt that will be retried goes back to
queued with its reason in `error`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from nexus.errors import NotFound
from nexus.meta import records

TABLE = "jobs"
State = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})
ALIVE_SECONDS = 15  # a running job's liveness lapses this long after its worker stopped renewing it
_KEEP_SECONDS = 7 * 24 * 3600  # progress and cancel flags outlive any job


class Delivery(msgspec.Struct, frozen=True):
    """Where a scheduled run's file went, and how that went."""

    destination: str  # "folder", "webhook" or "email", with where: "webhook https://…"
    ok: bool
    detail: str
    at: datetime


class Job(msgspec.Struct, frozen=True):
    """The stored record (definition and deliveries as JSON text)."""

    project_id: int
    job_id: str
    kind: str
    definition: str
    state: str
    attempts: int
    error: str
    rows: int
    bytes: int
    file_name: str
    schedule_id: str
    due_at: datetime | None
    deliveries: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobView(msgspec.Struct, frozen=True):
    """A job as the API shows it. `progress` (0-100) is known while it runs and 100 once done."""

    job_id: str
    kind: str
    state: str
    progress: float | None
    attempts: int
    error: str
    rows: int
    bytes: int
    file_name: str
    schedule_id: str
    due_at: datetime | None
    deliveries: list[Delivery]
    definition: dict[str, Any]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def new_id() -> str:
    return "j_" + secrets.token_urlsafe(12)


def create(client: Client, project_id: int, kind: str, definition: msgspec.Struct, created_by: str, *,
           job_id: str | None = None, schedule_id: str = "", due_at: datetime | None = None) -> Job:
    job = Job(project_id, job_id or new_id(), kind, msgspec.json.encode(definition).decode(), "queued", 0, "", 0, 0,
              "", schedule_id, due_at, "[]", created_by, records.now(), None, None)
    records.save(client, TABLE, job)
    return job


def save(client: Client, job: Job, **changes: Any) -> Job:
    """Write the job with `changes` as its newest version."""
    changed = msgspec.structs.replace(job, **changes)
    records.save(client, TABLE, changed)
    return changed


def get(client: Client, project_id: int, job_id: str) -> Job:
    found = records.select(client, TABLE, Job, "project_id = {p:UInt32} AND job_id = {j:String}",
                           {"p": project_id, "j": job_id})
    if not found:
        # The same answer for another project's job as for a missing one.
        raise NotFound(f"no job {job_id!r} in this project")
    return found[0]


def list_for(client: Client, project_id: int, *, state: str | None = None, schedule_id: str | None = None,
             limit: int = 100) -> list[Job]:
    """The project's jobs, newest first."""
    where, params = ["project_id = {p:UInt32}"], {"p": project_id, "n": limit}
    if state:
        where.append("state = {s:String}")
        params["s"] = state
    if schedule_id is not None:
        where.append("schedule_id = {sid:String}")
        params["sid"] = schedule_id
    columns = ", ".join(Job.__struct_fields__)
    result = client.query(f"SELECT {columns} FROM {TABLE} FINAL WHERE {' AND '.join(where)} "
                          f"ORDER BY created_at DESC, job_id LIMIT {{n:UInt32}}", parameters=params)
    return [Job(*row) for row in result.result_rows]


def running(client: Client) -> list[Job]:
    """Every project's jobs in the running state: the ones a dead worker may have left behind."""
    return records.select(client, TABLE, Job, "state = 'running'")


def view(job: Job, redis_client: redis.Redis) -> JobView:
    progress = 100.0 if job.state == "done" else None
    if job.state == "running":
        stored = redis_client.hget(_progress_key(job.job_id), "percent")
        progress = float(stored) if stored is not None else 0.0
    return JobView(job.job_id, job.kind, job.state, progress, job.attempts, job.error, job.rows, job.bytes,
                   job.file_name, job.schedule_id, job.due_at,
                   msgspec.json.decode(job.deliveries, type=list[Delivery]), msgspec.json.decode(job.definition),
                   job.created_by, job.created_at, job.started_at, job.finished_at)


def set_progress(redis_client: redis.Redis, job_id: str, percent: float, rows: int) -> None:
    name = _progress_key(job_id)
    redis_client.hset(name, mapping={"percent": round(min(max(percent, 0.0), 100.0), 1), "rows": rows})
    redis_client.expire(name, _KEEP_SECONDS)


def claim(redis_client: redis.Redis, job_id: str, worker: str) -> bool:
    """Mark the job as run by `worker`; False when a live worker already runs it."""
    return bool(redis_client.set(_alive_key(job_id), worker, nx=True, ex=ALIVE_SECONDS))


def renew(redis_client: redis.Redis, job_ids: list[str]) -> None:
    with redis_client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.expire(_alive_key(job_id), ALIVE_SECONDS)
        pipe.execute()


def release(redis_client: redis.Redis, job_id: str) -> None:
    redis_client.delete(_alive_key(job_id))


def is_alive(redis_client: redis.Redis, job_id: str) -> bool:
    return bool(redis_client.exists(_alive_key(job_id)))


def ask_cancel(redis_client: redis.Redis, job_id: str) -> None:
    redis_client.set(_cancel_key(job_id), 1, ex=_KEEP_SECONDS)


def cancel_asked(redis_client: redis.Redis, job_id: str) -> bool:
    return bool(redis_client.exists(_cancel_key(job_id)))


def _progress_key(job_id: str) -> str:
    return f"nexus:job:progress:{job_id}"


def _alive_key(job_id: str) -> str:
    return f"nexus:job:alive:{job_id}"


def _cancel_key(job_id: str) -> str:
    return f"nexus:job:cancel:{job_id}"
