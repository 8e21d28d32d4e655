"""What every analysis request shares once resolved: the project, its time zone and the UTC span asked for."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.dates import DateRange, Span, resolve
from nexus.meta import projects
from nexus.timezones import zone


class Scope(msgspec.Struct, frozen=True):
    project_id: int
    timezone: str
    span: Span
    now: datetime


def scope_of(client: Client, project_id: int, date_range: DateRange, tz: str | None,
             now: datetime | None = None) -> Scope:
    """The request's time zone, or else the project's (`projects.timezone`); `now` pins the clock in tests."""
    name = tz or projects.get(client, project_id).timezone
    zone(name)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return Scope(project_id, name, resolve(date_range, name, moment), moment)
