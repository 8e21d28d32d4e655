"""Ordered funnels (the default): steps in order, other events in between allowed, within the window.

The depth a person reaches is windowFunnel's default mode (`tests/analyses/test_funnels.py` checks it
against `windowFunnel` on demo data), except that one event cannot count as two steps; the chain
evaluated is `funnel_chain`'s, which also yields the step times windowFunnel cannot.
"""

from __future__ import annotations

from nexus.analyses.funnel_chain import best_chain as _best_chain

# Only events matching a step matter: the scan reads just those.
SCANS_ALL_EVENTS = False


def best_chain(steps: int, window: str) -> str:
    return _best_chain(steps, window, strict=False)
