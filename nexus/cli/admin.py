"""Commands that administer projects and API keys."""

from __future__ import annotations


import click

from nexus.cli.base import database, main, print_table, reports_errors


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

    created = projects.create(database(), name, timezone_name)
    click.echo(f"created project {created.name!r} with id {created.project_id}")


@project.command("list")
@reports_errors
def project_list() -> None:
    """List projects."""
    from nexus.meta import projects

    rows = [(p.project_id, p.name, p.timezone, p.created_at) for p in projects.list_all(database())]
    print_table(["id", "name", "timezone", "created_at"], rows)


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

    client = database()
    created, secret = keys.create(client, projects.get(client, project_ref).project_id, scope, name)
    click.echo(f"created {scope} key {created.key_id} for project {created.project_id}; store it now", err=True)
    click.echo(secret)


@key.command("list")
@click.option("--project", "project_ref", help="Only this project's keys.")
@reports_errors
def key_list(project_ref: str | None) -> None:
    """List keys (their public ids, never the secrets)."""
    from nexus.meta import keys, projects

    client = database()
    project_id = projects.get(client, project_ref).project_id if project_ref else None
    rows = [(k.key_id, k.project_id, k.scope, k.name, k.created_at, k.revoked_at or "")
            for k in keys.list_keys(client, project_id)]
    print_table(["key_id", "project", "scope", "name", "created_at", "revoked_at"], rows)


@key.command("revoke")
@click.argument("key_id")
@reports_errors
def key_revoke(key_id: str) -> None:
    """Revoke a key by its id (as `nexus key list` shows it)."""
    from nexus.meta import keys

    revoked = keys.revoke(database(), key_id)
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

    client = database()
    found = [k for k in keys.list_keys(client) if k.key_id == key_id]
    if not found:
        raise NotFound(f"no API key {key_id!r}: list them with `nexus key list`")
    limits.set_for_key(client, found[0].project_id, key_id, **overrides)
    chosen = ", ".join(f"{name}={value}" for name, value in overrides.items() if value is not None) or "defaults"
    click.echo(f"query limits of key {key_id}: {chosen}")
