"""Unordered funnels: a person reaches depth d when d different steps happen, in any order, within the
window after an entry event.

Every in-range event matching any step is a candidate entry; from it, each step's first event at or
after the entry and at most `window` ms later counts — step 0's like any other, also after the range end,
so the answer does not depend on the order the steps are listed in — and the steps found, sorted by those
times, are the person's steps 1, 2, …: so step k's count is persons who did any k of the steps. The entry
with the most steps wins (the earliest among equals) and gives the breakdown value and the step times.
"""

from __future__ import annotations

from nexus.analyses.funnel_chain import IN_RANGE_BIT

SCANS_ALL_EVENTS = False
# Any step, step 0 included, may be done after the range end; only the entry must be in range.
STEP_0_ONLY_IN_RANGE = False


def layers(steps: int, window: str) -> list[list[str]]:
    """SELECT items, layer by layer (see `funnel_chain.chain_layers`), ending with `depth`, `times`, `entry`."""
    # Time of the next step-s event at or after each event (-1: none), by one reverse fill per step.
    nexts = [f"arrayReverseFill((v, x) -> bitTest(x, {s}), arrayMap((x, ti) -> if(bitTest(x, {s}), ti, -1), m, t), m)"
             f" AS next{s}" for s in range(steps)]
    found = " + ".join(f"(n{s} >= 0 AND n{s} - ti <= {window})" for s in range(steps))
    args = ", ".join(f"n{s}" for s in range(steps))
    reached = (f"arrayMap((x, ti, {args}) -> if(bitTest(x, {IN_RANGE_BIT}) AND bitAnd(x, {(1 << steps) - 1}) != 0,"
               f" {found}, 0), m, t, {', '.join(f'next{s}' for s in range(steps))}) AS reached")
    picked = ", ".join(f"if(next{s}[entry] >= 0 AND next{s}[entry] - t[entry] <= {window}, next{s}[entry], -1)"
                       for s in range(steps))
    return [nexts, [reached], ["indexOf(reached, arrayMax(reached)) AS entry"],
            ["reached[entry] AS depth",
             f"arrayResize(arraySort(arrayFilter(x -> x >= 0, [{picked}])), {steps}, 0) AS times"]]


def kept(values: str, steps: int) -> str:
    """Every event: any in-range step event is a candidate entry, so none can be skipped."""
    return values
