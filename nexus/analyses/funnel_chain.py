"""The per-person step machine that ordered and strict funnels share, as vectorised array passes.

Input, per person: `t` (event times, ms) and `m` (masks) sorted by time, and `idx` (1..n). Bit k of a
mask says the event matches step k — bit 0 only for events inside the date range (in the ordered and
strict funnels this machine serves, step 0 is only ever an entry, which must be in range) — and bit
`IN_RANGE_BIT` that the event is inside the range (later steps may come after it).

The machine (windowFunnel's default mode): per step k, the chain currently standing at step k. An event
of step 0 starts a fresh chain (a later start leaves more window); an event of step k moves the chain
standing at step k-1 to step k when it comes at most `window` ms after that chain's entry (`<=`, as
windowFunnel). Each event sees the state the previous event left, so one event fills at most one step
of a chain: `page_view → page_view` needs two page views (windowFunnel counts one event matching both
steps as two). Other steps keep their chain (ordered) or lose it (strict: the next event must be the
next step). The person's depth is the deepest step reached; the chain reported is the first to reach
it, which gives the entry event (breakdown value) and the step times.

Why arrays and not `arrayFold`: a fold runs the machine event by event (measured ~2 s for 7.5M events);
here each step is three whole-array passes (a shift, a map, and an `arrayFill` that carries forward
the chain standing at step k: its entry time and the event that moved it there, packed in one integer).
The chain is then read backwards from the first event that reached the deepest step, following those
pointers. Times are ms after the scan's start (`funnels.MAX_SPAN`), so they pack with an event index.
"""

from __future__ import annotations

IN_RANGE_BIT = 15
# A chain's entry time (ms after the scan's start, see funnels.MAX_SPAN) and event index share an Int64.
INDEX_BITS = 23
TOO_MANY_EVENTS = "a person has more events in this funnel than it can follow (8 million)"


def kept(values: str, steps: int, strict: bool) -> str:
    """`values` — an array aligned with the person's sorted keys `k` — without the events the machine
    can skip. In a run of events that match step 0 only (in strict funnels also of events that match no
    step), each event resets what the next one resets again and touches nothing else, so only the
    run's last event matters to later steps; its first is kept too, being the first chain of a person
    who never gets past step 0. In ordered funnels an event that matches no step (a step-0 event after
    the range) does nothing at all. Page views are most of a typical funnel's events, and most sit in
    such runs."""
    step_bits = (1 << steps) - 1
    cls = f"bitAnd(x, {step_bits})"
    in_run = (f"{cls} IN {'(0, 1)' if strict else '(1)'} AND bitAnd(p, {step_bits}) = {cls}"
              f" AND bitAnd(n, {step_bits}) = {cls}")
    skipped = in_run if strict else f"{cls} = 0 OR {in_run}"
    neighbours = "arrayShiftRight(k, 1, -1), arrayShiftLeft(k, 1, -1)"  # -1: no run
    return f"arrayFilter((v, x, p, n) -> NOT ({skipped}), {values}, k, {neighbours})"


def chain_layers(steps: int, window: str, strict: bool) -> list[list[str]]:
    """SELECT items, layer by layer, ending with `depth`, `times` (ms of steps 0..steps-1, 0 beyond depth)
    and `entry` (index). Each layer reads the columns of the one before: ClickHouse inlines an alias at
    every use, so chaining aliases within one SELECT would grow the query exponentially with the steps.

    A chain is one integer, `entry time * 2^INDEX_BITS + index of the event that last moved it`: one
    array per step carries both, so a step costs a shift, a map and a fill."""
    carry = "{}" if strict else "arrayFill(x -> x > 0, {})"
    index_mask = (1 << INDEX_BITS) - 1
    layers = [[f"arrayMap((x, ti, i) -> if(bitTest(x, 0), bitShiftLeft(ti, {INDEX_BITS}) + i, 0), m, t, idx) AS moved0"]]
    for k in range(1, steps):
        layers.append([f"{carry.format(f'moved{k - 1}')} AS at{k - 1}"])
        # The state the previous event left (shifted right by one), moved on by an event of step k in time.
        layers.append([f"arrayShiftRight(at{k - 1}, 1) AS before{k}"])
        layers.append([f"arrayMap((x, ti, i, p) -> if(bitTest(x, {k}) AND p > 0"
                       f" AND ti - bitShiftRight(p, {INDEX_BITS}) <= {window},"
                       f" bitShiftLeft(bitShiftRight(p, {INDEX_BITS}), {INDEX_BITS}) + i, 0), m, t, idx, before{k})"
                       f" AS moved{k}"])
    # Walk back from the first event that reached the deepest step; shallower persons start lower.
    layers.append([f"arrayFirstIndex(x -> x > 0, moved{k}) AS first{k}" for k in range(steps)])
    layers.append([f"first{steps - 1} AS via{steps - 1}"])
    layers += [[f"if(via{k + 1} > 0, bitAnd(before{k + 1}[via{k + 1}], {index_mask}), first{k}) AS via{k}"]
               for k in range(steps - 2, -1, -1)]
    layers.append([
        " + ".join(f"(via{k} > 0)" for k in range(steps))
        + f" + throwIf(length(idx) > {index_mask}, '{TOO_MANY_EVENTS}')"
        " AS depth",
        "[" + ", ".join(f"t[via{k}]" for k in range(steps)) + "] AS times",
        "via0 AS entry",
    ])
    return layers
