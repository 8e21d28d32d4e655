"""Which variant of an experiment a distinct id gets: a pure function, the same in every process and after
every restart, so any server (or a client that calls the assign endpoint) answers the same for an id.

The id's point is the first 8 bytes of SHA-256(experiment key, NUL, distinct id) read as an integer and
scaled to [0, 1); the variants split [0, 1) into consecutive slices in their order, each as wide as its
share of the weights. Only the key, the id and the variants' keys and weights decide: an experiment's
end date, description or metrics can change without moving anyone. Keys hashed into independent points,
so one experiment's assignment says nothing about another's (tested with a contingency table).
SHA-256 rather than Python's `hash()`, which is salted per process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import accumulate

from nexus.meta.experiments import Variant

_SCALE = 2.0**64


def point(experiment_key: str, distinct_id: str) -> float:
    """Where `distinct_id` falls in [0, 1) for this experiment."""
    digest = hashlib.sha256(experiment_key.encode() + b"\0" + distinct_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(experiment_key: str, variants: Sequence[Variant], distinct_id: str) -> str:
    """The key of the variant whose slice holds the id's point."""
    total = sum(v.weight for v in variants)
    at = point(experiment_key, distinct_id) * total
    for variant, edge in zip(variants, accumulate(v.weight for v in variants)):
        if at < edge:
            return variant.key
    return variants[-1].key  # the point is below 1, so only rounding of the edges' sum lands here


def assign_all(experiment_key: str, variants: Sequence[Variant], distinct_ids: Sequence[str]) -> list[str]:
    return [assign(experiment_key, variants, distinct_id) for distinct_id in distinct_ids]
