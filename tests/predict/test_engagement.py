"""The engagement score: 0–100, monotone in recency, frequency and breadth, with the documented values."""

from __future__ import annotations

import math

import numpy as np

from nexus.predict import engagement


def test_the_documented_formula_at_known_points() -> None:
    assert engagement.score(np.array([0.0]), np.array([0.0]), np.array([0.0]))[0] == 40.0
    expected = 100 * (0.4 * math.exp(-1) + 0.35 * (1 - math.exp(-1)) + 0.25 * (1 - math.exp(-1)))
    assert engagement.score(np.array([14.0]), np.array([8.0]), np.array([4.0]))[0] == expected
    best = engagement.score(np.array([0.0]), np.array([30.0]), np.array([50.0]))[0]
    assert 97 < best <= 100


def test_monotone_in_each_input_and_within_0_to_100() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    recency, frequency, breadth = rng.uniform(0, 120, n), rng.integers(0, 31, n), rng.integers(0, 40, n)
    base = engagement.score(recency, frequency, breadth)
    assert ((base >= 0) & (base <= 100)).all()
    later = engagement.score(recency + rng.uniform(0.01, 30, n), frequency, breadth)
    more_days = engagement.score(recency, frequency + rng.integers(1, 10, n), breadth)
    broader = engagement.score(recency, frequency, breadth + rng.integers(1, 10, n))
    assert (later < base).all()
    assert (more_days > base).all()
    assert (broader > base).all()
