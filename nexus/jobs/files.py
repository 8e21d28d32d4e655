"""A finished export's file, as the API and the dashboard hand it out."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from clickhouse_connect.driver.client import Client

from nexus.errors import NotFound
from nexus.exports.request import MEDIA_TYPES
from nexus.jobs import store
from nexus.jobs.worker import files_dir
from nexus.settings import Settings


class ExportFile(NamedTuple):
    path: Path
    file_name: str  # the name to download it under
    media_type: str  # without a charset: HTTP frameworks add their own


def finished(client: Client, settings: Settings, project_id: int, job_id: str) -> ExportFile:
    """The file of a done job of this project; NotFound for another project's job (as for a missing one),
    one without a file yet, or a file removed after its retention."""
    job = store.get(client, project_id, job_id)
    if job.state != "done":
        raise NotFound(f"job {job_id} has no file: it is {job.state}")
    path = files_dir(settings, project_id) / job.job_id
    if not job.file_name or not path.exists():
        raise NotFound(f"the file of job {job_id} was removed after NEXUS_EXPORT_RETENTION_HOURS "
                       f"({settings.export_retention_hours} h)")
    return ExportFile(path, job.file_name, MEDIA_TYPES[job.file_name.rsplit(".", 1)[-1]])

