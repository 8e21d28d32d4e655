"""What the churn and LTV models share: their scikit-learn pipeline over the features, the trained result
they hand to the version store, and the measures both report (top-decile ordering, permutation importance)."""

from __future__ import annotations

from typing import Any

import msgspec
import threadpoolctl
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from nexus.errors import InvalidRequest
from nexus.predict import features
from nexus.predict.dataset import TrainingRange

MIN_TRAIN_ROWS = 200
MIN_VALIDATION_ROWS = 50
IMPORTANCE_ROWS = 1000  # permutation importance on at most this many validation rows: it predicts 2×24 times
_MAX_CATEGORIES = 60  # rarer values of a categorical feature share one code: the trees' bins stay few


class Trained(msgspec.Struct, frozen=True):
    """A fitted model and what its version records."""

    kind: str
    estimator: Any
    parameters: dict[str, Any]
    features: list[str]
    metrics: dict[str, Any]
    training: TrainingRange
    rows: dict[str, int]
    reference: dict[str, Any] = {}  # each feature's typical training value: median, or most common category


def reference(rows: pd.DataFrame) -> dict[str, Any]:
    """The training rows' median of each numeric feature and most common value of each categorical one: what
    a feature is set to when measuring how much a person's own value moves their score."""
    typical: dict[str, Any] = {name: float(rows[name].median()) for name in features.NUMERIC}
    for name in features.CATEGORICAL:
        counts = rows[name].value_counts()
        typical[name] = str(min(counts.index[counts == counts.max()]))
    return typical


def single_threaded() -> threadpoolctl.threadpool_limits:
    """A context in which scikit-learn's OpenMP loops use one thread. Measured on 2 shared cores at load ~7:
    fitting 3 calibration folds took 20 s with OpenMP's default threads and 3.6 s with one (its threads
    spin waiting for each other when the cores are busy), and permutation importance 226 s against 19 s."""
    return threadpoolctl.threadpool_limits(limits=1, user_api="openmp")


def pipeline(model: Any) -> Pipeline:
    """Categorical features as ordinal codes (unknown values as missing), numeric ones as they are, into
    `model`, a histogram gradient-boosting estimator told which columns are categorical."""
    encode = ColumnTransformer(
        [("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                        encoded_missing_value=-1, max_categories=_MAX_CATEGORIES),
          features.CATEGORICAL),
         ("numeric", "passthrough", features.NUMERIC)])
    model.set_params(categorical_features=list(range(len(features.CATEGORICAL))))
    return Pipeline([("encode", encode), ("model", model)])


def check_rows(train: pd.DataFrame, validation: pd.DataFrame) -> None:
    if len(train) < MIN_TRAIN_ROWS:
        raise InvalidRequest(f"training refused: {len(train)} training rows (persons active before the training "
                             f"cutoffs), fewer than the {MIN_TRAIN_ROWS} a model needs")
    if len(validation) < MIN_VALIDATION_ROWS:
        raise InvalidRequest(f"training refused: {len(validation)} validation rows, fewer than the "
                             f"{MIN_VALIDATION_ROWS} its metrics need")


def descending(scores: np.ndarray, person_keys: np.ndarray) -> np.ndarray:
    """Row positions by score, highest first, ties by person key: the same order on every run."""
    return np.lexsort((person_keys, -scores))


def top_decile(scores: np.ndarray, person_keys: np.ndarray) -> np.ndarray:
    """Positions of the top tenth of rows by score (at least one)."""
    return descending(scores, person_keys)[: max(1, int(np.ceil(len(scores) / 10)))]


def importance(estimator: Any, rows: pd.DataFrame, target: np.ndarray, scoring: str, seed: int) -> list[dict[str, Any]]:
    """Permutation importance of each feature on (a sample of) the validation rows, largest first: how much
    `scoring` drops when the feature's values are shuffled."""
    if len(rows) > IMPORTANCE_ROWS:
        sample = np.random.default_rng(seed).choice(len(rows), IMPORTANCE_ROWS, replace=False)
        rows, target = rows.iloc[np.sort(sample)], target[np.sort(sample)]
    found = permutation_importance(estimator, rows[features.FEATURES], target, scoring=scoring, n_repeats=2,
                                   random_state=seed)
    ranked = sorted(zip(features.FEATURES, found.importances_mean, strict=True), key=lambda p: (-p[1], p[0]))
    return [{"feature": name, "importance": round(float(value), 6)} for name, value in ranked]
