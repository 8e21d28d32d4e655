"""Strict funnels: each step must be the person's very next event after the previous step.

Any other event of the person (among those passing the request's filters) between two steps breaks the
chain; a later step-0 event may start a new one. Events at the same millisecond are taken in step order,
events matching no step after them. Unlike windowFunnel's `strict_order` (which stops the whole search
at the first intervening event), a broken chain does not prevent a later, unbroken one from counting.
"""

from __future__ import annotations

from nexus.analyses import funnel_chain

# Intervening events break chains, so every event of the person in the window is read.
SCANS_ALL_EVENTS = True
# Step 0 is only ever an entry: its events count inside the date range only.
STEP_0_ONLY_IN_RANGE = True


def layers(steps: int, window: str) -> list[list[str]]:
    return funnel_chain.chain_layers(steps, window, strict=True)


def kept(values: str, steps: int) -> str:
    return funnel_chain.kept(values, steps, strict=True)
