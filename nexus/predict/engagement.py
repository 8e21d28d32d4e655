"""The engagement score: 0–100 from recency, frequency and breadth, no model needed (docs/metrics.md).

    score = 100 × (0.4 · R + 0.35 · F + 0.25 · B)
    R = exp(−days_since_last / 14)           recency: 1 when active just now, 0.5 after ~9.7 days
    F = 1 − exp(−active_days_30d / 8)        frequency: active days of the last 30, saturating
    B = 1 − exp(−distinct_events_90d / 4)    breadth: distinct event names of the last 90 days

Each term lies in [0, 1] and moves one way with its input, so the score falls strictly as the last event
recedes and rises strictly with active days and with breadth; a person active today on all 30 days with
many kinds of events nears 100, one not seen for months with one kind of event nears 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RECENCY_DAYS = 14.0
FREQUENCY_DAYS = 8.0
BREADTH_EVENTS = 4.0
WEIGHTS = (0.4, 0.35, 0.25)


def score(days_since_last: np.ndarray, active_days_30d: np.ndarray, distinct_events_90d: np.ndarray) -> np.ndarray:
    recency = np.exp(-np.maximum(days_since_last, 0.0) / RECENCY_DAYS)
    frequency = 1.0 - np.exp(-np.maximum(active_days_30d, 0.0) / FREQUENCY_DAYS)
    breadth = 1.0 - np.exp(-np.maximum(distinct_events_90d, 0.0) / BREADTH_EVENTS)
    return 100.0 * (WEIGHTS[0] * recency + WEIGHTS[1] * frequency + WEIGHTS[2] * breadth)


def of(rows: pd.DataFrame) -> np.ndarray:
    """The score of each row of features (nexus.predict.features)."""
    return score(rows["days_since_last"].to_numpy(), rows["active_days_30d"].to_numpy(),
                 rows["distinct_events_90d"].to_numpy())
