"""Commands that run Nexus: serve, api, worker, dashboard, migrate, version."""

from __future__ import annotations

from pathlib import Path

import click

from nexus import __version__

from nexus.cli.base import database, load_settings, main, progress, reports_errors


@main.command()
def version() -> None:
    """Print the Nexus version."""
    click.echo(__version__)


@main.command()
@click.option("--host", help="Listen address (default NEXUS_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default NEXUS_PORT, 8000; 0 picks a free one).")
@click.option("--dashboard-port", type=int,
              help="Dashboard port (default NEXUS_DASHBOARD_PORT, 8001; 0 with --port 0 unless given).")
@click.option("--demo", "demo_events", type=int, default=0, flag_value=1_000_000, is_flag=False,
              help="When the store has no project yet, load this many demo events first (--demo alone: 1M).")
@reports_errors
def serve(host: str | None, port: int | None, dashboard_port: int | None, demo_events: int) -> None:
    """Run Nexus in one process: migrate, then serve the HTTP API and the dashboard until SIGTERM or Ctrl-C."""
    # --port 0 (a free port, as tests and scripts ask) takes a free dashboard port too, unless one is given.
    _run_service(host, port, demo_events, 0 if port == 0 and dashboard_port is None else dashboard_port)


@main.command()
@click.option("--host", help="Listen address (default NEXUS_HOST).")
@click.option("--port", type=int, help="Listen port (default NEXUS_PORT).")
@reports_errors
def api(host: str | None, port: int | None) -> None:
    """Run the HTTP API alone (server mode: NEXUS_CLICKHOUSE_URL and NEXUS_REDIS_URL point at servers)."""
    _run_service(host, port, 0, None)


def _run_service(host: str | None, port: int | None, demo_events: int, dashboard_port: int | None) -> None:
    import msgspec

    from nexus.serve import serve as run

    base = load_settings()
    value = msgspec.structs.replace(base, host=host or base.host, port=base.port if port is None else port,
                                    dashboard_port=base.dashboard_port if dashboard_port is None else dashboard_port)
    with progress("Loading demo events") as advance:
        run(value, demo_events=demo_events, say=lambda line: click.echo(line, err=False),
            demo_progress=advance)


@main.command()
@click.option("--threads", type=click.IntRange(min=1), help="Worker threads (default NEXUS_WORKER_THREADS, 2).")
@reports_errors
def worker(threads: int | None) -> None:
    """Run job workers and the scheduler until SIGTERM or Ctrl-C (server mode: NEXUS_CLICKHOUSE_URL and
    NEXUS_REDIS_URL point at servers; run as many as the work needs). A stop hands running jobs back to
    the queue."""
    from nexus.jobs.service import run_worker

    run_worker(load_settings(), threads, say=click.echo)


@main.command()
@click.option("--host", help="Listen address (default NEXUS_HOST).")
@click.option("--port", type=int, help="Listen port (default NEXUS_DASHBOARD_PORT, 8001).")
@reports_errors
def dashboard(host: str | None, port: int | None) -> None:
    """Serve the analyst dashboard alone (server mode: NEXUS_CLICKHOUSE_URL and NEXUS_REDIS_URL point at servers)."""
    from nexus.dashboard.server import run
    from nexus.observe import logs
    from nexus.runtime import open_runtime

    settings = load_settings()
    logs.configure(settings.log_level)  # JSON lines at NEXUS_LOG_LEVEL, as the API's and the worker's
    with open_runtime(settings, ingest=False) as runtime:
        run(runtime, host=host or settings.host, port=settings.dashboard_port if port is None else port,
            say=click.echo)


@main.command()
@click.option("--dump-schema", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the resulting schema (SHOW CREATE of every table) to this file.")
@reports_errors
def migrate(dump_schema: Path | None) -> None:
    """Apply pending schema migrations (also done at every start)."""
    from nexus.store import migrations
    from nexus.store.client import parse_url

    url = load_settings().clickhouse_url
    client = database(url, migrate=False)
    for migration in migrations.migrate(client, cluster=load_settings().clickhouse_cluster):
        click.echo(f"applied {migration.file_name}")
    click.echo(f"schema is up to date ({len(migrations.discover())} migrations) in {parse_url(url).describe()}")
    if dump_schema:
        dump_schema.write_text(migrations.dump_schema(client))
