"""Lifetime value: the revenue (sum of the numeric `revenue` property) a person active in the last
`active_days` brings in the `horizon_days` after the cutoff.

A HistGradientBoostingRegressor with Poisson loss (revenue is non-negative and mostly zero; the loss
predicts its mean, which is what an expected value is), trained on the older cutoffs and measured on the
latest (nexus.predict.dataset). Metrics on the validation rows: mean absolute error and the top-decile
revenue capture — the share of all the horizon's revenue brought by the tenth of persons with the highest
predictions — beside the same for a historical-average baseline that predicts each person's average daily
revenue so far (revenue to date ÷ days since their first event, at least one) times the horizon.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error

from nexus.errors import InvalidRequest
from nexus.predict import dataset, features, training
from nexus.predict.churn import check_common
from nexus.predict.dataset import Progress
from nexus.predict.training import Trained


class LtvRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    horizon_days: int = 90
    active_days: int = 90
    train_cutoffs: int = 4
    seed: int = 0
    activate: bool = True

    def __post_init__(self) -> None:
        check_common(self.horizon_days, self.active_days, self.train_cutoffs, self.seed)


def train(client: Client, project_id: int, request: LtvRequest, progress: Progress = lambda f: None) -> Trained:
    """An LTV model and its validation metrics, or a refusal saying why it cannot be trained."""
    plan = dataset.plan(client, project_id, request.horizon_days, request.train_cutoffs, request.active_days)
    train_rows, validation_rows = dataset.split(client, project_id, plan, lambda f: progress(0.6 * f))
    training.check_rows(train_rows, validation_rows)
    for name, rows in (("training", train_rows), ("validation", validation_rows)):
        if not (rows["revenue_after"] > 0).any():
            raise InvalidRequest(f"training refused: no person of the {name} rows brought revenue in the "
                                 f"{request.horizon_days} days after their cutoff: nothing to learn from")
    parameters = {"loss": "poisson", "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31,
                  "l2_regularization": 1.0, "random_state": request.seed, "horizon_days": request.horizon_days,
                  "active_days": request.active_days}
    estimator = training.pipeline(HistGradientBoostingRegressor(
        loss="poisson", max_iter=100, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0,
        random_state=request.seed))
    target = train_rows["revenue_after"].to_numpy()
    with training.single_threaded():
        estimator.fit(train_rows[features.FEATURES], target)
        progress(0.8)
        validation_target = validation_rows["revenue_after"].to_numpy()
        metrics = evaluate(estimator, validation_rows, validation_target, request.horizon_days)
        metrics["importance"] = training.importance(estimator, validation_rows, validation_target,
                                                    "neg_mean_absolute_error", request.seed)
    progress(1.0)
    return Trained("ltv", estimator, parameters, list(features.FEATURES), metrics, plan,
                   {"train": len(train_rows), "validation": len(validation_rows)},
                   training.reference(train_rows))


def predict(estimator: Any, rows: pd.DataFrame) -> np.ndarray:
    """Expected revenue over the model's horizon for `rows` (features as nexus.predict.features gives them)."""
    return np.maximum(estimator.predict(rows[features.FEATURES]), 0.0)


def baseline(rows: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Each person's average daily revenue so far, times the horizon."""
    return rows["revenue_total"].to_numpy() / np.maximum(rows["tenure_days"].to_numpy(), 1.0) * horizon_days


def evaluate(estimator: Any, rows: pd.DataFrame, target: np.ndarray, horizon_days: int) -> dict[str, Any]:
    predicted = predict(estimator, rows)
    historical = baseline(rows, horizon_days)
    keys = rows["person_key"].to_numpy()
    total = float(target.sum())
    return {
        "persons": len(rows), "revenue": round(total, 6), "mean_revenue": round(float(target.mean()), 6),
        "mae": round(float(mean_absolute_error(target, predicted)), 6),
        "top_decile_capture": round(float(target[training.top_decile(predicted, keys)].sum()) / total, 6),
        "baseline": {"name": "historical average (revenue so far per day since the first event × horizon)",
                     "mae": round(float(mean_absolute_error(target, historical)), 6),
                     "top_decile_capture": round(float(target[training.top_decile(historical, keys)].sum()) / total,
                                                 6)},
    }
