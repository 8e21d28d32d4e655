"""Shared fixtures: one embedded chDB engine per test process (chDB allows one data dir per process),
one database per test module, one embedded redis-server per session, and a helper to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from nexus import redis_server
from nexus.store.database import open_database

# Demo data in tests ends at a fixed instant, so every number derived from it is reproducible.
DEMO_END = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine") / "clickhouse"


@pytest.fixture(scope="module")
def database_url(engine_dir: Path, request: pytest.FixtureRequest) -> str:
    name = "t_" + request.module.__name__.rsplit(".", 1)[-1]
    return f"chdb://{engine_dir}?database={name}"


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[Client]:
    """A migrated database of this test module's own."""
    database = open_database(database_url)
    yield database
    database.close()


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_server.RedisHandle]:
    handle = redis_server.start_embedded(tmp_path_factory.mktemp("redis"))
    yield handle
    handle.close()


def run_nexus(*args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 120,
              input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `nexus` CLI in a child process on its own data dir, as a person would."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    environment.update({"NEXUS_DATA_DIR": str(data_dir), **(env or {})})
    return subprocess.run([sys.executable, "-m", "nexus", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout, input=input_text)
