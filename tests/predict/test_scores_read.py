"""Reading scores: the predictions analysis (distributions and the persons most at risk, against pandas on the
same rows) and a person profile's latest scores, both from the project's latest scoring run only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nexus.analyses import person_profile, predictions
from nexus.analyses.person_profile import PersonRequest
from nexus.analyses.predictions import PredictionsRequest
from tests.analyses.journeys import at, insert_events, link, new_project

P1 = "00000000-0000-4000-8000-00000000bb01"
COLUMNS = ["project_id", "run_id", "scored_at", "person_id", "person_key", "churn_probability", "churn_decile", "ltv",
           "ltv_decile", "engagement", "engagement_decile", "churn_version", "ltv_version", "drivers"]
DRIVERS = {"churn": {"person": [{"feature": "days_since_last", "effect": 0.3}],
                     "model": [{"feature": "plan", "importance": 0.2}]}}


def _insert(client, project: int, run: str, when: str, frame: pd.DataFrame) -> None:
    keys = dict(client.query("SELECT arrayJoin({n:Array(String)}) AS n, cityHash64(n)",
                             parameters={"n": list(frame["person"])}).result_rows)
    client.insert("person_predictions", [
        [project, run, at(when), r.person, keys[r.person], r.churn, 1, r.ltv, 1, r.engagement, 1, "mv_c", "mv_l",
         json.dumps(DRIVERS)] for r in frame.itertuples()], column_names=COLUMNS)


@pytest.fixture(scope="module")
def scored(client) -> tuple[int, pd.DataFrame]:
    # Given an older run and a latest run of 500 persons with random scores (one is linked p1)
    project = new_project(client)
    link(client, project, {"u-0": P1})
    insert_events(client, project, {"u-0": [("page_view", "2026-10-01T10:00")]})
    rng = np.random.default_rng(4)
    people = [P1] + [f"u-{i}" for i in range(1, 500)]
    old = pd.DataFrame({"person": people, "churn": 0.5, "ltv": 1.0, "engagement": 50.0})
    _insert(client, project, "j_a", "2026-10-01T00:00", old)
    latest = pd.DataFrame({"person": people, "churn": rng.random(500).round(3),
                           "ltv": (rng.exponential(30, 500) * (rng.random(500) < 0.6)).round(2),
                           "engagement": rng.uniform(0, 100, 500).round(2)})
    latest.loc[0, ["churn", "ltv", "engagement"]] = [0.9, 1000.0, 12.5]
    latest.loc[1, "churn"] = 1.0  # on the last bin's upper edge
    _insert(client, project, "j_b", "2026-10-02T00:00", latest)
    return project, latest


def _histogram(values: pd.Series, high: float, bins: int) -> list[int]:
    index = np.minimum(np.floor(values / (high / bins)).astype(int), bins - 1)
    return [int((index == i).sum()) for i in range(bins)]


def test_distributions_and_at_risk_equal_pandas(client, scored) -> None:
    project, latest = scored
    result = predictions.run(client, project, PredictionsRequest(bins=8, top=15))
    assert (result.run_id, result.persons, result.churn_version) == ("j_b", 500, "mv_c")
    assert [b.persons for b in result.churn] == _histogram(latest["churn"], 1.0, 8)
    assert [b.persons for b in result.engagement] == _histogram(latest["engagement"], 100.0, 8)
    assert [b.persons for b in result.ltv] == _histogram(latest["ltv"], latest["ltv"].max(), 8)
    assert result.ltv[-1].high == latest["ltv"].max()
    loss = latest.assign(loss=latest["churn"] * latest["ltv"]).sort_values(["loss", "person"], ascending=[False, True])
    assert [(p.person, p.expected_loss) for p in result.at_risk] == [
        (r.person, pytest.approx(r.loss)) for r in loss.head(15).itertuples()]
    assert result.at_risk[0].person == P1 and result.at_risk[0].expected_loss == 900.0


def test_a_project_without_a_run_answers_empty(client) -> None:
    result = predictions.run(client, new_project(client), PredictionsRequest())
    assert (result.run_id, result.persons, result.churn, result.at_risk) == ("", 0, [], [])


def test_a_profile_shows_the_latest_scores_and_their_drivers(client, scored) -> None:
    project, _ = scored
    scores = person_profile.run(client, project, PersonRequest(person=P1)).scores
    assert (scores.churn_probability, scores.ltv, scores.engagement) == (0.9, 1000.0, 12.5)
    assert scores.scored_at == at("2026-10-02T00:00") and scores.drivers == DRIVERS
    # a person the latest run did not score has none
    insert_events(client, project, {"new": [("page_view", "2026-10-03T10:00")]})
    assert person_profile.run(client, project, PersonRequest(person="new")).scores is None
