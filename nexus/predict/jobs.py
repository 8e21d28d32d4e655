"""Predictions as jobs (nexus.jobs): `train_model` trains a churn or LTV version (and, when asked, activates
it and queues a scoring run), `score_predictions` scores every person of a project with its active
versions. Both report progress like any job, and both can run again safely: a retried training saves the
version its job id names (one version per job, however many attempts), a retried scoring run replaces
its own rows.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from nexus.jobs.store import Job
from nexus.jobs.worker import Handler, JobContext
from nexus.meta import records
from nexus.predict import churn, ltv, scoring, versions
from nexus.predict.churn import ChurnRequest
from nexus.predict.ltv import LtvRequest

if TYPE_CHECKING:
    from nexus.runtime import Runtime


class TrainDefinition(msgspec.Struct, frozen=True):
    """What a training job trains: one of the two requests, by kind."""

    kind: str
    churn: ChurnRequest | None = None
    ltv: LtvRequest | None = None


class ScoreDefinition(msgspec.Struct, frozen=True):
    """A scoring run: `day` for the daily scheduled one, None for one asked for (an activation, the API)."""

    day: datetime | None = None


def handlers() -> dict[str, Handler]:
    return {"train_model": train_model, "score_predictions": score_predictions}


def submit_training(runtime: Runtime, project_id: int, definition: TrainDefinition, created_by: str) -> Job:
    return runtime.jobs.submit(project_id, "train_model", definition, created_by)


def submit_scoring(runtime: Runtime, project_id: int, created_by: str, day: datetime | None = None,
                   job_id: str | None = None) -> Job:
    return runtime.jobs.submit(project_id, "score_predictions", ScoreDefinition(day), created_by, job_id=job_id)


def version_id_of(job_id: str) -> str:
    """The version a training job saves: derived from its id, so a retried job saves the same one."""
    return "mv_" + hashlib.sha256(job_id.encode()).hexdigest()[:16]


def train_model(context: JobContext) -> None:
    job, runtime = context.job, context.runtime
    definition = context.definition(TrainDefinition)
    data_dir = runtime.settings.data_dir

    def progress(fraction: float) -> None:
        context.progress(0, 0.95 * fraction)

    if definition.kind == "churn" and definition.churn is not None:
        request: ChurnRequest | LtvRequest = definition.churn
        trained = churn.train(runtime.clickhouse, job.project_id, definition.churn, progress)
    elif definition.kind == "ltv" and definition.ltv is not None:
        request = definition.ltv
        trained = ltv.train(runtime.clickhouse, job.project_id, definition.ltv, progress)
    else:
        raise ValueError(f"a training job of kind {definition.kind!r} without its request")
    version = versions.save(data_dir, job.project_id, trained, job_id=job.job_id,
                            version_id=version_id_of(job.job_id))
    context.save(rows=trained.rows["train"] + trained.rows["validation"])
    if request.activate:
        versions.activate(data_dir, job.project_id, version.kind, version.version_id)
        submit_scoring(runtime, job.project_id, job.created_by)
    context.progress(context.job.rows, 1.0)


def score_predictions(context: JobContext) -> None:
    job, runtime = context.job, context.runtime
    written = scoring.score(runtime.clickhouse, runtime.settings.data_dir, job.project_id, job.job_id,
                            records.now(), lambda fraction: context.progress(0, fraction))
    context.save(rows=written)
