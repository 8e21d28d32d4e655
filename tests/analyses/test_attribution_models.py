"""The data-driven attribution models on worked examples computed by hand, and on their properties."""

from __future__ import annotations

import random
from fractions import Fraction
from itertools import pairwise

import pytest

from nexus.analyses.attribution_models import (
    MAX_SHAPLEY_CHANNELS,
    OTHER_CHANNEL,
    PathCount,
    markov_conversion_probability,
    markov_credits,
    markov_removal_effect,
    shapley_credits,
    shapley_values,
)

P = PathCount

# Two channels: A alone 10 of 100 convert, B alone 5 of 50, A then B 20 of 50.
TWO_CHANNELS = [P(("A",), 10, 90, 100.0), P(("B",), 5, 45, 50.0), P(("A", "B"), 20, 30, 400.0)]


def exact(credits: dict[str, float]) -> dict[str, Fraction]:
    return {channel: Fraction(credit).limit_denominator(1000) for channel, credit in credits.items()}


def test_markov_two_channels_by_hand() -> None:
    # start → A 150 (the A and A-B paths), start → B 50: 3/4 and 1/4.
    # A leaves 150 times: → B 50, → conversion 10, → null 90.  B leaves 100 times: conversion 25, null 75.
    # x_B = 1/4; x_A = 10/150 + 50/150 · 1/4 = 3/20; P = 3/4 · 3/20 + 1/4 · 1/4 = 7/40.
    # Without A: P = 1/4 · 1/4 = 1/16, effect 1 − (1/16)/(7/40) = 9/14.
    # Without B: P = 3/4 · 10/150 = 1/20, effect 1 − (1/20)/(7/40) = 5/7 = 10/14.
    # 35 conversions split 9 : 10 → A 315/19, B 350/19; the value 550 the same way → 4950/19, 5500/19.
    assert markov_conversion_probability(TWO_CHANNELS) == pytest.approx(7 / 40)
    assert exact(markov_removal_effect(TWO_CHANNELS)) == {"A": Fraction(315, 19), "B": Fraction(350, 19)}
    assert exact({c: v.value for c, v in markov_credits(TWO_CHANNELS).items()}) == {
        "A": Fraction(4950, 19), "B": Fraction(5500, 19)}


def test_markov_three_channels_by_hand() -> None:
    paths = [P(("A", "C"), 2, 2), P(("B", "C"), 1, 3), P(("A", "B"), 0, 2)]
    # start → A 6, → B 4 (3/5, 2/5).  A → C 4, → B 2 (2/3, 1/3).  B → C 4, → null 2 (2/3, 1/3).
    # C → conversion 3, → null 5 (3/8).
    # x_C = 3/8, x_B = 2/3 · 3/8 = 1/4, x_A = 2/3 · 3/8 + 1/3 · 1/4 = 1/3, P = 3/5 · 1/3 + 2/5 · 1/4 = 3/10.
    # Without A: P = 2/5 · 1/4 = 1/10, effect 2/3.  Without B: x_A = 1/4, P = 3/20, effect 1/2.
    # Without C: P = 0, effect 1.  Effects sum to 13/6; 3 conversions → A 12/13, B 9/13, C 18/13.
    assert markov_conversion_probability(paths) == pytest.approx(3 / 10)
    assert exact(markov_removal_effect(paths)) == {"A": Fraction(12, 13), "B": Fraction(9, 13), "C": Fraction(18, 13)}


def test_shapley_two_channels_by_hand() -> None:
    # v(A) = 10, v(B) = 5, v(AB) = 35.  φ_A = ½·10 + ½·(35 − 5) = 20, φ_B = ½·5 + ½·(35 − 10) = 15.
    # Value: v(A) = 100, v(B) = 50, v(AB) = 550 → φ_A = 50 + 250 = 300, φ_B = 25 + 225 = 250.
    assert shapley_values(TWO_CHANNELS) == pytest.approx({"A": 20.0, "B": 15.0})
    assert {c: v.value for c, v in shapley_credits(TWO_CHANNELS).items()} == pytest.approx({"A": 300.0, "B": 250.0})


def test_shapley_three_channels_by_hand() -> None:
    paths = [P(("A",), 6, 4), P(("B", "A"), 6, 0), P(("C", "B"), 4, 1), P(("A", "C", "B", "A"), 4, 2),
             P(("C",), 0, 10)]
    # v(A)=6 v(B)=0 v(C)=0 v(AB)=12 v(AC)=6 v(BC)=4 v(ABC)=20; weights 1/3 (|S| = 0 or 2) and 1/6 (|S| = 1).
    # φ_A = 1/3·6 + 1/6·12 + 1/6·6 + 1/3·(20 − 4) = 31/3
    # φ_B = 1/3·0 + 1/6·(12 − 6) + 1/6·4 + 1/3·(20 − 6) = 19/3
    # φ_C = 1/3·0 + 1/6·(6 − 6) + 1/6·(4 − 0) + 1/3·(20 − 12) = 10/3
    assert exact(shapley_values(paths)) == {"A": Fraction(31, 3), "B": Fraction(19, 3), "C": Fraction(10, 3)}


def random_paths(seed: int, channels: int, count: int = 300) -> list[PathCount]:
    rng = random.Random(seed)
    names = [f"ch{i}" for i in range(channels)]
    paths = []
    for _ in range(count):
        conversions = rng.randint(0, 4)
        value = round(rng.uniform(0, 100) * conversions, 2)
        paths.append(P(tuple(rng.choices(names, k=rng.randint(1, 5))), conversions, rng.randint(0, 20), value))
    return paths


@pytest.mark.parametrize("model", [markov_credits, shapley_credits])
@pytest.mark.parametrize("channels", [3, 8, MAX_SHAPLEY_CHANNELS + 5])
def test_credits_sum_to_the_total_conversions_and_value(model, channels: int) -> None:
    paths = random_paths(channels, channels)
    credits = model(paths).values()
    assert sum(c.conversions for c in credits) == pytest.approx(sum(p.conversions for p in paths))
    assert sum(c.value for c in credits) == pytest.approx(sum(p.value for p in paths))
    assert all(c.conversions >= 0 for c in credits)


@pytest.mark.parametrize("model", [markov_removal_effect, shapley_values])
def test_symmetric_channels_get_equal_credit(model) -> None:
    # A and B play the same part: every path with one has its mirror image with the other.
    paths = [P(("A", "C"), 3, 5), P(("B", "C"), 3, 5), P(("A", "B"), 2, 1), P(("B", "A"), 2, 1),
             P(("C", "A"), 1, 7), P(("C", "B"), 1, 7), P(("C",), 4, 4)]
    credits = model(paths)
    assert credits["A"] == pytest.approx(credits["B"])
    assert credits["C"] != pytest.approx(credits["A"])


def test_a_channel_on_no_converting_path_gets_nothing() -> None:
    # D is only ever the last touch before leaving: no conversion is reachable from it in the chain either.
    paths = [P(("A", "D"), 0, 9), P(("D",), 0, 4), P(("A",), 3, 2), P(("B", "A"), 2, 2)]
    assert markov_removal_effect(paths)["D"] == 0.0
    assert shapley_values(paths)["D"] == 0.0
    assert shapley_values(paths)["A"] > 0 and markov_removal_effect(paths)["B"] > 0


def test_markov_is_first_order_a_channel_leading_into_a_converting_one_earns() -> None:
    # X never converts on its own path, but the chain's X → Y → conversion route is a route all the same;
    # Shapley, over sets, gives X nothing.  start → X, Y 1/2 each; X → Y 1/2; Y converts 1/3 (1 of 3).
    # P = 1/2 · 1/2 · 1/3 + 1/2 · 1/3 = 1/4; without X 1/6 (effect 1/3), without Y 0 (effect 1) → 1/4, 3/4.
    paths = [P(("X", "Y"), 0, 1), P(("X",), 0, 1), P(("Y",), 1, 1)]
    assert exact(markov_removal_effect(paths)) == {"X": Fraction(1, 4), "Y": Fraction(3, 4)}
    assert shapley_values(paths) == {"Y": 1.0, "X": 0.0}


@pytest.mark.parametrize("model", [markov_credits, shapley_credits])
def test_the_order_of_the_paths_does_not_matter(model) -> None:
    paths = random_paths(7, 9)
    shuffled = paths[:]
    random.Random(1).shuffle(shuffled)
    expected = model(paths)
    got = model(shuffled)
    assert got.keys() == expected.keys()
    for channel in expected:
        assert got[channel].conversions == pytest.approx(expected[channel].conversions)
        assert got[channel].value == pytest.approx(expected[channel].value)


def test_markov_a_repeated_channel_is_a_self_loop_that_changes_nothing() -> None:
    plain = [P(("A", "B"), 3, 4), P(("B",), 1, 6), P(("A",), 2, 2)]
    repeated = [P(("A", "A", "B", "B", "B"), 3, 4), P(("B", "B"), 1, 6), P(("A",), 2, 2)]
    assert markov_removal_effect(repeated) == pytest.approx(markov_removal_effect(plain))


def absorption_by_iteration(paths: list[PathCount], removed: str | None) -> float:
    """P by repeated substitution over the transition counts, a solver independent of the module's."""
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        walk = ["start", *path.channels]
        for a, b in pairwise(walk):
            counts.setdefault(a, {}).setdefault(b, 0)
            counts[a][b] += path.conversions + path.non_conversions
        ends = counts.setdefault(walk[-1], {})
        ends["conversion"] = ends.get("conversion", 0) + path.conversions
        ends["null"] = ends.get("null", 0) + path.non_conversions
    x = {state: 0.0 for state in counts} | {"conversion": 1.0, "null": 0.0}
    if removed:
        x[removed] = 0.0
    for _ in range(5000):
        for state, targets in counts.items():
            if state != removed:
                x[state] = sum(n * x[target] for target, n in targets.items()) / sum(targets.values())
    return x["start"]


def test_markov_agrees_with_an_iterative_solution_on_random_paths() -> None:
    paths = random_paths(3, 6, 60)
    probability = absorption_by_iteration(paths, None)
    effects = {c: 1 - absorption_by_iteration(paths, c) / probability for c in {c for p in paths for c in p.channels}}
    total = sum(p.conversions for p in paths)
    expected = {c: total * effect / sum(effects.values()) for c, effect in effects.items()}
    assert markov_conversion_probability(paths) == pytest.approx(probability)
    assert markov_removal_effect(paths) == pytest.approx(expected)


def equal_split(paths: list[PathCount], group: set[str]) -> dict[str, float]:
    """Zhao et al.'s closed form of this game: each path's conversions split equally over its distinct
    channels, the channels outside `group` counting as one."""
    credits: dict[str, float] = {}
    for path in paths:
        players = {c if c in group else OTHER_CHANNEL for c in path.channels}
        for player in players:
            credits[player] = credits.get(player, 0.0) + path.conversions / len(players)
    return credits


def test_shapley_enumeration_equals_the_closed_form() -> None:
    paths = random_paths(11, 10)
    assert shapley_values(paths) == pytest.approx(equal_split(paths, {f"ch{i}" for i in range(10)}))


def test_shapley_beyond_the_cap_groups_the_channels_with_fewest_conversions_as_other() -> None:
    # Channel chK converts K + 1 times on its own path, plus 2 conversions for ch0, ch10 and ch19 together:
    # ch6 … ch19 (7 conversions or more) stay players, ch0 (3) … ch5 (6) play as Other, and so does a
    # channel really named Other, although its 30 conversions would have made it a player.
    channels = MAX_SHAPLEY_CHANNELS + 5
    paths = [P((f"ch{k}",), k + 1, 1) for k in range(channels)]
    paths += [P(("ch0", "ch19", "ch10"), 2, 3), P((OTHER_CHANNEL,), 30, 0)]
    credits = shapley_values(paths)
    kept = {f"ch{k}" for k in range(channels - MAX_SHAPLEY_CHANNELS + 1, channels)}
    assert set(credits) == kept | {OTHER_CHANNEL}
    assert credits == pytest.approx(equal_split(paths, kept))


def test_paths_without_channels_or_counts_are_left_out() -> None:
    with_noise = TWO_CHANNELS + [P((), 50, 50, 999.0), P(("C",), 0, 0)]
    assert markov_removal_effect(with_noise) == pytest.approx(markov_removal_effect(TWO_CHANNELS))
    assert shapley_values(with_noise) == pytest.approx(shapley_values(TWO_CHANNELS))
    assert markov_credits([]) == {} and shapley_credits([]) == {}
    assert markov_removal_effect([P(("A",), 0, 5)]) == {"A": 0.0}
    assert shapley_values([P(("A",), 0, 5)]) == {"A": 0.0}
