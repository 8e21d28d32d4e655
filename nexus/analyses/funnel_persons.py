"""The persons behind one funnel step: who dropped off at it, or who converted to it, a page at a time.

`status="dropped"` at step k (1 ≤ k < steps): persons who reached step k-1 but not step k (depth = k),
the people counted by that step's `dropped`. `status="converted"` at step k: persons who reached it
(depth > k), the step's `persons`. Optionally only those of one group of the funnel's breakdown:
`breakdown_value` is a group's label as the funnel reports it (one of the top values, or
`breakdown.OTHER` for the rest). Ordered by person id, so pages are stable; `has_more` says whether
another page follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.breakdown import ranked
from nexus.analyses.dates import DateRange
from nexus.analyses.funnels import FunnelRequest, person_rows
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_PAGE = 10_000


class FunnelPersonsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    funnel: FunnelRequest
    step: int
    status: Literal["dropped", "converted"] = "dropped"
    breakdown_value: str | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        first = 1 if self.status == "dropped" else 0
        if not first <= self.step < len(self.funnel.steps):
            raise InvalidRequest(f"step must be {first}..{len(self.funnel.steps) - 1} for {self.status} persons",
                                 field="step")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1..{MAX_PAGE}", field="limit")
        if not 0 <= self.offset <= 1_000_000_000:
            raise InvalidRequest("offset must be 0..1000000000", field="offset")
        if self.breakdown_value is not None and self.funnel.breakdown is None:
            raise InvalidRequest("breakdown_value needs a funnel with a breakdown", field="breakdown_value")


class FunnelPerson(msgspec.Struct, frozen=True):
    person: str  # the person id, or the distinct id of a never-identified person
    depth: int  # steps reached
    entered_at: datetime


class FunnelPersonsResult(msgspec.Struct, frozen=True):
    persons: list[FunnelPerson]
    has_more: bool
    timezone: str
    date_from: datetime  # the funnel's range, resolved
    date_to: datetime
    date_range: DateRange  # the funnel's range as asked, defaults filled in: {"date_from": "-7d"} when none was sent


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = FunnelPersonsRequest
Result = FunnelPersonsResult


def run(client: Client, project_id: int, request: FunnelPersonsRequest, *,
        now: datetime | None = None) -> FunnelPersonsResult:
    scope = _scope(client, project_id, request, now)
    rows = fetch(client, _query(scope, request))
    page = [FunnelPerson(person, depth, datetime.fromtimestamp(entered / 1000, timezone.utc))
            for person, depth, entered in rows[:request.limit]]
    return FunnelPersonsResult(page, len(rows) > request.limit, scope.timezone, scope.span.start, scope.span.end,
                               request.funnel.date_range)


def explain(client: Client, project_id: int, request: FunnelPersonsRequest, *,
            now: datetime | None = None) -> Query:
    return _query(_scope(client, project_id, request, now), request)


@contextmanager
def _as_funnel_field() -> Iterator[None]:
    """Refusals of the funnel's own values, named as this request's fields (`funnel.date_range`)."""
    try:
        yield
    except InvalidRequest as e:
        raise InvalidRequest(str(e), field=f"funnel.{e.field}" if e.field else "funnel") from None


def _scope(client: Client, project_id: int, request: FunnelPersonsRequest, now: datetime | None) -> AnalysisScope:
    with _as_funnel_field():
        return scope_of(client, project_id, request.funnel, now)


def _query(scope: AnalysisScope, request: FunnelPersonsRequest) -> Query:
    funnel = request.funnel
    params = Params(scope.project_id, scope.cohorts)
    step = params.add(request.step, "UInt8")
    condition = f"depth = {step}" if request.status == "dropped" else f"depth > {step}"
    with _as_funnel_field():
        rows = person_rows(scope, funnel, params, names=True)
    if request.breakdown_value is not None:
        # Labelled as the funnel labels its groups: values ranked by persons entered, the rest OTHER.
        rows = ranked(f"SELECT *, 1 AS weight FROM ({rows})", funnel.breakdown, params)
        condition += f" AND label = {params.add(request.breakdown_value, 'String')}"
    return params.query(
        f"SELECT name, depth, times[1] AS entered FROM ({rows})\n"
        f"WHERE {condition}\nORDER BY name\n"
        f"LIMIT {params.add(request.limit + 1, 'UInt32')} OFFSET {params.add(request.offset, 'UInt64')}"
    )
