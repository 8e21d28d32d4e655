"""An independent pandas/numpy formulation of the rule-based attribution models, for the attribution tests and as
the peer in benchmarks/attribution.py.

How to call it:

    touchpoints = pd.DataFrame({"person": [...], "ts": [...], "channel": [...], "source": [...], "campaign": [...]})
    conversions = pd.DataFrame({"person": [...], "ts": [...], "value": [...]})
    credits = touch_credits(touchpoints, conversions, lookback=pd.Timedelta(days=30))  # one row per credited touch
    table = attribute(touchpoints, conversions, by="channel")  # per model and channel: conversions, value

`ts` may be naive (read as UTC) or aware; persons any hashable type; `value` 0 for a goal without a value.
The options (keyword arguments of both functions) are those of the attribution request: `lookback`
(lookback_days), `half_life` (half_life_days), `first_weight`/`last_weight` (position_first/position_last),
`last_non_direct` and `direct_channel` (the channel rules' settings), `channel_order` (the rules' channel
names in order, `nexus.meta.channels.channels(settings)`).

The definitions, as nexus/analyses/attribution.py and touchpoints.py state them for the attribution analysis:
- each conversion is attributed on its own, over its person's touches with `ts - lookback <= touch.ts <= ts`
  (a touch at the conversion's own time counts; a person converting twice has two lookbacks);
- touches are ordered by time; touches at the same time by their channel's place in `channel_order` (a channel
  not in it after those that are), then by channel, source and campaign names;
- last non-direct: when `last_non_direct` and a conversion has a touch whose channel is not `direct_channel`,
  its `direct_channel` touches are left out (with only direct touches, they keep the credit);
- a conversion without any touch left is unattributed: no model credits it;
- first touch: 1 to the first touch; last touch: 1 to the last; linear: 1/n to each of the n touches;
- time decay: weights 2^(-(conversion.ts - touch.ts) / half_life), divided by their sum;
- position-based: one touch gets 1; two touches share first_weight : last_weight (0.5 each at 40/40, and at
  0/0);
  three or more: first_weight to the first, last_weight to the last, the rest split equally among the middle;
- a touch's credited value = its credit x its conversion's value; a model's credits of each conversion sum to 1.

Touches are matched to conversions without a per-row loop: both are keyed by (person, time) on one integer
line, so each conversion's lookback is the slice [searchsorted(ts - lookback), searchsorted(ts, right)) of the
sorted touches, and the slices are expanded with numpy's repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
Dimension = Literal["channel", "source", "campaign"]
_MS = pd.Timedelta(milliseconds=1)
LOOKBACK = pd.Timedelta(days=30)
HALF_LIFE = pd.Timedelta(days=7)


def touch_credits(touchpoints: pd.DataFrame, conversions: pd.DataFrame, *, lookback: pd.Timedelta = LOOKBACK,
                  half_life: pd.Timedelta = HALF_LIFE, first_weight: float = 0.4, last_weight: float = 0.4,
                  last_non_direct: bool = True, direct_channel: str = "Direct",
                  channel_order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (conversion, touch credited for it), in conversion then touch order: `conversion` (the
    conversion's position in `conversions`), `conversion_ts`, `value`, the touch's `ts`, `channel`, `source`,
    `campaign`, and one column per model in MODELS with the touch's share of the conversion."""
    persons, uniques = pd.factorize(pd.concat([touchpoints["person"], conversions["person"]], ignore_index=True))
    touch_person, conversion_person = persons[:len(touchpoints)], persons[len(touchpoints):]
    touch_ms, conversion_ms = _milliseconds(touchpoints["ts"]), _milliseconds(conversions["ts"])
    lookback_ms = lookback // _MS

    # Touches keyed on one integer line, person * span + time, and sorted by it and the tie-break.
    times = np.concatenate([touch_ms, conversion_ms])
    origin = (times.min() if times.size else 0) - lookback_ms
    span = (times.max() if times.size else 0) - origin + 1
    if len(uniques) * int(span) >= 2**62:
        raise ValueError("too many persons over too long a time for one int64 key")
    key = touch_person.astype(np.int64) * span + (touch_ms - origin)
    order = _sorted_with_ties_broken(key, touchpoints, channel_order)
    touch_key = key[order]
    conversion_key = conversion_person.astype(np.int64) * span + (conversion_ms - origin)
    first = np.searchsorted(touch_key, conversion_key - lookback_ms, side="left")
    end = np.searchsorted(touch_key, conversion_key, side="right")

    # Expand each conversion's slice [first, end) into (conversion, touch) pairs.
    counts = end - first
    conversion = np.repeat(np.arange(len(conversions)), counts)
    touch = order[np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(first, counts)]

    if last_non_direct:
        direct = (touchpoints["channel"] == direct_channel).to_numpy()[touch]
        other_touches = np.bincount(conversion, weights=~direct, minlength=len(conversions))
        kept = ~direct | (other_touches[conversion] == 0)
        conversion, touch = conversion[kept], touch[kept]

    n = np.bincount(conversion, minlength=len(conversions))
    size = n[conversion]
    position = np.arange(len(conversion)) - (np.cumsum(n) - n)[conversion]
    is_first, is_last = position == 0, position == size - 1
    age = (conversion_ms[conversion] - touch_ms[touch]).astype(float)
    decay = np.exp2(-age / (half_life / _MS))
    decay /= np.bincount(conversion, weights=decay, minlength=len(conversions))[conversion]
    middle = (1.0 - first_weight - last_weight) / np.maximum(size - 2, 1)
    pair = first_weight / (first_weight + last_weight) if first_weight + last_weight else 0.5
    two = np.where(is_first, pair, 1.0 - pair)
    ends = np.where(is_first, first_weight, np.where(is_last, last_weight, middle))
    position_based = np.where(size == 1, 1.0, np.where(size == 2, two, ends))

    # Columns are taken as pandas arrays: an aware time through numpy would become an object per row.
    return pd.DataFrame({
        "conversion": conversion,
        "conversion_ts": conversions["ts"].array.take(conversion),
        "value": conversions["value"].to_numpy(dtype=float)[conversion],
        **{column: touchpoints[column].array.take(touch) for column in ("ts", "channel", "source", "campaign")},
        "first_touch": is_first.astype(float),
        "last_touch": is_last.astype(float),
        "linear": 1.0 / size,
        "time_decay": decay,
        "position_based": position_based,
    })


def attribute(touchpoints: pd.DataFrame, conversions: pd.DataFrame, *, by: Dimension = "channel",
              **options) -> pd.DataFrame:
    """Per model and value of `by` (the channel, source or campaign of the credited touches): credited
    `conversions` and credited `value`, indexed by (model, by) and sorted; options as `touch_credits`."""
    credits = touch_credits(touchpoints, conversions, **options)
    shares = credits[list(MODELS)]
    conversions_by = shares.groupby(credits[by].to_numpy()).sum()
    value_by = shares.mul(credits["value"], axis=0).groupby(credits[by].to_numpy()).sum()
    table = pd.DataFrame({"conversions": conversions_by.stack(), "value": value_by.stack()})
    table.index = table.index.swaplevel().set_names(["model", by])
    return table.sort_index()


def _sorted_with_ties_broken(key: np.ndarray, touchpoints: pd.DataFrame, channel_order: Sequence[str]) -> np.ndarray:
    """The order of `key`, equal keys by the channel's place in `channel_order`, then channel, source and campaign.
    One argsort of the key, then a lexsort of the few tied touches alone: a lexsort of everything on five keys
    takes ten times as long."""
    order = np.argsort(key)
    sorted_key = key[order]
    tied = np.zeros(len(key), dtype=bool)
    tied[1:] = sorted_key[1:] == sorted_key[:-1]
    tied[:-1] |= tied[1:]
    positions = np.flatnonzero(tied)
    if positions.size:
        tied_touches = touchpoints.iloc[order[positions]]
        tiebreak = [pd.factorize(tied_touches[column].astype(str), sort=True)[0] for column in ("campaign", "source",
                                                                                              "channel")]
        place = {channel: i for i, channel in enumerate(channel_order)}
        tiebreak.append(tied_touches["channel"].map(place).fillna(len(place)).to_numpy())
        # Runs of equal keys are contiguous, so reordering within the tied positions keeps every run in place.
        order[positions] = order[positions][np.lexsort((*tiebreak, sorted_key[positions]))]
    return order


def _milliseconds(ts: pd.Series) -> np.ndarray:
    """Milliseconds since the epoch (UTC; naive times read as UTC)."""
    times = pd.to_datetime(ts, utc=True)
    return ((times - pd.Timestamp(0, tz="UTC")) // _MS).to_numpy(dtype=np.int64)
