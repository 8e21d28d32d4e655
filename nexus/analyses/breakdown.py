"""Breakdowns: split a result by the values of a property or typed column, keeping the top N plus "other".

Values are ranked by a weight the analysis chooses (events for trends, entering persons for funnels),
ties by value; every value outside the top N is merged into one row labelled `OTHER`. A missing
property is the value '' (its own row). Ranking runs over the already-aggregated per-value rows with
window functions, so the events are read once.
"""

from __future__ import annotations

import msgspec

from nexus.analyses.properties import Property, Source
from nexus.analyses.sql import Params
from nexus.errors import InvalidRequest

OTHER = "$other"
MAX_LIMIT = 100


class Breakdown(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    source: Source = "event"
    limit: int = 10

    def __post_init__(self) -> None:
        Property(self.key, self.source)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"breakdown limit must be 1..{MAX_LIMIT}")

    # Above `property`: below it, the name `property` in this class body is that method.
    @property
    def needs_person(self) -> bool:
        return self.property.needs_person

    @property
    def property(self) -> Property:
        return Property(self.key, self.source)

    def expression(self, table: str = "e") -> str:
        return self.property.text(table)


def ranked(inner: str, breakdown: Breakdown | None, params: Params, within: str | None = None) -> str:
    """`inner` (rows with `bd` and `weight`) plus a `label` column: bd when in the top N, else OTHER;
    with `within` (a column of `inner`), values are ranked apart for each of its values."""
    if breakdown is None:
        return f"SELECT *, '' AS label FROM ({inner})"
    limit = params.add(breakdown.limit, "UInt32")
    other = params.add(OTHER, "String")
    apart = f"PARTITION BY {within} " if within else ""
    return (
        f"SELECT *, if(bd_weight > 0 AND bd_rank <= {limit}, bd, {other}) AS label FROM (\n"
        f"  SELECT *, dense_rank() OVER ({apart}ORDER BY bd_weight DESC, bd) AS bd_rank FROM (\n"
        f"    SELECT *, sum(weight) OVER (PARTITION BY {within + ', ' if within else ''}bd) AS bd_weight FROM ({inner})))"
    )


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
