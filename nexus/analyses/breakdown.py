"""Breakdowns: split a result by the values of a property or typed column, keeping the top N plus "other",
or by cohorts.

Values are ranked by a weight the analysis chooses (events for trends, entering persons for funnels),
ties by value; every value outside the top N is merged into one row labelled `OTHER`. A missing
property is the value '' (its own row). Ranking runs over the already-aggregated per-value rows with
window functions, so the events are read once.

By cohorts (`source="cohort"`, `cohorts` = ids): one group per cohort, labelled with its name, holding the
persons who are its members (`cohort_membership`) with all their events; a person in several cohorts
counts in each of them, a person in none counts in `OTHER`. A row's value is the list of the cohorts its
person is in; `ranked` turns it into one copy per cohort, and totals over everyone read only each row's
first copy (`everyone`), so they count each person once.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from nexus.analyses.cohort_store import COHORT_ID
from nexus.analyses.persons import PERSON_KEY
from nexus.analyses.properties import Property, Source
from nexus.analyses.sql import Params
from nexus.errors import InvalidRequest

OTHER = "$other"
MAX_LIMIT = 100
MAX_COHORTS = 10


class Breakdown(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str = ""  # the property or column; empty for cohorts
    source: Source | Literal["cohort"] = "event"
    limit: int = 10
    cohorts: list[str] = []  # with source="cohort": the cohorts' ids, a group each

    def __post_init__(self) -> None:
        if self.source == "cohort":
            _check_cohorts(self)
            return
        if self.cohorts:
            raise InvalidRequest("cohorts are given with source 'cohort' only", field="cohorts")
        Property(self.key, self.source)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"breakdown limit must be 1..{MAX_LIMIT}")

    # Above `property`: below it, the name `property` in this class body is that method.
    @property
    def needs_person(self) -> bool:
        return self.source == "person"

    @property
    def needs_person_key(self) -> bool:
        """A cohort breakdown asks who the event's person is (the identities join), no traits."""
        return self.source == "cohort"

    @property
    def property(self) -> Property:
        return Property(self.key, self.source)

    def expression(self, table: str = "e", params: Params | None = None) -> str:
        """The value of an event (`table`): text, or for cohorts the Array(String) of the names of those
        its person is in (each membership a subquery, bound through `params`)."""
        if self.source != "cohort":
            return self.property.text(table)
        if params is None or table != "e":
            raise InvalidRequest("this analysis does not break down by cohorts", field="breakdown.source")
        # Imported here: a cohort's conditions are written in the filter vocabulary, which imports this module.
        from nexus.analyses.cohort_membership import members
        cohorts = [params.cohorts.get(c) for c in self.cohorts]
        labels = [f"if({PERSON_KEY} IN ({members(c, params)}), {params.add(c.name, 'String')}, '')" for c in cohorts]
        return f"arrayFilter(x -> x != '', [{', '.join(labels)}])"


def _check_cohorts(breakdown: Breakdown) -> None:
    if breakdown.key:
        raise InvalidRequest("a cohort breakdown names its cohorts in `cohorts`, not `key`", field="key")
    if not 1 <= len(breakdown.cohorts) <= MAX_COHORTS:
        raise InvalidRequest(f"a cohort breakdown has 1 to {MAX_COHORTS} cohorts", field="cohorts")
    if len(set(breakdown.cohorts)) != len(breakdown.cohorts):
        raise InvalidRequest("a cohort is named twice", field="cohorts")
    for cohort_id in breakdown.cohorts:
        if not COHORT_ID.match(cohort_id):
            raise InvalidRequest(f"{cohort_id!r} is not a cohort id (c_ + 12 characters)", field="cohorts")


def ranked(inner: str, breakdown: Breakdown | None, params: Params, within: str | None = None) -> str:
    """`inner` (rows with `bd` and `weight`) plus a `label` column: bd when in the top N, else OTHER;
    with `within` (a column of `inner`), values are ranked apart for each of its values."""
    if breakdown is None:
        return f"SELECT *, '' AS label FROM ({inner})"
    if breakdown.source == "cohort":
        # One copy of each row per cohort of its person (`copy` 1, 2, …), OTHER for a person in none.
        cohorts = f"if(empty(bd), [{params.add(OTHER, 'String')}], bd)"
        return (f"SELECT * EXCEPT (bd, c), c.1 AS bd, c.2 AS copy, c.1 AS label FROM (\n"
                f"  SELECT *, arrayJoin(arrayZip({cohorts}, arrayEnumerate({cohorts}))) AS c FROM ({inner}))")
    limit = params.add(breakdown.limit, "UInt32")
    other = params.add(OTHER, "String")
    apart = f"PARTITION BY {within} " if within else ""
    return (
        f"SELECT *, if(bd_weight > 0 AND bd_rank <= {limit}, bd, {other}) AS label FROM (\n"
        f"  SELECT *, dense_rank() OVER ({apart}ORDER BY bd_weight DESC, bd) AS bd_rank FROM (\n"
        f"    SELECT *, sum(weight) OVER (PARTITION BY {within + ', ' if within else ''}bd) AS bd_weight FROM ({inner})))"
    )


def everyone(breakdown: Breakdown | None, *keys: str) -> tuple[str, str]:
    """The grouping set of everyone's totals over `ranked` rows, by `keys` (besides the label's sets), and
    the HAVING clause the query then needs: a cohort breakdown's rows are copies, of which everyone's totals
    read the first only (`copy` = 1), so a person in several cohorts counts once."""
    if breakdown is None or breakdown.source != "cohort":
        return f"({', '.join(keys)})", ""
    return f"({', '.join([*keys, 'copy'])})", "\nHAVING grouping(label) = 0 OR copy = 1"


def cells_by_label(rows: list[tuple]) -> dict[str | None, dict[tuple, int]]:
    """Rows of (label, is_total, *key, count) as {label: {key: count}}; everyone's rows under None. A
    one-column key stays a 1-tuple."""
    found: dict[str | None, dict[tuple, int]] = {}
    for label, is_total, *key, count in rows:
        found.setdefault(None if is_total else label, {})[tuple(key)] = count
    return found


def per_label(per_value: str, breakdown: Breakdown | None, merges: str, params: Params) -> str:
    """`per_value` — one row per person and value (`person`, `bd`) — as one row per person and label
    (`is_total` 0: the top N values, the rest merged into OTHER) and, with `is_total` 1, one per person
    over every value; `merges` aggregate the per-value columns. For analyses in which a person counts
    under each value they have, with only that value's events (stickiness, lifecycle)."""
    if breakdown is None:
        return f"SELECT person, '' AS label, 1 AS is_total, {merges} FROM ({per_value}) GROUP BY person"
    return (
        f"SELECT person, label, grouping(label) AS is_total, {merges}\n"
        f"FROM ({ranked(f'SELECT *, 1 AS weight FROM ({per_value})', breakdown, params)})\n"
        f"GROUP BY GROUPING SETS ((person, label), (person))"
    )
