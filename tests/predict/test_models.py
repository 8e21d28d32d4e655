"""Churn and LTV models on demo data beat their baselines by a stated margin, training with a fixed seed is
reproducible (same content hash, same metrics), and training refuses with a reason when it cannot learn."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nexus.errors import InvalidRequest
from nexus.predict import churn, ltv, versions
from nexus.predict.training import Trained
from tests.analyses.journeys import insert_events, new_project
from tests.conftest import DEMO_END


@pytest.fixture(scope="module")
def churn_model(client, demo_project: int) -> Trained:
    return churn.train(client, demo_project, churn.ChurnRequest(seed=7))


@pytest.fixture(scope="module")
def ltv_model(client, demo_project: int) -> Trained:
    return ltv.train(client, demo_project, ltv.LtvRequest(horizon_days=28, seed=7))


def test_churn_beats_the_recency_baseline(churn_model: Trained) -> None:
    metrics = churn_model.metrics
    # the time split: four weekly training cutoffs, each with its horizon before the validation cutoff
    training = churn_model.training
    assert len(training.train_cutoffs) == 4
    assert training.train_cutoffs[-1] + timedelta(days=14) <= training.validation_cutoff
    assert training.validation_cutoff == DEMO_END - timedelta(days=14)
    assert churn_model.rows["train"] > 5000 and churn_model.rows["validation"] > 1000
    # the margins the README states
    assert metrics["roc_auc"] >= metrics["baseline"]["roc_auc"] + 0.08
    assert metrics["pr_auc"] > metrics["baseline"]["pr_auc"]
    assert metrics["top_decile_lift"] > metrics["baseline"]["top_decile_lift"] + 0.05
    assert metrics["brier"] < 0.16
    # calibrated: every filled bin's observed churn rate within 0.12 of its mean prediction
    table = metrics["calibration"]
    assert sum(b["persons"] for b in table) == metrics["persons"]
    for b in table:
        if b["persons"] >= 100:
            assert abs(b["observed"] - b["predicted"]) < 0.12, b
            assert b["low"] <= b["predicted"] <= b["high"]
    assert {i["feature"] for i in metrics["importance"]} == set(churn_model.features)


def test_ltv_beats_the_historical_average_baseline(ltv_model: Trained) -> None:
    metrics = ltv_model.metrics
    assert metrics["revenue"] > 0
    assert metrics["top_decile_capture"] >= metrics["baseline"]["top_decile_capture"] + 0.02
    assert metrics["mae"] < metrics["baseline"]["mae"]


def test_a_fixed_seed_gives_the_same_hash_and_metrics(client, demo_project: int, tmp_path) -> None:
    request = churn.ChurnRequest(train_cutoffs=1, seed=3)
    first, second = churn.train(client, demo_project, request), churn.train(client, demo_project, request)
    saved = [versions.save(tmp_path, demo_project, t) for t in (first, second)]
    assert saved[0].content_hash == saved[1].content_hash
    assert saved[0].version_id != saved[1].version_id
    assert first.metrics == second.metrics


def test_training_refuses_what_it_cannot_learn_from(client) -> None:
    empty = new_project(client)
    with pytest.raises(InvalidRequest, match="no events"):
        churn.train(client, empty, churn.ChurnRequest())
    # Given 300 persons active every day for 60 days: nobody churns
    steady = new_project(client)
    start = DEMO_END - timedelta(days=60)
    insert_events(client, steady, {f"p{i}": [("page_view", (start + timedelta(days=d, hours=i % 20)).isoformat())
                                             for d in range(60)] for i in range(300)})
    with pytest.raises(InvalidRequest, match="every person of the training rows stayed"):
        churn.train(client, steady, churn.ChurnRequest())
    with pytest.raises(InvalidRequest, match="no person of the training rows brought revenue"):
        ltv.train(client, steady, ltv.LtvRequest(horizon_days=14))
    # a horizon the span cannot hold
    with pytest.raises(InvalidRequest, match="a 90-day horizon needs at least 194") as refused:
        ltv.train(client, steady, ltv.LtvRequest())
    assert refused.value.field == "horizon_days"
    # too few persons
    few = new_project(client)
    insert_events(client, few, {f"p{i}": [("page_view", (start + timedelta(days=d)).isoformat()) for d in range(0, 60, 3)]
                                for i in range(5)})
    with pytest.raises(InvalidRequest, match="5 validation rows|training rows"):
        churn.train(client, few, churn.ChurnRequest())


@pytest.mark.parametrize("body, field", [({"horizon_days": 0}, "horizon_days"), ({"active_days": 91}, "active_days"),
                                         ({"train_cutoffs": 0}, "train_cutoffs"), ({"seed": -1}, "seed")])
def test_requests_name_the_field_at_fault(body: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        churn.ChurnRequest(**body)
    assert refused.value.field == field
