"""A Redis outage, on a real redis-server that is stopped: every use of Redis raises StorageUnavailable
(the API's 503 with Retry-After), from commands, pipelines, Lua scripts and locks alike; it is also a redis
ConnectionError, so the uses that are best effort (ingest metrics) still catch it as one."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from nexus import redis_server
from nexus.api.limits import RateLimiter
from nexus.errors import StorageUnavailable
from nexus.ingest.dedup import Dedup
from nexus.meta import keys
from nexus.services.analyses import AnalysisService


@pytest.fixture()
def stopped(tmp_path: Path) -> Iterator[redis_server.RedisHandle]:
    """A client whose redis-server was running when it connected, and is stopped now."""
    handle = redis_server.start_embedded(tmp_path)
    client = handle.client
    assert client.set("before", 1)
    handle.close()
    handle.client = redis_server.NexusRedis(connection_pool=client.connection_pool)
    yield handle


def unavailable(call) -> StorageUnavailable:
    with pytest.raises(StorageUnavailable) as caught:
        call()
    assert "Redis is unavailable" in str(caught.value) and caught.value.retry_after > 0
    assert isinstance(caught.value, redis_py.ConnectionError)  # best-effort callers still catch it
    return caught.value


def test_every_way_nexus_uses_redis_raises_storage_unavailable(stopped, client) -> None:
    redis = stopped.client
    unavailable(lambda: redis.get("before"))
    unavailable(lambda: redis.pipeline(transaction=False).incr("x").expire("x", 2).execute())
    unavailable(lambda: redis.register_script("return 1")())
    unavailable(lambda: redis.lock("nexus:lock:test", timeout=5, blocking_timeout=1).acquire())
    unavailable(lambda: keys.generation(redis))  # the key cache's revocation counter
    unavailable(lambda: RateLimiter(redis, 10).check("key"))
    unavailable(lambda: Dedup(redis, 24).claim(client, [(1, "m1")]))
    unavailable(lambda: AnalysisService(client, redis).answer(1, "trends", {"series": [{"event": "x"}]}))


def test_a_running_redis_is_used_as_before(tmp_path: Path) -> None:
    handle = redis_server.start_embedded(tmp_path)
    try:
        redis = handle.client
        assert isinstance(redis, redis_server.NexusRedis)
        assert redis.pipeline(transaction=False).incr("n").expire("n", 5).execute() == [1, True]
        assert redis.register_script("return ARGV[1]")(args=["ok"]) == b"ok"
        lock = redis.lock("l", timeout=5, blocking_timeout=1)
        assert lock.acquire() and lock.release() is None
    finally:
        handle.close()


def test_a_redis_that_hangs_fails_a_command_after_ten_seconds(tmp_path: Path) -> None:
    # Given a redis-server that stops answering without closing its connections (SIGSTOP)
    handle = redis_server.start_embedded(tmp_path)
    handle.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        # Then a command fails as an outage after the socket timeout instead of waiting forever
        unavailable(lambda: handle.client.get("anything"))
        assert 9 < time.monotonic() - started < 20
    finally:
        handle.process.send_signal(signal.SIGCONT)
        handle.close()
