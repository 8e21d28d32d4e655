"""The job system on Dramatiq: one actor runs every job by id, on a Redis broker (the embedded
redis-server in embedded mode, NEXUS_REDIS_URL in server mode), in worker threads that `nexus serve`
starts in-process and `nexus worker` runs on its own. The same actor either way.

A message names a job; the job's record (nexus.jobs.store) says what to do and how it stands, so a
message delivered twice (a redelivery after a worker died, a requeue) runs the job once: a finished job
is skipped, and a running one is claimed in Redis by one worker at a time.

Failures: the store or Redis unavailable (StorageUnavailable) and a destination answering 5xx are
transient: the job goes back to queued and Dramatiq retries it with exponential backoff, up to
NEXUS_JOB_MAX_ATTEMPTS attempts. Anything else (a bad definition, a query the engine refuses, the time
limit) fails the job at once with its reason. The record of a failed job, with its reason, is the dead
letter: GET /v1/jobs shows it. A worker that dies mid-job leaves it running with a lapsed liveness key:
`recover` (run at every worker start and every scheduler tick) retries it or fails it with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
import msgspec
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import TimeLimitExceeded

from nexus.errors import NexusError, StorageUnavailable, new_error_id
from nexus.jobs import store
from nexus.jobs.store import Job
from nexus.meta import records
from nexus.observe.logs import request_id as current_request
from nexus.observe.metrics import metrics
from nexus.settings import Settings

log = logging.getLogger("nexus.jobs")

QUEUE = "nexus-jobs"
_HEARTBEAT = "nexus:worker-alive:"  # + the worker's name, set for store.ALIVE_SECONDS by each worker process
_ACTOR = "nexus_job"
_PROGRESS_EVERY = 0.5  # seconds between progress writes (and cancel checks) of one job


class Cancelled(Exception):
    """The job was cancelled (DELETE /v1/jobs/<id>) while it ran."""


class Interrupted(Exception):
    """The worker is stopping: the job goes back to the queue for another worker (or the next start)."""


class RetryLater(Exception):
    """Raised to Dramatiq for a transient failure with attempts left: its Retries middleware backs off."""


class Transient(NexusError):
    """A failure that may pass (a destination answering 5xx, timing out): retried like StorageUnavailable."""


Handler = Callable[["JobContext"], None]
T = TypeVar("T")


class JobContext:
    """One attempt of one job, as its handler sees it."""

    def __init__(self, system: JobSystem, job: Job):
        self.system = system
        self.job = job
        self.runtime = system.runtime
        self._last_progress = 0.0

    def definition(self, kind: type[T]) -> T:
        """The job's definition, as the type its kind stores."""
        return msgspec.json.decode(self.job.definition, type=kind)

    def progress(self, rows: int, fraction: float) -> None:
        """Record progress (at most every half second) and stop the job if asked: a cancel, a stop."""
        if self.system.stopping.is_set():
            raise Interrupted()
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_EVERY and fraction < 1:
            return
        self._last_progress = now
        redis_client = self.runtime.redis.client
        if store.cancel_asked(redis_client, self.job.job_id):
            raise Cancelled()
        store.set_progress(redis_client, self.job.job_id, fraction * 100, rows)

    def save(self, **changes: Any) -> None:
        self.job = store.save(self.runtime.clickhouse, self.job, **changes)

    def file_path(self) -> Path:
        return files_dir(self.runtime.settings, self.job.project_id) / self.job.job_id


def files_dir(settings: Settings, project_id: int) -> Path:
    """Where a project's export files live: NEXUS_EXPORT_DIR, else `exports` under the data dir."""
    root = Path(settings.export_dir) if settings.export_dir else settings.data_dir / "exports"
    return root / str(project_id)


class JobSystem:
    """The broker and the actor of one process, and its worker threads once `start` is called."""

    def __init__(self, runtime: Any, handlers: dict[str, Handler]):
        self.runtime = runtime
        self.handlers = handlers
        settings = runtime.settings
        self.max_attempts = settings.job_max_attempts
        self.broker = RedisBroker(url=runtime.redis.url, namespace="nexus-dramatiq")
        self.actor = dramatiq.Actor(
            self._perform, broker=self.broker, actor_name=_ACTOR, queue_name=QUEUE, priority=0,
            options={"time_limit": settings.job_time_limit_seconds * 1000,
                     "max_retries": self.max_attempts,
                     "retry_when": lambda retries, error: isinstance(error, RetryLater),
                     "min_backoff": settings.job_backoff_seconds * 1000,
                     "max_backoff": settings.job_backoff_seconds * 1000 * 60})
        self.stopping = threading.Event()
        self.worker: dramatiq.Worker | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    def submit(self, project_id: int, kind: str, definition: msgspec.Struct, created_by: str, **extra: Any) -> Job:
        """Record a job as queued and send its message."""
        job = store.create(self.runtime.clickhouse, project_id, kind, definition, created_by, **extra)
        self.send(job)
        return job

    def send(self, job: Job, delay_ms: int | None = None) -> None:
        # The request (or job) enqueuing it goes with the message: the job's log lines carry its id.
        self.actor.send_with_options(args=(job.project_id, job.job_id), kwargs={"request_id": current_request.get()},
                                     delay=delay_ms)

    def cancel(self, job: Job) -> Job:
        """Cancel a queued or running job (a running one stops at its next batch); a finished one stays."""
        if job.state in store.FINISHED:
            return job
        store.ask_cancel(self.runtime.redis.client, job.job_id)
        return store.save(self.runtime.clickhouse, job, state="cancelled", finished_at=records.now(),
                          error="cancelled")

    # Workers ------------------------------------------------------------------------------------------

    def start(self, threads: int) -> None:
        """Start `threads` worker threads in this process, after recovering jobs left by dead workers."""
        self.recover()
        self.stopping.clear()
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=200)
        self.worker.start()
        self._beat()
        self._renewer = threading.Thread(target=self._renew_alive, name="nexus-jobs-alive", daemon=True)
        self._renewer.start()

    def stop(self, timeout_seconds: float = 30) -> None:
        """Stop the workers: each running job stops at its next batch and goes back to the queue."""
        self.stopping.set()
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop(timeout=int(timeout_seconds * 1000))

    def recover(self) -> list[str]:
        """Jobs left running by a worker that died (its liveness lapsed): retried while attempts are left,
        else failed with the reason. Returns their ids."""
        found = []
        for job in store.running(self.runtime.clickhouse):
            if store.is_alive(self.runtime.redis.client, job.job_id):
                continue
            found.append(job.job_id)
            reason = f"the worker running attempt {job.attempts} stopped before it ended (killed or crashed)"
            if job.attempts < self.max_attempts:
                log.warning("job %s: %s; queued again", job.job_id, reason)
                self.send(store.save(self.runtime.clickhouse, job, state="queued", error=reason))
            else:
                log.warning("job %s: %s; no attempt left", job.job_id, reason)
                store.save(self.runtime.clickhouse, job, state="failed", finished_at=records.now(),
                           error=f"{reason}, and that was the last of {self.max_attempts} attempts")
        return found

    def workers_alive(self) -> int:
        """Processes running job workers (on any machine sharing this Redis) whose heartbeat is fresh."""
        return sum(1 for _ in self.runtime.redis.client.scan_iter(match=f"{_HEARTBEAT}*", count=1000))

    def _beat(self) -> None:
        try:
            self.runtime.redis.client.set(f"{_HEARTBEAT}{self.name}", "1", ex=store.ALIVE_SECONDS)
        except StorageUnavailable as e:
            log.warning("cannot record this worker's heartbeat: %s", e)

    def _renew_alive(self) -> None:
        while not self.stopping.wait(store.ALIVE_SECONDS / 3):
            self._beat()
            with self._lock:
                running = list(self._running)
            if running:
                try:
                    store.renew(self.runtime.redis.client, running)
                except StorageUnavailable as e:
                    log.warning("cannot renew running jobs' liveness: %s", e)

    # The actor ----------------------------------------------------------------------------------------

    def _perform(self, project_id: int, job_id: str, request_id: str = "") -> None:
        token = current_request.set(request_id)
        try:
            self._attempt(project_id, job_id)
        finally:
            current_request.reset(token)

    def _attempt(self, project_id: int, job_id: str) -> None:
        clickhouse, redis_client = self.runtime.clickhouse, self.runtime.redis.client
        job = store.get(clickhouse, project_id, job_id)
        if job.state in store.FINISHED or not store.claim(redis_client, job_id, self.name):
            return  # done already, or another worker runs it: this message is a duplicate
        with self._lock:
            self._running.add(job_id)
        context = JobContext(self, job)
        started, outcome = time.monotonic(), "failed"
        try:
            context.save(state="running", attempts=job.attempts + 1, started_at=records.now(), error="")
            self.handlers[job.kind](context)
            if store.cancel_asked(redis_client, job_id):
                raise Cancelled()
            context.save(state="done", finished_at=records.now(), error="")
            outcome = "done"
        except Cancelled:
            outcome = "cancelled"
            context.file_path().unlink(missing_ok=True)
            log.info("job %s cancelled", job_id)
        except Interrupted:
            outcome = "interrupted"
            log.info("job %s interrupted by the worker stopping; queued again", job_id)
            context.file_path().unlink(missing_ok=True)
            context.save(state="queued", attempts=context.job.attempts - 1,
                         error="the worker stopped during the job: queued again")
            store.release(redis_client, job_id)  # before the message goes out: its worker must claim it
            self.send(context.job)
        except TimeLimitExceeded:
            self._fail(context, f"ran longer than its time limit of {self.runtime.settings.job_time_limit_seconds} s "
                                "(NEXUS_JOB_TIME_LIMIT_SECONDS)")
        except (StorageUnavailable, Transient) as e:
            if context.job.attempts < self.max_attempts:
                outcome = "retried"
                log.warning("job %s attempt %d failed, will retry: %s", job_id, context.job.attempts, e)
                context.save(state="queued", error=f"attempt {context.job.attempts} failed, retrying: {e}")
                raise RetryLater(str(e)) from None
            self._fail(context, f"failed {context.job.attempts} times; the last time: {e}")
        except NexusError as e:
            self._fail(context, str(e))
        except Exception as e:
            error_id = new_error_id()
            log.error("job %s: error %s: unhandled %s", job_id, error_id, type(e).__name__, exc_info=e)
            self._fail(context, f"internal error {error_id}: the worker log has the details under this id")
        finally:
            with self._lock:
                self._running.discard(job_id)
            store.release(redis_client, job_id)
            seconds = time.monotonic() - started
            metrics().jobs.labels(job.kind, outcome).inc()
            metrics().job_seconds.labels(job.kind).observe(seconds)
            log.info("job", extra={"job_id": job_id, "kind": job.kind, "project_id": project_id,
                                   "attempt": context.job.attempts, "outcome": outcome,
                                   "duration_ms": round(seconds * 1000, 1)})

    def _fail(self, context: JobContext, reason: str) -> None:
        if store.cancel_asked(self.runtime.redis.client, context.job.job_id):
            return  # cancelled while it failed: it stays cancelled
        log.warning("job %s failed: %s", context.job.job_id, reason)
        context.save(state="failed", finished_at=records.now(), error=reason)

