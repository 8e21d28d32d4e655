"""`nexus export`: one export, synchronously, for scripts: through a running server's job system (--url,
--key; the job is queued, followed with a progress bar, then downloaded), or on the store directly
(--project; the store must not be held by a running server). Either way the same writer makes the file."""

from __future__ import annotations

import shutil
import time
import urllib.request
from pathlib import Path

import click
import msgspec

from nexus.cli.base import fail, load_settings, main, progress, reports_errors

FORMATS = ["csv", "ndjson", "parquet", "xlsx", "pdf"]
_POLL_SECONDS = 0.5


@main.command()
@click.argument("source")
@click.option("--format", "output_format", type=click.Choice(FORMATS), required=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write (a zip for a dashboard in csv, ndjson or parquet).")
@click.option("--max-rows", type=click.IntRange(min=1), help="Most rows per table.")
@click.option("--url", help="Export through the Nexus running at this URL (its job system).")
@click.option("--key", help="With --url: a read key of the project.")
@click.option("--project", "project_ref", help="Without --url: the project (name or id) in the local store.")
@reports_errors
def export(source: str, output_format: str, output: Path, max_rows: int | None, url: str | None, key: str | None,
           project_ref: str | None) -> None:
    """Export SOURCE, the JSON of an export source as POST /v1/exports takes it (or @FILE holding it), e.g.
    '{"type": "events", "request": {"date_range": {"date_from": "-7d"}}}', '{"type": "sql", "query": "SELECT ..."}',
    '{"type": "dashboard", "dashboard_id": "d_..."}', '{"type": "report", "report": {"template": "overview"}}'."""
    from nexus.exports.request import ExportRequest
    from nexus.json_input import decode_json

    text = Path(source[1:]).read_text() if source.startswith("@") else source
    try:
        body = {"source": msgspec.json.decode(text), "format": output_format}
    except msgspec.DecodeError as e:
        fail(f"SOURCE is not JSON: {e}")
    if max_rows:
        body["max_rows"] = max_rows
    request = decode_json(msgspec.json.encode(body), ExportRequest)
    if url:
        if not key:
            fail("--url needs --key: a read key of the project to export from")
        rows = _remote(url.rstrip("/"), key, request, output)
    else:
        if not project_ref:
            fail("give --project (the local store) or --url and --key (a running server)")
        rows = _local(project_ref, request, output)
    click.echo(f"{rows:,} rows written to {output}", err=True)


def _remote(url: str, key: str, request: msgspec.Struct, output: Path) -> int:
    from nexus.errors import NexusError
    from nexus.jobs.store import JobView
    from nexus.meta.remote import call

    job = call(url, key, "POST", "/v1/exports", JobView, request)
    with progress("Exporting", total=100) as advance:
        shown = 0.0
        while job.state in ("queued", "running"):
            time.sleep(_POLL_SECONDS)
            job = call(url, key, "GET", f"/v1/jobs/{job.job_id}", JobView)
            if job.progress is not None and job.progress > shown:
                advance(int(job.progress - shown), 100)
                shown = float(int(job.progress))
    if job.state != "done":
        raise NexusError(f"the export job {job.job_id} {job.state}: {job.error}")
    download = urllib.request.Request(f"{url}/v1/exports/{job.job_id}/file", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(download, timeout=60) as answer, output.open("wb") as sink:
        shutil.copyfileobj(answer, sink, 1 << 20)
    return job.rows


def _local(project_ref: str, request: msgspec.Struct, output: Path) -> int:
    from nexus.exports import request as export_request
    from nexus.exports import run
    from nexus.meta import projects
    from nexus.runtime import open_runtime

    settings = load_settings()
    with open_runtime(settings, ingest=False) as runtime:
        project = projects.get(runtime.clickhouse, project_ref)
        wanted = export_request.checked(runtime.queries, project.project_id, request, settings.export_max_rows)
        with progress("Exporting", total=100) as advance:
            shown = [0]

            def moved(rows: int, fraction: float) -> None:
                if int(fraction * 100) > shown[0]:
                    advance(int(fraction * 100) - shown[0], 100)
                    shown[0] = int(fraction * 100)

            partial = output.with_name(output.name + ".partial")
            written = run.write(runtime, project.project_id, wanted, partial, progress=moved)
            partial.replace(output)
    return written.rows
