"""Projects: the tenants. Every row of every other table belongs to one project."""

from __future__ import annotations

import re
from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import records
from nexus.timezones import zone

TABLE = "projects"
MAX_ID = 2**32 - 1  # project_id is a UInt32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


class Project(msgspec.Struct, frozen=True):
    project_id: int
    name: str
    timezone: str
    created_at: datetime


def create(client: Client, name: str, timezone_name: str = "UTC") -> Project:
    """A new project with the next free number. Names are unique; the time zone must be an IANA name."""
    if not _NAME.match(name):
        raise InvalidRequest(
            f"project name {name!r} must be 1-64 letters, digits, spaces, '_', '.' or '-', starting with a "
            f"letter or digit", field="name"
        )
    try:
        zone(timezone_name)
    except InvalidRequest as e:
        raise InvalidRequest(f"timezone: {e}", field="timezone") from None
    existing = list_all(client)
    if any(p.name == name for p in existing):
        raise InvalidRequest(f"a project named {name!r} already exists", field="name")
    # Project creation is a rare admin action; numbering by max+1 keeps ids small and readable.
    project_id = max((p.project_id for p in existing), default=0) + 1
    project = Project(project_id, name, timezone_name, records.now())
    records.save(client, TABLE, project)
    # Every creation (API, CLI, serve --demo) passes here, so every project starts with a dashboard.
    # Imported here: dashboards check tiles through the analyses, which read projects.
    from nexus.meta import dashboards

    dashboards.ensure_default(client, project_id)
    return project


def list_all(client: Client) -> list[Project]:
    return records.select(client, TABLE, Project)


def get(client: Client, reference: str | int) -> Project:
    """The project with this number or name."""
    text = str(reference).strip()
    if text.isdigit():
        number = int(text)
        found = [] if number > MAX_ID else records.select(client, TABLE, Project, "project_id = {id:UInt32}",
                                                           {"id": number})
    else:
        found = records.select(client, TABLE, Project, "name = {name:String}", {"name": text})
    if not found:
        raise not_found(text)
    return found[0]


def not_found(reference: str | int) -> NotFound:
    """The answer for a project that does not exist, or that the caller may not see: the same for both."""
    return NotFound(f"no project {str(reference)!r}: list them with `nexus project list`")
