"""Ordered funnels (the default): steps in order, other events in between allowed, within the window.

The depth a person reaches is windowFunnel's default mode (`tests/analyses/test_funnels.py` checks it
against `windowFunnel` on demo data), except that one event cannot count as two steps; the machine is
`funnel_chain`'s, which also yields the step times and entry event windowFunnel cannot.
"""

from __future__ import annotations

from nexus.analyses import funnel_chain

# Only events matching a step matter: the scan reads just those.
SCANS_ALL_EVENTS = False
# Step 0 is only ever an entry: its events count inside the date range only.
STEP_0_ONLY_IN_RANGE = True


def layers(steps: int, window: str) -> list[list[str]]:
    return funnel_chain.chain_layers(steps, window, strict=False)


def kept(values: str, steps: int) -> str:
    return funnel_chain.kept(values, steps, strict=False)
