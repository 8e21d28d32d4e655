"""Cohort size: how many persons a cohort holds now, and how many it held at the end of each day, week or
month of a range.

Definition. `size` = the cohort's members at the analysis' clock (`cohort_membership`). `sizes[i]` = its
members evaluated as at the end of bucket i (local day, week from Monday, or month in the request's time
zone; the last bucket ends at the clock at most), so a "did X in the last 30 days" cohort is the persons
with X in the 30 days before that moment. Events stored since count too: a size is what the cohort's
definition gives on today's data, not a record of past answers. A static cohort has no history: every
bucket holds its current members. At most MAX_BUCKETS buckets (each is a membership of its own, run side
by side in one statement).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import dates
from nexus.analyses.cohort_membership import members
from nexus.analyses.dates import DateRange
from nexus.analyses.periods import Period
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_BUCKETS = 60


class CohortSizeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    cohort: str  # the cohort's id
    date_range: DateRange = DateRange()
    interval: Period = "day"
    timezone: str | None = None

    @property
    def cohorts_named(self) -> list[str]:
        return [self.cohort]


class CohortSizeResult(msgspec.Struct, frozen=True):
    cohort_id: str
    name: str
    kind: str
    size: int  # now
    interval: Period
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange
    buckets: list[datetime]  # local bucket starts
    sizes: list[int]  # members as at the end of each bucket


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = CohortSizeRequest
Result = CohortSizeResult


def run(client: Client, project_id: int, request: CohortSizeRequest, *,
        now: datetime | None = None) -> CohortSizeResult:
    scope = scope_of(client, project_id, request, now)
    buckets = _buckets(scope, request)
    found = dict(fetch(client, _query(scope, request, buckets)))
    cohort = scope.cohorts.get(request.cohort)
    size = int(found.get(-1, 0))
    sizes = [size if cohort.kind == "static" else int(found.get(i, 0)) for i in range(len(buckets))]
    return CohortSizeResult(cohort.cohort_id, cohort.name, cohort.kind, size, request.interval, scope.timezone,
                            scope.span.start, scope.span.end, request.date_range, buckets, sizes)


def explain(client: Client, project_id: int, request: CohortSizeRequest, *, now: datetime | None = None) -> Query:
    scope = scope_of(client, project_id, request, now)
    return _query(scope, request, _buckets(scope, request))


def _buckets(scope: AnalysisScope, request: CohortSizeRequest) -> list[datetime]:
    buckets = dates.bucket_starts(scope.span, request.interval, scope.timezone)
    if len(buckets) > MAX_BUCKETS:
        raise InvalidRequest(f"at most {MAX_BUCKETS} {request.interval}s: use a shorter range or a longer interval",
                             field="date_range")
    return buckets


def _query(scope: AnalysisScope, request: CohortSizeRequest, buckets: list[datetime]) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    cohort = scope.cohorts.get(request.cohort)
    ends = [*buckets[1:], scope.span.end]
    # -1: now; i: the end of bucket i (not later than now: a size is never of the future).
    moments = [(-1, scope.now)]
    if cohort.kind != "static":
        moments += [(i, min(end, scope.now)) for i, end in enumerate(ends)]
    parts = [f"SELECT {i} AS bucket, count() AS persons FROM ({members(cohort, params, at)})" for i, at in moments]
    return params.query("\nUNION ALL\n".join(parts))
