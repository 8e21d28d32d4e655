"""The `nexus` command: serve, migrate, demo data, projects, keys and SQL from the shell.

Every failure a person can cause or fix prints one line on stderr and exits non-zero; tracebacks are
kept for NEXUS_LOG_LEVEL=debug.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus import __version__, settings as settings_module
from nexus.errors import NexusError
from nexus.store.client import describe_error

_DEBUG = False


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NexusError (and any unexpected error) into one line on stderr and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NexusError as e:
            _fail(str(e))
        except ClickHouseError as e:
            _fail(f"ClickHouse: {describe_error(e)}")
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:
            if _DEBUG:
                raise
            _fail(f"unexpected {type(e).__name__}: {e} (set NEXUS_LOG_LEVEL=debug for a traceback)")

    return wrapper


def _settings() -> settings_module.Settings:
    global _DEBUG
    value = settings_module.load()
    _DEBUG = value.log_level == "debug"
    logging.basicConfig(level=value.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not _DEBUG:
        # The driver logs each failure it raises; we report the raised error once, in one line.
        for driver in ("clickhouse_connect", "urllib3"):
            logging.getLogger(driver).setLevel(logging.CRITICAL)
    return value


def _database(url: str | None = None) -> Client:
    from nexus.store.database import open_database

    return open_database(url or _settings().clickhouse_url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Nexus: product analytics on ClickHouse."""


@main.command()
def version() -> None:
    """Print the Nexus version."""
    click.echo(__version__)


@main.command()
@click.option("--host", help="Listen address (default NEXUS_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default NEXUS_PORT, 8000; 0 picks a free one).")
@click.option("--demo", "demo_events", type=int, default=0, flag_value=1_000_000, is_flag=False,
              help="When the store has no project yet, load this many demo events first (--demo alone: 1M).")
@reports_errors
def serve(host: str | None, port: int | None, demo_events: int) -> None:
    """Run Nexus in one process: migrate, then serve the HTTP API until SIGTERM or Ctrl-C."""
    _run_service(host, port, demo_events)


@main.command()
@click.option("--host", help="Listen address (default NEXUS_HOST).")
@click.option("--port", type=int, help="Listen port (default NEXUS_PORT).")
@reports_errors
def api(host: str | None, port: int | None) -> None:
    """Run the HTTP API alone (server mode: NEXUS_CLICKHOUSE_URL and NEXUS_REDIS_URL point at servers)."""
    _run_service(host, port, 0)


def _run_service(host: str | None, port: int | None, demo_events: int) -> None:
    import msgspec

    from nexus.serve import serve as run

    base = _settings()
    value = msgspec.structs.replace(base, host=host or base.host, port=base.port if port is None else port)
    with _progress("Loading demo events") as advance:
        run(value, demo_events=demo_events, say=lambda line: click.echo(line, err=False),
            demo_progress=advance)


@main.command()
def worker() -> None:
    """Run background job workers (not yet available)."""
    click.echo("nexus worker: not yet available in this version")


@main.command()
def dashboard() -> None:
    """Serve the analyst dashboard (not yet available)."""
    click.echo("nexus dashboard: not yet available in this version")


@main.command()
@click.option("--dump-schema", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the resulting schema (SHOW CREATE of every table) to this file.")
@reports_errors
def migrate(dump_schema: Path | None) -> None:
    """Apply pending schema migrations (also done at every start)."""
    from nexus.store import migrations
    from nexus.store.client import connect, parse_url

    address = parse_url(_settings().clickhouse_url)
    client = connect(address)
    migrations.use_database(client, address.database)
    applied = migrations.migrate(client)
    for migration in applied:
        click.echo(f"applied {migration.file_name}")
    click.echo(f"schema is up to date ({len(migrations.discover())} migrations) in {address.describe()}")
    if dump_schema:
        dump_schema.write_text(migrations.dump_schema(client))


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

    client = _database()
    name = project_ref or "demo"
    try:
        project = projects.get(client, name)
    except NotFound:
        if name.isdigit():
            raise
        project = projects.create(client, name)
    with _progress("Generating demo events", total=events) as advance:
        stored = load(client, project.project_id, events, seed=seed, progress=lambda n: advance(n, events))
    click.echo(f"stored {stored:,} demo events in project {project.name!r} (id {project.project_id})")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_ref", required=True, help="Project name or id.")
@click.option("--format", "file_format", type=click.Choice(["ndjson", "arrow", "parquet"]),
              help="File format (detected from the content when not given).")
@reports_errors
def import_command(file: Path, project_ref: str, file_format: str | None) -> None:
    """Back-fill events from an NDJSON (optionally gzipped), Arrow IPC or Parquet file of Segment-shaped
    events; exits 1 if any event was rejected (each is listed with its line or row)."""
    from nexus.ingest.backfill import import_file
    from nexus.meta import projects
    from nexus.runtime import open_runtime

    with open_runtime(_settings()) as runtime:
        project_id = projects.get(runtime.clickhouse, project_ref).project_id
        with _progress(f"Importing {file.name}", total=None) as advance:
            summary = import_file(runtime.ingestor, file, project_id, file_format,
                                  max_event_bytes=runtime.settings.max_event_bytes,
                                  progress=lambda n: advance(n, 0))
    for error in summary.errors:
        where = f"{file.name}:{error.index + 1}"  # line (NDJSON) or row (Arrow, Parquet), from 1
        click.echo(f"{where}: {error.field}: {error.reason}" if error.field else f"{where}: {error.reason}", err=True)
    click.echo(f"read {summary.events:,} events: {summary.stored:,} stored, {summary.duplicates:,} already "
               f"stored, {summary.rejected:,} rejected")
    if summary.rejected:
        sys.exit(1)


@main.group()
def project() -> None:
    """Create and list projects."""


@project.command("create")
@click.argument("name")
@click.option("--timezone", "timezone_name", default="UTC", show_default=True, help="IANA time zone.")
@reports_errors
def project_create(name: str, timezone_name: str) -> None:
    """Create a project; prints its id."""
    from nexus.meta import projects

    created = projects.create(_database(), name, timezone_name)
    click.echo(f"created project {created.name!r} with id {created.project_id}")


@project.command("list")
@reports_errors
def project_list() -> None:
    """List projects."""
    from nexus.meta import projects

    rows = [(p.project_id, p.name, p.timezone, p.created_at) for p in projects.list_all(_database())]
    _print_table(["id", "name", "timezone", "created_at"], rows)


@main.group()
def key() -> None:
    """Create, list and revoke API keys."""


@key.command("create")
@click.option("--project", "project_ref", required=True, help="Project name or id.")
@click.option("--scope", type=click.Choice(["write", "read", "admin"]), required=True)
@click.option("--name", default="", help="What the key is for.")
@reports_errors
def key_create(project_ref: str, scope: str, name: str) -> None:
    """Create a key and print it, alone on stdout (it is shown only this once)."""
    from nexus.meta import keys, projects

    client = _database()
    created, secret = keys.create(client, projects.get(client, project_ref).project_id, scope, name)
    click.echo(f"created {scope} key {created.key_id} for project {created.project_id}; store it now", err=True)
    click.echo(secret)


@key.command("list")
@click.option("--project", "project_ref", help="Only this project's keys.")
@reports_errors
def key_list(project_ref: str | None) -> None:
    """List keys (their public ids, never the secrets)."""
    from nexus.meta import keys, projects

    client = _database()
    project_id = projects.get(client, project_ref).project_id if project_ref else None
    rows = [(k.key_id, k.project_id, k.scope, k.name, k.created_at, k.revoked_at or "")
            for k in keys.list_keys(client, project_id)]
    _print_table(["key_id", "project", "scope", "name", "created_at", "revoked_at"], rows)


@key.command("revoke")
@click.argument("key_id")
@reports_errors
def key_revoke(key_id: str) -> None:
    """Revoke a key by its id (as `nexus key list` shows it)."""
    from nexus.meta import keys

    revoked = keys.revoke(_database(), key_id)
    click.echo(f"revoked key {revoked.key_id} of project {revoked.project_id}")


@key.command("limits")
@click.argument("key_id")
@click.option("--max-seconds", type=click.IntRange(min=0), help="Longest run time of a query (0: none).")
@click.option("--max-memory-bytes", type=click.IntRange(min=0))
@click.option("--max-rows-to-read", type=click.IntRange(min=0))
@click.option("--max-result-rows", type=click.IntRange(min=0))
@click.option("--max-result-bytes", type=click.IntRange(min=0))
@click.option("--max-json-rows", type=click.IntRange(min=0))
@reports_errors
def key_limits(key_id: str, **overrides: int | None) -> None:
    """Set a key's ad-hoc SQL limits; a limit not given goes back to the NEXUS_QUERY_* default."""
    from nexus.errors import NotFound
    from nexus.meta import keys
    from nexus.query import limits

    client = _database()
    found = [k for k in keys.list_keys(client) if k.key_id == key_id]
    if not found:
        raise NotFound(f"no API key {key_id!r}: list them with `nexus key list`")
    limits.set_for_key(client, found[0].project_id, key_id, **overrides)
    chosen = ", ".join(f"{name}={value}" for name, value in overrides.items() if value is not None) or "defaults"
    click.echo(f"query limits of key {key_id}: {chosen}")


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
        _fail(f"{output_format} output is binary: use --output FILE or redirect stdout")
    values = _params(params)
    if url:
        from nexus.query import remote

        if not key:
            _fail("--url needs --key: a read key of the project to query")
        if output_format == "table":
            _print_table(*remote.fetch_rows(url, key, query, values, max_rows))
            return
        with output.open("wb") if output else _stdout_binary() as sink:
            remote.stream_remote(url, key, query, values, output_format, sink, max_rows)
        return
    from nexus.exports.stream import write_batches
    from nexus.query.session import open_session
    from nexus.store import query as store_query
    from nexus.store.client import parse_url

    settings = _settings()
    client = _database(settings.clickhouse_url)
    if output_format == "table" and output is None:
        columns, rows = store_query.rows(client, query, values)
        _print_table(columns, rows[:max_rows] if max_rows else rows)
        return
    # The embedded engine streams through a session of its own: clickhouse-connect's chDB backend would
    # gather the whole result first.
    session = open_session(parse_url(settings.clickhouse_url), client, [])
    try:
        with output.open("wb") if output else _stdout_binary() as sink:
            write_batches(_first_rows(session.batches(query, values), max_rows), output_format, sink)
    finally:
        session.close()


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"--param takes NAME=VALUE, not {pair!r}")
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


def _stdout_binary():
    import os

    return os.fdopen(os.dup(sys.stdout.fileno()), "wb")


def _print_table(columns: list[str], rows: list[tuple]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    # Piped output is read by programs and people with wide pagers: do not wrap it at 80 columns.
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", err=True)


class _progress:
    """A rich progress bar on stderr when it is a terminal; `advance(n, total)` moves it."""

    def __init__(self, description: str, total: int | None = None):
        self.description = description
        self.total = total

    def __enter__(self) -> Callable[[int, int], None]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.task = None

        def advance(n: int, total: int) -> None:
            """Move by n; a total of 0 means unknown (the bar then counts without an end)."""
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task(self.description, total=total or None)
            self.progress.advance(self.task, n)
            if self.progress.tasks[0].finished:
                self.progress.stop()

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()
