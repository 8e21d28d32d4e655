"""The per-person step machine that ordered and strict funnels share, as one ClickHouse `arrayFold`.

Input: `evs`, a person's events as `(ts_ms, mask, bd)` tuples sorted by time, where bit k of `mask` says
the event matches step k — bit 0 only for events inside the date range, since entry must be in range —
and bit `IN_RANGE_BIT` that the event is inside the date range (later steps may come after its end).
State: for each step k, the chain currently standing at step k — `[entry_row, t_0, …, t_k]`, or empty —
plus `best`, the first chain that reached the deepest step seen so far (`[0]` before any entry).

Per event, every step is updated from the state *before* the event (the same as visiting the event's
matched steps from the last to the first), so one event fills at most one step of a chain: a funnel
`page_view → page_view` needs two page views (windowFunnel would count one event matching both
steps as two). A chain at step k-1 moves to step k when the event matches step k and comes at most
`window` ms after the chain's entry (`<=`, as windowFunnel); a step-0 event starts a fresh chain at step
0, replacing the older one (a later start leaves more window). Other steps keep their chain (ordered)
or lose it (strict: the next event of the person must be the next step, any other event breaks it).

`best` is updated one event late — from the state the previous event left — and once more after the
fold; this is exact because the deepest step grows by at most one per event.
"""

from __future__ import annotations

IN_RANGE_BIT = 15


def best_chain(steps: int, window: str, strict: bool) -> str:
    """SQL for the person's best chain `[entry_row, t_0, …, t_depth-1]` (`[0]`: never entered)."""
    advance = (
        "if(k = 0, if(bitTest(e.2, 0), [toInt64(i), e.1], {keep0}),"
        " if(bitTest(e.2, k) AND notEmpty(acc.1[k]) AND e.1 - acc.1[k][2] <= {window},"
        " arrayPushBack(acc.1[k], e.1), {keep}))"
    ).format(window=window, keep0="[]::Array(Int64)" if strict else "acc.1[1]",
             keep="[]::Array(Int64)" if strict else "acc.1[k + 1]")
    fold = (
        f"arrayFold((acc, e, i) -> (arrayMap(k -> {advance}, range({steps})), {_better('acc.2', 'acc.1')}), "
        f"evs, arrayEnumerate(evs), (arrayResize([[]]::Array(Array(Int64)), {steps}), [0]::Array(Int64)))"
    )
    return _better(f"tupleElement({fold} AS chain_state, 2)", "chain_state.1", "chain_state.2")


def _better(best: str, levels: str, best_again: str | None = None) -> str:
    # A chain at step index length(best) (1-based) is one step deeper than `best`.
    again = best_again or best
    return f"if(notEmpty({levels}[length({best})]), {levels}[length({again})], {again})"
