"""Conversion paths: the sequences of channels (sources, campaigns) that lead to a goal's conversions.

Definition. Journeys as `nexus.analyses.touchpoints` builds them (each conversion in the range with the
touches of its lookback, after the project's "last non-direct" rule; each person's lost journey after their
last conversion). A path is the labels (`by`) of a journey's touches in time order, repeats kept. Per path:
`conversions` (conversions whose path it is), `value` (their value; None when the goal has no value
property), `lost` (lost journeys with that path), `conversion_rate` = conversions / (conversions + lost),
`avg_seconds_to_convert` (mean of conversion − first touch) and `touches` (the path's length). The top
`limit` paths by conversions (then by lost journeys, then path) are listed. Totals over every converting
journey with a path: `avg_touches`, `avg_seconds_to_convert`; `unattributed` counts conversions whose
path is empty (no touch in their lookback). Counts are exact.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import touchpoints
from nexus.analyses.attribution import Resolved, check_journeys, resolve
from nexus.analyses.dates import DateRange
from nexus.analyses.goals import GoalSummary, InlineGoal
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import Params, Query, fetch
from nexus.analyses.touchpoints import TouchLabel
from nexus.errors import InvalidRequest

MAX_PATHS = 200


class ConversionPathsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    conversion: str | InlineGoal  # a saved goal's id, or an inline goal (an event with its value property)
    date_range: DateRange = DateRange()
    timezone: str | None = None
    by: TouchLabel = "channel"
    lookback_days: int = 30
    gap_minutes: int = 30
    limit: int = 10

    def __post_init__(self) -> None:
        check_journeys(self.lookback_days, self.gap_minutes)
        if not 1 <= self.limit <= MAX_PATHS:
            raise InvalidRequest(f"limit must be 1..{MAX_PATHS}", field="limit")


class ConversionPath(msgspec.Struct, frozen=True):
    path: list[str]
    conversions: int
    value: float | None
    lost: int
    conversion_rate: float
    avg_seconds_to_convert: float | None
    touches: int


class ConversionPathsResult(msgspec.Struct, frozen=True):
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange
    by: TouchLabel
    lookback_days: int
    goal: GoalSummary
    conversions: int
    unattributed: int
    distinct_paths: int  # converting paths, before the top `limit`
    avg_touches: float | None
    avg_seconds_to_convert: float | None
    paths: list[ConversionPath]


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = ConversionPathsRequest
Result = ConversionPathsResult


def saved_definitions(client: Client, project_id: int, request: ConversionPathsRequest) -> bytes:
    """The goal and channel rules as stored now: part of the read service's cache key."""
    return msgspec.json.encode(resolve(client, project_id, request.conversion))


def run(client: Client, project_id: int, request: ConversionPathsRequest, *,
        now: datetime | None = None) -> ConversionPathsResult:
    scope = scope_of(client, project_id, request, now)
    resolved = resolve(client, project_id, request.conversion)
    valued = resolved.goal.definition.value_property is not None
    found: dict[tuple[str, ...], list[float]] = {}  # path → conversions, value, ms to convert, lost
    unattributed = conversions = 0
    name = touchpoints.naming(resolved.settings, request.by)
    for path, converted, journeys, value, milliseconds in fetch(client, _query(scope, request, resolved)):
        if converted:
            conversions += journeys
            if not path:
                unattributed += journeys
                continue
        numbers = found.setdefault(tuple(map(name, path)), [0, 0.0, 0, 0])
        if converted:
            numbers[0] += journeys
            numbers[1] += float(value)
            numbers[2] += milliseconds  # exact: summed as integers
        else:
            numbers[3] += journeys
    converting = {path: numbers for path, numbers in found.items() if numbers[0]}
    attributed = conversions - unattributed
    order = sorted(found, key=lambda path: (-found[path][0], -found[path][3], path))[:request.limit]
    paths = [ConversionPath(list(path), int(n), value if valued else None, int(lost), n / (n + lost),
                            ms / 1000 / n if n else None, len(path))
             for path in order for n, value, ms, lost in [found[path]]]
    return ConversionPathsResult(
        scope.timezone, scope.span.start, scope.span.end, request.date_range, request.by, request.lookback_days,
        resolved.goal, conversions, unattributed, len(converting),
        sum(len(p) * n[0] for p, n in converting.items()) / attributed if attributed else None,
        sum(n[2] for n in converting.values()) / 1000 / attributed if attributed else None, paths)


def explain(client: Client, project_id: int, request: ConversionPathsRequest, *, now: datetime | None = None) -> Query:
    scope = scope_of(client, project_id, request, now)
    return _query(scope, request, resolve(client, project_id, request.conversion))


def _query(scope: AnalysisScope, request: ConversionPathsRequest, resolved: Resolved) -> Query:
    """Rows of (path labels, converted, journeys, value, milliseconds from first touch to conversion summed),
    in a steady order (run() adds them up in it)."""
    params = Params(scope.project_id, scope.cohorts)
    journeys = touchpoints.journeys(scope, params, resolved.settings, resolved.goal.definition, by=request.by,
                                    lookback_days=request.lookback_days, gap_minutes=request.gap_minutes)
    return params.query(
        f"SELECT arrayMap(x -> x.3, path) AS labels, converted, count() AS journeys,"
        f" {touchpoints.exact_sum('value')} AS value,\n"
        f"  sumIf(at - path[1].1, converted AND notEmpty(path)) AS milliseconds\n"
        f"FROM ({journeys})\n"
        f"GROUP BY labels, converted\n"
        f"ORDER BY labels, converted"
    )
