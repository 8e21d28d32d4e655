"""What each kind of job does: `export` writes an export's file (and, for a scheduled run, delivers it);
`cleanup` removes export files past their retention; `train_model` and `score_predictions` are
nexus.predict.jobs'."""

from __future__ import annotations

from datetime import timedelta

from nexus.exports import run
from nexus.exports.request import ExportRequest
from nexus.jobs import store
from nexus.jobs.worker import Handler, JobContext, files_dir
from nexus.meta import records

CLEANUP_PROJECT = 0  # system jobs belong to no project


def handlers() -> dict[str, Handler]:
    from nexus.predict import jobs as predictions  # training and scoring (issue 18)

    return {"export": export, "cleanup": cleanup, **predictions.handlers()}


def export(context: JobContext) -> None:
    job = context.job
    request = context.definition(ExportRequest)
    path = context.file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    written = run.write(context.runtime, job.project_id, request, partial, key_id=job.created_by,
                        progress=context.progress, now=job.due_at)
    partial.replace(path)  # a file under the job's name is always whole
    context.save(rows=written.rows, bytes=written.bytes, file_name=written.file_name)
    if job.schedule_id:
        from nexus.jobs import delivery  # schedules' delivery: only scheduled runs need it

        delivery.deliver(context, path)


def cleanup(context: JobContext) -> None:
    """Remove the files of jobs that finished more than NEXUS_EXPORT_RETENTION_HOURS ago; their records
    stay, with no file to download."""
    runtime = context.runtime
    cutoff = records.now() - timedelta(hours=runtime.settings.export_retention_hours)
    expired = records.select(runtime.clickhouse, store.TABLE, store.Job,
                             "file_name != '' AND finished_at < {cutoff:DateTime64(3, 'UTC')}", {"cutoff": cutoff})
    for i, job in enumerate(expired, 1):
        (files_dir(runtime.settings, job.project_id) / job.job_id).unlink(missing_ok=True)
        store.save(runtime.clickhouse, job, file_name="")
        context.progress(i, i / len(expired))
    context.save(rows=len(expired))
