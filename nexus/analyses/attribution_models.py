"""The data-driven attribution models, solved in numpy from path counts that ClickHouse has aggregated:
the first-order Markov chain removal effect and the Shapley value over channel sets.

A `PathCount` is one distinct channel path (the channels of a person's touchpoints before a conversion or
the end of the range, in time order) with how many times it ended in a conversion, how many times it did
not, and the value of those conversions. Both models credit every converting path's conversions to
channels; a path without channels has nobody to credit, so its conversions are left out of both the
chain and the credits (the caller reports them as unattributed).

Markov (Anderl, Becker, von Wangenheim & Schumann 2016, "Mapping the customer journey"). States: `start`,
one per channel, and the absorbing `conversion` and `null`. Every path adds, weighted by its conversions
plus non-conversions, one transition start → first channel, one per consecutive pair of channels (a
repeated channel is a self-loop: it changes no absorption probability), and from its last channel its
conversions to `conversion` and its non-conversions to `null`. Transition probabilities are the counts
normalised per state. P = the probability of absorption in `conversion` from `start`, solved exactly
from (I − Q) x = r (Q: transient-to-transient probabilities, r: transient-to-conversion). The removal
effect of a channel is 1 − P₋c / P, P₋c being P when the channel's state is removed and every
transition into it goes to `null` instead. Credited conversions = total conversions × removal effect /
sum of removal effects; credited value = total value split by the same shares (a first-order chain
holds no value per path). A channel gets 0 only when no conversion is reachable from it in the chain —
being on no converting path is not enough: after (X, Y) without conversion and (Y) converting, the
chain's X → Y → conversion route gives X credit. That is the first-order model, not a defect.

Shapley (Zhao, Mahboobi & Bagheri 2018, "Shapley value methods for attribution modeling in online
advertising"). Players are channels; the worth of a coalition S is v(S) = the conversions (for the value
credit: the conversion value) of the paths whose channel set is S or a subset of S: the conversions
those channels would have had on their own. Counts rather than conversion rates, because a rate game
(v(S) = conversion rate of the paths within S) ignores reach — a channel touching 100 persons and one
touching 10,000 at the same rate earn the same — and can give negative credit to a channel with a low
rate; with counts the credits are never negative and sum exactly to the total conversions (efficiency:
v(all) − v(∅)). The non-converting paths, which a count game leaves out, are what the Markov model
weighs. The Shapley value is computed by exact enumeration of all 2ⁿ coalitions (φⱼ = Σ over S not
holding j of |S|!(n−|S|−1)!/n! · (v(S ∪ {j}) − v(S))), n ≤ `MAX_SHAPLEY_CHANNELS`; with more channels,
the `MAX_SHAPLEY_CHANNELS − 1` channels with the most conversions on their paths (ties: more journeys on
their paths, then name) stay players and the rest play as one channel, `OTHER_CHANNEL` (a channel named so
joins it). For this game the enumeration
equals splitting each converting path's conversions equally among its distinct channels (Zhao et al.'s
simplified Shapley value): the tests hold the enumeration to that closed form.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from math import factorial
from typing import NamedTuple

import msgspec
import numpy as np
import pandas as pd

MAX_SHAPLEY_CHANNELS = 15  # 2¹⁵ coalitions × 15 channels: a few milliseconds
OTHER_CHANNEL = "Other"


class PathCount(msgspec.Struct, frozen=True):
    """One distinct channel path: how often it converted, how often not, and its conversions' value."""

    channels: tuple[str, ...]
    conversions: int
    non_conversions: int
    value: float = 0.0


class ChannelCredit(msgspec.Struct, frozen=True):
    """What a model credits to one channel: conversions (a fraction of the total) and their value."""

    conversions: float
    value: float


def markov_removal_effect(paths: Iterable[PathCount]) -> dict[str, float]:
    """Credited conversions per channel by the Markov removal effect (see the module docstring)."""
    return {channel: credit.conversions for channel, credit in markov_credits(paths).items()}


def shapley_values(paths: Iterable[PathCount]) -> dict[str, float]:
    """Credited conversions per channel by the Shapley value over channel sets (see the module docstring)."""
    return {channel: credit.conversions for channel, credit in shapley_credits(paths).items()}


def markov_credits(paths: Iterable[PathCount]) -> dict[str, ChannelCredit]:
    """Credited conversions and value per channel by the Markov removal effect, every channel on a path."""
    flat = _flatten(paths)
    effects = _removal_effects(flat)
    effect_sum = float(effects.sum())
    total_conversions, total_value = float(flat.conversions.sum()), float(flat.values.sum())
    if total_conversions == 0 or effect_sum <= 0.0:
        return {channel: ChannelCredit(0.0, 0.0) for channel in flat.names}
    shares = effects / effect_sum
    return {channel: ChannelCredit(float(share * total_conversions), float(share * total_value))
            for channel, share in zip(flat.names, shares)}


def markov_conversion_probability(paths: Iterable[PathCount]) -> float:
    """P: the chain's probability of absorption in `conversion` from `start` (0 without paths)."""
    flat = _flatten(paths)
    if not flat.names:
        return 0.0
    transitions, to_conversion = _chain(flat)
    return _absorption(transitions, to_conversion, np.ones(len(flat.names) + 1, dtype=bool))


class _Flat(NamedTuple):
    """The paths with channels and counts, flattened for numpy: every touch's channel as an index into
    `names` (sorted, so that the answer does not depend on the paths' order), path after path."""

    names: list[str]
    codes: np.ndarray  # a channel index per touch
    starts: np.ndarray  # where each path's touches begin in `codes`
    lengths: np.ndarray
    conversions: np.ndarray  # per path
    non_conversions: np.ndarray
    values: np.ndarray


def _flatten(paths: Iterable[PathCount]) -> _Flat:
    touched = [path for path in paths if path.channels and path.conversions + path.non_conversions > 0]
    lengths = np.fromiter((len(path.channels) for path in touched), np.int64, len(touched))
    codes, names = pd.factorize(np.array(list(chain.from_iterable(path.channels for path in touched)), dtype=object),
                                sort=True)
    return _Flat(list(names), codes.astype(np.int64), np.cumsum(lengths) - lengths, lengths,
                 np.fromiter((path.conversions for path in touched), float, len(touched)),
                 np.fromiter((path.non_conversions for path in touched), float, len(touched)),
                 np.fromiter((path.value for path in touched), float, len(touched)))


def _chain(flat: _Flat) -> tuple[np.ndarray, np.ndarray]:
    """Q and r of the chain: transient states are 0 = start and 1 + the channel's index."""
    size = len(flat.names) + 1
    state = flat.codes + 1
    previous = np.empty_like(state)
    previous[1:] = state[:-1]
    previous[flat.starts] = 0  # each path steps in from `start`
    journeys = np.repeat(flat.conversions + flat.non_conversions, flat.lengths)
    counts = np.bincount(previous * size + state, weights=journeys, minlength=size * size).reshape(size, size)
    last = state[flat.starts + flat.lengths - 1]
    to_conversion = np.bincount(last, weights=flat.conversions, minlength=size)
    to_null = np.bincount(last, weights=flat.non_conversions, minlength=size)
    leaving = counts.sum(axis=1) + to_conversion + to_null
    leaving[leaving == 0] = 1.0  # a state nobody leaves is never entered either
    return counts / leaving[:, None], to_conversion / leaving


def _absorption(transitions: np.ndarray, to_conversion: np.ndarray, kept: np.ndarray) -> float:
    """Probability of reaching `conversion` from `start` with only the `kept` transient states: a removed
    state's incoming probability goes to `null`, which contributes nothing to the solve."""
    q = transitions[np.ix_(kept, kept)]
    # Every state reaches absorption (each path ends there), so I − Q is non-singular.
    x = np.linalg.solve(np.eye(q.shape[0]) - q, to_conversion[kept])
    return float(x[0])


def _removal_effects(flat: _Flat) -> np.ndarray:
    if not flat.names:
        return np.zeros(0)
    transitions, to_conversion = _chain(flat)
    everything = np.ones(len(flat.names) + 1, dtype=bool)
    probability = _absorption(transitions, to_conversion, everything)
    if probability <= 0.0:
        return np.zeros(len(flat.names))
    effects = np.empty(len(flat.names))
    for i in range(len(flat.names)):
        kept = everything.copy()
        kept[i + 1] = False
        effects[i] = 1.0 - _absorption(transitions, to_conversion, kept) / probability
    # Removing a state only diverts probability to `null`; clip the solver's rounding below zero.
    return np.clip(effects, 0.0, None)


def shapley_credits(paths: Iterable[PathCount]) -> dict[str, ChannelCredit]:
    """Credited conversions and value per channel by the Shapley value over channel sets, every channel on
    a path (or `OTHER_CHANNEL` for those grouped beyond `MAX_SHAPLEY_CHANNELS`)."""
    flat = _flatten(paths)
    ranked = _players(flat)
    if not ranked:
        return {}
    if len(ranked) > MAX_SHAPLEY_CHANNELS:
        # A channel really named like the group joins it rather than standing beside it under one name.
        kept = [i for i in ranked if flat.names[i] != OTHER_CHANNEL][:MAX_SHAPLEY_CHANNELS - 1]
        names = [flat.names[i] for i in kept] + [OTHER_CHANNEL]
    else:
        kept = ranked
        names = [flat.names[i] for i in kept]
    n = len(names)
    bit_of = np.full(len(flat.names), 1 << (n - 1), dtype=np.int64)  # beyond the cap: the grouped player's bit
    bit_of[kept] = 1 << np.arange(len(kept), dtype=np.int64)
    masks = np.bitwise_or.reduceat(bit_of[flat.codes], flat.starts)
    # worth[mask] starts as what the paths with exactly that channel set earned (conversions, value)...
    worth = np.stack([np.bincount(masks, weights=flat.conversions, minlength=1 << n),
                      np.bincount(masks, weights=flat.values, minlength=1 << n)], axis=1)
    # ...and becomes v(S) = the sum over S's subsets (a subset-sum transform, one channel at a time).
    coalitions = np.arange(1 << n)
    for j in range(n):
        holding = coalitions[coalitions & (1 << j) != 0]
        worth[holding] += worth[holding ^ (1 << j)]
    sizes = sum((coalitions >> j) & 1 for j in range(n))
    weight_of_size = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    credits: dict[str, ChannelCredit] = {}
    for j, name in enumerate(names):
        without = coalitions[coalitions & (1 << j) == 0]
        phi = weight_of_size[sizes[without]] @ (worth[without | (1 << j)] - worth[without])
        credits[name] = ChannelCredit(float(phi[0]), float(phi[1]))
    return credits


def _players(flat: _Flat) -> list[int]:
    """Channel indexes by conversions on their paths, then journeys, then name: the first ones stay players."""
    channels = len(flat.names)
    path_of = np.repeat(np.arange(len(flat.lengths), dtype=np.int64), flat.lengths)
    # Each channel once per path; sorted and compared rather than np.unique, whose hashing took 0.8 s on 900k touches.
    keys = np.sort(path_of * channels + flat.codes)
    distinct = keys[np.diff(keys, prepend=-1) != 0]
    path, channel = distinct // max(channels, 1), distinct % max(channels, 1)
    conversions = np.bincount(channel, weights=flat.conversions[path], minlength=channels)
    reach = np.bincount(channel, weights=(flat.conversions + flat.non_conversions)[path], minlength=channels)
    return sorted(range(channels), key=lambda i: (-conversions[i], -reach[i], i))
