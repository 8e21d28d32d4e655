"""Commands that put data in: demo, import (getting it out: nexus.cli.sql)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nexus.cli.base import database, load_settings, main, progress, reports_errors


@main.command()
@click.option("--events", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--project", "project_ref", help="Project name or id (created if it is a new name; default 'demo').")
@click.option("--seed", type=int, default=42, show_default=True)
@reports_errors
def demo(events: int, project_ref: str | None, seed: int) -> None:
    """Generate a realistic, deterministic product event stream into a project."""
    from nexus.demo.load import load
    from nexus.errors import NotFound
    from nexus.meta import projects

    client = database()
    name = project_ref or "demo"
    try:
        project = projects.get(client, name)
    except NotFound:
        if name.isdigit():
            raise
        project = projects.create(client, name)
    with progress("Generating demo events", total=events) as advance:
        stored = load(client, project.project_id, events, seed=seed, progress=lambda n: advance(n, events))
    settings = load_settings()
    if settings.redis_url:  # a running API may be answering this project's analyses from the cache
        from nexus import changes, redis_server

        handle = redis_server.connect(settings.redis_url)
        try:
            changes.mark_changed(handle.client, {project.project_id})
        finally:
            handle.close()
    click.echo(f"stored {stored:,} demo events in project {project.name!r} (id {project.project_id})")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_ref", required=True, help="Project name or id.")
@click.option("--format", "file_format", type=click.Choice(["ndjson", "arrow", "parquet"]),
              help="File format (detected from the content when not given).")
@click.option("--resume-from", type=click.IntRange(min=0), default=0, metavar="N",
              help="Pass over the first N lines or rows: where a failed import says to resume.")
@reports_errors
def import_command(file: Path, project_ref: str, file_format: str | None, resume_from: int) -> None:
    """Back-fill events from an NDJSON (optionally gzipped), Arrow IPC or Parquet file of Segment-shaped
    events; exits 1 if any event was rejected (each is listed with its line or row), or if the import
    stopped early (a corrupt or truncated file, a failed write), saying where to resume."""
    from nexus.ingest.backfill import import_file
    from nexus.meta import projects
    from nexus.runtime import open_runtime

    with open_runtime(load_settings()) as runtime:
        project_id = projects.get(runtime.clickhouse, project_ref).project_id
        with progress(f"Importing {file.name}", total=None) as advance:
            summary = import_file(runtime.ingest(), file, project_id, file_format, resume_from=resume_from,
                                  max_event_bytes=runtime.settings.max_event_bytes,
                                  progress=lambda n: advance(n, 0))
    for error in summary.errors:
        where = f"{file.name}:{error.index + 1}"  # line (NDJSON) or row (Arrow, Parquet), from 1
        click.echo(f"{where}: {error.field}: {error.reason}" if error.field else f"{where}: {error.reason}", err=True)
    click.echo(f"read {summary.events:,} events: {summary.stored:,} stored, {summary.duplicates:,} already "
               f"stored, {summary.rejected:,} rejected")
    if summary.error:
        click.echo(f"error: {summary.error}", err=True)
    if summary.error and summary.resume_from:
        click.echo(f"stopped at {file.name}:{summary.resume_from + 1}: every line or row before it is done; "
                   f"resume with --resume-from {summary.resume_from} (importing the whole file again stores "
                   f"nothing twice)", err=True)
    if summary.rejected or summary.error:
        sys.exit(1)
