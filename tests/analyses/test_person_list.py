"""The persons list: everyone's first/last seen, events and revenue against pandas on the demo data, paged by
cursor through everyone exactly once in each order (ties included); search, filters and merges on journeys."""

from __future__ import annotations

import pandas as pd
import pytest

from nexus.analyses import person_list
from nexus.analyses.person_list import PersonListRequest
from nexus.analyses import registry
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import cohorts
from tests.analyses.journeys import at, insert_events, link, new_project, person

P1 = "00000000-0000-4000-8000-000000000001"
P2 = "00000000-0000-4000-8000-000000000002"


def everyone(client, project: int, **fields) -> list[person_list.PersonRow]:
    """Every page of the list, following next_cursor."""
    rows, cursor = [], None
    while True:
        page = person_list.run(client, project, PersonListRequest(cursor=cursor, **fields))
        rows += page.persons
        if page.next_cursor is None:
            return rows
        assert len(page.persons) == fields.get("limit", 100)
        cursor = page.next_cursor


def keys(client, names: list[str]) -> list[int]:
    """cityHash64 of each person id: the documented tie-break (the engine's hash: Python has none the same)."""
    return client.query("SELECT arrayMap(x -> cityHash64(x), {n:Array(String)})", parameters={"n": names}).result_rows[0][0]


def expected_order(client, frame: pd.DataFrame, sort: str) -> pd.DataFrame:
    """The documented order, computed in pandas: per person over all events, sort value descending, then the
    person's key ascending."""
    per = frame.groupby("person").agg(first_seen=("ts", "min"), last_seen=("ts", "max"), events=("ts", "size"),
                                      revenue=("revenue", lambda r: r.fillna(0).sum())).reset_index()
    per["key"] = keys(client, list(per["person"]))
    return per.sort_values([sort, "key"], ascending=[False, True], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("sort", ["last_seen", "events", "revenue"])
def test_paging_visits_everyone_once_in_the_documented_order(client, demo, frame, sort):
    expected = expected_order(client, frame, sort)
    # Ties are the hard case for a cursor: many persons share an event count and a revenue of 0.
    assert expected[sort].duplicated().sum() > 100 or sort == "last_seen"
    rows = everyone(client, demo, sort=sort, limit=173)
    assert [r.person for r in rows] == list(expected["person"])
    assert [r.events for r in rows] == list(expected["events"])
    assert [r.revenue for r in rows] == pytest.approx(list(expected["revenue"]))
    assert [pd.Timestamp(r.last_seen) for r in rows] == list(expected["last_seen"])
    assert [pd.Timestamp(r.first_seen) for r in rows] == list(expected["first_seen"])
    ids = frame.groupby("person")["distinct_id"].agg(lambda d: sorted(set(d)))
    assert all(r.distinct_ids == ids[r.person] for r in rows)


def test_persons_seen_at_the_same_instant_page_by_id(client):
    project = new_project(client)
    insert_events(client, project, {f"p{i}": [("open", "2026-10-01T08:00")] for i in (3, 1, 4, 0, 2)})
    insert_events(client, project, {"late": [("open", "2026-10-01T08:00:00.001")]})
    rows = everyone(client, project, limit=2)
    tied = sorted(["p0", "p1", "p2", "p3", "p4"], key=lambda name: keys(client, [name])[0])
    assert [r.person for r in rows] == ["late", *tied] and tied != sorted(tied)  # hash order, not names


def test_filters_keep_persons_with_a_matching_event_and_by_trait(client, demo, frame):
    where = {"filters": [{"key": "plan", "value": "team"}]}
    rows = everyone(client, demo, where=registry.decode("persons", {"where": where}).where, limit=1000)
    assert {r.person for r in rows} == set(frame.loc[frame["plan"] == "team", "person"]) != set()
    by_trait = {"filters": [{"key": "plan", "source": "person", "value": "team"}]}
    rows = everyone(client, demo, where=registry.decode("persons", {"where": by_trait}).where, limit=1000)
    traits = client.query_df("SELECT toString(person_id) AS person, toString(properties.plan) AS plan"
                             " FROM persons FINAL"
                             " WHERE project_id = {p:UInt32}", parameters={"p": demo})
    assert {r.person for r in rows} == set(traits.loc[traits["plan"] == "team", "person"]) & set(frame["person"])


def test_an_identify_mid_way_makes_one_person_of_two_ids(client):
    project = new_project(client)
    # Given a visitor browsing as anon-1, identified as user-1 mid-way, and a stranger never identified
    insert_events(client, project, {
        "anon-1": [("page_view", "2026-10-01T09:00"), ("page_view", "2026-10-01T09:10")],
        "user-1": [("identify", "2026-10-01T09:11", {"email": "ada@example.com"}, {"type": "identify"}),
                   ("purchase", "2026-10-02T12:00", {"revenue": 12.5}), ("purchase", "2026-10-03T08:00",
                                                                          {"revenue": "7.25"})],
        "stranger": [("page_view", "2026-10-05T10:00", {"revenue": "n/a"})],
    })
    link(client, project, {"anon-1": P1, "user-1": P1})
    person(client, project, P1, {"email": "ada@example.com", "address": {"city": "Zürich"}})
    rows = everyone(client, project)
    assert [(r.person, r.distinct_ids, r.events, r.revenue) for r in rows] == [
        ("stranger", ["stranger"], 1, 0.0), (P1, ["anon-1", "user-1"], 5, 19.75)]
    assert (rows[1].first_seen, rows[1].last_seen) == (at("2026-10-01T09:00"), at("2026-10-03T08:00"))
    assert rows[0].traits == "{}" and '"city":"Zürich"' in rows[1].traits
    # When searching: by an id (of either), by the person id, by a trait value (nested ones too), any case
    for q in ("ANON-1", "user-1", P1[:13], "ada@", "zürich"):
        assert [r.person for r in person_list.run(client, project, PersonListRequest(q=q)).persons] == [P1], q
    assert [r.person for r in person_list.run(client, project, PersonListRequest(q="strang")).persons] == ["stranger"]
    assert person_list.run(client, project, PersonListRequest(q="nobody")).persons == []


def test_an_alias_merges_a_second_person_and_the_list_follows(client):
    project = new_project(client)
    insert_events(client, project, {"phone": [("open", "2026-10-01T08:00")] * 3,
                                    "user-1": [("open", "2026-10-02T08:00")]})
    link(client, project, {"phone": P2, "user-1": P1})
    assert {r.person: r.events for r in everyone(client, project)} == {P1: 1, P2: 3}
    # When alias(phone → user-1) moves phone's link to P1 (a later version)
    link(client, project, {"phone": P1}, version=2)
    [merged] = everyone(client, project)
    assert (merged.person, merged.distinct_ids, merged.events) == (P1, ["phone", "user-1"], 4)


def test_bad_cursors_and_limits_are_refused_naming_the_field(client, demo):
    page = person_list.run(client, demo, PersonListRequest(limit=2))
    for body, field in [({"cursor": "not-a-cursor"}, "cursor"), ({"cursor": page.next_cursor, "sort": "events"},
                                                                   "cursor"),
                        ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"sort": "name"}, "sort"),
                        ({"where": {"filters": [{"key": "a b"}]}}, "where.filters[0]")]:
        with pytest.raises(InvalidRequest) as refused:
            registry.decode("persons", body)
        assert refused.value.field == field, body


def test_a_cohort_filter_keeps_its_members_merged_ids_included(client):
    project = new_project(client)
    insert_events(client, project, {"anon-1": [("open", "2026-10-01T08:00")], "user-1": [("open", "2026-10-02T08:00")],
                                    "other": [("open", "2026-10-03T08:00")], "third": [("open", "2026-10-04T08:00")]})
    link(client, project, {"anon-1": P1, "user-1": P1})
    # A static cohort listing one of P1's distinct ids and a never-identified id
    members = cohorts.create_static(client, project, "vip", b"id\nanon-1\nother\n", "test")
    named = {"filters": [{"source": "cohort", "key": members.cohort_id, "op": "in"}]}
    kept = everyone(client, project, where=registry.decode("persons", {"where": named}).where)
    assert [(r.person, r.events) for r in kept] == [("other", 1), (P1, 2)]
    outside = {"filters": [{"source": "cohort", "key": members.cohort_id, "op": "not_in"}]}
    assert [r.person for r in everyone(client, project, where=registry.decode("persons", {"where": outside}).where)] \
        == ["third"]
    # Another project's cohort is not found, as in every analysis
    with pytest.raises(NotFound):
        everyone(client, new_project(client), where=registry.decode("persons", {"where": named}).where)
