"""The persons behind one node of a paths result: who passed through it, or whose path ended there, a page at a time.

Definition. `status="reached"`: persons with a path whose step `step` is the node `node` (a name as the
paths result names its nodes: one of the step's kept names, or `breakdown.OTHER` for the names merged at
that step, ranked as paths ranks them); `status="dropped"`: those whose path also ends there — the node's
`value` and `dropped`, counted in persons. A person with several such paths (one per session) is listed
once, with how many of their paths it was (`paths`) and the earliest such path's anchor time. Ordered by
person id, so pages are stable; `has_more` says whether another page follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.breakdown import OTHER
from nexus.analyses.dates import DateRange
from nexus.analyses.paths import STEP_NAMES, PathsRequest, path_rows
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_PAGE = 10_000


class PathsPersonsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    paths: PathsRequest
    step: int
    node: str
    status: Literal["reached", "dropped"] = "reached"
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.step < self.paths.steps:
            raise InvalidRequest(f"step must be 0..{self.paths.steps - 1}", field="step")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be 1..{MAX_PAGE}", field="limit")
        if not 0 <= self.offset <= 1_000_000_000:
            raise InvalidRequest("offset must be 0..1000000000", field="offset")


class PathPerson(msgspec.Struct, frozen=True):
    person: str  # the person id, or the distinct id of a never-identified person
    paths: int  # their paths through the node (sessions mode may give a person several)
    anchored_at: datetime  # the anchor time of the first of them


class PathsPersonsResult(msgspec.Struct, frozen=True):
    persons: list[PathPerson]
    has_more: bool
    timezone: str
    date_from: datetime  # the paths' range, resolved
    date_to: datetime
    date_range: DateRange  # the paths' range as asked, defaults filled in


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = PathsPersonsRequest
Result = PathsPersonsResult


def run(client: Client, project_id: int, request: PathsPersonsRequest, *,
        now: datetime | None = None) -> PathsPersonsResult:
    scope = _scope(client, project_id, request, now)
    rows = fetch(client, _query(scope, request))
    page = [PathPerson(person, paths, datetime.fromtimestamp(at / 1000, timezone.utc))
            for person, paths, at in rows[:request.limit]]
    return PathsPersonsResult(page, len(rows) > request.limit, scope.timezone, scope.span.start, scope.span.end,
                              request.paths.date_range)


def explain(client: Client, project_id: int, request: PathsPersonsRequest, *,
            now: datetime | None = None) -> Query:
    return _query(_scope(client, project_id, request, now), request)


@contextmanager
def _as_paths_field() -> Iterator[None]:
    """Refusals of the paths request's own values, named as this request's fields (`paths.date_range`)."""
    try:
        yield
    except InvalidRequest as e:
        raise InvalidRequest(str(e), field=f"paths.{e.field}" if e.field else "paths") from None


def _scope(client: Client, project_id: int, request: PathsPersonsRequest, now: datetime | None) -> AnalysisScope:
    with _as_paths_field():
        return scope_of(client, project_id, request.paths, now)


def _query(scope: AnalysisScope, request: PathsPersonsRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    index = params.add(request.step + 1, "UInt8")
    with _as_paths_field():
        names, per_path = path_rows(scope, request.paths, params, names=True)
    rows = f"SELECT *, p[{index}] AS id FROM ({per_path}) WHERE length(p) >= {index}"
    if request.node == OTHER:
        # The names merged at this step, ranked as paths ranks them: by paths through them, ties by name
        # (ids are in name order).
        rows = (f"SELECT * FROM (SELECT *, dense_rank() OVER (ORDER BY node_value DESC, id) AS node_rank"
                f" FROM (SELECT *, count() OVER (PARTITION BY id) AS node_value FROM ({rows})))"
                f" WHERE node_rank > {params.add(request.paths.nodes_per_step, 'UInt32')}")
    else:
        rows = f"SELECT * FROM ({rows}) WHERE {STEP_NAMES}[id] = {params.add(request.node, 'String')}"
    if request.status == "dropped":
        rows = f"SELECT * FROM ({rows}) WHERE length(p) = {index}"
    return params.query(
        f"WITH {names} AS {STEP_NAMES}\n"
        f"SELECT any(name) AS person_name, count() AS paths, min(at) AS first FROM ({rows})\n"
        f"GROUP BY person\nORDER BY person_name\n"
        f"LIMIT {params.add(request.limit + 1, 'UInt32')} OFFSET {params.add(request.offset, 'UInt64')}"
    )
