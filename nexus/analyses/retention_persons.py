"""The persons behind one retention cell: who is in a cohort, or who of them came back k periods later.

Definition. The retention request's own cohorts and cells (see retention.py). `cohort` is a cohort's period as the retention result names it (the local date it starts on). With `k`
(0..periods), the persons counted by the cell (cohort, k); with `k=None`, every person of the cohort (its
size). Optionally only those of one group of the retention's breakdown: `breakdown_value` is a group's
label as retention reports it (one of the top values, or `breakdown.OTHER` for the rest). Ordered by
person id, so pages are stable; `has_more` says whether another page follows. Static cohorts are saved
from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.breakdown import ranked
from nexus.analyses.dates import DateRange
from nexus.analyses.retention import RetentionRequest, person_rows
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_PAGE = 10_000


class RetentionPersonsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    retention: RetentionRequest
    cohort: date
    k: int | None = 0  # None: the whole cohort
    breakdown_value: str | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if self.k is not None and not 0 <= self.k <= self.retention.periods:
            raise InvalidRequest(f"k must be 0..{self.retention.periods} (the retention's periods)", field="k")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1..{MAX_PAGE}", field="limit")
        if not 0 <= self.offset <= 1_000_000_000:
            raise InvalidRequest("offset must be 0..1000000000", field="offset")
        if self.breakdown_value is not None and self.retention.breakdown is None:
            raise InvalidRequest("breakdown_value needs a retention with a breakdown", field="breakdown_value")


class RetentionPerson(msgspec.Struct, frozen=True):
    person: str  # the person id, or the distinct id of a never-identified person


class RetentionPersonsResult(msgspec.Struct, frozen=True):
    persons: list[RetentionPerson]
    has_more: bool
    timezone: str
    date_from: datetime  # the retention's range, resolved
    date_to: datetime
    date_range: DateRange  # the retention's range as asked, defaults filled in


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = RetentionPersonsRequest
Result = RetentionPersonsResult


def run(client: Client, project_id: int, request: RetentionPersonsRequest, *,
        now: datetime | None = None) -> RetentionPersonsResult:
    scope = _scope(client, project_id, request, now)
    rows = fetch(client, _query(scope, request))
    page = [RetentionPerson(person) for (person,) in rows[:request.limit]]
    return RetentionPersonsResult(page, len(rows) > request.limit, scope.timezone, scope.span.start, scope.span.end,
                                  request.retention.date_range)


def explain(client: Client, project_id: int, request: RetentionPersonsRequest, *,
            now: datetime | None = None) -> Query:
    return _query(_scope(client, project_id, request, now), request)


@contextmanager
def _as_retention_field() -> Iterator[None]:
    """Refusals of the retention's own values, named as this request's fields (`retention.date_range`)."""
    try:
        yield
    except InvalidRequest as e:
        raise InvalidRequest(str(e), field=f"retention.{e.field}" if e.field else "retention") from None


def _scope(client: Client, project_id: int, request: RetentionPersonsRequest,
           now: datetime | None) -> AnalysisScope:
    with _as_retention_field():
        return scope_of(client, project_id, request.retention, now)


def _query(scope: AnalysisScope, request: RetentionPersonsRequest) -> Query:
    retention = request.retention
    params = Params(scope.project_id, scope.cohorts)
    cohort = params.add(request.cohort, "Date")
    k = params.add(-1 if request.k is None else request.k, "Int32")
    with _as_retention_field():
        rows = person_rows(scope, retention, params, names=True)
    condition = f"cohort = {cohort} AND k = {k}"
    if request.breakdown_value is not None:
        # Labelled as retention labels its groups: values ranked by persons in cohorts, the rest OTHER.
        rows = ranked(f"SELECT *, toUInt64(k = -1) AS weight FROM ({rows})", retention.breakdown, params)
        condition += f" AND label = {params.add(request.breakdown_value, 'String')}"
    return params.query(
        f"SELECT name FROM ({rows})\nWHERE {condition}\nORDER BY name\n"
        f"LIMIT {params.add(request.limit + 1, 'UInt32')} OFFSET {params.add(request.offset, 'UInt64')}"
    )
