"""A Nexus with job workers: the API under uvicorn over loopback and worker threads in the test process,
on this module's database and the session's redis-server, as `nexus serve` runs them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from nexus.jobs.service import working
from tests.api.conftest import Server, http, server, server_env  # noqa: F401  (fixtures)

JOB_ENV = {"NEXUS_WORKER_THREADS": "2", "NEXUS_JOB_BACKOFF_SECONDS": "1", "NEXUS_JOB_MAX_ATTEMPTS": "3",
           "NEXUS_SCHEDULER_TICK_SECONDS": "1"}


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:  # noqa: F811
    return dict(JOB_ENV)


@pytest.fixture(scope="module")
def workers(server: Server) -> Iterator[Server]:  # noqa: F811
    """The server with its workers and scheduler running."""
    with working(server.runtime, server.runtime.settings.worker_threads):
        yield server


def wait_for_job(http_client: httpx.Client, key: str, job_id: str, *, until: tuple[str, ...] = ("done", "failed", "cancelled"),
                 timeout: float = 60) -> dict:
    """Poll GET /v1/jobs/{id} until the job is in one of `until`; its last view."""
    deadline = time.monotonic() + timeout
    while True:
        job = http_client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
        if job.get("state") in until or time.monotonic() > deadline:
            return job
        time.sleep(0.1)
