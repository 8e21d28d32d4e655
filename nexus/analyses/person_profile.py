"""A person's profile: who they are (traits, ids), what they did in sum, and their events, newest first.

Definition. `person` is a person's id as the persons list gives it (`persons.PERSON`): a person id that
live links (`identities` FINAL) point to, whose distinct ids are those links; or a distinct id with no
live link, which is its own person. Anything else — an unknown id, a distinct id linked to a person, a
person merged into another (its links moved) — is not found, as is a person without events. Over all
the person's events, all time: `first_seen`, `last_seen`, `events`, `revenue` (numeric `revenue`,
exact, else 0: as the persons list and the rollups), and `sessions`: the events in time order split
wherever the gap to the previous one is longer than `gap_minutes` (default 30; a gap of exactly the
limit does not split), the sessions analysis's definition over the person's whole history.
`distinct_ids`: the linked ids and the ids their events were sent with, sorted. `traits`: each leaf of
the person's traits (`persons.properties`; nested keys joined with '.') as JSON text, with `last_set`:
the time of the latest identify event of the person's ids that carried the key (None when no stored
identify event did, e.g. traits imported without one). `timeline`: the events, newest first, by (time,
message id) descending, a page of `limit` at a time; each carries its session's number (1 = the first
session) and whether it starts its session, the boundary. `next_cursor` names the page's last row; the
next request sends it as `cursor` (paging neither repeats nor skips an event; see events.py). `scores`:
the person's row of the project's latest scoring run (nexus.analyses.predictions), with the features that
drove each score; None when that run did not score them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.events import EPOCH, MILLISECOND, Cursor
from nexus.analyses.person_list import REVENUE
from nexus.analyses.predictions import LATEST_RUN
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest, NotFound

MAX_LIMIT = 1000


class PersonRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    person: str
    limit: int = 100  # timeline events per page
    cursor: str | None = None  # the previous page's next_cursor; None: the newest events
    gap_minutes: int = 30

    def __post_init__(self) -> None:
        if not 1 <= len(self.person) <= 1000:
            raise InvalidRequest("person must be 1..1000 characters", field="person")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be 1..{MAX_LIMIT}", field="limit")
        if not 1 <= self.gap_minutes <= 24 * 60:
            raise InvalidRequest("gap_minutes must be 1..1440", field="gap_minutes")
        if self.cursor is not None:
            Cursor.decode(self.cursor, "cursor")


class Trait(msgspec.Struct, frozen=True):
    key: str  # nested keys joined with '.'
    value: str  # JSON text
    last_set: datetime | None


class TimelineEvent(msgspec.Struct, frozen=True):
    timestamp: datetime
    event: str
    distinct_id: str
    session: int  # 1 = the person's first session
    session_start: bool  # the first event of its session
    path: str
    message_id: str
    properties: str  # JSON text


class Scores(msgspec.Struct, frozen=True):
    """The person's row of the project's latest scoring run (nexus.predict.scoring)."""

    scored_at: datetime
    churn_probability: float | None
    churn_decile: int | None
    ltv: float | None
    ltv_decile: int | None
    engagement: float
    engagement_decile: int
    churn_version: str
    ltv_version: str
    drivers: dict[str, Any]  # per model: "person" (features that moved this score most), "model" (top features)


class PersonResult(msgspec.Struct, frozen=True):
    person: str
    distinct_ids: list[str]
    traits: list[Trait]
    first_seen: datetime
    last_seen: datetime
    events: int
    sessions: int
    revenue: float
    timeline: list[TimelineEvent]  # newest first
    next_cursor: str | None
    scores: Scores | None = None  # None when the latest scoring run did not score this person


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = PersonRequest
Result = PersonResult


def run(client: Client, project_id: int, request: PersonRequest, *, now: datetime | None = None) -> PersonResult:
    ids = distinct_ids(client, project_id, request.person)
    params = Params(project_id)
    bound = params.add(ids, "Array(String)")
    gap = params.add(request.gap_minutes * 60_000, "Int64")
    summary = fetch(client, params.query(
        f"WITH arraySort(groupArray(toUnixTimestamp64Milli(e.ts))) AS times\n"
        f"SELECT count(), min(e.ts), max(e.ts), sum({REVENUE}), groupUniqArray(e.distinct_id),"
        f" 1 + arrayCount((t, p) -> t - p > {gap}, arrayPopFront(times), arrayPopBack(times))\n"
        f"FROM events AS e WHERE e.project_id = {PROJECT} AND e.distinct_id IN {bound}"))
    count, first, last, revenue, seen, sessions = summary[0]
    if not count:
        raise NotFound(f"no person {request.person!r} in this project")
    found = fetch(client, _timeline(project_id, request, ids))
    timeline = [TimelineEvent(*row) for row in found[:request.limit]]
    cursor = None
    if len(found) > request.limit:
        tail = timeline[-1]
        cursor = Cursor((tail.timestamp - EPOCH) // MILLISECOND, tail.message_id).encode()
    return PersonResult(request.person, sorted(set(ids) | set(seen)), _traits(client, project_id, request.person, ids),
                        first, last, count, sessions, float(revenue), timeline, cursor,
                        _scores(client, project_id, request.person))


def explain(client: Client, project_id: int, request: PersonRequest, *, now: datetime | None = None) -> Query:
    """The timeline's query (the profile's other parts are small lookups by the same ids); for an id that is
    no person's, the query that finds nothing."""
    return _timeline(project_id, request, distinct_ids(client, project_id, request.person, refuse=False))


def distinct_ids(client: Client, project_id: int, person: str, refuse: bool = True) -> list[str]:
    """The distinct ids of `person`: its live links, or itself when it is an unlinked distinct id; NotFound
    (unless not `refuse`) for a distinct id linked to a person (it is not a person's id)."""
    params = Params(project_id)
    bound = params.add(person, "String")
    linked, is_linked = fetch(client, params.query(
        f"SELECT groupArrayIf(distinct_id, toString(person_id) = {bound}), countIf(distinct_id = {bound}) > 0\n"
        f"FROM identities FINAL WHERE project_id = {PROJECT}"
        f" AND (person_id = toUUIDOrZero({bound}) OR distinct_id = {bound})"))[0]
    if linked:
        return sorted(linked)
    if is_linked and refuse:
        raise NotFound(f"no person {person!r} in this project")
    return [person]


def _scores(client: Client, project_id: int, person: str) -> Scores | None:
    params = Params(project_id)
    found = fetch(client, params.query(
        f"SELECT {', '.join(Scores.__struct_fields__)} FROM person_predictions\n"
        f"WHERE project_id = {PROJECT} AND run_id = {LATEST_RUN}"
        f" AND person_key = cityHash64({params.add(person, 'String')}) LIMIT 1"))
    if not found:
        return None
    *values, drivers = found[0]
    return Scores(*values, json.loads(drivers))


def _traits(client: Client, project_id: int, person: str, ids: list[str]) -> list[Trait]:
    params = Params(project_id)
    stored = fetch(client, params.query(
        f"SELECT toJSONString(properties) FROM persons FINAL"
        f" WHERE project_id = {PROJECT} AND person_id = toUUIDOrZero({params.add(person, 'String')})"))
    last_set = dict(fetch(client, params.query(
        f"SELECT key, max(ts) FROM events ARRAY JOIN JSONAllPaths(properties) AS key\n"
        f"WHERE project_id = {PROJECT} AND distinct_id IN {params.add(ids, 'Array(String)')} AND type = 'identify'\n"
        f"GROUP BY key")))
    leaves = _leaves(json.loads(stored[0][0])) if stored else {}
    return [Trait(key, value, last_set.get(key)) for key, value in sorted(leaves.items())]


def _leaves(traits: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Each non-object value under its dotted path, as JSON text (the paths JSONAllPaths names)."""
    found: dict[str, str] = {}
    for key, value in traits.items():
        if isinstance(value, dict) and value:
            found.update(_leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = json.dumps(value, ensure_ascii=False)
    return found


def _timeline(project_id: int, request: PersonRequest, ids: list[str]) -> Query:
    params = Params(project_id)
    gap = params.add(request.gap_minutes * 60_000, "Int64")
    order = "ORDER BY ts, message_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    # Session numbers come from every event of the person, oldest first; the page is cut afterwards.
    starts = (
        f"SELECT ts, toString(event) AS name, distinct_id, path, message_id, properties,"
        f" row_number() OVER w = 1 OR toUnixTimestamp64Milli(ts) - lagInFrame(toUnixTimestamp64Milli(ts)) OVER w"
        f" > {gap} AS starts_session\n"
        f"FROM events WHERE project_id = {PROJECT} AND distinct_id IN {params.add(ids, 'Array(String)')}\n"
        f"WINDOW w AS ({order})"
    )
    numbered = f"SELECT *, sum(starts_session) OVER ({order}) AS session FROM ({starts})"
    cursor = ""
    if request.cursor is not None:
        at = Cursor.decode(request.cursor, "cursor")
        cursor = (f"\nWHERE (ts, message_id) < ({params.add(EPOCH + at.ms * MILLISECOND, UTC_TIME)},"
                  f" {params.add(at.message_id, 'String')})")
    return params.query(
        f"SELECT ts, name, distinct_id, toUInt32(session), toBool(starts_session), path, message_id,"
        f" toJSONString(properties)\nFROM ({numbered}){cursor}\n"
        f"ORDER BY ts DESC, message_id DESC LIMIT {params.add(request.limit + 1, 'UInt32')}"
    )
