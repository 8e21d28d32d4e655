"""Predictions as a cohort condition ("churn risk > 0.7"): the persons of the project's latest scoring run
whose score passes, through identity merges, usable as an analysis filter like any cohort."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nexus.analyses import trends
from nexus.analyses.cohort_definition import Predicted
from nexus.analyses.dates import DateRange
from nexus.analyses.trends import Series, TrendsRequest
from nexus.errors import InvalidRequest
from tests.analyses.journeys import at, insert_events, link, new_project
from tests.analyses.test_cohorts import NOW, define, in_cohort, member_names

P1 = "00000000-0000-4000-8000-00000000aa01"
P2 = "00000000-0000-4000-8000-00000000aa02"
COLUMNS = ["project_id", "run_id", "scored_at", "person_id", "person_key", "churn_probability", "ltv", "engagement"]


def _scores(client, project: int, run: str, when: str, rows: dict[str, tuple]) -> None:
    """One scoring run's rows: person → (churn probability, LTV, engagement)."""
    key = {name: client.query("SELECT cityHash64({n:String})", parameters={"n": name}).result_rows[0][0]
           for name in rows}
    client.insert("person_predictions", [[project, run, at(when), name, key[name], *values]
                                         for name, values in rows.items()], column_names=COLUMNS)


@pytest.fixture(scope="module")
def scored(client) -> int:
    # Given p1 (anonymous a1 and user u1), p2 (u2) and unidentified u3, with page views in the last week,
    # an older run where p2 was at risk, and the latest run where p1 and u3 are, u4 has no churn score
    project = new_project(client)
    link(client, project, {"a1": P1, "u1": P1, "u2": P2})
    day = (NOW - timedelta(days=2)).isoformat()
    insert_events(client, project, {d: [("page_view", day)] for d in ("a1", "u1", "u2", "u3", "u4")})
    _scores(client, project, "j_old", "2026-10-29T00:00", {P1: (0.1, 5.0, 80.0), P2: (0.95, 0.0, 10.0),
                                                            "u3": (0.2, 0.0, 50.0)})
    _scores(client, project, "j_new", "2026-10-30T00:00", {P1: (0.9, 40.0, 20.0), P2: (0.2, 0.0, 60.0),
                                                            "u3": (0.75, 1.0, 30.0), "u4": (None, 2.0, 5.0)})
    return project


@pytest.mark.parametrize("condition, expected", [
    ({"score": "churn_probability", "operator": "gt", "value": 0.7}, {P1, "u3"}),
    ({"score": "churn_probability", "operator": "lte", "value": 0.2}, {P2}),
    ({"score": "ltv", "operator": "gte", "value": 1.0}, {P1, "u3", "u4"}),
    ({"score": "engagement", "operator": "lt", "value": 30}, {P1, "u4"}),
])
def test_members_are_the_latest_runs_persons_whose_score_passes(client, scored: int, condition: dict,
                                                               expected: set[str]) -> None:
    cohort = define(client, scored, [{"type": "prediction", **condition}])
    assert member_names(client, scored, cohort.cohort_id) == expected


def test_combined_with_behaviour_and_used_as_a_filter(client, scored: int) -> None:
    at_risk = define(client, scored, [{"type": "prediction", "score": "churn_probability", "value": 0.7},
                                      {"type": "performed", "event": "page_view", "days": 7}])
    assert member_names(client, scored, at_risk.cohort_id) == {P1, "u3"}
    request = TrendsRequest(series=[Series("page_view", "persons_exact")], date_range=DateRange("-7d"),
                            timezone="UTC", where=in_cohort(at_risk))
    assert trends.run(client, scored, request, now=NOW).lines[0].total == 2


def test_a_project_without_scores_has_no_members(client) -> None:
    project = new_project(client)
    insert_events(client, project, {"u1": [("page_view", (NOW - timedelta(days=1)).isoformat())]})
    cohort = define(client, project, [{"type": "prediction", "score": "churn_probability", "operator": "lt",
                                       "value": 2}])
    assert member_names(client, project, cohort.cohort_id) == set()


def test_a_score_that_is_not_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        Predicted("churn_probability", float("nan"))
    assert refused.value.field == "value"
