"""The Predictions page in Chromium: its distributions draw, the at-risk list is the one POST
/v1/analyses/predictions answers (a hostile person id shown as text, linking to the profile), the active
churn model's calibration draws and its version is listed with its metrics; project B's key sees none of it.
Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from nexus.predict import versions
from nexus.predict.dataset import TrainingRange
from nexus.predict.training import Trained
from tests.dashboard.conftest import XSS, Browse, Stack, page_text, wait_for_plots

pytestmark = pytest.mark.dashboard

COLUMNS = ["project_id", "run_id", "scored_at", "person_id", "person_key", "churn_probability", "ltv", "engagement",
           "drivers"]
CALIBRATION = [{"low": b / 10, "high": (b + 1) / 10, "persons": 10, "predicted": b / 10 + 0.05,
                "observed": b / 10 + 0.04} for b in range(10)]


@pytest.fixture(scope="module")
def scored(stack: Stack) -> versions.ModelVersion:
    client, project = stack.runtime.clickhouse, stack.a.project_id
    moment = datetime(2026, 10, 30, tzinfo=timezone.utc)
    people = [(XSS, 0.95, 500.0, 10.0)] + [(f"p-{i}", i / 40, float(i), 50.0) for i in range(40)]
    client.insert("person_predictions", [[project, "j_page", moment, name, i + 1, churn, ltv, engagement, "{}"]
                                         for i, (name, churn, ltv, engagement) in enumerate(people)],
                  column_names=COLUMNS)
    metrics = {"roc_auc": 0.81, "top_decile_lift": 1.9, "calibration": CALIBRATION,
               "baseline": {"roc_auc": 0.7, "top_decile_lift": 1.5}, "importance": []}
    trained = Trained("churn", {"not": "a model"}, {"seed": 1}, ["days_since_last"], metrics,
                      TrainingRange([moment], moment, 14, 30), {"train": 1234, "validation": 321})
    version = versions.save(stack.runtime.settings.data_dir, project, trained)
    versions.activate(stack.runtime.settings.data_dir, project, "churn", version.version_id)
    return version


def test_the_predictions_page_shows_what_the_analysis_api_answers(browse: Browse, stack: Stack,
                                                                   scored: versions.ModelVersion) -> None:
    page = browse.page(stack.a.keys["read"], "/predictions")
    wait_for_plots(page, 3)  # churn and engagement histograms, the calibration (no LTV model scored)
    page.locator("[data-role=at-risk] tbody tr").first.wait_for()
    answer = stack.analysis(stack.a, "predictions", {"bins": 10, "top": 20})
    rows = page.locator("[data-role=at-risk] tbody tr")
    assert rows.count() == len(answer["at_risk"]) == 20
    first = rows.first.locator("td")
    assert first.nth(0).inner_text() == answer["at_risk"][0]["person"] == XSS  # the hostile id, as text
    assert "/person?" in rows.first.locator("a").get_attribute("href")
    assert first.nth(1).inner_text() == "0.95"
    text = page_text(page)
    assert scored.version_id in text and "0.810 · 1.90" in text and "1,234 / 321" in text
    assert "No active model scores" in text  # the LTV histogram, without an LTV model
    browse.assert_clean()


def test_project_b_sees_none_of_project_a_s_predictions(browse: Browse, stack: Stack,
                                                        scored: versions.ModelVersion) -> None:
    page = browse.page(stack.b.keys["read"], "/predictions")
    page.locator("[data-role=predictions-empty]").first.wait_for()
    text = page_text(page)
    assert scored.version_id not in text and "p-1" not in text and json.dumps(XSS)[1:-1] not in text
    browse.assert_clean()
