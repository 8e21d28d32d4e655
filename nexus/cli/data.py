"""Commands that put data in and get it out: demo, import, sql."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nexus.cli.base import database, fail, load_settings, main, print_table, progress, reports_errors, stdout_binary


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


@main.command()
@click.argument("query")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json", "ndjson", "parquet", "arrow"]),
              default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A value for a {NAME:Type} placeholder.")
@click.option("--max-rows", type=click.IntRange(min=1), help="Return at most this many rows.")
@click.option("--url", help="Query a running Nexus at this URL, in the API's read-only sandbox.")
@click.option("--key", help="A read key of the project to query (with --url).")
@reports_errors
def sql(query: str, output_format: str, output: Path | None, params: tuple[str, ...], max_rows: int | None,
        url: str | None, key: str | None) -> None:
    """Run ClickHouse SQL: on the embedded store directly (all projects, no sandbox; the store must not
    be held by a running server), or with --url/--key through a server's /v1/query sandbox."""
    if output_format in ("parquet", "arrow") and output is None and sys.stdout.isatty():
        fail(f"{output_format} output is binary: use --output FILE or redirect stdout")
    values = _params(params)
    if url:
        from nexus.query import remote

        if not key:
            fail("--url needs --key: a read key of the project to query")
        if output_format == "table":
            print_table(*remote.fetch_rows(url, key, query, values, max_rows))
            return
        with output.open("wb") if output else stdout_binary() as sink:
            remote.stream_remote(url, key, query, values, output_format, sink, max_rows)
        return
    from nexus.exports.stream import write_batches
    from nexus.query.session import open_session
    from nexus.store import query as store_query
    from nexus.store.client import parse_url

    settings = load_settings()
    client = database(settings.clickhouse_url)
    if output_format == "table" and output is None:
        columns, rows = store_query.rows(client, query, values)
        print_table(columns, rows[:max_rows] if max_rows else rows)
        return
    # The embedded engine streams through a session of its own: clickhouse-connect's chDB backend would
    # gather the whole result first.
    session = open_session(parse_url(settings.clickhouse_url), client, [])
    try:
        with output.open("wb") if output else stdout_binary() as sink:
            write_batches(_first_rows(session.batches(query, values), max_rows), output_format, sink)
    finally:
        session.close()


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--param takes NAME=VALUE, not {pair!r}")
        values[name] = value
    return values


def _first_rows(batches, limit: int | None):
    """The batches, cut after `limit` rows."""
    left = limit
    for batch in batches:
        if left is not None:
            if left <= 0:
                return
            batch = batch.slice(0, left)
            left -= batch.num_rows
        yield batch
