"""Persons: everyone who sent events, searched, filtered and sorted, a page at a time.

Definition. A person is `persons.PERSON`: the person id a distinct id is linked to by identify or alias
(read from `identities` with FINAL, so merges show at once), or the distinct id itself when it has no live
link. Over all of a person's events, of all their distinct ids, all time: `first_seen`/`last_seen` are
the times of their first and last event, `events` counts them, `revenue` adds the numeric event property
`revenue` exactly (Decimal128(9); missing or not numeric counts as 0: the rollups' sum). `distinct_ids`
are the ids their events were sent with, sorted; `traits` their traits (`persons.properties`) as JSON
text, '{}' for a person never identified.

`q` keeps the persons for whom it is a substring, case-insensitive, of one of their distinct ids, of
their person id, or of a trait's value (top-level traits; a nested object matches on its JSON text).
`where` (the shared filter vocabulary) keeps the persons with at least one event passing it: a person
property or cohort condition is the same on each of a person's events, so for them it is the person's
own condition. `sort` orders by `last_seen`, `events` or `revenue`, largest first, ties by the person's
key (`persons.PERSON_KEY`: cityHash64 of the person's id) ascending, a total order; `next_cursor` names
the last row of a page (its sort value and key) and the next request sends it as `cursor`: paging neither
repeats nor skips a person while the data stand still (a person whose sort value changes between pages
may move across the cursor).

The page is chosen on numbers alone (keys, times, counts, sums) and only its persons are named: their ids
and traits are looked up by key afterwards. Naming every person to sort them — their person ids as text,
their ids collected — cost most of the list's time at 10M events (770k persons).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import cohort_store, persons
from nexus.analyses.persons import PERSON_TRAITS
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.filters import FilterGroup, compile_group
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest
from nexus.meta import projects

MAX_LIMIT = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)
Sort = Literal["last_seen", "events", "revenue"]
# Revenue exactly as the rollups add it: an event's numeric `revenue`, else 0.
REVENUE = "ifNull(toDecimal128OrNull(toString(e.properties.revenue), 9), 0)"


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """A row's place in the order: the sort it belongs to, its sort value as text (ms for last_seen, a
    count, an exact decimal) and its person's key."""

    sort: str
    value: str
    key: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, sort: str) -> Cursor:
        refusal = InvalidRequest("cursor is not a cursor this list returned (next_cursor) for this sort",
                                 field="cursor")
        try:
            cursor = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=cls)
            if cursor.sort != sort:
                raise refusal
            if sort == "revenue":
                Decimal(cursor.value)
            elif not 0 <= int(cursor.value) < 2 ** 63:
                raise refusal
            if not 0 <= cursor.key < 2 ** 64:
                raise refusal
        except (binascii.Error, ValueError, ArithmeticError, msgspec.ValidationError):
            raise refusal from None
        return cursor


class PersonListRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    q: str | None = None  # search: a substring of a distinct id, the person id or a trait value
    where: FilterGroup | None = None
    sort: Sort = "last_seen"
    limit: int = 100
    cursor: str | None = None  # the previous page's next_cursor; None: the first page

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be 1..{MAX_LIMIT}", field="limit")
        if self.q is not None and len(self.q) > 200:
            raise InvalidRequest("q is at most 200 characters", field="q")
        if self.cursor is not None:
            Cursor.decode(self.cursor, self.sort)


class PersonRow(msgspec.Struct, frozen=True):
    person: str  # the person id, or the distinct id of a never-identified person
    distinct_ids: list[str]
    first_seen: datetime
    last_seen: datetime
    events: int
    revenue: float
    traits: str  # the person's traits, a JSON object as text


class PersonListResult(msgspec.Struct, frozen=True):
    sort: Sort
    persons: list[PersonRow]
    next_cursor: str | None  # `cursor` of the next page; None on the last page


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = PersonListRequest
Result = PersonListResult


def run(client: Client, project_id: int, request: PersonListRequest, *,
        now: datetime | None = None) -> PersonListResult:
    found = fetch(client, _query(_params(client, project_id, request, now), request))
    page = found[:request.limit]
    names = _names(client, project_id, [row[0] for row in page])
    traits = _traits(client, project_id, [names[row[0]][0] for row in page])
    rows = [PersonRow(names[key][0], names[key][1], first, last, events, float(revenue),
                      traits.get(names[key][0], "{}")) for key, first, last, events, revenue in page]
    cursor = None
    if len(found) > request.limit:
        key, _, last_seen, events, revenue = page[-1]
        value = {"last_seen": (last_seen - EPOCH) // MILLISECOND, "events": events, "revenue": revenue}[request.sort]
        cursor = Cursor(request.sort, str(value), key).encode()
    return PersonListResult(request.sort, rows, cursor)


def explain(client: Client, project_id: int, request: PersonListRequest, *, now: datetime | None = None) -> Query:
    """The page's query: its persons' keys and numbers (their ids and traits are looked up by key after)."""
    return _query(_params(client, project_id, request, now), request)


def _names(client: Client, project_id: int, keys: list[int]) -> dict[int, tuple[str, list[str]]]:
    """Each key's person id and the distinct ids their events were sent with: a linked person's from its
    live links (ids without events left out), an unlinked id's person is the id whose hash is the key."""
    params = Params(project_id)
    bound = params.add(keys, "Array(UInt64)")
    linked = fetch(client, params.query(
        f"SELECT cityHash64(toString(person_id)) AS key, toString(person_id), distinct_id FROM identities FINAL"
        f" WHERE project_id = {PROJECT} AND key IN {bound}"))
    ids = params.add([distinct_id for _, _, distinct_id in linked], "Array(String)")
    # The first half finds events by the table's key; the second reads one UInt64 column, 8 bytes an event.
    seen = fetch(client, params.query(
        f"SELECT DISTINCT distinct_id, toUInt64(0) FROM events WHERE project_id = {PROJECT}"
        f" AND distinct_id IN {ids}\nUNION ALL\n"
        f"SELECT DISTINCT distinct_id, id_key FROM events WHERE project_id = {PROJECT} AND id_key IN {bound}"))
    with_events = {distinct_id for distinct_id, _ in seen}
    named: dict[int, tuple[str, list[str]]] = {}
    for key, person, distinct_id in sorted(linked):
        named.setdefault(key, (person, []))[1].extend([distinct_id] if distinct_id in with_events else [])
    for distinct_id, key in seen:
        if key and key not in named:
            named[key] = (distinct_id, [distinct_id])
    return named


def _traits(client: Client, project_id: int, page: list[str]) -> dict[str, str]:
    """The traits of the page's persons, by primary key: joining every person's traits to find a page's
    would read them all (770k JSON objects at 10M events)."""
    params = Params(project_id)
    return dict(fetch(client, params.query(
        f"SELECT toString(person_id), toJSONString(properties) FROM persons FINAL WHERE project_id = {PROJECT}"
        f" AND person_id IN (SELECT toUUIDOrZero(arrayJoin({params.add(page, 'Array(String)')})))")))


def _params(client: Client, project_id: int, request: PersonListRequest, now: datetime | None) -> Params:
    """The query's parameters, with the cohorts `where` names (their relative windows read the project's
    zone and `now`; another project's cohort is NotFound, as in every analysis)."""
    named = cohort_store.referenced(request)
    if not named:
        return Params(project_id)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    cohorts = Cohorts(cohort_store.load(client, project_id, named), projects.get(client, project_id).timezone, moment)
    return Params(project_id, cohorts)


def _query(params: Params, request: PersonListRequest) -> Query:
    where = request.where
    # A group of person properties only is the same on each of a person's events: it is read once per
    # person (one join of traits per person, not per event — 30 s → s at 10M events).
    per_person_where = where is not None and all(leaf.source == "person" for leaf in where.leaves())
    per_event_where = where is not None and not per_person_where
    matched = f", max({compile_group(where, params)}) AS matched" if per_event_where else ""
    # Aggregated per distinct id first (by its stored hash: grouping UInt64 beats grouping the strings
    # twofold), then by person: a join per id, not per event (persons.by_person).
    per_id = (
        f"SELECT e.id_key AS id_key{', any(e.distinct_id) AS distinct_id' if request.q else ''},"
        f" min(e.ts) AS first_seen, max(e.ts) AS last_seen, count() AS events, sum({REVENUE}) AS revenue{matched}\n"
        f"FROM events AS e\n{persons.joins(False, where if per_event_where else None).sql}\n"
        f"WHERE e.project_id = {PROJECT}\nGROUP BY e.id_key"
    )
    # Names only for a search, which reads them (and every person's traits).
    names = (" any(if(ids.person_id = '', x.distinct_id, ids.person_id)) AS name,"
             " groupArray(x.distinct_id) AS distinct_ids," if request.q else "")
    rows = persons.by_person(
        per_id, f"{names} min(x.first_seen) AS first_seen, max(x.last_seen) AS last_seen, sum(x.events) AS events,"
                f" sum(x.revenue) AS revenue" + (", max(x.matched) AS matched" if matched else ""))
    conditions = ["y.matched"] if matched else []
    if per_person_where or request.q:
        # Everyone's traits, joined once per person: (passes the person filter, the traits as JSON text).
        passes = compile_group(where, params) if per_person_where else "1"
        found = f"toJSONString({PERSON_TRAITS.sql})" if request.q else "''"
        rows = persons.with_trait(rows, f"tuple({passes}, {found})")  # as `bd`
        conditions += ["y.bd.1"] if per_person_where else []
    if request.q:
        # Searching trait values reads everyone's traits.
        q = params.add(request.q, "String")
        conditions.append(
            f"(positionCaseInsensitiveUTF8(y.name, {q}) > 0"
            f" OR arrayExists(d -> positionCaseInsensitiveUTF8(d, {q}) > 0, y.distinct_ids)"
            f" OR arrayExists(kv -> positionCaseInsensitiveUTF8(if(JSONExtractString(kv.2) = '', kv.2,"
            f" JSONExtractString(kv.2)), {q}) > 0, JSONExtractKeysAndValuesRaw(y.bd.2)))")
    key = {"last_seen": "y.last_seen", "events": "y.events", "revenue": "y.revenue"}[request.sort]
    if request.cursor is not None:
        cursor = Cursor.decode(request.cursor, request.sort)
        if request.sort == "last_seen":
            value = params.add(EPOCH + int(cursor.value) * MILLISECOND, UTC_TIME)
        elif request.sort == "events":
            value = params.add(int(cursor.value), "UInt64")
        else:
            value = f"toDecimal128({params.add(cursor.value, 'String')}, 9)"
        person = params.add(cursor.key, "UInt64")
        conditions.append(f"({key} < {value} OR ({key} = {value} AND y.person > {person}))")
    filtered = f"WHERE {' AND '.join(conditions)}\n" if conditions else ""
    return params.query(
        f"SELECT y.person, y.first_seen, y.last_seen, y.events, y.revenue\n"
        f"FROM ({rows}) AS y\n{filtered}ORDER BY {key} DESC, y.person ASC\n"
        f"LIMIT {params.add(request.limit + 1, 'UInt32')}"
    )
