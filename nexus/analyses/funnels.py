"""Funnels: how many persons go through 2 to 10 steps, in order, within a conversion window.

Definition. A person enters with an event of step 0 (unordered: of any step) inside the date range
`[start, end)`; later steps may happen up to `window` after entry even past the range end (entry in
range, conversion within the window). Per person the mode's step machine (`funnel_ordered` — the
default, windowFunnel semantics — `funnel_strict`, `funnel_unordered`) gives the depth reached and the
times of the chain that first reached it. Step k's `persons` = persons whose depth > k (exact: one row
per person, counted); `conversion_from_first` = persons(k) / persons(0); `conversion_from_previous` =
persons(k) / persons(k-1); `dropped` = persons(k-1) − persons(k), the persons who reached step k-1 but
not k; `avg_seconds`/`median_seconds` = the mean and median (exact, interpolated) of t(k) − t(k-1) over
the persons who reached step k. Persons are resolved through identities (`persons`), so ids linked
mid-funnel are one person. A breakdown takes the property of the chain's entry event (or the person's
trait), top `limit` values by persons entered, plus `breakdown.OTHER`; `groups[0]` is always everyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import ModuleType
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import funnel_ordered, funnel_strict, funnel_unordered, persons
from nexus.analyses.breakdown import OTHER, Breakdown, everyone, ranked
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.funnel_chain import IN_RANGE_BIT, INDEX_BITS
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

MODES: dict[str, ModuleType] = {"ordered": funnel_ordered, "strict": funnel_strict, "unordered": funnel_unordered}
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
MAX_WINDOW = timedelta(days=365)
MAX_SPAN = timedelta(milliseconds=2 ** (63 - INDEX_BITS))  # ~34 years: times after the scan's start, packed


class FunnelStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: str
    where: FilterGroup | None = None
    label: str | None = None


class FunnelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    steps: list[FunnelStep]
    date_range: DateRange = DateRange()
    timezone: str | None = None
    where: FilterGroup | None = None  # applies to every event read, step or not
    window: int = 14
    window_unit: Literal["second", "minute", "hour", "day", "week"] = "day"
    mode: Literal["ordered", "strict", "unordered"] = "ordered"
    breakdown: Breakdown | None = None

    def __post_init__(self) -> None:
        if not 2 <= len(self.steps) <= 10:
            raise InvalidRequest("a funnel has 2 to 10 steps", field="steps")
        if not 0 < self.window_ms <= MAX_WINDOW.total_seconds() * 1000:
            raise InvalidRequest("the conversion window must be positive and at most 365 days", field="window")

    @property
    def window_ms(self) -> int:
        return self.window * UNIT_SECONDS[self.window_unit] * 1000


class StepResult(msgspec.Struct, frozen=True):
    step: int
    event: str
    label: str
    persons: int
    conversion_from_first: float
    conversion_from_previous: float
    dropped: int
    avg_seconds: float | None  # from the previous step; None for step 0 and when nobody converted
    median_seconds: float | None


class FunnelGroup(msgspec.Struct, frozen=True):
    breakdown: str | None  # None: everyone
    steps: list[StepResult]


class FunnelResult(msgspec.Struct, frozen=True):
    mode: str
    window_seconds: int
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    groups: list[FunnelGroup]


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = FunnelRequest
Result = FunnelResult


def run(client: Client, project_id: int, request: FunnelRequest, *, now: datetime | None = None) -> FunnelResult:
    scope = scope_of(client, project_id, request, now)
    rows = fetch(client, _query(scope, request))
    groups = [_group(request, None if is_total else label, values) for label, is_total, *values in rows]
    groups.sort(key=lambda g: (g.breakdown is not None, g.breakdown == OTHER, -g.steps[0].persons, g.breakdown or ""))
    if not groups or groups[0].breakdown is not None:
        groups.insert(0, _group(request, None, [0] * (3 * len(request.steps) - 2)))
    return FunnelResult(request.mode, request.window_ms // 1000, scope.timezone, scope.span.start, scope.span.end,
                        request.date_range, groups if request.breakdown else groups[:1])


def explain(client: Client, project_id: int, request: FunnelRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def person_rows(scope: AnalysisScope, request: FunnelRequest, params: Params, names: bool = False) -> str:
    """One row per entered person: person (its key), depth (1..steps), times (ms of each step reached), bd;
    with `names`, also `name`, the person's id."""
    mode = MODES[request.mode]
    steps = len(request.steps)
    event_of = {s.event: params.add(s.event, "String") for s in request.steps}
    matches = [f"({all_of(f'e.event = {event_of[s.event]}', compile_group(s.where, params))})" for s in request.steps]
    # Ordered and strict machines read step 0 only as an entry, which must be in range; unordered ones count
    # step 0 like any other step (after the range end too) and take entries from the in-range bit.
    first = f"{matches[0]} AND in_range" if mode.STEP_0_ONLY_IN_RANGE else matches[0]
    flags = [f"{first} AS s0", *(f"{m} AS s{k}" for k, m in enumerate(matches[1:], 1))]
    mask = " + ".join([*(f"{1 << k} * s{k}" for k in range(steps)), f"{1 << IN_RANGE_BIT} * in_range"])
    order = "multiIf(" + ", ".join(f"s{k}, {k}" for k in range(steps)) + f", {steps})"
    # One sortable Int64 per event — time, then step order (ties in step order, non-step events last),
    # then the mask: plain integer arrays are several times cheaper to collect and sort than tuples.
    key = f"bitShiftLeft(toUnixTimestamp64Milli(e.ts), 20) + bitShiftLeft(toInt64({order}), 16) + ({mask})"
    joins = persons.joins(True, request.where, request.breakdown, *(s.where for s in request.steps))
    only_steps = "1" if mode.SCANS_ALL_EVENTS else all_of(
        f"e.event IN ({', '.join(event_of.values())})",
        "1" if all(s.where is None for s in request.steps) else "(" + " OR ".join(matches) + ")")
    window = params.add(request.window_ms, "Int64")
    scan_end = scope.span.end + timedelta(milliseconds=request.window_ms)
    if scan_end - scope.span.start > MAX_SPAN:
        raise InvalidRequest(f"a funnel's date range and window span at most {MAX_SPAN.days // 365} years",
                             field="date_range")
    # Machines read times as ms after the scan's start: small enough to pack with an index (funnel_chain).
    origin = params.add(int(scope.span.start.timestamp() * 1000), "Int64")
    entry = (1 << steps) - 1 if mode is funnel_unordered else 1
    bd = request.breakdown.expression(params=params) if request.breakdown else None
    end = params.add(scope.span.end, UTC_TIME)
    name = persons.PERSON if names else "''"
    rows = (
        f"SELECT {persons.PERSON_KEY} AS person, {name} AS name, e.ts < {end} AS in_range, {', '.join(flags)},"
        f" {key} AS key"
        f"{f', {bd} AS bd' if bd else ''}\n"
        f"FROM events AS e\n{joins.sql}\n"
        f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scope.span.start, UTC_TIME)}"
        f" AND e.ts < {params.add(scan_end, UTC_TIME)}"
        f" AND {all_of(compile_group(request.where, params), only_steps)}"
    )
    bds = ", arraySort((b, x) -> x, groupArray(bd), groupArray(key)) AS bds" if bd else ""
    grouped = (
        f"SELECT person, any(name) AS name, arraySort(groupArray(key)) AS k{bds}\nFROM ({rows})\nGROUP BY person\n"
        f"HAVING max(bitAnd(key, {entry}) != 0 AND bitTest(key, {IN_RANGE_BIT}))"
    )
    # The machine reads only the events that can change its outcome (`kept`); the output names differ
    # from `k` and `bds` because ClickHouse would resolve `k` to a same-named alias of the SELECT.
    kept_bds = f", {mode.kept('bds', steps)} AS kept_bds" if bd else ""
    kept = f"SELECT person, name, {mode.kept('k', steps)} AS kept_keys{kept_bds}\nFROM ({grouped})"
    layered = (f"SELECT person, name, {'kept_bds AS bds, ' if bd else ''}"
               f"arrayMap(x -> bitShiftRight(x, 20) - {origin}, kept_keys) AS t,"
               f" arrayMap(x -> toUInt16(bitAnd(x, 65535)), kept_keys) AS m, arrayEnumerate(kept_keys) AS idx\n"
               f"FROM ({kept})")
    for items in mode.layers(steps, window):
        layered = f"SELECT *, {', '.join(items)}\nFROM ({layered})"
    return (f"SELECT person, name, depth, arrayMap(x -> x + {origin}, times) AS times,"
            f" {'bds[entry]' if bd else chr(39) * 2} AS bd FROM ({layered})")


def _query(scope: AnalysisScope, request: FunnelRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    steps = len(request.steps)
    gaps = [f"if(depth > {k}, times[{k + 1}] - times[{k}], NULL)" for k in range(1, steps)]
    # (function, parameters, argument, divisor) in the order `_group` reads them: persons per step, then
    # the mean and the median gap from the previous step (ms to seconds).
    measures = [("count", "", "", ""), *(("sum", "", f"toUInt64(depth > {k})", "") for k in range(1, steps)),
                *(("avg", "", gap, " / 1000") for gap in gaps),
                *(("quantileExactInclusive", "(0.5)", gap, " / 1000") for gap in gaps)]
    per_person = person_rows(scope, request, params)
    if request.breakdown is None:  # everyone only: aggregated straight from the persons' rows
        aggregates = [f"{f}{p}({a}){d}" for f, p, a, d in measures]
        return params.query(f"SELECT '' AS label, 1 AS is_total, {', '.join(aggregates)}\nFROM ({per_person})")
    states = ["count() AS weight", *(f"{f}State{p}({a}) AS v{i}" for i, (f, p, a, _) in enumerate(measures))]
    merges = [f"{f}Merge{p}(v{i}){d}" for i, (f, p, _, d) in enumerate(measures)]
    per_value = f"SELECT bd, {', '.join(states)} FROM ({per_person}) GROUP BY bd"
    total, having = everyone(request.breakdown)
    return params.query(
        f"SELECT label, grouping(label) AS is_total, {', '.join(merges)}\n"
        f"FROM ({ranked(per_value, request.breakdown, params)})\n"
        f"GROUP BY GROUPING SETS ((label), {total}){having}"
    )


def _group(request: FunnelRequest, label: str | None, values: list) -> FunnelGroup:
    steps = len(request.steps)
    counts = [int(v) for v in values[:steps]]
    averages, medians = [None, *values[steps:2 * steps - 1]], [None, *values[2 * steps - 1:]]
    results = []
    for k, step in enumerate(request.steps):
        previous = counts[k - 1] if k else counts[0]
        results.append(StepResult(
            k, step.event, step.label or step.event, counts[k],
            counts[k] / counts[0] if counts[0] else 0.0, counts[k] / previous if previous else 0.0,
            previous - counts[k], _seconds(averages[k]), _seconds(medians[k])))
    return FunnelGroup(label, results)


def _seconds(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)
