"""Saved goals: what counts as a conversion in a project, and where its value is, checked when saved.

A goal is either an event (by name) with property filters, or a page path pattern matched against the
path of page views (events of type 'page'), optionally narrowed by filters too; it may name the numeric
event property holding a conversion's value (e.g. `revenue`) and the currency of that value.

Path patterns match the whole path, case-sensitively, every character literal except:
- `*` matches any run of characters within one segment (no '/'), the empty run included:
  `/blog/*` matches `/blog/` and `/blog/launch`, not `/blog` nor `/blog/a/b`; `/docs/*/setup` matches
  `/docs/python/setup`;
- `**` matches any run of characters across segments ('/' included), the empty run included:
  `/blog/**` matches `/blog/` and `/blog/a/b`, not `/blog`; `/shop/**/done` matches `/shop/x/y/done`.
A pattern starts with '/', has no query string or fragment (events' `path` holds neither) and no `***`.
Without a wildcard it is an equality; with one, an RE2 match (`condition`, `path_regex`).

`condition` is the one place a goal becomes SQL: the goals analysis, the overview's goal KPIs, and later
experiments and attribution all call it. Records follow the metadata pattern (nexus.meta.records): every
change writes a whole new version, read back with FINAL, so a write is visible to the next read.
Event, property and value-property names the project has not sent yet are allowed (a goal may be set up
before its events arrive) and listed in `warnings`.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Annotated

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import catalog
from nexus.analyses.filters import FilterGroup, all_of, compile_group
from nexus.analyses.properties import PROPERTY_NAME, Property
from nexus.analyses.sql import Params
from nexus.errors import InvalidRequest, NotFound
from nexus.json_input import decode_json
from nexus.meta import records

TABLE = "goals"
MAX_PATH = 1000
PAGE_TYPE = "page"
_ID = re.compile(r"^g_[A-Za-z0-9_-]{12}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class GoalDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What converts: `event` (with `where`), or `path` (a pattern over page views' paths, with `where`);
    `value_property` names the event property holding a conversion's value, `currency` its ISO 4217 code."""

    event: str | None = None
    path: str | None = None
    where: FilterGroup | None = None
    value_property: str | None = None
    currency: str | None = None

    @property
    def needs_person(self) -> bool:
        """Whether its filters read a person's traits (a query must join them)."""
        return self.where is not None and self.where.needs_person

    def summary(self) -> str:
        """How to name the goal when it has no name: its event or path pattern."""
        return self.event if self.event is not None else f"page {self.path}"


class GoalInput(GoalDefinition, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a client sends to create or replace a goal."""

    name: _Text
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class Goal(msgspec.Struct, frozen=True, kw_only=True):
    """A goal as the API and the dashboard show it; `warnings` name what the project has not sent yet."""

    goal_id: str
    name: str
    description: str
    definition: GoalDefinition
    created_by: str
    created_at: datetime
    updated_at: datetime
    warnings: list[str] = []


class _Record(msgspec.Struct, frozen=True):
    """The stored row: the definition as JSON text."""

    project_id: int
    goal_id: str
    name: str
    description: str
    definition: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def check(definition: GoalDefinition) -> None:
    """Refuse a definition that cannot run: InvalidRequest with the reason, and the field at fault in `field`
    (the callers name it where the definition sits: `path`, `goals[1].path`)."""
    if (definition.event is None) == (definition.path is None):
        raise InvalidRequest("a goal has either an event or a path pattern, not both nor neither",
                             field="event" if definition.event is None else "path")
    if definition.event is not None and not 1 <= len(definition.event) <= 200:
        raise InvalidRequest("an event name has 1 to 200 characters", field="event")
    if definition.path is not None:
        path_regex(definition.path)
    if definition.value_property is not None and not PROPERTY_NAME.fullmatch(definition.value_property):
        raise InvalidRequest(f"{definition.value_property!r} is not a property name (it must "
                             f"match {PROPERTY_NAME.pattern})", field="value_property")
    if definition.currency is not None:
        if definition.value_property is None:
            raise InvalidRequest("a goal without a value_property has no value to name a currency of",
                                 field="currency")
        if not _CURRENCY.fullmatch(definition.currency):
            raise InvalidRequest(f"{definition.currency!r} is not an ISO 4217 code (three capital "
                                 f"letters, e.g. USD)", field="currency")


def path_regex(pattern: str) -> str:
    """The RE2 expression a path pattern stands for (anchored at both ends); InvalidRequest naming `path`."""
    reason = None
    if not pattern.startswith("/"):
        reason = "a path pattern starts with '/'"
    elif len(pattern) > MAX_PATH:
        reason = f"a path pattern has at most {MAX_PATH} characters"
    elif "***" in pattern:
        reason = "'***' is ambiguous: use '*' within a segment or '**' across segments"
    elif "?" in pattern or "#" in pattern:
        reason = "a page's path has no query string or fragment: leave out '?…' and '#…'"
    elif any(ch.isspace() for ch in pattern):
        reason = "a path pattern has no spaces"
    if reason:
        raise InvalidRequest(f"{reason} ({pattern!r})", field="path")
    pieces = re.split(r"(\*\*|\*)", pattern)
    wildcards = {"**": ".*", "*": "[^/]*"}
    return "^" + "".join(wildcards.get(piece) or re.escape(piece) for piece in pieces) + "$"


def condition(goal: GoalDefinition, params: Params, table: str = "e") -> str:
    """The SQL condition an event of `events AS {table}` meets when it is a conversion of `goal`, its
    values bound in `params`. Filters reading a person's trait need the traits join
    (`persons.joins(..., goal.where)`: `goal.needs_person` says so)."""
    if goal.event is not None:
        what = f"{table}.event = {params.add(goal.event, 'String')}"
    else:
        assert goal.path is not None  # check() holds one of the two
        page = f"{table}.type = {params.add(PAGE_TYPE, 'String')}"
        if "*" in goal.path:
            what = f"{page} AND match({table}.path, {params.add(path_regex(goal.path), 'String')})"
        else:
            what = f"{page} AND {table}.path = {params.add(goal.path, 'String')}"
    return f"({all_of(what, compile_group(goal.where, params, table))})"


def value(goal: GoalDefinition, table: str = "e") -> str:
    """A conversion's value as Decimal128(9): the value property read as a number, 0 when the goal has
    none or the event's is missing or not a number (as trends' `sum`)."""
    if goal.value_property is None:
        return "toDecimal128(0, 9)"
    return f"ifNull({Property(goal.value_property).amount(table)}, 0)"


def create(client: Client, project_id: int, data: GoalInput, created_by: str) -> Goal:
    checked = _checked(client, project_id, data, None)
    now = records.now()
    record = _Record(project_id, "g_" + secrets.token_urlsafe(9), checked.name, checked.description,
                     _encode(checked), created_by, now, now)
    records.save(client, TABLE, record)
    return _with_warnings(client, project_id, _view(_get(client, project_id, record.goal_id)))


def list_all(client: Client, project_id: int) -> list[Goal]:
    """The project's goals by name (without warnings: working them out reads the events)."""
    found = [_view(r) for r in records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id})]
    return sorted(found, key=lambda g: (g.name, g.goal_id))


def get(client: Client, project_id: int, goal_id: str) -> Goal:
    return _with_warnings(client, project_id, _view(_get(client, project_id, goal_id)))


def replace(client: Client, project_id: int, goal_id: str, data: GoalInput) -> Goal:
    """A new name, description and definition; the id, author and creation time stay."""
    current = _get(client, project_id, goal_id)
    checked = _checked(client, project_id, data, goal_id)
    record = msgspec.structs.replace(current, name=checked.name, description=checked.description,
                                     definition=_encode(checked), updated_at=records.now())
    records.save(client, TABLE, record)
    return _with_warnings(client, project_id, _view(_get(client, project_id, goal_id)))


def delete(client: Client, project_id: int, goal_id: str) -> None:
    records.save(client, TABLE, _get(client, project_id, goal_id), deleted=True)


def resolve(client: Client, project_id: int, goal_ids: list[str], fields: list[str]) -> list[Goal]:
    """The project's goals of `goal_ids`, in their order, in one read; NotFound for the first one the project
    does not have, named by its entry of `fields` (where the request holds it) — the same answer for
    another project's goal as for none."""
    wanted = [g for g in goal_ids if _ID.match(g)]
    found = {r.goal_id: _view(r) for r in records.select(
        client, TABLE, _Record, "project_id = {p:UInt32} AND goal_id IN {ids:Array(String)}",
        {"p": project_id, "ids": wanted})} if wanted else {}
    for goal_id, field in zip(goal_ids, fields):
        if goal_id not in found:
            raise NotFound(f"{field}: no goal {goal_id!r} in this project")
    return [found[g] for g in goal_ids]


def _get(client: Client, project_id: int, goal_id: str) -> _Record:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND goal_id = {g:String}",
                           {"p": project_id, "g": goal_id}) if _ID.match(goal_id) else []
    if not found:
        # The same answer for another project's goal as for a missing one.
        raise NotFound(f"no goal {goal_id!r} in this project")
    return found[0]


def _view(record: _Record) -> Goal:
    return Goal(goal_id=record.goal_id, name=record.name, description=record.description,
                definition=msgspec.json.decode(record.definition, type=GoalDefinition), created_by=record.created_by,
                created_at=record.created_at, updated_at=record.updated_at)


def _encode(data: GoalInput) -> str:
    definition = GoalDefinition(event=data.event, path=data.path, where=data.where,
                                value_property=data.value_property, currency=data.currency)
    return msgspec.json.encode(definition).decode()


def _checked(client: Client, project_id: int, data: GoalInput, goal_id: str | None) -> GoalInput:
    """`data` with every bound checked (also when built in Python, where a Struct checks none) and its
    name free in the project."""
    data = decode_json(msgspec.json.encode(data), GoalInput)
    if not data.name.strip():
        raise InvalidRequest("name: a goal's name cannot be blank", field="name")
    try:
        check(data)
    except InvalidRequest as e:
        raise InvalidRequest(f"{e.field}: {e}", field=e.field) from None
    same = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND name = {n:String}",
                          {"p": project_id, "n": data.name})
    if any(g.goal_id != goal_id for g in same):
        raise InvalidRequest(f"name: a goal named {data.name!r} already exists in this project", field="name")
    return data


def _with_warnings(client: Client, project_id: int, goal: Goal) -> Goal:
    """`goal` with a warning for each name in it the project has not sent: its event (any event ever), and
    the event properties and person traits its filters and value read (as the pickers list them: event
    properties of the last `catalog.DAYS` days)."""
    definition = goal.definition
    warnings = []
    sent = {e.name for e in catalog.event_names(client, project_id)} if definition.event is not None else set()
    if definition.event is not None and definition.event not in sent:
        warnings.append(f"event: no {definition.event!r} event has been received in this project yet")
    known = {(p.source, p.key) for p in catalog.properties(client, project_id, definition.event)}
    leaves = definition.where.leaves() if definition.where else []
    for leaf in leaves:
        if leaf.source != "column" and (leaf.source, leaf.key) not in known:
            warnings.append(f"where: no {leaf.source} property {leaf.key!r} has been seen in this project's "
                            f"recent {'events' if leaf.source == 'event' else 'persons'}")
    if definition.value_property is not None and ("event", definition.value_property) not in known:
        events = f"{definition.event!r} events" if definition.event is not None else "events"
        warnings.append(f"value_property: no event property {definition.value_property!r} has been seen in this "
                        f"project's recent {events}")
    return msgspec.structs.replace(goal, warnings=warnings)
