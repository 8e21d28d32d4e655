"""Who is in a cohort, as ClickHouse SQL: a subquery of person keys (`persons.PERSON_KEY`), never a list
pulled into Python. Filters (`filters`: `PERSON_KEY IN (…)`), breakdowns (`breakdown`) and `cohort_size`
all take their membership from `members`.

Dynamic cohorts read the project's events once: one row per distinct id with a counter per condition,
regrouped by person through identities (`persons.by_person`: ids linked to one person count together,
merges included), then the conditions' boolean tree. The universe is every person with an event; when no
person without a matching event could qualify (no `at_most`, `exactly 0`, first-seen, person or funnel
condition), only the events some condition counts are read. `prediction` conditions read the persons'
latest scores in `person_predictions`. Windows are relative to the analysis' clock:
`[now − days, now)`. `funnel` conditions add a funnel's scan (`funnels.person_rows`); `person` ones join
persons' traits per person. Static cohorts read their member ids, resolved through identities when used.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from nexus.analyses import cohort_definition, persons
from nexus.analyses.cohort_definition import (
    Condition,
    Definition,
    FirstSeen,
    Group,
    InFunnel,
    NotSince,
    Performed,
    PerformedButNot,
    PersonProperties,
    Predicted,
)
from nexus.analyses.cohort_store import StoredCohort
from nexus.analyses.dates import resolve
from nexus.analyses.filters import all_of, compile_group
from nexus.analyses.funnels import person_rows
from nexus.analyses.predictions import LATEST_RUN
from nexus.analyses.scope import AnalysisScope
from nexus.analyses.sql import PROJECT, UTC_TIME, Params

_COMPARE = {"at_least": ">=", "at_most": "<=", "exactly": "="}
_SCORE_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@lru_cache(maxsize=256)
def definition(text: str) -> Definition:
    """A stored definition, decoded once per text (it was checked when saved)."""
    return cohort_definition.decode(text)


def members(cohort: StoredCohort, params: Params, at: datetime | None = None) -> str:
    """`SELECT person FROM …`: one row per member's key, with relative windows ending at `at` (default:
    the analysis' clock, `params.cohorts.now`)."""
    if cohort.kind == "static":
        return _static(cohort, params)
    return _dynamic(definition(cohort.definition), params, at or params.cohorts.now)


def _static(cohort: StoredCohort, params: Params) -> str:
    per_id = (
        f"SELECT cityHash64(member_id) AS id_key FROM cohort_members\n"
        f"WHERE project_id = {PROJECT} AND cohort_id = {params.add(cohort.cohort_id, 'String')}"
        f" AND generation = {params.add(cohort.members_generation, 'UInt64')}"
    )
    return f"SELECT person FROM ({persons.by_person(per_id, 'count() AS ids')})"


class _Compiler:
    """Builds one dynamic cohort's SQL: the per-id counters (`columns`), the events they read (`reads`) and
    the boolean tree over the per-person sums."""

    def __init__(self, params: Params, now: datetime):
        self.params = params
        self.columns: list[str] = []  # per-id aggregates, named c0, c1, …
        self.reads: list[str] = []  # row conditions of the counters ('1': every event)
        self.traits: list[str] = []  # boolean expressions over persons' traits
        self.first_seen = False  # whether a condition reads the person's first event
        self.now, self.tz = now, params.cohorts.timezone
        self.now_sql = params.add(self.now, UTC_TIME)

    def counter(self, condition: str) -> str:
        name = f"c{len(self.columns)}"
        self.columns.append(f"countIf({condition}) AS {name}")
        self.reads.append(condition)
        return name

    def since(self, days: int) -> str:
        return self.params.add(self.now - timedelta(days=days), UTC_TIME)

    def event(self, name: str | None) -> str:
        return "1" if name is None else f"e.event = {self.params.add(name, 'String')}"

    def condition(self, item: Condition) -> str:
        p = self.params
        if isinstance(item, Group):
            parts = [self.condition(c) for c in item.conditions]
            return "(" + (" AND " if item.match == "all" else " OR ").join(parts) + ")"
        if isinstance(item, Performed):
            matched = all_of(self.event(item.event), compile_group(item.where, p))
            name = self.counter(f"{matched} AND e.ts >= {self.since(item.days)} AND e.ts < {self.now_sql}")
            return f"{name} {_COMPARE[item.operator]} {p.add(item.count, 'UInt64')}"
        if isinstance(item, PerformedButNot):
            window = f"e.ts >= {self.since(item.days)} AND e.ts < {self.now_sql}"
            did = self.counter(f"{self.event(item.event)} AND {window}")
            not_did = self.counter(f"{self.event(item.not_event)} AND {window}")
            return f"({did} > 0 AND {not_did} = 0)"
        if isinstance(item, NotSince):
            cut = self.since(item.days)
            before = self.counter(f"{self.event(item.event)} AND e.ts < {cut}")
            after = self.counter(f"{self.event(item.event)} AND e.ts >= {cut} AND e.ts < {self.now_sql}")
            return f"({before} > 0 AND {after} = 0)"
        if isinstance(item, FirstSeen):
            span = resolve(item.date_range, self.tz, self.now)
            self.reads.append("1")  # a first event is the earliest of all of them
            self.first_seen = True
            return (f"(first_seen >= {p.add(span.start, UTC_TIME)} AND first_seen < {p.add(span.end, UTC_TIME)})")
        if isinstance(item, PersonProperties):
            self.reads.append("1")  # a person with no matching event may still qualify
            self.traits.append(compile_group(item.where, p))
            return f"bd.{len(self.traits)}"  # the tuple of trait conditions `persons.with_trait` joins
        if isinstance(item, Predicted):
            self.reads.append("1")  # scored persons are tested among everyone's rows
            # `score` is one of the Literal's column names, checked when the definition was decoded.
            return (f"person IN (SELECT person_key FROM person_predictions WHERE project_id = {PROJECT} "
                    f"AND run_id = {LATEST_RUN} AND {item.score} {_SCORE_COMPARE[item.operator]} "
                    f"{p.add(item.value, 'Float64')})")
        assert isinstance(item, InFunnel)
        self.reads.append("1")  # the funnel's persons are tested among everyone's rows
        scope = AnalysisScope(p.values["project_id"], self.tz, resolve(item.funnel.date_range, self.tz, self.now),
                              self.now, p.cohorts)
        depth = p.add(item.step + 1, "UInt8")
        reached = "depth >= " if item.step == len(item.funnel.steps) - 1 else "depth = "
        return f"person IN (SELECT person FROM ({person_rows(scope, item.funnel, p)}) WHERE {reached}{depth})"


def _dynamic(cohort: Definition, params: Params, now: datetime) -> str:
    compiler = _Compiler(params, now)
    tree = compiler.condition(cohort.group)
    reads = "1" if _qualifies_without_events(cohort.group) or "1" in compiler.reads else (
        "(" + " OR ".join(f"({r})" for r in compiler.reads) + ")")
    first = compiler.first_seen
    columns = ["e.id_key AS id_key", *compiler.columns, *(["min(e.ts) AS first_ts"] if first else [])]
    per_id = (
        f"SELECT {', '.join(columns)}\n"
        f"FROM events AS e\nWHERE e.project_id = {PROJECT} AND {reads}\nGROUP BY id_key"
    )
    sums = ", ".join([*(f"sum(c{i}) AS c{i}" for i in range(len(compiler.columns))),
                      *(["min(first_ts) AS first_seen"] if first else []),
                      "count() AS ids"])  # an aggregate even for a cohort of traits only
    per_person = persons.by_person(per_id, sums)
    if compiler.traits:
        per_person = persons.with_trait(per_person, f"tuple({', '.join(compiler.traits)})")
    return f"SELECT person FROM ({per_person}) WHERE {tree}"


def _qualifies_without_events(item: Condition) -> bool:
    """Whether a person none of whose events any counter reads could pass `item` (then every event is read)."""
    if isinstance(item, Group):
        found = [_qualifies_without_events(c) for c in item.conditions]
        return all(found) if item.match == "all" else any(found)
    if isinstance(item, Performed):
        return {"at_least": 0 >= item.count, "at_most": True, "exactly": item.count == 0}[item.operator]
    return isinstance(item, PersonProperties)


def member_page(cohort: StoredCohort, params: Params, limit: int, offset: int) -> str:
    """One page of the members with events, by person id (or distinct id, for a person never identified),
    ordered by it: `SELECT name`; `limit` + 1 rows, so the caller sees whether another page follows."""
    return (
        f"SELECT {persons.PERSON} AS name\nFROM events AS e\n{persons.IDENTITIES_JOIN}\n"
        f"WHERE e.project_id = {PROJECT} AND {persons.PERSON_KEY} IN ({members(cohort, params)})\n"
        f"GROUP BY name ORDER BY name\n"
        f"LIMIT {params.add(limit + 1, 'UInt32')} OFFSET {params.add(offset, 'UInt64')}"
    )
