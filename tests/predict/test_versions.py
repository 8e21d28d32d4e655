"""The model store: versions saved whole, listed newest first, activated and rolled back, per project."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from nexus.errors import InvalidRequest, NotFound
from nexus.predict import versions
from nexus.predict.dataset import TrainingRange
from nexus.predict.training import Trained


def _trained(kind: str, weight: float) -> Trained:
    moment = datetime(2026, 10, 1, tzinfo=timezone.utc)
    return Trained(kind, {"weight": weight}, {"seed": 1}, ["days_since_last"], {"roc_auc": weight},
                   TrainingRange([moment], moment, 14, 30), {"train": 300, "validation": 60})


def test_activate_and_roll_back(tmp_path) -> None:
    first = versions.save(tmp_path, 1, _trained("churn", 0.7))
    time.sleep(0.002)  # versions list newest first by their creation time, kept to the millisecond
    second = versions.save(tmp_path, 1, _trained("churn", 0.8))
    assert versions.active(tmp_path, 1, "churn") is None
    assert versions.projects_with_active(tmp_path) == []
    versions.activate(tmp_path, 1, "churn", first.version_id)
    versions.activate(tmp_path, 1, "churn", second.version_id)
    listed = versions.listing(tmp_path, 1)
    assert [(v.version.version_id, v.active) for v in listed] == [(second.version_id, True), (first.version_id, False)]
    assert versions.estimator(tmp_path, second) == {"weight": 0.8}
    assert versions.roll_back(tmp_path, 1, "churn").version_id == first.version_id
    assert versions.active(tmp_path, 1, "churn").version_id == first.version_id
    with pytest.raises(InvalidRequest, match="no earlier active churn model"):
        versions.roll_back(tmp_path, 1, "churn")
    assert versions.projects_with_active(tmp_path) == [1]
    assert versions.listing(tmp_path, 1, "ltv") == []


def test_another_projects_version_is_not_found(tmp_path) -> None:
    mine = versions.save(tmp_path, 1, _trained("ltv", 1.0))
    with pytest.raises(NotFound):
        versions.activate(tmp_path, 2, "ltv", mine.version_id)
    with pytest.raises(NotFound):
        versions.get(tmp_path, 1, "ltv", "../1/ltv/" + mine.version_id)
    assert versions.listing(tmp_path, 2) == []
    with pytest.raises(InvalidRequest) as refused:
        versions.listing(tmp_path, 1, "growth")
    assert refused.value.field == "kind"
