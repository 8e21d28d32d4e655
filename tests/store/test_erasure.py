"""Erasing a person: nothing of them stays in any table, the rollups equal a recomputation from the events
that remain, and every analysis answers for the project exactly as for a twin project that never had them.

Two projects get the same demo data (same seed, so the same persons and UUIDs); only the first also gets the
person to erase: an anonymous visitor identified mid-way, a second device identified later, a login of their
own merged into them by alias, and a new user id aliased to them — with sessions, revenue and traits, over two
months. One of their sessions also holds an event of a bystander (in both projects)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import msgspec
import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from nexus.analyses import registry
from nexus.demo.load import load
from nexus.errors import NotFound
from nexus.ingest.identity import IdentityResolver, Link
from nexus.meta import erasures, projects
from nexus.store import erasure, rebuild
from tests.analyses.example_cohort import save_example_cohort
from tests.analyses.journeys import at, insert_events
from tests.analyses.reference import events_frame
from tests.analyses.test_registry import BODIES
from tests.conftest import DEMO_END

DEMO_EVENTS = 4_000
# Every id and trait value of the person to erase contains one of these; no demo id does.
MARKERS = ["erase-me", "anon-e", "other-login"]

PERSON_EVENTS: dict[str, list[tuple]] = {
    "anon-e1": [("page_view", "2026-08-30T10:00", {}, {"session_id": "s-e0", "country": "DE"}),  # alone in August
                ("page_view", "2026-09-20T10:00", {}, {"session_id": "s-e1", "country": "DE"}),
                ("page_view", "2026-09-20T10:05", {}, {"session_id": "s-e1", "country": "DE"}),
                ("signup", "2026-09-20T10:10", {"plan": "pro"}, {"session_id": "s-e1", "country": "DE"})],
    "erase-me": [("purchase", "2026-10-05T08:00", {"revenue": 49.5}, {"session_id": "s-e2", "country": "DE"}),
                 ("page_view", "2026-10-05T08:01", {}, {"session_id": "s-e2", "country": "DE"})],
    "anon-e2": [("page_view", "2026-10-27T21:00", {}, {"session_id": "s-e3", "country": "FR"})],
    "other-login": [("page_view", "2026-10-28T12:00", {}, {"session_id": "s-e4", "country": "US"})],
    "erase-me-new": [("page_view", "2026-10-30T10:00", {}, {"session_id": "s-e5", "country": "US"}),
                     ("signup", "2026-10-30T10:05", {"plan": "pro"}, {"session_id": "s-e5", "country": "US"}),
                     ("purchase", "2026-10-30T12:00", {"revenue": 99}, {"session_id": "s-e5", "country": "US"})],
}
# A bystander's event in one of the person's sessions: it stays, and the session is rebuilt from it alone.
BYSTANDER_EVENTS: dict[str, list[tuple]] = {
    "bystander": [("page_view", "2026-10-05T08:02", {}, {"session_id": "s-e2", "country": "US"})]}


def links(project_id: int) -> list[Link]:
    def link(user_id: str, other_id: str, when: str, traits: dict | None = None) -> Link:
        return Link(project_id, user_id, other_id, traits, at(when))

    return [link("erase-me", "anon-e1", "2026-09-20T10:10", {"email": "erase-me@example.com", "plan": "pro"}),
            link("erase-me", "anon-e2", "2026-10-27T21:01"),
            link("other-login", "anon-e3", "2026-10-28T12:00", {"nickname": "other-login"}),
            link("erase-me", "other-login", "2026-10-28T13:00"),  # alias: other-login's person merges in
            link("erase-me-new", "erase-me", "2026-10-30T09:59")]


@pytest.fixture(scope="module")
def stores(client: Client, redis) -> dict[str, Any]:
    """The twin projects, the person's id, and every analysis's answer and the events before the erasure."""
    twins = {}
    for name in ("erased", "never"):
        project_id = projects.create(client, f"erasure-{name}-{uuid.uuid4().hex[:6]}").project_id
        load(client, project_id, DEMO_EVENTS, seed=5, end=DEMO_END)
        insert_events(client, project_id, BYSTANDER_EVENTS)
        save_example_cohort(client, project_id)  # the cohort BODIES name
        twins[name] = project_id
    erased = twins["erased"]
    IdentityResolver(redis.client).apply(client, links(erased))
    insert_events(client, erased, PERSON_EVENTS)
    person = client.query("SELECT toString(person_id) FROM identities FINAL WHERE project_id = {p:UInt32} "
                          "AND distinct_id = 'erase-me'", parameters={"p": erased}).result_rows[0][0]
    client.insert("cohort_members", [[erased, "c_static00000", 1, "anon-e2"], [erased, "c_static00000", 1, person],
                                     [erased, "c_static00000", 1, "bystander"]],
                  column_names=["project_id", "cohort_id", "generation", "member_id"])
    # Scores of theirs (their person and an id merged into it) and the bystander's, who is scored in both twins.
    client.insert("person_predictions", [[project, "r1", DEMO_END, name, 0, 0.5, "{}"] for project, name in (
        (erased, person), (erased, "anon-e3"), (erased, "bystander"), (twins["never"], "bystander"))],
                  column_names=["project_id", "run_id", "scored_at", "person_id", "person_key", "engagement", "drivers"])
    # A demo person, the same in both projects, for the analyses that describe one person.
    bystander = client.query("SELECT toString(person_id) FROM identities FINAL WHERE project_id = {p:UInt32} "
                             "ORDER BY distinct_id LIMIT 1", parameters={"p": twins["never"]}).result_rows[0][0]
    bodies = {kind: {**body, "person": bystander} if "person" in body else body for kind, body in BODIES.items()}
    before = {kind: answers(client, erased, kind, body) for kind, body in bodies.items()}
    never = {kind: answers(client, twins["never"], kind, body) for kind, body in bodies.items()}
    frame = events_frame(client, erased)
    record = erasure.erase(client, erased, person, "k_test", redis.client)
    return {**twins, "person": person, "bodies": bodies, "before": before, "never_answers": never, "frame": frame,
            "record": record}


def answers(client: Client, project_id: int, kind: str, body: dict[str, Any]) -> Any:
    request = registry.decode(kind, json.dumps(body).encode())
    return msgspec.to_builtins(registry.run(client, project_id, kind, request, now=DEMO_END))


def test_the_person_was_found_whole_and_counted(stores):
    record = stores["record"]
    assert record.distinct_ids == 6  # erase-me, anon-e1, anon-e2, other-login, anon-e3 (merged in), erase-me-new
    assert record.rows["events"] == sum(len(events) for events in PERSON_EVENTS.values())
    assert record.rows["identities"] >= 6 and record.rows["persons"] >= 2  # their person, and the one merged into it
    # Rows as stored: s-e2 has a row from each insert that wrote to it until ClickHouse merges them.
    assert 6 <= record.rows["sessions"] <= 7 and record.rows["cohort_members"] == 2
    assert record.rows["person_predictions"] == 2  # their person's scores and those of the id merged in
    assert record.rebuilt_partitions == 6  # August (theirs alone), September and October; hourly and daily


def test_no_table_holds_anything_of_the_person(client, stores):
    person, project_id = stores["person"], stores["erased"]
    tables = [row[0] for row in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND NOT is_temporary "
        "AND engine NOT IN ('MaterializedView', 'View')").result_rows]
    assert {"events", "identities", "persons", "sessions", "cohort_members", "erasures"} <= set(tables)
    assert not [t for t in tables if t.startswith("erasure_") or "_rebuild_" in t]  # staging tables are gone
    for table in tables:
        # Every column of every row as text (aggregate states are binary: the rollups are checked below).
        found = client.query(f"SELECT count() FROM {table} WHERE multiSearchAny(formatRow('TSV', *), {{m:Array(String)}})",
                             parameters={"m": [*MARKERS, person]}).result_rows[0][0]
        assert found == 0, table
    # ClickHouse keeps the text of mutations: the deletes named a staging table, never an id.
    commands = [row[0] for row in client.query("SELECT command FROM system.mutations "
                                               "WHERE database = currentDatabase()").result_rows]
    assert commands and not [c for c in commands if any(m in c for m in [*MARKERS, person])]
    # The bystander's event, cohort membership and session stay.
    assert client.query("SELECT count() FROM sessions WHERE project_id = {p:UInt32} AND session_id = 's-e2'",
                        parameters={"p": project_id}).result_rows[0][0] >= 1
    assert client.query("SELECT member_id FROM cohort_members WHERE project_id = {p:UInt32}",
                        parameters={"p": project_id}).result_rows == [("bystander",)]
    assert client.query("SELECT person_id FROM person_predictions WHERE project_id = {p:UInt32}",
                        parameters={"p": project_id}).result_rows == [("bystander",)]


def test_the_remaining_events_are_the_others_exactly(client, stores):
    before: pd.DataFrame = stores["frame"]
    person_ids = set(PERSON_EVENTS) | {"anon-e3"}
    assert set(before[before["person"] == stores["person"]]["distinct_id"]) == set(PERSON_EVENTS)
    expected = before[~before["distinct_id"].isin(person_ids)]
    after = events_frame(client, stores["erased"])
    key = ["ts", "event", "distinct_id", "session_id"]
    assert after[key].sort_values(key).to_numpy().tolist() == expected[key].sort_values(key).to_numpy().tolist()
    assert after["person"].value_counts().to_dict() == expected["person"].value_counts().to_dict()


@pytest.mark.parametrize("table,time_column", [("events_hourly", "hour"), ("events_daily", "day")])
def test_rollups_equal_the_remaining_events_and_the_twins(client, stores, table, time_column):
    bucket = "toStartOfHour(ts)" if table == "events_hourly" else "toDate(ts)"
    rolled = ("SELECT event, {time} AS t, sum(events), uniqMerge(distinct_ids), sum(revenue) FROM {table} "
              "WHERE project_id = {{p:UInt32}} GROUP BY event, t ORDER BY event, t")
    raw = (f"SELECT event, {bucket} AS t, count(), uniq(distinct_id), "
           "sum(ifNull(toDecimal128OrNull(toString(properties.revenue), 9), 0)) FROM events "
           "WHERE project_id = {p:UInt32} GROUP BY event, t ORDER BY event, t")
    erased = client.query(rolled.format(time=time_column, table=table), parameters={"p": stores["erased"]}).result_rows
    assert erased == client.query(raw, parameters={"p": stores["erased"]}).result_rows
    assert erased == client.query(rolled.format(time=time_column, table=table),
                                  parameters={"p": stores["never"]}).result_rows


@pytest.mark.parametrize("kind", BODIES)
def test_every_analysis_answers_as_if_the_person_had_never_been(client, stores, kind):
    after = answers(client, stores["erased"], kind, stores["bodies"][kind])
    assert after == stores["never_answers"][kind]
    assert not [m for m in [*MARKERS, stores["person"]] if m in json.dumps(after)]


def test_the_person_changed_answers_before(stores):
    """Without this, the test above could pass with the person's events never counted at all."""
    changed = [kind for kind, answer in stores["before"].items() if answer != stores["never_answers"][kind]]
    assert {"trends", "funnel", "sessions", "overview", "lifecycle"} <= set(changed), changed


def test_erasing_again_finds_no_one_and_the_record_lists_it(client, stores):
    with pytest.raises(NotFound):
        erasure.erase(client, stores["erased"], stores["person"], "k_test")
    with pytest.raises(NotFound):
        erasure.erase(client, stores["erased"], "anon-e1", "k_test")
    if "person" in registry.ANALYSES:  # the person's profile (nexus.analyses.person_profile) is gone with them
        with pytest.raises(NotFound):
            answers(client, stores["erased"], "person", {**stores["bodies"]["person"], "person": stores["person"]})
    listed = erasures.list_all(client, stores["erased"])
    assert [e.erasure_id for e in listed] == [stores["record"].erasure_id]
    assert erasures.list_all(client, stores["never"]) == []


def test_rebuilding_untouched_buckets_reproduces_the_view(client, stores):
    """Copied buckets and recomputed ones together equal what the views wrote."""
    project_id = stores["never"]
    query = ("SELECT event, hour, sum(events), uniqMerge(distinct_ids), sum(revenue) FROM events_hourly "
             "WHERE project_id = {p:UInt32} GROUP BY event, hour ORDER BY event, hour")
    daily = ("SELECT event, day, country, browser, os, device_type, referrer_class, utm_source, sum(events), "
             "uniqMerge(distinct_ids), sum(revenue) FROM events_daily WHERE project_id = {p:UInt32} "
             "GROUP BY ALL ORDER BY ALL")
    written = [client.query(q, parameters={"p": project_id}).result_rows for q in (query, daily)]
    hours = set(client.query("SELECT DISTINCT toDateTime(toStartOfHour(ts), 'UTC'), event FROM events "
                             "WHERE project_id = {p:UInt32} AND toDate(ts) IN ('2026-10-14', '2026-10-15') "
                             "AND toHour(ts) < 14", parameters={"p": project_id}).result_rows)
    assert len(hours) > 20
    for table in rebuild.ROLLUPS:
        rebuild.rollup_month(client, table, project_id, 202610, hours, "SELECT '' WHERE 0")  # no id leaves
    assert [client.query(q, parameters={"p": project_id}).result_rows for q in (query, daily)] == written


def test_every_view_over_events_is_one_the_erasure_rebuilds(client):
    """A new materialized view over events would keep erased ids in its table: add it to nexus.store.rebuild."""
    views = client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                         "AND engine = 'MaterializedView' ORDER BY name").result_rows
    assert [v[0] for v in views] == sorted([f"{table}_mv" for table in rebuild.ROLLUPS] + ["sessions_mv"])


def test_an_erasure_cut_short_is_finished_by_running_it_again(client, redis, monkeypatch):
    """Links go last: stopped after the events were deleted, the erasure still finds the whole person by their
    person id, and the rollups, rebuilt before the delete, already leave them out."""
    project_id = projects.create(client, f"erasure-cut-{uuid.uuid4().hex[:6]}").project_id
    insert_events(client, project_id, {**PERSON_EVENTS, **BYSTANDER_EVENTS})
    IdentityResolver(redis.client).apply(client, links(project_id))
    person = erasure.find(client, project_id, "anon-e2").person_id
    delete_rows = rebuild.delete_rows

    def stopping_before_cohorts(client: Client, table: str, *args: Any) -> int:
        if table == "cohort_members":
            raise RuntimeError("the process stopped here")
        return delete_rows(client, table, *args)

    monkeypatch.setattr(rebuild, "delete_rows", stopping_before_cohorts)
    with pytest.raises(RuntimeError):
        erasure.erase(client, project_id, person, "k_test", redis.client)
    monkeypatch.setattr(rebuild, "delete_rows", delete_rows)
    assert client.query("SELECT count() FROM events WHERE project_id = {p:UInt32}",
                        parameters={"p": project_id}).result_rows == [(1,)]  # the bystander's

    finished = erasure.erase(client, project_id, person, "k_test", redis.client)

    assert finished.distinct_ids == 6 and finished.rows["events"] == 0 and finished.rows["identities"] >= 6
    for table in ("identities", "persons", "events", "sessions"):
        found = client.query(f"SELECT count() FROM {table} WHERE project_id = {{p:UInt32}} "
                             "AND multiSearchAny(formatRow('TSV', *), {m:Array(String)})",
                             parameters={"p": project_id, "m": [*MARKERS, person]}).result_rows[0][0]
        assert found == 0, table
    assert client.query("SELECT sum(events), uniqMerge(distinct_ids) FROM events_daily WHERE project_id = {p:UInt32}",
                        parameters={"p": project_id}).result_rows == [(1, 1)]


def test_staging_tables_a_killed_erasure_left_are_dropped_by_the_next(client, redis, monkeypatch):
    """A process killed mid-erasure never drops its staging tables (one holds the person's ids): the next erasure
    drops those older than LEFTOVER_AGE, and leaves a younger one (another process's erasure, running)."""
    left = ["erasure_0123456789abcdef", "events_daily_rebuild_0123456789ab"]
    for name in left:
        client.command(f"CREATE TABLE {name} (kind String, value String) ENGINE = MergeTree ORDER BY kind")
    client.command("CREATE TABLE erasure_notes (value String) ENGINE = MergeTree ORDER BY value")  # not Nexus's
    project_id = projects.create(client, f"erasure-left-{uuid.uuid4().hex[:6]}").project_id
    insert_events(client, project_id, BYSTANDER_EVENTS)
    bystander = next(iter(BYSTANDER_EVENTS))

    def tables() -> set[str]:
        return {row[0] for row in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                               "AND name IN {n:Array(String)}",
                                               parameters={"n": [*left, "erasure_notes"]}).result_rows}

    erasure.erase(client, project_id, bystander, "k_test", redis.client)
    assert tables() == {*left, "erasure_notes"}  # younger than an hour: perhaps a running erasure's
    monkeypatch.setattr(erasure, "LEFTOVER_AGE", timedelta(0))
    time.sleep(1.1)  # metadata_modification_time has whole seconds
    insert_events(client, project_id, BYSTANDER_EVENTS)
    erasure.erase(client, project_id, bystander, "k_test", redis.client)
    assert tables() == {"erasure_notes"}
    client.command("DROP TABLE erasure_notes")
