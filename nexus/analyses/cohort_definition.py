"""What a dynamic cohort is: conditions on persons' behaviour and properties, in nested all/any groups,
checked when decoded (a malformed one is InvalidRequest naming the field). The SQL is in `cohort_membership`.

Conditions (`type`):
- `performed`: did `event` (any event when None), passing `where` (event properties and typed columns),
  `operator` (`at_least`, `at_most`, `exactly`) `count` times in the last `days` days: `[now − days, now)`;
- `performed_but_not`: did `event` and not `not_event` in the last `days` days;
- `first_seen`: the person's first event ever lies in `date_range` (the shared date vocabulary);
- `not_since`: did `event` before `now − days`, and not since;
- `funnel`: reached step `step` (0-based) of `funnel` but not the next (the last step: reached it);
- `person`: the person's traits pass `where` (person properties only);
- `prediction`: the person's `score` (`churn_probability`, `ltv` or `engagement`) in the project's latest
  scoring run (nexus.predict.scoring) compares with `value` by `operator` (`gt`, `gte`, `lt`, `lte`);
  a person that run did not score, or scored without that model (NULL), is not a member.
A `group` holds conditions of which all (`match="all"`) or any must hold, nested at most MAX_DEPTH deep.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup
from nexus.analyses.funnels import FunnelRequest
from nexus.errors import InvalidRequest

MAX_DEPTH = 4
MAX_CONDITIONS = 30
MAX_DAYS = 3650
MAX_COUNT = 1_000_000
_EVENT_LENGTH = 200


def _check_event(name: str | None, field: str) -> None:
    if name is not None and not 1 <= len(name) <= _EVENT_LENGTH:
        raise InvalidRequest(f"an event name has 1 to {_EVENT_LENGTH} characters", field=field)


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be 1..{MAX_DAYS}", field="days")


def _check_sources(where: FilterGroup | None, allowed: tuple[str, ...], field: str) -> None:
    for leaf in where.leaves() if where else []:
        if leaf.source not in allowed:
            raise InvalidRequest(f"this condition's filters read {' or '.join(allowed)} properties, not the "
                                 f"{leaf.source} filter {leaf.key!r}", field=field)


class Performed(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="performed", tag_field="type"):
    event: str | None = None
    where: FilterGroup | None = None
    operator: Literal["at_least", "at_most", "exactly"] = "at_least"
    count: int = 1
    days: int = 30

    def __post_init__(self) -> None:
        _check_event(self.event, "event")
        _check_days(self.days)
        if not 0 <= self.count <= MAX_COUNT:
            raise InvalidRequest(f"count must be 0..{MAX_COUNT}", field="count")
        _check_sources(self.where, ("event", "column"), "where")


class PerformedButNot(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="performed_but_not",
                      tag_field="type"):
    event: str
    not_event: str
    days: int = 30

    def __post_init__(self) -> None:
        _check_event(self.event, "event")
        _check_event(self.not_event, "not_event")
        _check_days(self.days)


class FirstSeen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="first_seen", tag_field="type"):
    date_range: DateRange


class NotSince(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="not_since", tag_field="type"):
    event: str | None = None
    days: int = 30

    def __post_init__(self) -> None:
        _check_event(self.event, "event")
        _check_days(self.days)


class InFunnel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="funnel", tag_field="type"):
    funnel: FunnelRequest
    step: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.step < len(self.funnel.steps):
            raise InvalidRequest(f"step must be 0..{len(self.funnel.steps) - 1}", field="step")
        if self.funnel.breakdown is not None:
            raise InvalidRequest("a cohort's funnel takes no breakdown", field="funnel.breakdown")


class PersonProperties(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="person", tag_field="type"):
    where: FilterGroup

    def __post_init__(self) -> None:
        _check_sources(self.where, ("person",), "where")


class Predicted(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="prediction", tag_field="type"):
    score: Literal["churn_probability", "ltv", "engagement"]
    value: float
    operator: Literal["gt", "gte", "lt", "lte"] = "gt"

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise InvalidRequest("value must be a finite number", field="value")


class Group(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="group", tag_field="type"):
    conditions: list[Condition]
    match: Literal["all", "any"] = "all"

    def __post_init__(self) -> None:
        if not self.conditions:
            raise InvalidRequest("a group needs at least one condition", field="conditions")
        if _depth(self) > MAX_DEPTH:
            raise InvalidRequest(f"condition groups nest at most {MAX_DEPTH} deep", field="conditions")


Condition = Performed | PerformedButNot | FirstSeen | NotSince | InFunnel | PersonProperties | Predicted | Group


class Definition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A dynamic cohort: persons for whom all (or any) of `conditions` hold."""

    conditions: list[Condition]
    match: Literal["all", "any"] = "all"

    def __post_init__(self) -> None:
        Group(self.conditions, self.match)
        if len(leaves(self)) > MAX_CONDITIONS:
            raise InvalidRequest(f"a cohort has at most {MAX_CONDITIONS} conditions", field="conditions")

    @property
    def group(self) -> Group:
        return Group(self.conditions, self.match)


def leaves(node: Definition | Group) -> list[Condition]:
    return [leaf for c in node.conditions for leaf in (leaves(c) if isinstance(c, Group) else [c])]


def _depth(group: Group) -> int:
    return 1 + max((_depth(c) for c in group.conditions if isinstance(c, Group)), default=0)


def decode(text: str | bytes) -> Definition:
    return msgspec.json.decode(text, type=Definition)
