"""Commands about one person: `nexus person erase` (GDPR erasure, nexus.store.erasure) on the store itself."""

from __future__ import annotations

import click

from nexus.cli.base import database, load_settings, main, reports_errors


@main.group()
def person() -> None:
    """Erase a person."""


@person.command("erase")
@click.argument("person_id")
@click.option("--project", "project_ref", required=True, help="Project name or id.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@reports_errors
def person_erase(person_id: str, project_ref: str, yes: bool) -> None:
    """Erase a person — by their person id or any of their distinct ids — from every table: events, identities,
    traits, sessions, static cohorts and the rollups. Asks first unless --yes; it cannot be undone. With chDB
    (the default store), stop `nexus serve` first: one process at a time opens the store."""
    from nexus.meta import erasures, projects
    from nexus.store import erasure

    settings = load_settings()
    client = database(settings.clickhouse_url)
    project = projects.get(client, project_ref)
    if not yes:
        click.confirm(f"Erase person {person_id!r} and all their data from project {project.name!r}? "
                      "This cannot be undone", abort=True, err=True)
    if settings.redis_url:  # server mode: resolvers and caches of running processes must hear of it
        from nexus import redis_server

        handle = redis_server.connect(settings.redis_url)
        try:
            done = erasure.erase(client, project.project_id, person_id, erasures.CLI, handle.client)
        finally:
            handle.close()
    else:  # embedded: no other process runs on this store, so none has a cache to drop
        done = erasure.erase(client, project.project_id, person_id, erasures.CLI)
    removed = ", ".join(f"{rows:,} from {table}" for table, rows in done.rows.items())
    click.echo(f"erased: {removed}; {done.rebuilt_partitions} rollup partitions rebuilt "
               f"(erasure {done.erasure_id}, {done.duration_ms} ms)")
