"""Assignment to variants: frozen answers (a change of hash or of slicing fails here), uniform over 100k ids
by chi-square, independent between experiments by a contingency test, weights respected."""

from __future__ import annotations

import numpy as np
from scipy import stats

from nexus.meta.experiment_assignment import assign, assign_all, point
from nexus.meta.experiments import Variant

THREE = [Variant("control"), Variant("b"), Variant("c")]
TWO = [Variant("x"), Variant("y")]
IDS = [f"user-{i}" for i in range(100_000)]


def test_assignments_are_frozen():
    # Computed once and written down: any process, any restart, any release gives these.
    assert [assign("checkout", THREE, i) for i in ("user-1", "user-2", "anon-3", "ü-4", "5", "user-6")] == [
        "control", "control", "control", "c", "c", "c"]
    assert point("checkout", "user-1") == 0.03999887188261688
    assert point("checkout", "ü-4") == 0.9111116431953236


def test_slices_follow_the_points_and_weights():
    # user-2's point is 0.332: in the control's third of an even split, in b's slice when control weighs 1 of 4
    assert assign("checkout", THREE, "user-2") == "control"
    assert assign("checkout", [Variant("control"), Variant("b", 3)], "user-2") == "b"
    # Weights are relative: 1/1 and 50/50 split alike
    assert assign_all("checkout", [Variant("a", 50), Variant("b", 50)], IDS[:1000]) == assign_all(
        "checkout", [Variant("a"), Variant("b")], IDS[:1000])


def test_uniform_over_100k_ids_by_chi_square():
    counts = np.unique(assign_all("checkout", THREE, IDS), return_counts=True)[1]
    assert stats.chisquare(counts).pvalue > 0.001
    # And the points themselves: uniform on [0, 1) by Kolmogorov–Smirnov
    assert stats.kstest([point("checkout", i) for i in IDS[:20_000]], "uniform").pvalue > 0.001


def test_weights_are_respected():
    weighted = [Variant("control", 1), Variant("b", 2), Variant("c", 7)]
    counts = [assign_all("pricing", weighted, IDS).count(v.key) for v in weighted]
    assert stats.chisquare(counts, [10_000, 20_000, 70_000]).pvalue > 0.001
    # A skewed split is refused by the same test: it can fail
    assert stats.chisquare(counts, [12_000, 20_000, 68_000]).pvalue < 0.001


def test_two_experiments_assign_independently():
    first = assign_all("checkout", THREE, IDS)
    assert stats.chi2_contingency(contingency(first, assign_all("pricing", TWO, IDS))).pvalue > 0.001
    points = np.array([[point("checkout", i), point("pricing", i)] for i in IDS[:20_000]])
    assert abs(stats.pearsonr(points[:, 0], points[:, 1]).statistic) < 0.03
    # Under one key the points are the same, and the test sees the dependence: it can fail
    assert stats.chi2_contingency(contingency(first, assign_all("checkout", TWO, IDS))).pvalue < 0.001


def contingency(first: list[str], second: list[str]) -> np.ndarray:
    table = np.zeros((3, 2))
    for a, b in zip(first, second):
        table[("control", "b", "c").index(a), ("x", "y").index(b)] += 1
    return table
