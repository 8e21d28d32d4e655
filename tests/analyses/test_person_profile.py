"""A person's profile: a hand-written life (identified mid-way, traits changed, a session boundary exactly
at 30 minutes, an alias merging a second person) with its exact answers, the timeline paged once through,
and the demo's persons against pandas."""

from __future__ import annotations

import pandas as pd
import pytest

from nexus.analyses import person_profile, registry
from nexus.analyses.person_profile import PersonRequest, Trait
from nexus.errors import InvalidRequest, NotFound
from tests.analyses.journeys import at, insert_events, link, new_project, person

P1 = "00000000-0000-4000-8000-00000000000a"
P2 = "00000000-0000-4000-8000-00000000000b"
IDENTIFY = {"type": "identify"}


@pytest.fixture(scope="module")
def life(client) -> int:
    project = new_project(client)
    insert_events(client, project, {
        # Anonymous at first; 10:30 is exactly 30 minutes after 10:00 (same session), 11:00:00.001 is not
        "anon-1": [("page_view", "2026-10-01T10:00"), ("page_view", "2026-10-01T10:30")],
        "user-1": [("identify", "2026-10-01T10:45", {"email": "ada@example.com", "plan": "free"}, IDENTIFY),
                   ("page_view", "2026-10-01T11:15:00.001"),
                   ("identify", "2026-10-03T09:00", {"plan": "pro", "address": {"city": "Zürich"}}, IDENTIFY),
                   ("purchase", "2026-10-03T09:00", {"revenue": 30}),
                   ("purchase", "2026-10-03T09:05", {"revenue": "x"})],
        # A second device, its own person until aliased to user-1
        "phone": [("open", "2026-10-02T20:00", {"revenue": 2.5})],
        "stranger": [("open", "2026-10-04T00:00")],
    })
    link(client, project, {"anon-1": P1, "user-1": P1, "phone": P2})
    link(client, project, {"phone": P1}, version=2)  # alias(phone → user-1): the link moves to P1
    person(client, project, P1, {"email": "ada@example.com", "plan": "pro", "address": {"city": "Zürich"}})
    return project


def profile(client, project: int, who: str, **fields) -> person_profile.PersonResult:
    return person_profile.run(client, project, PersonRequest(person=who, **fields))


def test_a_life_reads_back_exactly(client, life):
    result = profile(client, life, P1)
    assert result.distinct_ids == ["anon-1", "phone", "user-1"]
    assert (result.first_seen, result.last_seen) == (at("2026-10-01T10:00"), at("2026-10-03T09:05"))
    assert (result.events, result.revenue) == (8, 32.5)
    # Sessions: [10:00, 10:30, 10:45], [11:15:00.001], [10-02 20:00], [10-03 09:00 ×2, 09:05]
    assert result.sessions == 4
    assert result.traits == [Trait("address.city", '"Zürich"', at("2026-10-03T09:00")),
                             Trait("email", '"ada@example.com"', at("2026-10-01T10:45")),
                             Trait("plan", '"pro"', at("2026-10-03T09:00"))]
    timeline = [(e.timestamp, e.event, e.distinct_id, e.session, e.session_start) for e in result.timeline]
    assert timeline[0] == (at("2026-10-03T09:05"), "purchase", "user-1", 4, False)
    # Two events at 09:00 open session 4: ordered by message id, the first of them starts it, and newest
    # first it is the later row of the two
    assert sorted(row[1] for row in timeline[1:3]) == ["identify", "purchase"]
    assert result.timeline[1].message_id > result.timeline[2].message_id
    assert [row[2:] for row in timeline[1:3]] == [("user-1", 4, False), ("user-1", 4, True)]
    assert [(e.timestamp, e.session, e.session_start) for e in result.timeline[3:]] == [
        (at("2026-10-02T20:00"), 3, True), (at("2026-10-01T11:15:00.001"), 2, True),
        (at("2026-10-01T10:45"), 1, False), (at("2026-10-01T10:30"), 1, False), (at("2026-10-01T10:00"), 1, True)]
    assert result.next_cursor is None


def test_the_timeline_pages_through_every_event_once(client, life):
    whole = profile(client, life, P1).timeline
    seen, cursor = [], None
    while True:
        page = profile(client, life, P1, limit=3, cursor=cursor)
        seen += page.timeline
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == whole and len({e.message_id for e in seen}) == 8


def test_a_wider_gap_joins_sessions(client, life):
    assert profile(client, life, P1, gap_minutes=31).sessions == 3
    assert profile(client, life, P1, gap_minutes=24 * 60).sessions == 2


def test_who_is_not_a_person_is_not_found(client, life):
    assert profile(client, life, "stranger").distinct_ids == ["stranger"]  # never identified: its own person
    assert profile(client, life, "stranger").traits == []
    for who in (P2, "phone", "user-1", "nobody", "00000000-0000-4000-8000-0000000000ff"):
        with pytest.raises(NotFound):
            profile(client, life, who)
    with pytest.raises(NotFound):
        profile(client, new_project(client), P1)  # another project's person


def test_bad_requests_name_their_field(client):
    for body, field in [({"person": P1, "cursor": "%%%"}, "cursor"), ({"person": P1, "limit": 0}, "limit"),
                        ({"person": P1, "limit": 1001}, "limit"), ({"person": ""}, "person"),
                        ({"person": P1, "gap_minutes": 0}, "gap_minutes"), ({}, "person")]:
        with pytest.raises(InvalidRequest) as refused:
            registry.decode("person", body)
        assert refused.value.field == field, body


def test_demo_persons_match_pandas(client, demo, frame):
    """Counts, times, revenue and sessions (30-minute gaps) of the busiest, the quietest and some others."""
    per = frame.groupby("person")
    counts = per.size().sort_values(kind="stable")
    chosen = [*counts.index[:3], *counts.index[-3:], *counts.index[len(counts) // 2:len(counts) // 2 + 3]]
    for who in chosen:
        events = frame[frame["person"] == who].sort_values("ts")
        result = profile(client, demo, who, limit=1000)
        gaps = events["ts"].diff() > pd.Timedelta(minutes=30)
        assert result.sessions == 1 + int(gaps.sum()), who
        assert (result.events, pd.Timestamp(result.first_seen), pd.Timestamp(result.last_seen)) == (
            len(events), events["ts"].min(), events["ts"].max())
        assert result.revenue == pytest.approx(events["revenue"].fillna(0).sum())
        assert [pd.Timestamp(e.timestamp) for e in result.timeline] == sorted(events["ts"], reverse=True)
        assert result.timeline[-1].session == 1 and result.timeline[0].session == result.sessions
