"""Paths: the most common ways persons go on from a start step (or came to an end step), for a Sankey.

Definition. A step is an event of type track, page or screen (identify, group and alias calls are
identity bookkeeping, not moves) that passes `where` and is named by `step_type`: `events` names every
step by its event name; `pages` reads page calls only and names them by their path; `both` names page
calls by path and the rest by event name. Paths are first rewritten by `cleaning`, a list of RE2
pattern → replacement rules applied in order to every match (`replaceRegexpAll`: `\\1` is the first
group), so `/item/123` and `/item/456` can both read `/item/:id`; steps whose name is in `exclude` are
then dropped. A person's steps (persons resolved through identities, so an id identified mid-path is
the same person) are put in time order, ties in name order. With `within="session"` they are split into
sessions where the gap to the previous step is longer than `gap_minutes` (exactly the limit does not
split), reading only steps inside the date range; with `within="window"` they stay one sequence.
With `collapse_repeats`, a run of consecutive steps of one name (in a session) keeps only its first.

The anchor is the first step inside the range named `start` (forward) — or `end` (backward: the path
runs back in time from it) — or, with neither, the first step inside the range. One path per person
(`window`: the anchor is the person's first in range) or per session (`session`: each session's first),
so `unit` says what `value` counts: persons or sessions. A path is the anchor (step 0) and the up to
`steps − 1` steps after it (before it, backward) in its session, or within `window` of the anchor's
time (inclusive: a step exactly `window` after the anchor is in; these may lie past the range end, or
before its start backward). Node (k, name) = paths whose step k has that name; per step, the
`nodes_per_step` names with the most paths (ties by name) stay and the rest merge into one node named
`breakdown.OTHER`. A node's `value` = paths through it, `persons` = distinct persons among them,
`dropped` = paths that end there (no further step in their session or window, in the path's
direction). An edge (source at step k, target at step k+1) counts the paths that take it; edges point
in time order (backward: from step k+1 to step k). All counts are exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, NamedTuple

import msgspec
import re2
from clickhouse_connect.driver.client import Client

from nexus.analyses import persons
from nexus.analyses.breakdown import OTHER
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.funnels import MAX_WINDOW, UNIT_SECONDS
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest

MAX_STEPS = 10
MAX_NODES_PER_STEP = 50
MAX_RULES = 20
MAX_EXCLUDED = 100
StepType = Literal["events", "pages", "both"]


class CleaningRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every match of `pattern` (RE2) in a page path becomes `replacement` (`\\1`: its first group)."""

    pattern: str
    replacement: str = ""

    def __post_init__(self) -> None:
        try:
            groups = re2.compile(self.pattern, _RE2_OPTIONS).groups
        except re2.error as e:
            reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            raise InvalidRequest(f"not a valid RE2 pattern ({reason})", field="pattern") from None
        referenced = [int(d) for d in re2.findall(r"\\(\d)", self.replacement)] if "\\" in self.replacement else []
        if any(n > groups for n in referenced):
            raise InvalidRequest(f"the replacement refers to a group the pattern does not have ({groups})",
                                 field="replacement")


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the refusal goes to the caller, not to the server's stderr


class PathsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    start: str | None = None
    end: str | None = None
    step_type: StepType = "both"
    steps: int = 5
    nodes_per_step: int = 10
    collapse_repeats: bool = True
    within: Literal["session", "window"] = "session"
    gap_minutes: int = 30
    window: int = 1
    window_unit: Literal["second", "minute", "hour", "day", "week"] = "day"
    cleaning: list[CleaningRule] = []
    exclude: list[str] = []
    date_range: DateRange = DateRange()
    timezone: str | None = None
    where: FilterGroup | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None:
            raise InvalidRequest("a path runs from a start or back from an end, not both", field="end")
        if not 2 <= self.steps <= MAX_STEPS:
            raise InvalidRequest(f"steps must be 2..{MAX_STEPS}", field="steps")
        if not 1 <= self.nodes_per_step <= MAX_NODES_PER_STEP:
            raise InvalidRequest(f"nodes_per_step must be 1..{MAX_NODES_PER_STEP}", field="nodes_per_step")
        if not 1 <= self.gap_minutes <= 24 * 60:
            raise InvalidRequest("gap_minutes must be 1..1440", field="gap_minutes")
        if not 0 < self.window_ms <= MAX_WINDOW.total_seconds() * 1000:
            raise InvalidRequest("the window must be positive and at most 365 days", field="window")
        if len(self.cleaning) > MAX_RULES:
            raise InvalidRequest(f"at most {MAX_RULES} cleaning rules", field="cleaning")
        if len(self.exclude) > MAX_EXCLUDED:
            raise InvalidRequest(f"at most {MAX_EXCLUDED} excluded steps", field="exclude")

    @property
    def window_ms(self) -> int:
        return self.window * UNIT_SECONDS[self.window_unit] * 1000

    @property
    def backward(self) -> bool:
        return self.end is not None


class PathNode(msgspec.Struct, frozen=True):
    id: str  # "<step>:<name>", unique in the result
    step: int  # 0: the anchor; k: k steps after it (before it, backward)
    name: str  # an event name, a cleaned path, or breakdown.OTHER
    value: int  # paths through the node
    persons: int
    dropped: int  # paths that end here


class PathEdge(msgspec.Struct, frozen=True):
    source: str  # node ids, in time order
    target: str
    value: int  # paths taking the edge
    persons: int


class PathsResult(msgspec.Struct, frozen=True):
    direction: Literal["forward", "backward"]
    unit: Literal["persons", "sessions"]  # what a path is: one per person, or one per session
    paths: int
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange  # the range as asked, defaults filled in: {"date_from": "-7d"} when none was sent
    nodes: list[PathNode]  # by step, then by value (most first), the step's OTHER node last
    edges: list[PathEdge]  # by source step, then by value


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = PathsRequest
Result = PathsResult


def run(client: Client, project_id: int, request: PathsRequest, *, now: datetime | None = None) -> PathsResult:
    scope = scope_of(client, project_id, request, now)
    nodes: list[PathNode] = []
    edges: list[PathEdge] = []
    for step, source, is_node, target, value, dropped, people in fetch(client, _query(scope, request)):
        if is_node:
            nodes.append(PathNode(node_id(step, source), step, source, value, people, dropped))
        elif request.backward:
            edges.append(PathEdge(node_id(step + 1, target), node_id(step, source), value, people))
        else:
            edges.append(PathEdge(node_id(step, source), node_id(step + 1, target), value, people))
    nodes.sort(key=lambda n: (n.step, n.name == OTHER, -n.value, n.name))
    step_of = {n.id: n.step for n in nodes}
    edges.sort(key=lambda e: (min(step_of[e.source], step_of[e.target]), -e.value, e.source, e.target))
    return PathsResult("backward" if request.backward else "forward",
                       "sessions" if request.within == "session" else "persons",
                       sum(n.value for n in nodes if n.step == 0), scope.timezone, scope.span.start, scope.span.end,
                       request.date_range, nodes, edges)


def explain(client: Client, project_id: int, request: PathsRequest, *, now: datetime | None = None) -> Query:
    return _query(scope_of(client, project_id, request, now), request)


def node_id(step: int, name: str) -> str:
    return f"{step}:{name}"


def _name(request: PathsRequest, params: Params) -> str:
    """The step name of an event `e`, paths cleaned rule by rule."""
    path = "e.path"
    for rule in request.cleaning:
        path = (f"replaceRegexpAll({path}, {params.add(rule.pattern, 'String')},"
                f" {params.add(rule.replacement, 'String')})")
    if request.step_type == "events":
        return "toString(e.event)"
    return path if request.step_type == "pages" else f"if(e.type = 'page', {path}, toString(e.event))"


class PathRows(NamedTuple):
    """`rows`, one row per path, reading `STEP_NAMES`, which `names` defines: a query over them starts with
    `WITH {names} AS step_names`."""

    names: str
    rows: str


STEP_NAMES = "step_names"  # every step name the scan can meet, sorted: a name's index is its id
# A step is one Int64: ms after the scan's start, shifted left by ID_BITS, plus its name's id. Plain
# integer arrays are several times cheaper to collect, sort and compare than (time, name) tuples, and ids
# in name order keep ties of one millisecond in name order.
ID_BITS = 20
ID_MASK = (1 << ID_BITS) - 1
TOO_MANY_NAMES = "a path follows at most 1048575 distinct step names: add cleaning rules"


def path_rows(scope: AnalysisScope, request: PathsRequest, params: Params, names: bool = False) -> PathRows:
    """One row per path: person (its key), `p` (the ids of the path's names, `STEP_NAMES` indexes, from
    step 0: up to `steps + 1` of them, one more than shown, to tell a path that ends at the last step from
    one that goes on) and `at` (ms, the anchor's time); with `names`, also `name`, the person's id."""
    start, end = scope.span.start, scope.span.end
    window = timedelta(milliseconds=request.window_ms)
    # Sessions are read inside the range only; a window may run past its end (before its start, backward).
    scan_start = start - window if request.within == "window" and request.backward else start
    scan_end = end + window if request.within == "window" and not request.backward else end
    origin = int(scan_start.timestamp() * 1000)
    range_from = params.add(int(start.timestamp() * 1000) - origin, "Int64")
    range_to = params.add(int(end.timestamp() * 1000) - origin, "Int64")
    kinds = "e.type = 'page'" if request.step_type == "pages" else "e.type IN ('track', 'page', 'screen')"
    step_name = _name(request, params)
    scan = (f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scan_start, UTC_TIME)}"
            f" AND e.ts < {params.add(scan_end, UTC_TIME)}")
    # The names of every step the scan meets, whatever `where` says: a superset costs nothing, and one scan
    # of names without joins is cheaper than carrying strings through every person's arrays.
    dictionary = (f"(SELECT arraySort(all) FROM (SELECT groupUniqArray({step_name}) AS all FROM events AS e\n"
                  f"{scan} AND {kinds}) WHERE throwIf(length(all) > {ID_MASK}, '{TOO_MANY_NAMES}') = 0)")
    anchor = request.end if request.backward else request.start
    anchor_id = f"indexOf({STEP_NAMES}, {params.add(anchor, 'String')})" if anchor is not None else None

    def is_anchor(key: str) -> str:
        time = f"bitShiftRight({key}, {ID_BITS})"
        in_range = f"{time} >= {range_from} AND {time} < {range_to}"
        return f"bitAnd({key}, {ID_MASK}) = {anchor_id} AND {in_range}" if anchor_id else in_range

    excluded = f"NOT has({params.add(request.exclude, 'Array(String)')}, {step_name})" if request.exclude else "1"
    joins = persons.joins(True, request.where)
    name = persons.PERSON if names else "''"
    key = (f"bitShiftLeft(toUnixTimestamp64Milli(e.ts) - {params.add(origin, 'Int64')}, {ID_BITS})"
           f" + transform({step_name}, {STEP_NAMES}, arrayEnumerate({STEP_NAMES}), 0)")
    rows = (f"SELECT {persons.PERSON_KEY} AS person, {name} AS person_name, {key} AS key\n"
            f"FROM events AS e\n{joins.sql}\n"
            f"{scan} AND {all_of(kinds, compile_group(request.where, params), excluded)}")
    # Persons without an anchor are dropped before their steps are sorted: most, for a rare start.
    grouped = (f"SELECT person, any(person_name) AS person_name, arraySort(groupArray(key)) AS keys\n"
               f"FROM ({rows})\nGROUP BY person\nHAVING max({is_anchor('key')})")
    if request.within == "session":
        gap = params.add(request.gap_minutes * 60_000, "Int64")
        split = (f"arrayJoin(arraySplit((x, new) -> new, keys, arrayMap((x, previous) -> bitShiftRight(x, {ID_BITS})"
                 f" - bitShiftRight(previous, {ID_BITS}) > {gap}, keys, arrayShiftRight(keys, 1, keys[1]))))")
    else:
        split = "keys"
    sequences = f"SELECT person, person_name, {split} AS s FROM ({grouped})"
    if request.collapse_repeats:
        sequences = (f"SELECT person, person_name, arrayFilter((x, previous, i) -> i = 1 OR bitAnd(x, {ID_MASK})"
                     f" != bitAnd(previous, {ID_MASK}), s, arrayShiftRight(s, 1), arrayEnumerate(s)) AS s"
                     f" FROM ({sequences})")
    time, anchor_time = f"bitShiftRight(x, {ID_BITS})", f"bitShiftRight(o[a], {ID_BITS})"
    if request.backward:
        # Time runs back from the anchor: the first anchor in time is the last in the reversed sequence.
        ordered, find, within = "arrayReverse(s)", "arrayLastIndex", f"{anchor_time} - {time}"
    else:
        ordered, find, within = "s", "arrayFirstIndex", f"{time} - {anchor_time}"
    anchored = f"SELECT person, person_name, {ordered} AS o, {find}(x -> {is_anchor('x')}, o) AS a FROM ({sequences})"
    taken = f"arraySlice(o, a, {request.steps + 1})"
    if request.within == "window":
        taken = f"arrayFilter(x -> {within} <= {params.add(request.window_ms, 'Int64')}, {taken})"
    return PathRows(dictionary, (
        f"SELECT person, person_name AS name, arrayMap(x -> toUInt32(bitAnd(x, {ID_MASK})), {taken}) AS p,"
        f" bitShiftRight(o[a], {ID_BITS}) + {params.add(origin, 'Int64')} AS at\nFROM ({anchored}) WHERE a > 0"))


def _query(scope: AnalysisScope, request: PathsRequest) -> Query:
    params = Params(scope.project_id, scope.cohorts)
    steps = request.steps
    names, per_path = path_rows(scope, request, params)
    # One row per node a path passes, packed in one integer: its step, its name's id, the next shown
    # step's name id (0: none shown), and in the lowest bit whether the path ends there.
    node = (f"arrayJoin(arrayMap(k -> bitShiftLeft(toUInt64(k - 1), {2 * ID_BITS + 1})"
            f" + bitShiftLeft(toUInt64(p[k]), {ID_BITS + 1})"
            f" + bitShiftLeft(toUInt64(if(k < {steps} AND k < length(p), p[k + 1], 0)), 1) + (length(p) = k),"
            f" range(1, least(length(p), {steps}) + 1)))")
    # In window mode a path is a person, so counting paths counts persons; sessions need distinct persons.
    people = ("uniqExactState(person)", "uniqExactMerge(people)") if request.within == "session" else \
        ("count()", "sum(people)")
    grouped = (f"SELECT bitShiftRight(n, 1) AS node, count() AS value, countIf(bitTest(n, 0)) AS ended,"
               f" {people[0]} AS people\nFROM (SELECT person, {node} AS n FROM ({per_path}))\nGROUP BY node")
    fine = (f"SELECT bitShiftRight(node, {2 * ID_BITS}) AS k, bitAnd(bitShiftRight(node, {ID_BITS}), {ID_MASK}) AS id,"
            f" bitAnd(node, {ID_MASK}) AS next, value, ended, people FROM ({grouped})")
    limit = params.add(request.nodes_per_step, "UInt32")
    other = params.add(OTHER, "String")
    # Ranked over the aggregated rows with window functions (the events are read once): a node's rank at
    # its step (ties by name: ids are in name order), then the kept (step, id) pairs, which also decide
    # where each edge points.
    ranked = (
        f"SELECT *, groupUniqArrayIf((k, id), node_rank <= {limit}) OVER () AS kept FROM (\n"
        f"  SELECT *, dense_rank() OVER (PARTITION BY k ORDER BY node_value DESC, id) AS node_rank FROM (\n"
        f"    SELECT *, sum(value) OVER (PARTITION BY k, id) AS node_value FROM ({fine})))"
    )
    labelled = (f"SELECT k, if(node_rank <= {limit}, {STEP_NAMES}[id], {other}) AS source, next > 0 AS has_next,"
                f" if(next = 0, '', if(has(kept, (k + 1, next)), {STEP_NAMES}[next], {other})) AS target,"
                f" value, ended, people FROM ({ranked})")
    return params.query(
        f"WITH {names} AS {STEP_NAMES}\n"
        f"SELECT k, source, grouping(target) AS is_node, target, sum(value), sum(ended), {people[1]}\n"
        f"FROM ({labelled})\n"
        f"GROUP BY GROUPING SETS ((k, source), (k, source, has_next, target))\n"
        f"HAVING is_node OR has_next"
    )
