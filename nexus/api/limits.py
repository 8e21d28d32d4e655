"""Per-key rate limits in Redis: a counter per key and second, shared by every API process."""

from __future__ import annotations

import time

import redis

from nexus.errors import RateLimited


class RateLimiter:
    def __init__(self, client: redis.Redis, per_second: int):
        self.redis = client
        self.per_second = per_second

    def check(self, key_id: str) -> None:
        """Count one request for the key; RateLimited when this second's allowance is used up."""
        if self.per_second <= 0:
            return
        window = f"rl:{key_id}:{int(time.time())}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(window)
        pipe.expire(window, 2)
        count = pipe.execute()[0]
        if count > self.per_second:
            raise RateLimited(f"more than {self.per_second} requests per second for this key", retry_after=1)
