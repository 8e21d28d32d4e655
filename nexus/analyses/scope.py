"""What every analysis request shares once resolved: the project, its time zone and the UTC span asked for."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import cohort_store
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.dates import DateRange, Span, resolve
from nexus.meta import projects
from nexus.timezones import zone


class AnalysisScope(msgspec.Struct, frozen=True):
    """The project an analysis reads, the time zone it counts in, its range resolved, the clock it read and
    the cohorts its filters and breakdown name (loaded from the store, so SQL can be built from them)."""

    project_id: int
    timezone: str
    span: Span
    now: datetime
    cohorts: Cohorts | None = None


class Ranged(Protocol):
    """A request over a range of time: every analysis request has both fields (a funnel's persons: its funnel)."""

    @property
    def date_range(self) -> DateRange: ...

    @property
    def timezone(self) -> str | None: ...


def scope_of(client: Client, project_id: int, request: Ranged, now: datetime | None = None) -> AnalysisScope:
    """The request's time zone, or else the project's (`projects.timezone`); `now` pins the clock in tests.
    The cohorts `request` names anywhere are loaded here, once for every analysis (another project's is
    NotFound)."""
    name = request.timezone or projects.get(client, project_id).timezone
    zone(name)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    span = resolve(request.date_range, name, moment)
    cohorts = Cohorts(cohort_store.load(client, project_id, cohort_store.referenced(request)), name, moment)
    return AnalysisScope(project_id, name, span, moment, cohorts)
