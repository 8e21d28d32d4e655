"""Cohorts: membership of each condition against pandas on demo data and on hand-written journeys, the
cohort filter and breakdown in trends, funnels, retention and sessions against references, cohort_size,
static cohorts, and another project's cohort refused."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pandas as pd
import pytest

from nexus.analyses import cohort_size, funnels, retention, sessions, trends
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.cohort_definition import Definition
from nexus.analyses.cohort_membership import members
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.funnel_persons import FunnelPersonsRequest
from nexus.analyses.funnels import FunnelRequest, FunnelStep
from nexus.analyses.retention import RetentionEvent, RetentionRequest
from nexus.analyses.sessions import SessionsRequest
from nexus.analyses.sql import Params, fetch
from nexus.analyses.trends import Series, TrendsRequest
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import cohorts
from nexus.meta.cohorts import CohortInput, FromAnalysis
from tests.analyses.journeys import at, insert_events, link, new_project, person
from tests.conftest import DEMO_END

NOW = at("2026-10-31T12:00")
P1 = "00000000-0000-4000-8000-000000000001"


def define(client, project_id, conditions, match="all", name=None):
    """A saved dynamic cohort of `conditions` (dicts, as the API takes them)."""
    definition = msgspec.convert({"conditions": conditions, "match": match}, Definition)
    data = CohortInput(name or f"c{len(cohorts.list_all(client, project_id))}", definition)
    return cohorts.create(client, project_id, data, "test")


def member_names(client, project_id, cohort_id, now=NOW) -> set[str]:
    """The members as person ids (or distinct ids of persons never identified): keys matched back to names."""
    stored = cohorts.stored(client, project_id, cohort_id)
    params = Params(project_id, Cohorts({cohort_id: stored}, "UTC", now))
    sql = members(stored, params)
    names = params.add(0, "UInt8")  # (unused: keeps the parameter list the query binds)
    rows = fetch(client, params.query(
        f"SELECT DISTINCT name FROM (SELECT if(i.person_id = '', e.distinct_id, i.person_id) AS name,"
        f" cityHash64(name) AS key FROM events AS e LEFT ANY JOIN (SELECT distinct_id, toString(person_id) AS person_id"
        f" FROM identities FINAL WHERE project_id = {{project_id:UInt32}}) AS i ON i.distinct_id = e.distinct_id"
        f" WHERE e.project_id = {{project_id:UInt32}} AND {names} = 0) WHERE key IN ({sql})"))
    return {name for (name,) in rows}


def test_performed_counts_within_the_window_edges_and_merged_ids(client):
    # Given u1 identified mid-way as p1 (anon a1's events count for p1), repeated events, and events exactly
    # at the window's edges: [now - 7d, now) includes its start and excludes now.
    project = new_project(client)
    start = NOW - timedelta(days=7)
    insert_events(client, project, {
        "a1": [("buy", "2026-10-25T10:00")],
        "u1": [("buy", "2026-10-30T10:00")],
        "u2": [("buy", start.isoformat()), ("buy", "2026-10-26T00:00")],
        "u3": [("buy", (start - timedelta(milliseconds=1)).isoformat()), ("buy", "2026-10-30T00:00")],
        "u4": [("buy", NOW.isoformat()), ("buy", "2026-10-30T00:00"), ("view", "2026-10-30T00:00")],
        "u5": [("view", "2026-10-30T00:00")],
    })
    link(client, project, {"a1": P1, "u1": P1})
    twice = define(client, project, [{"type": "performed", "event": "buy", "count": 2, "days": 7}])
    assert member_names(client, project, twice.cohort_id) == {P1, "u2"}
    at_most_one = define(client, project, [{"type": "performed", "event": "buy", "operator": "at_most", "count": 1,
                                            "days": 7}])
    assert member_names(client, project, at_most_one.cohort_id) == {"u3", "u4", "u5"}
    exactly_one = define(client, project, [{"type": "performed", "event": "buy", "operator": "exactly", "count": 1,
                                            "days": 7}])
    assert member_names(client, project, exactly_one.cohort_id) == {"u3", "u4"}
