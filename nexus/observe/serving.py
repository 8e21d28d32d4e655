"""Starts what a service process needs to be observed: JSON logs at NEXUS_LOG_LEVEL, metric files shared
with the other processes of the machine in server mode, the dependency gauges kept fresh, and
NEXUS_METRICS_PORT's plain /metrics listener."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import start_http_server

from nexus.observe import logs
from nexus.observe.metrics import exposed, forget_process, use_directory
from nexus.runtime import Runtime
from nexus.settings import Settings

log = logging.getLogger("nexus.observe")

DEPENDENCY_CHECK_SECONDS = 15


def prepare(settings: Settings) -> None:
    """Before anything is recorded: logs as JSON and, in server mode (a Redis server: other processes may
    serve beside this one), metric values kept in files under the data dir."""
    logs.configure(settings.log_level)
    if settings.redis_url:
        use_directory(settings.data_dir / "metrics")


@contextmanager
def observed(runtime: Runtime) -> Iterator[None]:
    """While the block runs: the dependency gauges checked every DEPENDENCY_CHECK_SECONDS and, with
    NEXUS_METRICS_PORT, metrics served on it."""
    settings = runtime.settings
    stop = threading.Event()

    def check_dependencies() -> None:
        while not stop.is_set():
            runtime.record_dependencies()
            stop.wait(DEPENDENCY_CHECK_SECONDS)

    checker = threading.Thread(target=check_dependencies, name="nexus-dependency-check", daemon=True)
    checker.start()
    listener = None
    if settings.metrics_port:
        listener, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=exposed())
        log.info("metrics", extra={"url": f"http://{settings.host}:{settings.metrics_port}/metrics"})
    try:
        yield
    finally:
        stop.set()
        if listener is not None:
            listener.shutdown()
            listener.server_close()
        forget_process()
