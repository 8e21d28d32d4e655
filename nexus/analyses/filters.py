"""The filter vocabulary shared by every analysis: conditions on a property, combined with all/any.

Semantics, the same everywhere: a missing property equals nothing (so `neq`, `not_contains`,
`not_regex`, `not_in` and `is_not_set` are true for it); a numeric value (`gt`, `lt`, or `eq`/`in` given
numbers) compares the property read as a number, and a property that is not a number matches no numeric
comparison; `contains` is case-insensitive; `regex` is RE2 (ClickHouse `match`), its pattern checked by
RE2 when the request is decoded. Booleans compare as the text 'true'/'false', the way JSON booleans read
as strings.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec
import re2

from nexus.analyses.cohort_store import COHORT_ID
from nexus.analyses.persons import PERSON_KEY
from nexus.analyses.properties import Property, Source
from nexus.analyses.sql import Params
from nexus.errors import InvalidRequest

Operator = Literal["eq", "neq", "contains", "not_contains", "regex", "not_regex", "gt", "gte", "lt", "lte",
                   "is_set", "is_not_set", "in", "not_in"]
Scalar = Union[str, bool, int, float]

_NEGATIONS = {"neq": "eq", "not_contains": "contains", "not_regex": "regex", "not_in": "in", "is_not_set": "is_set"}
_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_DEPTH = 4
# Where a leaf's key lives: a property or typed column (`properties.Source`), or "cohort": the key is a
# cohort's id and `in`/`not_in` ask whether the event's person is one of its members.
FilterSource = Union[Source, Literal["cohort"]]


class Filter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One condition: `key` (a property, a typed column when source='column', a cohort's id when
    source='cohort') `op` `value`."""

    key: str
    op: Operator = "eq"
    value: Scalar | list[Scalar] | None = None
    source: FilterSource = "event"

    def __post_init__(self) -> None:
        if self.source == "cohort":
            _check_cohort(self)
            return
        Property(self.key, self.source)  # validates the name
        if self.op in ("is_set", "is_not_set"):
            if self.value is not None:
                raise InvalidRequest(f"filter {self.key!r} {self.op} takes no value")
            return
        if self.op in ("regex", "not_regex"):
            _check_pattern(self)
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise InvalidRequest(f"filter {self.key!r} {self.op} needs a non-empty list of values")
            if len({_kind(v) for v in self.value}) > 1:
                raise InvalidRequest(f"filter {self.key!r} {self.op}: the values must be all text or all numbers")
        elif self.value is None or isinstance(self.value, list):
            raise InvalidRequest(f"filter {self.key!r} {self.op} needs a single value")
        elif self.op in _COMPARISONS and _kind(self.value) != "number":
            raise InvalidRequest(f"filter {self.key!r} {self.op} needs a number")
        # A number no float holds (10**400) is refused here, where the error can name the filter.
        for value in self.value if isinstance(self.value, list) else [self.value]:
            if _kind(value) == "number":
                _number(value)

    # Above `property`: below it, the name `property` in this class body is that method.
    @property
    def needs_person(self) -> bool:
        return self.source == "person"

    @property
    def property(self) -> Property:
        return Property(self.key, self.source)


class FilterGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Filters and nested groups, all of which (`match='all'`) or any of which (`'any'`) must hold."""

    filters: list[Filter] = []
    groups: list[FilterGroup] = []
    match: Literal["all", "any"] = "all"

    def __post_init__(self) -> None:
        if _depth(self) > MAX_DEPTH:
            raise InvalidRequest(f"filter groups nest at most {MAX_DEPTH} deep")

    def leaves(self) -> list[Filter]:
        return [*self.filters, *(leaf for group in self.groups for leaf in group.leaves())]

    @property
    def needs_person(self) -> bool:
        return any(f.needs_person for f in self.leaves())

    @property
    def needs_person_key(self) -> bool:
        """Whether a leaf asks about the event's person (a cohort): the identities join must be there."""
        return any(f.source == "cohort" for f in self.leaves())


def compile_group(group: FilterGroup | None, params: Params, table: str = "e") -> str:
    """A boolean SQL expression for the group ('1' when empty); values become bound parameters."""
    if group is None:
        return "1"
    parts = [compile_filter(f, params, table) for f in group.filters]
    parts += [compile_group(g, params, table) for g in group.groups]
    if not parts:
        return "1"
    joiner = " AND " if group.match == "all" else " OR "
    return "(" + joiner.join(parts) + ")"


def all_of(*conditions: str) -> str:
    """Conditions joined by AND, leaving out the always-true '1' of empty groups: ClickHouse does not fold
    it away, and `event = a AND 1 OR event = b AND 1` is no longer the cheap `event IN (a, b)` scan."""
    kept = [c for c in conditions if c != "1"]
    return " AND ".join(kept) if kept else "1"


def compile_filter(item: Filter, params: Params, table: str = "e") -> str:
    if item.source == "cohort":
        return _in_cohort(item, params, table)
    prop = item.property
    if item.op in _NEGATIONS:
        positive = compile_filter(msgspec.structs.replace(item, op=_NEGATIONS[item.op]), params, table)
        return f"NOT {positive}"
    if item.op == "is_set":
        return f"({prop.is_set(table)})"
    if item.op in _COMPARISONS:
        return f"ifNull({prop.number(table)} {_COMPARISONS[item.op]} {params.add(_number(item.value), 'Float64')}, 0)"
    if item.op == "contains":
        return f"(positionCaseInsensitiveUTF8({prop.text(table)}, {params.add(str(item.value), 'String')}) > 0)"
    if item.op == "regex":
        return f"match({prop.text(table)}, {params.add(str(item.value), 'String')})"
    values = item.value if item.op == "in" else [item.value]
    if _kind(values[0]) == "number":
        bound = params.add([_number(v) for v in values], "Array(Float64)")
        return f"ifNull(has({bound}, {prop.number(table)}), 0)"
    bound = params.add([_text(v) for v in values], "Array(String)")
    return f"has({bound}, {prop.text(table)})"


def _in_cohort(item: Filter, params: Params, table: str) -> str:
    """The event's person (`PERSON_KEY`: the identities join is there, `persons.joins`) among the members.
    The membership is one subquery the engine runs once, into a set: one extra scan, whatever the rows."""
    if table != "e":
        raise InvalidRequest("a cohort filter applies to events only", field="source")
    # Imported here: a cohort's conditions are written in this module's vocabulary, so that module imports this one.
    from nexus.analyses.cohort_membership import members
    condition = f"{PERSON_KEY} IN ({members(params.cohorts.get(item.key), params)})"
    return condition if item.op == "in" else f"NOT ({condition})"


def _check_cohort(leaf: Filter) -> None:
    if leaf.op not in ("in", "not_in"):
        raise InvalidRequest(f"a cohort filter's op is 'in' or 'not_in', not {leaf.op!r}", field="op")
    if leaf.value is not None:
        raise InvalidRequest("a cohort filter takes no value: its key is the cohort's id", field="value")
    if not COHORT_ID.match(leaf.key):
        raise InvalidRequest(f"{leaf.key!r} is not a cohort id (c_ + 12 characters)", field="key")


def _kind(value: Scalar) -> str:
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else "text"


def _text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _check_pattern(leaf: Filter) -> None:
    if not isinstance(leaf.value, str):
        raise InvalidRequest(f"filter {leaf.key!r} {leaf.op} needs a pattern (text)")
    try:
        re2.compile(leaf.value, _RE2_OPTIONS)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise InvalidRequest(f"filter {leaf.key!r} {leaf.op}: not a valid RE2 pattern ({reason})") from None


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the refusal goes to the caller, not to the server's stderr


def _depth(group: FilterGroup) -> int:
    return 1 + max((_depth(g) for g in group.groups), default=0)


def _number(value: object) -> float:
    """A filter's number as a finite float; JSON integers of any size decode, floats do not hold them all."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, ValueError, TypeError):
        raise InvalidRequest(f"{value!r} is not a number a filter can compare with") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidRequest(f"{value!r} is not a finite number")
    return number
