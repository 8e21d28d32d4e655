"""Goals: how often saved or inline goals convert, by whom, in which share of persons and sessions, for how
much value, per time bucket, optionally broken down.

Definition. The events of the project in `[start, end)` of the date range, bucketed by local `interval`
in the request's time zone (default: the project's). A conversion of a goal is an event meeting its
definition (`nexus.meta.goals.condition`: its event and filters, or a page view whose path matches its
pattern) and the request's `where`. Persons are resolved through identities (every distinct id of a
person is that person), and all distinct counts are exact (`uniqExact`). Per goal and bucket:
- `conversions`: conversions in the bucket;
- `persons`: persons with a conversion in the bucket; `active_persons`: persons with any event passing
  `where` in the bucket; `person_rate` = persons / active_persons (None without active persons);
- `sessions`: sessions as the sessions analysis splits them (a person's events of the range in time
  order, split at gaps longer than `gap_minutes`, cut at the range's ends) whose first event passes
  `where`, in the bucket of their first event; `converted_sessions`: those of them holding a conversion
  (at any time in the session); `session_rate` = converted_sessions / sessions (None without sessions);
- `value`: the sum of the goal's value property over the conversions, a missing or non-numeric value
  counting 0 (Decimal128(9), exact; None when the goal has no value property); `value_per_person` =
  value / persons (None without converting persons or value property).
`total` holds the same numbers over the whole range: counts and value summed over buckets, persons
distinct over the range (a person converting on two days is one), rates of those totals.
With `breakdown`: conversions, persons and value under the value of the conversion event, active persons
under the values of their events (a person with events of two values counts under both), sessions under
the value of their first event. The top `limit` values by conversions of all goals in the range get a
line per goal; every other value (those without conversions included) merges into `breakdown.OTHER`.
By cohorts, a person's events, conversions and sessions count under each cohort they are in, and under
`breakdown.OTHER` when in none (docs/metrics.md, "Cohorts").
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import dates, persons, time_sql
from nexus.analyses.breakdown import OTHER, Breakdown, ranked
from nexus.analyses.dates import DateRange, Interval
from nexus.analyses.filters import FilterGroup, compile_group
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest
from nexus.meta import goals as saved
from nexus.meta.goals import GoalDefinition, check

MAX_GOALS = 10
EVENTS_PART, SESSIONS_PART = 0, 1
ACTIVITY = 0  # the key of rows counting every event or session; goal i is key i + 1


class InlineGoal(GoalDefinition, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A goal defined in the request itself, named `name` (default: its event or path pattern)."""

    name: str = ""

    def __post_init__(self) -> None:
        check(self)


class GoalsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    goals: list[str | InlineGoal]  # saved goals' ids, or inline definitions
    date_range: DateRange = DateRange()
    interval: Interval = "day"
    timezone: str | None = None
    where: FilterGroup | None = None
    breakdown: Breakdown | None = None
    gap_minutes: int = 30

    def __post_init__(self) -> None:
        if not 1 <= len(self.goals) <= MAX_GOALS:
            raise InvalidRequest(f"goals: a request names 1 to {MAX_GOALS} goals", field="goals")
        if not 1 <= self.gap_minutes <= 24 * 60:
            raise InvalidRequest("gap_minutes must be 1..1440", field="gap_minutes")


class ResolvedGoal(NamedTuple):
    goal_id: str | None  # None for an inline goal
    name: str
    definition: GoalDefinition


class GoalSummary(msgspec.Struct, frozen=True):
    goal_id: str | None
    name: str
    definition: GoalDefinition


class GoalTotals(msgspec.Struct, frozen=True):
    conversions: int
    persons: int
    active_persons: int
    person_rate: float | None
    sessions: int
    converted_sessions: int
    session_rate: float | None
    value: float | None
    value_per_person: float | None


class GoalLine(msgspec.Struct, frozen=True):
    goal: int  # index into the result's `goals` (and the request's)
    name: str
    currency: str | None
    breakdown: str | None
    conversions: list[int]
    persons: list[int]
    active_persons: list[int]
    person_rate: list[float | None]
    sessions: list[int]
    converted_sessions: list[int]
    session_rate: list[float | None]
    value: list[float | None]
    value_per_person: list[float | None]
    total: GoalTotals


class GoalsResult(msgspec.Struct, frozen=True):
    interval: Interval
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    buckets: list[datetime]
    goals: list[GoalSummary]  # the goals as they were defined when the answer was computed
    lines: list[GoalLine]  # per breakdown value (top first, OTHER last), the goals in request order


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = GoalsRequest
Result = GoalsResult


def resolve(client: Client, project_id: int, refs: list[str | InlineGoal], field: str = "goals") -> list[ResolvedGoal]:
    """The goals `refs` name: saved ones read from the store (NotFound for one the project lacks), inline ones
    as given."""
    positions = [i for i, ref in enumerate(refs) if isinstance(ref, str)]
    stored = iter(saved.resolve(client, project_id, [refs[i] for i in positions],  # type: ignore[misc]
                                [f"{field}[{i}]" for i in positions]) if positions else [])
    resolved = []
    for ref in refs:
        if isinstance(ref, str):
            goal = next(stored)
            resolved.append(ResolvedGoal(goal.goal_id, goal.name, goal.definition))
        else:
            definition = GoalDefinition(event=ref.event, path=ref.path, where=ref.where,
                                        value_property=ref.value_property, currency=ref.currency)
            resolved.append(ResolvedGoal(None, ref.name or definition.summary(), definition))
    return resolved


def saved_definitions(client: Client, project_id: int, request: GoalsRequest) -> bytes:
    """The saved goals the request names, as stored now: part of the read service's cache key, so an
    answer cached before a goal changed is not served after."""
    return msgspec.json.encode(resolve(client, project_id, request.goals))


def run(client: Client, project_id: int, request: GoalsRequest, *, now: datetime | None = None) -> GoalsResult:
    scope = scope_of(client, project_id, request, now)
    resolved = resolve(client, project_id, request.goals)
    buckets = dates.bucket_starts(scope.span, request.interval, scope.timezone)
    position = {dates.key(b): i for i, b in enumerate(buckets)}
    # cells[label][(part, key)] = {bucket position or None for the total: (count, persons, amount)}
    cells: dict[str, dict[tuple[int, int], dict[int | None, tuple[int, int, float]]]] = {}
    if request.breakdown is None:
        cells[""] = {}
    for part, key, label, bucket, is_total, count, persons_, amount in fetch(client, _query(scope, request, resolved)):
        cells.setdefault(label, {}).setdefault((part, key), {})[None if is_total else position[bucket]] = (
            int(count), int(persons_), float(amount))
    order = sorted(cells, key=lambda label: (label == OTHER, -_conversions(cells[label]), label))
    lines = [_line(index, goal, label if request.breakdown else None, cells[label], len(buckets))
             for label in order for index, goal in enumerate(resolved)]
    return GoalsResult(request.interval, scope.timezone, scope.span.start, scope.span.end, request.date_range,
                       buckets, [GoalSummary(*goal) for goal in resolved], lines)


def explain(client: Client, project_id: int, request: GoalsRequest, *, now: datetime | None = None) -> Query:
    scope = scope_of(client, project_id, request, now)
    dates.bucket_starts(scope.span, request.interval, scope.timezone)  # refuses too many buckets, as run does
    return _query(scope, request, resolve(client, project_id, request.goals))


def _conversions(cells: dict[tuple[int, int], dict[int | None, tuple[int, int, float]]]) -> int:
    return sum(found.get(None, (0, 0, 0.0))[0] for (part, key), found in cells.items()
               if part == EVENTS_PART and key != ACTIVITY)


def _line(index: int, goal: ResolvedGoal, label: str | None, cells: dict, buckets: int) -> GoalLine:
    def numbers(part: int, key: int, at: int | None) -> tuple[int, int, float]:
        return cells.get((part, key), {}).get(at, (0, 0, 0.0))

    valued = goal.definition.value_property is not None
    columns: dict[str, list] = {name: [] for name in GoalTotals.__struct_fields__}
    for at in [*range(buckets), None]:
        conversions, converters, value = numbers(EVENTS_PART, index + 1, at)
        active = numbers(EVENTS_PART, ACTIVITY, at)[1]
        sessions = numbers(SESSIONS_PART, ACTIVITY, at)[0]
        converted = numbers(SESSIONS_PART, index + 1, at)[0]
        found = {"conversions": conversions, "persons": converters, "active_persons": active,
                 "person_rate": converters / active if active else None, "sessions": sessions,
                 "converted_sessions": converted, "session_rate": converted / sessions if sessions else None,
                 "value": value if valued else None,
                 "value_per_person": value / converters if valued and converters else None}
        for name, number in found.items():
            columns[name].append(number)
    total = GoalTotals(**{name: values.pop() for name, values in columns.items()})
    return GoalLine(index, goal.name, goal.definition.currency, label, total=total, **columns)


def _query(scope: AnalysisScope, request: GoalsRequest, goals: list[ResolvedGoal]) -> Query:
    """One statement, two reads of the range's events run side by side (UNION ALL): conversions and active
    persons from the events, sessions and converted sessions from each person's events in time order. Each
    row: (part, key, label, bucket, is_total, count, persons, amount); key 0 counts every event or session,
    key i + 1 the conversions of goal i (an event of several goals is counted under each)."""
    params = Params(scope.project_id, scope.cohorts)
    definitions = [g.definition for g in goals]
    joins = persons.joins(True, request.where, request.breakdown, *definitions)
    conditions = [saved.condition(d, params) for d in definitions]
    where = compile_group(request.where, params)
    tz = params.add(scope.timezone, "String")
    bd = request.breakdown.expression("e", params) if request.breakdown else "''"
    read = (f"FROM events AS e\n{joins.sql}\n"
            f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scope.span.start, UTC_TIME)}"
            f" AND e.ts < {params.add(scope.span.end, UTC_TIME)}")
    keys = f"range(1, {len(goals) + 1})"
    # Each event once for activity (key 0) and once per goal it converts; its value is read only for those.
    matched = f"arrayFilter((k, c) -> c, {keys}, [{', '.join(conditions)}])"
    valued = [f"key = {i + 1}, {saved.value(d)}" for i, d in enumerate(definitions) if d.value_property is not None]
    amount = f"multiIf({', '.join(valued)}, toDecimal128(0, 9))" if valued else "toDecimal128(0, 9)"
    events = (
        f"SELECT arrayJoin(arrayPushFront({matched}, {ACTIVITY})) AS key,"
        f" {time_sql.bucket(request.interval, 'e.ts', tz)} AS bucket, {bd} AS bd, {persons.PERSON_KEY} AS person,"
        f" {amount} AS amount\n"
        f"{read}{'' if where == '1' else f' AND {where}'}"
    )
    # Sessions: every event of the range (a session counts when its first event passes `where`), each with
    # a bit per goal it converts (conversions pass `where` too); a session's bits are OR-ed together.
    bits = " + ".join(f"({c}) * {1 << i}" for i, c in enumerate(conditions))
    # An event: (time, goal bits[, breakdown value][, passes `where`]): only what the sessions need, since
    # sorting each person's events is most of this part's cost (smaller tuples measured ~15% faster at 1M).
    converts = f"toUInt16({bits})" if where == "1" else f"if({where}, toUInt16({bits}), 0)"
    fields = ["toUnixTimestamp64Milli(e.ts)", converts]
    first_bd, first_passes = "''", "1"  # a session's first event's breakdown value and whether it passes
    if request.breakdown is not None:
        fields.append(bd)
        first_bd = f"s[1].{len(fields)}"
    if where != "1":
        fields.append(where)
        first_passes = f"s[1].{len(fields)}"
    gap = params.add(request.gap_minutes * 60_000, "Int64")
    split = (
        f"SELECT person, arrayJoin(arrayMap(s -> (s[1].1, {first_bd}, {first_passes},"
        f" arrayFold((acc, x) -> bitOr(acc, x.2), s, toUInt16(0))),"
        f" arraySplit((x, new) -> new, evs, arrayMap((t, p) -> t - p > {gap}, evs.1,"
        f" arrayPushFront(arrayPopBack(evs.1), evs.1[1]))))) AS session\n"
        f"FROM (SELECT person, arraySort(groupArray(ev)) AS evs FROM (\n"
        f"  SELECT {persons.PERSON_KEY} AS person, ({', '.join(fields)}) AS ev\n  {read})\n"
        f"GROUP BY person)"
    )
    start = time_sql.bucket(request.interval, "fromUnixTimestamp64Milli(session.1, 'UTC')", tz)
    sessions = (
        f"SELECT arrayJoin(arrayPushFront(arrayFilter(k -> bitTest(session.4, k - 1), {keys}), {ACTIVITY})) AS key,"
        f" {start} AS bucket, session.2 AS bd, person, toDecimal128(0, 9) AS amount\n"
        f"FROM ({split})\nWHERE session.3"
    )
    if request.breakdown is None:
        parts = [f"SELECT {part} AS part, key, '' AS label, bucket, grouping(bucket) AS is_total, count() AS n,"
                 f" {'uniqExact(person)' if part == EVENTS_PART else 'toUInt64(0)'} AS persons,"
                 f" toFloat64(sum(amount)) AS amount\nFROM ({rows})\nGROUP BY GROUPING SETS ((key, bucket), (key))"
                 for part, rows in ((EVENTS_PART, events), (SESSIONS_PART, sessions))]
        return params.query("\nUNION ALL\n".join(parts))
    # Per value, states; ranked by conversions (the events rows' weight), merged per label.
    per_value = "\nUNION ALL\n".join(
        f"SELECT {part} AS part, key, bd, bucket, {'if(key > 0, count(), 0)' if part == EVENTS_PART else 'toUInt64(0)'}"
        f" AS weight, count() AS n, uniqExactState(person) AS p, sumState(amount) AS a\n"
        f"FROM ({rows})\nGROUP BY key, bd, bucket"
        for part, rows in ((EVENTS_PART, events), (SESSIONS_PART, sessions)))
    return params.query(
        f"SELECT part, key, label, bucket, grouping(bucket) AS is_total, sum(n) AS n, uniqExactMerge(p) AS persons,"
        f" toFloat64(sumMerge(a)) AS amount\n"
        f"FROM ({ranked(per_value, request.breakdown, params)})\n"
        f"GROUP BY GROUPING SETS ((part, key, label, bucket), (part, key, label))"
    )
