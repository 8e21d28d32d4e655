"""Saved cohorts: a project's named sets of persons — dynamic (conditions, `analyses.cohort_definition`,
recomputed whenever used) or static (a list of ids uploaded as CSV, or the persons of an analysis result,
written by ClickHouse with INSERT … SELECT). Checked when saved; event names the project has never sent
are allowed (a cohort may be defined before its events arrive) but flagged in `warnings`.

Records follow the metadata pattern (nexus.meta.records): every change writes a whole new version, read
back with FINAL, so a write is visible to the next read. A new member list is a new generation in
`cohort_members`; the record names the current one, and older generations are deleted after it is saved.
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import (
    catalog,
    cohort_definition,
    cohort_membership,
    funnel_persons,
    registry,
    retention,
    retention_persons,
)
from nexus.analyses.breakdown import ranked
from nexus.analyses.cohort_definition import (
    Definition,
    FirstSeen,
    Group,
    InFunnel,
    NotSince,
    Performed,
    PerformedButNot,
    PersonProperties,
)
from nexus.analyses.cohort_store import (
    COHORT_ID,
    TABLE,
    Cohorts,
    StoredCohort,
    referenced,
)
from nexus.analyses.dates import resolve
from nexus.analyses.filters import FilterGroup
from nexus.analyses.funnels import person_rows
from nexus.analyses.scope import scope_of
from nexus.analyses.sql import Params, fetch
from nexus.errors import InvalidRequest, NotFound, reason_and_field
from nexus.meta import projects, records

MEMBERS = "cohort_members"
MAX_MEMBERS_UPLOAD = 1_000_000
MAX_ID_LENGTH = 200
# Analyses whose persons a static cohort can be made of, and the field of their rows that names a person.
FROM_ANALYSES = ("funnel_persons", "retention_persons")
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CohortInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A dynamic cohort to create or replace: its name and conditions."""

    name: _Text
    definition: Definition
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class FromAnalysis(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A static cohort of the persons an analysis lists (`kind` in FROM_ANALYSES; its limit and offset are
    ignored: every person it selects is a member)."""

    name: _Text
    kind: str
    request: dict[str, Any]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class Cohort(msgspec.Struct, frozen=True):
    """A cohort as the API and the dashboard show it."""

    cohort_id: str
    name: str
    description: str
    kind: Literal["dynamic", "static"]
    definition: Definition | None  # None for a static cohort
    source: str  # static: "csv" or the analysis' kind; dynamic: ""
    created_by: str
    created_at: datetime
    updated_at: datetime
    warnings: list[str] = []  # names the project has never sent (on create, replace and get)


class _Record(msgspec.Struct, frozen=True):
    project_id: int
    cohort_id: str
    name: str
    description: str
    kind: str
    definition: str
    source: str
    members_generation: int
    created_by: str
    created_at: datetime
    updated_at: datetime


def create(client: Client, project_id: int, data: CohortInput, created_by: str) -> Cohort:
    _check_name(client, project_id, data.name, None)
    _check_dates(client, project_id, data.definition)
    now = records.now()
    record = _Record(project_id, _new_id(), data.name, data.description, "dynamic", _encode(data.definition), "", 0,
                     created_by, now, now)
    records.save(client, TABLE, record)
    return get(client, project_id, record.cohort_id)


def replace(client: Client, project_id: int, cohort_id: str, data: CohortInput) -> Cohort:
    """A dynamic cohort's new name, description and conditions (a static one cannot become dynamic)."""
    current = _get(client, project_id, cohort_id)
    if current.kind != "dynamic":
        raise InvalidRequest("a static cohort's members are replaced by uploading a new list", field="definition")
    _check_name(client, project_id, data.name, cohort_id)
    _check_dates(client, project_id, data.definition)
    records.save(client, TABLE, msgspec.structs.replace(
        current, name=data.name, description=data.description, definition=_encode(data.definition),
        updated_at=records.now()))
    return get(client, project_id, cohort_id)


def create_static(client: Client, project_id: int, name: str, ids_csv: bytes, created_by: str,
                  description: str = "") -> Cohort:
    """A static cohort of the ids in a CSV file: the first column of each row (a header `id`,
    `distinct_id` or `person_id` is skipped), each a person id or a distinct id."""
    _check_text(name, "name")
    if len(description) > 2000:
        raise InvalidRequest("description: at most 2000 characters", field="description")
    _check_name(client, project_id, name, None)
    ids = _csv_ids(ids_csv)
    now = records.now()
    record = _Record(project_id, _new_id(), name, description, "static", "{}", "csv", records.next_version(),
                     created_by, now, now)
    client.insert(MEMBERS, [[project_id, record.cohort_id, record.members_generation, i] for i in ids],
                  column_names=["project_id", "cohort_id", "generation", "member_id"])
    records.save(client, TABLE, record)
    return get(client, project_id, record.cohort_id)


def upload_members(client: Client, project_id: int, cohort_id: str, ids_csv: bytes) -> Cohort:
    """Replace a static cohort's members with the ids of a CSV file (as `create_static` reads it)."""
    current = _get(client, project_id, cohort_id)
    if current.kind != "static":
        raise InvalidRequest("only a static cohort has a member list; a dynamic one is defined by its conditions")
    ids = _csv_ids(ids_csv)
    generation = records.next_version()
    client.insert(MEMBERS, [[project_id, cohort_id, generation, i] for i in ids],
                  column_names=["project_id", "cohort_id", "generation", "member_id"])
    records.save(client, TABLE, msgspec.structs.replace(current, members_generation=generation, source="csv",
                                                        updated_at=records.now()))
    _drop_old_generations(client, project_id, cohort_id, generation)
    return get(client, project_id, cohort_id)


def create_from_analysis(client: Client, project_id: int, data: FromAnalysis, created_by: str) -> Cohort:
    """A static cohort of the persons an analysis selects, written by ClickHouse: INSERT … SELECT from the
    analysis' own person rows (never through Python)."""
    if data.kind not in FROM_ANALYSES:
        raise InvalidRequest(f"a static cohort is made from one of {', '.join(FROM_ANALYSES)}", field="kind")
    _check_name(client, project_id, data.name, None)
    try:
        request = registry.decode(data.kind, data.request)
    except InvalidRequest as e:
        raise InvalidRequest(str(e), field=f"request.{e.field}" if e.field else "request") from None
    now = records.now()
    record = _Record(project_id, _new_id(), data.name, data.description, "static", "{}",
                     msgspec.json.encode({"kind": data.kind, "request": data.request}).decode(),
                     records.next_version(), created_by, now, now)
    sql, params = _persons_of(client, project_id, data.kind, request)
    client.command(
        f"INSERT INTO {MEMBERS} (project_id, cohort_id, generation, member_id)\n"
        f"SELECT {{project_id:UInt32}}, {{cohort:String}}, {{generation:UInt64}}, name FROM ({sql})",
        parameters={**params, "cohort": record.cohort_id, "generation": record.members_generation})
    records.save(client, TABLE, record)
    return get(client, project_id, record.cohort_id)


def list_all(client: Client, project_id: int) -> list[Cohort]:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id})
    return sorted((_view(r) for r in found), key=lambda c: (c.name, c.cohort_id))


def get(client: Client, project_id: int, cohort_id: str) -> Cohort:
    record = _get(client, project_id, cohort_id)
    return msgspec.structs.replace(_view(record), warnings=_warnings(client, project_id, record))


def delete(client: Client, project_id: int, cohort_id: str) -> None:
    record = _get(client, project_id, cohort_id)
    records.save(client, TABLE, record, deleted=True)
    _drop_old_generations(client, project_id, cohort_id, None)


def stored(client: Client, project_id: int, cohort_id: str) -> StoredCohort:
    record = _get(client, project_id, cohort_id)
    return StoredCohort(record.cohort_id, record.name, record.kind, record.definition, record.members_generation, 0)


def _get(client: Client, project_id: int, cohort_id: str) -> _Record:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND cohort_id = {c:String}",
                           {"p": project_id, "c": cohort_id}) if COHORT_ID.match(cohort_id) else []
    if not found:
        # The same answer for another project's cohort as for a missing one.
        raise NotFound(f"no cohort {cohort_id!r} in this project")
    return found[0]


def _view(record: _Record) -> Cohort:
    definition = cohort_definition.decode(record.definition) if record.kind == "dynamic" else None
    source = "" if record.kind == "dynamic" else ("csv" if record.source == "csv" else
                                                  msgspec.json.decode(record.source)["kind"])
    kind: Literal["dynamic", "static"] = "dynamic" if record.kind == "dynamic" else "static"
    return Cohort(record.cohort_id, record.name, record.description, kind, definition, source, record.created_by,
                  record.created_at, record.updated_at)


def _encode(definition: Definition) -> str:
    if referenced(definition):
        raise InvalidRequest("a cohort's conditions cannot name another cohort", field="definition")
    return msgspec.json.encode(definition).decode()


def _check_dates(client: Client, project_id: int, definition: Definition) -> None:
    """Refuse date ranges that cannot resolve (decoding checks their shape only), naming the condition's field."""
    zone = projects.get(client, project_id).timezone
    now = records.now()

    def walk(node: Definition | Group, path: str) -> None:
        for i, item in enumerate(node.conditions):
            at = f"{path}.conditions[{i}]"
            try:
                if isinstance(item, Group):
                    walk(item, at)
                elif isinstance(item, FirstSeen):
                    resolve(item.date_range, zone, now)
                elif isinstance(item, InFunnel):
                    scope_of(client, project_id, msgspec.structs.replace(item.funnel, timezone=zone), now)
                    at += ".funnel"
            except InvalidRequest as e:
                field = f"{at}.{e.field}" if e.field else at
                raise InvalidRequest(str(e), field=field) from None

    walk(definition, "definition")


def _new_id() -> str:
    return "c_" + secrets.token_urlsafe(9)


def _check_text(value: str, field: str) -> None:
    if not 1 <= len(value) <= 200 or not value.strip():
        raise InvalidRequest(f"{field}: 1 to 200 characters, not blank", field=field)


def _check_name(client: Client, project_id: int, name: str, cohort_id: str | None) -> None:
    if not name.strip():
        raise InvalidRequest("name: a cohort's name cannot be blank", field="name")
    same = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND name = {n:String}",
                          {"p": project_id, "n": name})
    if any(c.cohort_id != cohort_id for c in same):
        raise InvalidRequest(f"name: a cohort named {name!r} already exists in this project", field="name")


def _csv_ids(body: bytes) -> list[str]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the CSV file is not UTF-8 text", field="file") from None
    ids: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        value = row[0].strip() if row else ""
        if not value or (number == 1 and value.lower() in ("id", "distinct_id", "person_id")):
            continue
        if len(value) > MAX_ID_LENGTH:
            raise InvalidRequest(f"line {number}: an id has at most {MAX_ID_LENGTH} characters", field="file")
        ids.append(value)
    if not ids:
        raise InvalidRequest("the CSV file holds no ids (one per line, in the first column)", field="file")
    if len(ids) > MAX_MEMBERS_UPLOAD:
        raise InvalidRequest(f"at most {MAX_MEMBERS_UPLOAD} ids per upload", field="file")
    return sorted(set(ids))


def _drop_old_generations(client: Client, project_id: int, cohort_id: str, keep: int | None) -> None:
    client.command("DELETE FROM cohort_members WHERE project_id = {p:UInt32} AND cohort_id = {c:String}"
                   " AND generation != {g:UInt64}", parameters={"p": project_id, "c": cohort_id, "g": keep or 0})


def _persons_of(client: Client, project_id: int, kind: str, request: msgspec.Struct) -> tuple[str, dict[str, Any]]:
    """The SQL of every person (`name`: the person id, or the distinct id of one never identified) the
    analysis selects, without its page limit."""
    if kind == "funnel_persons":
        assert isinstance(request, funnel_persons.FunnelPersonsRequest)
        scope = scope_of(client, project_id, request.funnel)
        params = Params(project_id, scope.cohorts)
        rows = person_rows(scope, request.funnel, params, names=True)
        step = params.add(request.step, "UInt8")
        condition = f"depth = {step}" if request.status == "dropped" else f"depth > {step}"
        if request.breakdown_value is not None:
            rows = ranked(f"SELECT *, 1 AS weight FROM ({rows})", request.funnel.breakdown, params)
            condition += f" AND label = {params.add(request.breakdown_value, 'String')}"
        return params.query(f"SELECT DISTINCT name FROM ({rows}) WHERE {condition}")
    # retention_persons: a retention cell's persons (k = -1: the whole cohort), as retention_persons selects them.
    assert isinstance(request, retention_persons.RetentionPersonsRequest)
    scope = scope_of(client, project_id, request.retention)
    params = Params(project_id, scope.cohorts)
    rows = retention.person_rows(scope, request.retention, params, names=True)
    condition = (f"cohort = {params.add(request.cohort, 'Date')}"
                 f" AND k = {params.add(-1 if request.k is None else request.k, 'Int32')}")
    if request.breakdown_value is not None:
        rows = ranked(f"SELECT *, toUInt64(k = -1) AS weight FROM ({rows})", request.retention.breakdown, params)
        condition += f" AND label = {params.add(request.breakdown_value, 'String')}"
    return params.query(f"SELECT DISTINCT name FROM ({rows}) WHERE {condition}")


def _warnings(client: Client, project_id: int, record: _Record) -> list[str]:
    """Event names the definition uses that the project has never sent, and event and person property names
    the catalogue has not seen (`analyses.catalog`: recent events' properties, persons' traits)."""
    if record.kind != "dynamic":
        return []
    names: set[str] = set()
    groups: list[FilterGroup] = []
    for leaf in cohort_definition.leaves(cohort_definition.decode(record.definition)):
        if isinstance(leaf, (Performed, NotSince)) and leaf.event is not None:
            names.add(leaf.event)
        elif isinstance(leaf, PerformedButNot):
            names.update((leaf.event, leaf.not_event))
        elif isinstance(leaf, InFunnel):
            names.update(s.event for s in leaf.funnel.steps)
            groups += [g for g in (leaf.funnel.where, *(s.where for s in leaf.funnel.steps)) if g is not None]
        if isinstance(leaf, (Performed, PersonProperties)) and leaf.where is not None:
            groups.append(leaf.where)
    found = []
    if names:
        seen = {name for (name,) in client.query(
            "SELECT DISTINCT event FROM events_daily WHERE project_id = {p:UInt32} AND event IN {n:Array(String)}",
            parameters={"p": project_id, "n": sorted(names)}).result_rows}
        found += [f"event {name!r} has never been sent in this project" for name in sorted(names - seen)]
    keys = {(f.source, f.key) for g in groups for f in g.leaves() if f.source in ("event", "person")}
    if keys:
        known = {(p.source, p.key) for p in catalog.properties(client, project_id)}
        found += [f"{source} property {key!r} has not been seen in this project"
                  for source, key in sorted(keys - known)]
    return found


def decode_input(body: bytes | dict[str, Any]) -> CohortInput:
    """A cohort from a JSON body; malformed input is InvalidRequest naming the field."""
    try:
        if isinstance(body, dict):
            return msgspec.convert(body, CohortInput)
        return msgspec.json.decode(body, type=CohortInput)
    except msgspec.ValidationError as e:
        _, path = reason_and_field(e)
        inner = getattr(e.__cause__, "field", None)
        field = f"{path}.{inner}" if path and inner else inner or path
        raise InvalidRequest(f"invalid cohort: {e}", field=field or None) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"invalid cohort: {e}") from None


class MemberPage(msgspec.Struct, frozen=True):
    persons: list[str]  # person ids, or distinct ids of persons never identified
    has_more: bool


MAX_PAGE = 1000


def member_page(client: Client, project_id: int, cohort_id: str, limit: int = 100, offset: int = 0,
                now: datetime | None = None) -> MemberPage:
    """The cohort's members who have events, a page at a time, ordered by id."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be 1..{MAX_PAGE}", field="limit")
    if not 0 <= offset <= 1_000_000_000:
        raise InvalidRequest("offset must be 0..1000000000", field="offset")
    record = stored(client, project_id, cohort_id)
    zone = projects.get(client, project_id).timezone
    params = Params(project_id, Cohorts({cohort_id: record}, zone, now or records.now()))
    rows = fetch(client, params.query(cohort_membership.member_page(record, params, limit, offset)))
    return MemberPage([name for (name,) in rows[:limit]], len(rows) > limit)
