"""Churn: the probability that a person active in the last `active_days` does nothing at all in the
`horizon_days` after the cutoff (label 1 = no event in [cutoff, cutoff + horizon)).

A HistGradientBoostingClassifier over the features, its probabilities calibrated by isotonic regression
(CalibratedClassifierCV, 3 folds of the training rows), trained on the older cutoffs and measured on the
latest (nexus.predict.dataset). Metrics on the validation rows: ROC AUC, PR AUC (average precision),
Brier score, a calibration table (ten equal-width bins of predicted probability: mean prediction, observed
churn rate, persons), and the top-decile lift — the churn rate among the tenth with the highest scores over
the overall rate — beside the same for a recency-only baseline that ranks persons by days since their last
event. Permutation importance (ROC AUC drop) ranks the features.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from nexus.errors import InvalidRequest
from nexus.predict import dataset, features, training
from nexus.predict.dataset import Progress
from nexus.predict.training import Trained

CALIBRATION_BINS = 10


class ChurnRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    horizon_days: int = 14
    active_days: int = 30
    train_cutoffs: int = 4
    seed: int = 0
    activate: bool = True  # the new version scores from now on (the previous one stays, to roll back to)

    def __post_init__(self) -> None:
        check_common(self.horizon_days, self.active_days, self.train_cutoffs, self.seed)


def check_common(horizon_days: int, active_days: int, train_cutoffs: int, seed: int) -> None:
    if not 1 <= horizon_days <= 365:
        raise InvalidRequest("horizon_days must be between 1 and 365", field="horizon_days")
    if not 1 <= active_days <= 90:
        raise InvalidRequest("active_days must be between 1 and 90 (the features' longest window)", field="active_days")
    if not 1 <= train_cutoffs <= 26:
        raise InvalidRequest("train_cutoffs must be between 1 and 26", field="train_cutoffs")
    if not 0 <= seed < 2**32:
        raise InvalidRequest("seed must be between 0 and 2^32 - 1", field="seed")


def train(client: Client, project_id: int, request: ChurnRequest, progress: Progress = lambda f: None) -> Trained:
    """A calibrated churn model and its validation metrics, or a refusal saying why it cannot be trained."""
    plan = dataset.plan(client, project_id, request.horizon_days, request.train_cutoffs, request.active_days)
    train_rows, validation_rows = dataset.split(client, project_id, plan, lambda f: progress(0.6 * f))
    training.check_rows(train_rows, validation_rows)
    train_label, validation_label = labels(train_rows), labels(validation_rows)
    for name, label in (("training", train_label), ("validation", validation_label)):
        if label.min() == label.max():
            state = "churned" if label[0] else "stayed"
            raise InvalidRequest(f"training refused: every person of the {name} rows {state}: one class has "
                                 "nothing to learn from")
    if min(np.bincount(train_label)) < 3:
        raise InvalidRequest("training refused: fewer than 3 training rows of one class for 3 calibration folds")
    parameters = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "l2_regularization": 1.0,
                  "random_state": request.seed, "calibration": "isotonic", "calibration_folds": 3,
                  "horizon_days": request.horizon_days, "active_days": request.active_days}
    model = training.pipeline(HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=request.seed))
    estimator = CalibratedClassifierCV(model, method="isotonic", cv=3)
    with training.single_threaded():
        estimator.fit(train_rows[features.FEATURES], train_label)
        progress(0.8)
        metrics = evaluate(estimator, validation_rows, validation_label)
        metrics["importance"] = training.importance(estimator, validation_rows, validation_label, "roc_auc",
                                                    request.seed)
    progress(1.0)
    return Trained("churn", estimator, parameters, list(features.FEATURES), metrics, plan,
                   {"train": len(train_rows), "validation": len(validation_rows)},
                   training.reference(train_rows))


def labels(rows: pd.DataFrame) -> np.ndarray:
    """1 for a person with no event in the horizon after their row's cutoff, else 0."""
    return (rows["events_after"].to_numpy() == 0).astype(np.int64)


def predict(estimator: Any, rows: pd.DataFrame) -> np.ndarray:
    """Calibrated churn probabilities of `rows` (features as nexus.predict.features gives them)."""
    return estimator.predict_proba(rows[features.FEATURES])[:, 1]


def evaluate(estimator: Any, rows: pd.DataFrame, label: np.ndarray) -> dict[str, Any]:
    probability = predict(estimator, rows)
    keys = rows["person_key"].to_numpy()
    recency = rows["days_since_last"].to_numpy()
    base_rate = float(label.mean())
    lift = float(label[training.top_decile(probability, keys)].mean()) / base_rate
    baseline_lift = float(label[training.top_decile(recency, keys)].mean()) / base_rate
    return {
        "persons": len(rows), "churn_rate": round(base_rate, 6),
        "roc_auc": round(float(roc_auc_score(label, probability)), 6),
        "pr_auc": round(float(average_precision_score(label, probability)), 6),
        "brier": round(float(brier_score_loss(label, probability)), 6),
        "top_decile_lift": round(lift, 6),
        "baseline": {"name": "recency (days since the last event)",
                     "roc_auc": round(float(roc_auc_score(label, recency)), 6),
                     "pr_auc": round(float(average_precision_score(label, recency)), 6),
                     "top_decile_lift": round(baseline_lift, 6)},
        "calibration": calibration(probability, label),
    }


def calibration(probability: np.ndarray, label: np.ndarray) -> list[dict[str, Any]]:
    """Per bin of predicted probability ([0, 0.1), …, [0.9, 1]): persons, mean prediction, observed rate."""
    bins = np.minimum((probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    table = []
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        count = int(inside.sum())
        table.append({"low": b / CALIBRATION_BINS, "high": (b + 1) / CALIBRATION_BINS, "persons": count,
                      "predicted": round(float(probability[inside].mean()), 6) if count else None,
                      "observed": round(float(label[inside].mean()), 6) if count else None})
    return table
