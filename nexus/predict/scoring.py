"""Scoring: every person of a project, with the active churn and LTV versions and the engagement score, as
of one instant, written to `person_predictions` (sql/migrations/017_predictions.sql) as one row per person.

A run deletes its own rows (by run id) before inserting, so a retried run — after a worker died between
its insert and marking the job done — still leaves exactly one row per person. Deciles rank persons by
score, highest first, ties by person key: the tenth with the highest scores is decile 10.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest
from nexus.predict import churn, engagement, features, ltv, training, versions

TABLE = "person_predictions"


def deciles(scores: np.ndarray, person_keys: np.ndarray) -> np.ndarray:
    """10 for the tenth with the highest scores, … 1 for the lowest."""
    order = training.descending(scores, person_keys)
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(len(scores))
    return (10 - ranks * 10 // max(len(scores), 1)).astype(np.uint8)


def predictions(data_dir: Path, project_id: int, rows: pd.DataFrame) -> pd.DataFrame:
    """Scores of `rows` (features): churn and LTV from the active versions (NULL without one), engagement."""
    keys = rows["person_key"].to_numpy()
    scored = pd.DataFrame({"person_id": rows["person_id"], "person_key": rows["person_key"]})
    for kind, predict in (("churn", churn.predict), ("ltv", ltv.predict)):
        column = "churn_probability" if kind == "churn" else "ltv"
        version = versions.active(data_dir, project_id, kind)
        if version is None or rows.empty:
            scored[column] = pd.Series([None] * len(rows), dtype="Float64")
            scored[f"{kind}_decile"] = pd.Series([None] * len(rows), dtype="UInt8")
            scored[f"{kind}_version"] = ""
            continue
        with training.single_threaded():
            values = predict(versions.estimator(data_dir, version), rows)
        scored[column] = values
        scored[f"{kind}_decile"] = deciles(values, keys)
        scored[f"{kind}_version"] = version.version_id
    scored["engagement"] = engagement.of(rows)
    scored["engagement_decile"] = deciles(scored["engagement"].to_numpy(), keys)
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
    ("engagement", pa.float64()), ("engagement_decile", pa.uint8()),
])
