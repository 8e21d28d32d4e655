"""Which projects' stored data changed: one counter per project in Redis, bumped by every path that
writes a project's events (ingest, imports, the demo loader) and read by whatever keeps answers derived
from them (the analyses cache), so that a write path need not know who caches what."""

from __future__ import annotations

from collections.abc import Iterable

import redis


def mark_changed(client: redis.Redis, project_ids: Iterable[int]) -> None:
    """New data for these projects: what was derived from their data before is stale."""
    pipe = client.pipeline(transaction=False)
    for project_id in project_ids:
        pipe.incr(f"gen:{project_id}")
    pipe.execute()


def generation(client: redis.Redis, project_id: int) -> int:
    """How many times the project's data changed (as counted since Redis was started empty)."""
    return int(client.get(f"gen:{project_id}") or 0)
