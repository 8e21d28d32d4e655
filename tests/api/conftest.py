"""The real HTTP server over loopback: the Litestar app under uvicorn in a thread of the test process,
on this module's database and the session's redis-server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn

from nexus.api.app import create_app
from nexus.meta import keys, projects
from nexus.runtime import Runtime, open_runtime
from nexus.settings import load


class Server(msgspec.Struct):
    url: str
    runtime: Runtime
    app: object

    def project_with_keys(self, name: str) -> tuple[int, dict[str, str]]:
        project = projects.create(self.runtime.clickhouse, name)
        secrets = {scope: keys.create(self.runtime.clickhouse, project.project_id, scope)[1]
                   for scope in ("write", "read", "admin")}
        return project.project_id, secrets


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """More NEXUS_* settings for this module's server: a test module overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
def server(database_url: str, redis, tmp_path_factory: pytest.TempPathFactory,
           server_env: dict[str, str]) -> Iterator[Server]:
    settings = load({"NEXUS_DATA_DIR": str(tmp_path_factory.mktemp("data")), "NEXUS_CLICKHOUSE_URL": database_url,
                     "NEXUS_REDIS_URL": redis.url, "NEXUS_LOG_LEVEL": "warning",
                     "NEXUS_WRITER_MAX_DELAY_MS": "20", **server_env})
    # Test modules share the session's redis-server and number their projects from 1 each: start this
    # module's server without another module's dedup keys, metrics and cache generations for its ids.
    redis.client.flushdb()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, as serve's
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    with open_runtime(settings) as runtime:
        app = create_app(runtime)
        uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        while not uvicorn_server.started:
            time.sleep(0.01)
        yield Server(f"http://127.0.0.1:{listener.getsockname()[1]}", runtime, app)
        uvicorn_server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
