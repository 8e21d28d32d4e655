"""Commands that administer projects and API keys: on the store itself (as its operator), or with --url
through a running server's admin API (with an admin key), so nothing needs stopping."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import msgspec

from nexus.cli.base import database, fail, load_settings, main, print_table, reports_errors


def administered(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --url and --key to a command and hand it, as `admin`, the Administration they choose."""

    @click.option("--url", help="Administer the Nexus running at this URL, through its API.")
    @click.option("--key", envvar="NEXUS_ADMIN_KEY", show_envvar=True,
                  help="With --url: the instance admin key, or a project's admin key (its own keys only).")
    @wraps(command)
    def wrapper(*args: Any, url: str | None, key: str | None, **kwargs: Any) -> Any:
        return command(*args, admin=_administration(url, key), **kwargs)

    return wrapper


def _administration(url: str | None, key: str | None):
    if url:
        from nexus.meta.remote import RemoteAdministration

        if not key:
            fail("--url needs --key (or NEXUS_ADMIN_KEY): an admin key of that server")
        return RemoteAdministration(url, key)  # type: ignore[arg-type]
    from nexus.adhoc.limits import from_settings
    from nexus.meta.admin import LOCAL, Administration

    settings = load_settings()
    client = database(settings.clickhouse_url)
    if not settings.redis_url:  # embedded: no server runs on this store, so no other process to tell
        return Administration(client, LOCAL, from_settings(settings))
    from nexus import redis_server

    # Server mode: API processes on the same Redis hear of revoked keys, and project creation takes turns.
    return Administration(client, LOCAL, from_settings(settings), redis_server.connect(settings.redis_url).client)


@main.group()
def project() -> None:
    """Create and list projects."""


@project.command("create")
@click.argument("name")
@click.option("--timezone", "timezone_name", default="UTC", show_default=True, help="IANA time zone.")
@reports_errors
@administered
def project_create(admin, name: str, timezone_name: str) -> None:
    """Create a project; prints its id."""
    from nexus.meta.admin import ProjectInput

    created = admin.create_project(ProjectInput(name, timezone_name))
    click.echo(f"created project {created.name!r} with id {created.project_id}")


@project.command("list")
@reports_errors
@administered
def project_list(admin) -> None:
    """List projects (with a project's admin key: its own)."""
    rows = [(p.project_id, p.name, p.timezone, p.created_at) for p in admin.list_projects()]
    print_table(["id", "name", "timezone", "created_at"], rows)


@main.group()
def key() -> None:
    """Create, list and revoke API keys, and set their query limits."""


@key.command("create")
@click.option("--project", "project_ref", help="Project name or id (with a project's admin key: its own, the default).")
@click.option("--scope", type=click.Choice(["write", "read", "admin"]), required=True)
@click.option("--name", default="", help="What the key is for.")
@reports_errors
@administered
def key_create(admin, project_ref: str | None, scope: str, name: str) -> None:
    """Create a key and print it, alone on stdout (it is shown only this once)."""
    from nexus.meta.admin import KeyInput

    project_id = admin.find_project(project_ref).project_id if project_ref else None
    created = admin.create_key(KeyInput(scope, name, project_id))  # type: ignore[arg-type]
    click.echo(f"created {scope} key {created.key_id} for project {created.project_id}; store it now", err=True)
    click.echo(created.secret)


@key.command("list")
@click.option("--project", "project_ref", help="Only this project's keys.")
@reports_errors
@administered
def key_list(admin, project_ref: str | None) -> None:
    """List keys (their public ids, never the secrets)."""
    project_id = admin.find_project(project_ref).project_id if project_ref else None
    rows = [(k.key_id, k.project_id, k.scope, k.name, k.created_at, k.revoked_at or "")
            for k in admin.list_keys(project_id)]
    print_table(["key_id", "project", "scope", "name", "created_at", "revoked_at"], rows)


@key.command("revoke")
@click.argument("key_id")
@reports_errors
@administered
def key_revoke(admin, key_id: str) -> None:
    """Revoke a key by its id (as `nexus key list` shows it); a running server refuses it within a second."""
    revoked = admin.revoke_key(key_id)
    click.echo(f"revoked key {revoked.key_id} of project {revoked.project_id}")


@key.command("limits")
@click.argument("key_id")
@click.option("--max-seconds", type=click.IntRange(min=0), help="Longest run time of a query (0: none).")
@click.option("--max-memory-bytes", type=click.IntRange(min=0))
@click.option("--max-rows-to-read", type=click.IntRange(min=0))
@click.option("--max-result-rows", type=click.IntRange(min=0))
@click.option("--max-result-bytes", type=click.IntRange(min=0))
@click.option("--max-json-rows", type=click.IntRange(min=0))
@click.option("--defaults", is_flag=True, help="Set every limit back to its NEXUS_QUERY_* default.")
@reports_errors
@administered
def key_limits(admin, key_id: str, defaults: bool, **overrides: int | None) -> None:
    """Show a key's ad-hoc SQL limits, or set them: a limit not given goes back to the NEXUS_QUERY_* default."""
    from nexus.meta.admin import limits_input

    given = {name: value for name, value in overrides.items() if value is not None}
    if defaults and given:
        raise click.UsageError("--defaults sets every limit back to its default: give no limit with it")
    if not defaults and not given:
        shown = admin.get_limits(key_id)
        print_table(["limit", "value", "from"],
                    [(name, value, "this key" if name in shown.overrides else f"NEXUS_QUERY_{name.upper()}")
                     for name, value in msgspec.structs.asdict(shown.limits).items()])
        return
    stored = admin.set_limits(key_id, limits_input(**overrides))
    chosen = ", ".join(f"{name}={value}" for name, value in stored.overrides.items()) or "defaults"
    click.echo(f"query limits of key {key_id}: {chosen}")
