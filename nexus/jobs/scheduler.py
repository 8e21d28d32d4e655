"""The scheduler: a thread that, every NEXUS_SCHEDULER_TICK_SECONDS, recovers jobs of dead workers, queues
the due runs of every project's schedules, once an hour queues the cleanup of old export files, and once a
day a scoring run for each project with an active prediction model.

Any number of schedulers may run (one in each `nexus serve` or `nexus worker`); each due run is queued
exactly once all the same:
- how far each schedule was evaluated is kept in Redis (a sorted set: schedule → Unix ms), advanced only
  forwards (ZADD GT); a schedule is evaluated from there, or from its last change when that is later (a new
  or changed schedule does not run for the past; a resumed one does not make up the runs it was paused for);
- a due run is claimed with SET NX on a key per (schedule, due time) before it is queued, so of schedulers
  that evaluate the same window at the same time one queues it; the job id is derived from the schedule
  and the due time too, so even a duplicate would be one job record, run once;
- a run due more than a grace period ago (3 ticks, at least a minute) was missed: nothing was running
  when it fell due. Of the missed runs of a schedule, with on_missed "run_once" the latest runs; with
  "skip" none does.
A tick that fails (ClickHouse or Redis down) is logged and the next tick tries again: the thread lives
as long as the process. A run whose claim was taken by a process that died before queueing it is lost.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import msgspec

from nexus.errors import StorageUnavailable
from nexus.jobs import cron, schedules
from nexus.jobs.handlers import CLEANUP_PROJECT
from nexus.jobs.store import Job
from nexus.meta import records

if TYPE_CHECKING:
    from nexus.runtime import Runtime

log = logging.getLogger("nexus.scheduler")

_EVALUATED = "nexus:schedules:evaluated"
_CLAIM_SECONDS = 7 * 24 * 3600  # far longer than any scheduler's view of a window can lag behind


class CleanupRun(msgspec.Struct, frozen=True):
    """The hourly cleanup job's definition: the hour it runs for."""

    hour: datetime


class Scheduler:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.tick_seconds = runtime.settings.scheduler_tick_seconds
        self.grace = timedelta(seconds=max(60, 3 * self.tick_seconds))
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Tick now, then every NEXUS_SCHEDULER_TICK_SECONDS, in a daemon thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="nexus-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 30) -> None:
        self._stopping.set()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.join(timeout_seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as e:  # any failure: the next tick tries again, the thread lives on
                log.warning("scheduler tick failed, trying again in %d s: %s", self.tick_seconds, e,
                            exc_info=not isinstance(e, StorageUnavailable))
            self._stopping.wait(self.tick_seconds)

    def tick(self, now: datetime | None = None) -> list[Job]:
        """One round at `now` (the clock by default): the jobs this scheduler queued in it."""
        now = now or records.now()
        self.runtime.jobs.recover()
        queued = []
        evaluated = []
        for record in schedules.active(self.runtime.clickhouse):
            try:
                queued += self._due_runs(record, now)
            except StorageUnavailable:
                raise
            except Exception as e:  # one schedule that cannot be evaluated holds up no other
                log.error("schedule %s of project %d cannot be evaluated: %s", record.schedule_id, record.project_id,
                          e, exc_info=e)
            evaluated.append(record.schedule_id)
        self._forget_others(evaluated)
        cleanup = self._cleanup(now)
        return queued + ([cleanup] if cleanup else []) + self._scoring(now)

    def _due_runs(self, record: schedules.Record, now: datetime) -> list[Job]:
        plan = record.plan
        redis_client = self.runtime.redis.client
        evaluated_ms = redis_client.zscore(_EVALUATED, record.schedule_id)
        since = record.updated_at
        if evaluated_ms is not None:
            since = max(since, _from_ms(int(evaluated_ms)))
        missed_before = now - self.grace
        due = list(cron.due_between(plan.cron, plan.timezone, max(since, missed_before), now))
        if since < missed_before:
            missed = cron.latest_due(plan.cron, plan.timezone, since, missed_before)
            if missed is not None and plan.on_missed == "run_once":
                log.info("schedule %s: runs were missed since %s; running the latest, due %s", record.schedule_id,
                         since.isoformat(), missed.isoformat())
                due.insert(0, missed)
            elif missed is not None:
                log.info("schedule %s: skipping the runs missed since %s", record.schedule_id, since.isoformat())
        queued = [job for at in due if (job := self._queue_once(record, plan, at)) is not None]
        redis_client.zadd(_EVALUATED, {record.schedule_id: _ms(now)}, gt=True)
        return queued

    def _queue_once(self, record: schedules.Record, plan: schedules.Plan, due: datetime) -> Job | None:
        """The run of `record` due at `due`, queued unless another scheduler claimed it first."""
        claim = f"nexus:schedule:run:{record.schedule_id}:{_ms(due)}"
        return self._claimed(claim, lambda: self.runtime.jobs.submit(
            record.project_id, "export", plan.export, record.created_by, job_id=run_id(record.schedule_id, due),
            schedule_id=record.schedule_id, due_at=due))

    def _cleanup(self, now: datetime) -> Job | None:
        hour = now.replace(minute=0, second=0, microsecond=0)
        return self._claimed(f"nexus:scheduler:cleanup:{_ms(hour)}", lambda: self.runtime.jobs.submit(
            CLEANUP_PROJECT, "cleanup", CleanupRun(hour), "", job_id=run_id("cleanup", hour)))

    def _scoring(self, now: datetime) -> list[Job]:
        """Once a UTC day, a scoring run for each project with an active model (nexus.predict.jobs)."""
        from nexus.predict import jobs as predictions, versions  # scikit-learn loads when the scheduler runs

        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return [job for project_id in versions.projects_with_active(self.runtime.settings.data_dir)
                if (job := self._claimed(
                    f"nexus:predictions:score:{project_id}:{_ms(day)}",
                    lambda p=project_id: predictions.submit_scoring(self.runtime, p, "", day,
                                                                    run_id(f"predictions:{p}", day))))]

    def _claimed(self, claim: str, submit: Callable[[], Job]) -> Job | None:
        """`submit()` if this scheduler takes `claim` first; the claim is given back when it fails."""
        redis_client = self.runtime.redis.client
        if not redis_client.set(claim, self.name, nx=True, ex=_CLAIM_SECONDS):
            return None
        try:
            return submit()
        except BaseException:
            redis_client.delete(claim)  # not queued: a later tick claims it again
            raise

    def _forget_others(self, evaluated: list[str]) -> None:
        """Drop the marks of schedules no longer evaluated (deleted or paused: a paused one starts again from
        its resume time, later than its mark)."""
        redis_client = self.runtime.redis.client
        gone = {m.decode() for m in redis_client.zrange(_EVALUATED, 0, -1)} - set(evaluated)
        if gone:
            redis_client.zrem(_EVALUATED, *gone)


def run_id(schedule_id: str, due: datetime) -> str:
    """The job id of the run of `schedule_id` due at `due`: the same in every scheduler."""
    digest = hashlib.sha256(f"{schedule_id}:{_ms(due)}".encode()).digest()
    return "j_" + base64.urlsafe_b64encode(digest).decode()[:16]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, timezone.utc) + timedelta(milliseconds=ms % 1000)
