"""The clients one Nexus process holds: ClickHouse and Redis, opened at start and closed at stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
from clickhouse_connect.driver.client import Client

from nexus import redis_server
from nexus.settings import Settings
from nexus.store.database import open_database


class Runtime(msgspec.Struct):
    settings: Settings
    clickhouse: Client
    redis: redis_server.RedisHandle


@contextmanager
def open_runtime(settings: Settings) -> Iterator[Runtime]:
    """Open ClickHouse (migrated) and Redis (embedded unless NEXUS_REDIS_URL is set); close both after."""
    clickhouse = open_database(settings.clickhouse_url)
    try:
        if settings.redis_url:
            redis = redis_server.connect(settings.redis_url)
        else:
            redis = redis_server.start_embedded(settings.data_dir)
        try:
            yield Runtime(settings, clickhouse, redis)
        finally:
            redis.close()
    finally:
        clickhouse.close()
