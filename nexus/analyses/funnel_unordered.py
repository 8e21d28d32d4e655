"""Unordered funnels: a person reaches depth d when d different steps happen, in any order, within the
window after an entry event.

Every in-range event matching any step is a candidate entry; from it, each step's first event at or
after the entry and at most `window` ms later counts, and the steps found, sorted by those times, are the
person's steps 1, 2, …: so step k's count is persons who did any k of the steps. The entry with the most
steps wins (the earliest among equals) and gives the breakdown value and the step times.
"""

from __future__ import annotations

from nexus.analyses.funnel_chain import IN_RANGE_BIT

SCANS_ALL_EVENTS = False


def best_chain(steps: int, window: str) -> str:
    """SQL for `[entry_row, t_first, t_second, …]` of the best entry (`[0]`: never entered)."""
    # From entry i: the events at or after it within the window (the array is sorted by time).
    within = f"arrayFilter(x -> x.1 - evs[i].1 <= {window}, arraySlice(evs, i))"
    firsts = f"arrayMap(s -> arrayFirst(x -> bitTest(x.2, s), {within}).1, arrayFilter(s -> arrayExists(x -> bitTest(x.2, s), {within}), range({steps})))"
    chains = (
        f"arrayMap(i -> arrayConcat([toInt64(i)], arraySort({firsts})), "
        f"arrayFilter(i -> bitTest(evs[i].2, {IN_RANGE_BIT}) AND bitAnd(evs[i].2, {(1 << steps) - 1}) != 0, "
        f"arrayEnumerate(evs)))"
    )
    return (f"arrayFirst(c -> length(c) = arrayMax(arrayMap(d -> length(d), candidates)), "
            f"arrayPushBack({chains}, [0]::Array(Int64)) AS candidates)")
