"""Funnels computed in plain Python from the pandas frame: the reference the SQL step machines must match."""

from __future__ import annotations

import numpy as np
import pandas as pd


def person_events(frame: pd.DataFrame, steps: list[str], start, end, window_ms: int, strict: bool,
                  unordered: bool = False):
    """Per person: (t_ms, mask, first_step, row) sorted as the SQL sorts them; bit 15 = inside the range.
    Bit 0 (step 0) is set only inside the range, where entries are, except for unordered funnels, whose
    step 0 counts like any other step. (Column-wise: a row at a time through pandas took seconds per call.)"""
    scan = frame[(frame["ts"] >= start) & (frame["ts"] < end + pd.Timedelta(milliseconds=window_ms))]
    if not strict:
        scan = scan[scan["event"].isin(steps)]
    in_range = (scan["ts"] < end).to_numpy()
    names = scan["event"].to_numpy()
    mask = np.zeros(len(scan), dtype=np.int64)
    first = np.full(len(scan), len(steps), dtype=np.int64)
    for k in reversed(range(len(steps))):  # the lowest step a row is wins
        hit = names == steps[k]
        if k == 0 and not unordered:
            hit &= in_range
        mask |= hit.astype(np.int64) << k
        first[hit] = k
    mask |= in_range.astype(np.int64) << 15
    millis = ((scan["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy()
    columns = (millis.tolist(), mask.tolist(), first.tolist(), scan.index.tolist())
    people = {}
    for person, positions in scan.groupby("person", sort=False).indices.items():
        evs = [tuple(column[i] for column in columns) for i in positions]
        people[person] = sorted(evs, key=lambda e: (e[0], e[2]))
    return people


def machine(evs, n: int, window: int, strict: bool):
    """The chain machine of nexus.analyses.funnel_chain, in Python: (depth, times, entry row)."""
    levels: list[list | None] = [None] * n
    best: list = []
    for t, mask, _, row in evs:
        new = []
        for k in range(n):
            if k == 0:
                new.append([row, t] if mask & 1 else (None if strict else levels[0]))
            elif mask >> k & 1 and levels[k - 1] and t - levels[k - 1][1] <= window:
                new.append(levels[k - 1] + [t])
            else:
                new.append(None if strict else levels[k])
        levels = new
        deepest = max((c for c in levels if c), key=len, default=None)
        if deepest is not None and len(deepest) > len(best):
            best = deepest
    return (len(best) - 1, best[1:], best[0]) if best else (0, [], None)


def greedy_depth(evs, n: int, window: int) -> int:
    """Depth by another route: from every entry, take the earliest next step each time."""
    deepest = 0
    for i, (t0, mask, _, _) in enumerate(evs):
        if not mask & 1:
            continue
        depth, j = 1, i
        for k in range(1, n):
            j = next((x for x in range(j + 1, len(evs)) if evs[x][1] >> k & 1 and evs[x][0] - t0 <= window), None)
            if j is None:
                break
            depth += 1
        deepest = max(deepest, depth)
    return deepest


def unordered(evs, n: int, window: int):
    """Best entry: most distinct steps within the window after it, earliest entry among equals."""
    best = (0, [], None)
    for i, (t0, mask, _, row) in enumerate(evs):
        if not (mask >> 15 & 1 and mask & ((1 << n) - 1)):
            continue
        firsts = {}
        for t, m, _, _ in evs[i:]:
            if t - t0 > window:
                break
            for k in range(n):
                if m >> k & 1:
                    firsts.setdefault(k, t)
        if len(firsts) > best[0]:
            best = (len(firsts), sorted(firsts.values()), row)
    return best


def unordered_from_times(frame: pd.DataFrame, steps: list[str], start, end, window_ms: int) -> dict:
    """Unordered funnels from event names and times alone, without masks or machines: per person, each
    in-range event of any step is an entry; its steps are the distinct step names with an event at most
    `window_ms` after it (inclusive), each at its first time. The entry with the most steps wins, the
    earliest among equals. {person: (depth, sorted step times in ms)} for every person who entered."""
    window = pd.Timedelta(milliseconds=window_ms)
    scan = frame[frame["event"].isin(steps) & (frame["ts"] >= start) & (frame["ts"] < end + window)]
    people = {}
    for person, rows in scan.sort_values("ts", kind="stable").groupby("person", sort=False):
        best: tuple[int, list[int]] = (0, [])
        for t0 in rows.loc[rows["ts"] < end, "ts"]:
            reached = rows[(rows["ts"] >= t0) & (rows["ts"] <= t0 + window)]
            firsts = sorted(int(t.value // 1_000_000) for t in reached.groupby("event")["ts"].min())
            if len(firsts) > best[0]:
                best = (len(firsts), firsts)
        if best[0]:
            people[person] = best
    return people
