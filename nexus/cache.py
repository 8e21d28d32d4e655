"""Cached analysis results in Redis, keyed by project, kind and the normalized request.

A project's *generation* counter is bumped whenever new events for it are stored; it is part of every
key, so a result computed before new data arrived is never served after it. Relative date ranges
(`-7d`) move with the clock, so entries also expire after TTL_SECONDS.
"""

from __future__ import annotations

import hashlib

import msgspec
import redis

TTL_SECONDS = 60


def bump(client: redis.Redis, project_ids: set[int]) -> None:
    """New data for these projects: results computed before are stale."""
    pipe = client.pipeline(transaction=False)
    for project_id in project_ids:
        pipe.incr(f"gen:{project_id}")
    pipe.execute()


def key(client: redis.Redis, project_id: int, kind: str, request: msgspec.Struct) -> str:
    generation = int(client.get(f"gen:{project_id}") or 0)
    # msgspec encodes a Struct's fields in declaration order, so equal requests encode equally.
    digest = hashlib.sha256(msgspec.json.encode(request)).hexdigest()[:32]
    return f"result:{project_id}:{generation}:{kind}:{digest}"


def get(client: redis.Redis, name: str) -> bytes | None:
    return client.get(name)


def put(client: redis.Redis, name: str, encoded: bytes) -> None:
    client.set(name, encoded, ex=TTL_SECONDS)
