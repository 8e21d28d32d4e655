"""Scoring: every person of a project, with the active churn and LTV versions and the engagement score, as
of one instant, written to `person_predictions` (sql/migrations/017_predictions.sql) as one row per person.

A run deletes its own rows (by run id) before inserting, so a retried run — after a worker died between
its insert and marking the job done — still leaves exactly one row per person. Deciles rank persons by
score, highest first, ties by person key: the tenth with the highest scores is decile 10. `drivers`
holds, per model, the three features whose own value moved the person's score most (`contributions`) and
the model's five most important features (permutation importance, from its version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest
from nexus.predict import churn, engagement, features, ltv, training, versions

TABLE = "person_predictions"
DRIVERS = 3  # per person and model, the features that moved the score most
MODEL_DRIVERS = 5  # per model, its top features by permutation importance


def deciles(scores: np.ndarray, person_keys: np.ndarray) -> np.ndarray:
    """10 for the tenth with the highest scores, … 1 for the lowest."""
    order = training.descending(scores, person_keys)
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(len(scores))
    return (10 - ranks * 10 // max(len(scores), 1)).astype(np.uint8)


def contributions(estimator: Any, predict: Callable[[Any, pd.DataFrame], np.ndarray], rows: pd.DataFrame,
                  reference: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Per person and feature (columns in `features.FEATURES` order): the score minus the score with that
    feature at its typical training value — how much the person's own value moved their score. Gradient
    boosting offers no exact per-person attribution; this one needs a prediction per feature."""
    effects = np.zeros((len(rows), len(features.FEATURES)))
    for j, name in enumerate(features.FEATURES):
        if name not in reference:
            continue
        typical = rows.copy()
        typical[name] = reference[name]
        effects[:, j] = scores - predict(estimator, typical)
    return effects


def _drivers(effects: dict[str, np.ndarray], model_top: dict[str, list[dict[str, Any]]], n: int) -> list[str]:
    """Each row's `drivers` JSON: per model, its DRIVERS largest effects and the model's own top features."""
    tops = {kind: np.argsort(-np.abs(values), axis=1, kind="stable")[:, :DRIVERS] for kind, values in effects.items()}
    names = features.FEATURES
    return [msgspec.json.encode({kind: {"person": [{"feature": names[j], "effect": round(float(effects[kind][i, j]), 6)}
                                                   for j in tops[kind][i]],
                                        "model": model_top[kind]} for kind in effects}).decode()
            for i in range(n)]


def predictions(data_dir: Path, project_id: int, rows: pd.DataFrame) -> pd.DataFrame:
    """Scores of `rows` (features): churn and LTV from the active versions (NULL without one), engagement,
    and each person's drivers."""
    keys = rows["person_key"].to_numpy()
    scored = pd.DataFrame({"person_id": rows["person_id"], "person_key": rows["person_key"]})
    effects: dict[str, np.ndarray] = {}
    model_top: dict[str, list[dict[str, Any]]] = {}
    for kind, predict in (("churn", churn.predict), ("ltv", ltv.predict)):
        column = "churn_probability" if kind == "churn" else "ltv"
        version = versions.active(data_dir, project_id, kind)
        if version is None or rows.empty:
            scored[column] = pd.Series([None] * len(rows), dtype="Float64")
            scored[f"{kind}_decile"] = pd.Series([None] * len(rows), dtype="UInt8")
            scored[f"{kind}_version"] = ""
            continue
        estimator = versions.estimator(data_dir, version)
        with training.single_threaded():
            values = predict(estimator, rows)
            effects[kind] = contributions(estimator, predict, rows, version.reference, values)
        model_top[kind] = version.metrics.get("importance", [])[:MODEL_DRIVERS]
        scored[column] = values
        scored[f"{kind}_decile"] = deciles(values, keys)
        scored[f"{kind}_version"] = version.version_id
    scored["engagement"] = engagement.of(rows)
    scored["engagement_decile"] = deciles(scored["engagement"].to_numpy(), keys)
    scored["drivers"] = _drivers(effects, model_top, len(rows)) if effects else "{}"
    return scored


def score(client: Client, data_dir: Path, project_id: int, run_id: str, at: datetime,
          progress: Callable[[float], None] = lambda fraction: None) -> int:
    """Score every person with an event before `at`; returns how many rows the run wrote."""
    if not run_id:
        raise InvalidRequest("a scoring run needs an id")
    rows = features.extract(client, project_id, at)
    progress(0.4)
    scored = predictions(data_dir, project_id, rows)
    progress(0.7)
    scored.insert(0, "scored_at", pd.Timestamp(at))
    scored.insert(0, "run_id", run_id)
    scored.insert(0, "project_id", project_id)
    table = pa.Table.from_pandas(scored, preserve_index=False, schema=_SCHEMA)
    client.command(f"DELETE FROM {TABLE} WHERE project_id = {{p:UInt32}} AND run_id = {{r:String}}",
                   parameters={"p": project_id, "r": run_id})
    if table.num_rows:
        client.insert_arrow(TABLE, table)
    progress(1.0)
    return table.num_rows


_SCHEMA = pa.schema([
    ("project_id", pa.uint32()), ("run_id", pa.string()), ("scored_at", pa.timestamp("ms", tz="UTC")),
    ("person_id", pa.string()), ("person_key", pa.uint64()),
    ("churn_probability", pa.float64()), ("churn_decile", pa.uint8()), ("churn_version", pa.string()),
    ("ltv", pa.float64()), ("ltv_decile", pa.uint8()), ("ltv_version", pa.string()),
    ("engagement", pa.float64()), ("engagement_decile", pa.uint8()), ("drivers", pa.string()),
])
