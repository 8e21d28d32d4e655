"""kill -9 at any moment loses no acknowledged event and stores none twice, when SDKs resend what was
not acknowledged: the server runs as a child process, several clients send batches, it is killed
mid-stream, restarted, and the clients resend."""

from __future__ import annotations

import base64
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_nexus
from tests.test_serve import Server

CLIENTS = 4
BATCHES_PER_CLIENT = 12  # the kill comes after ~3 per client: the rest are in flight or waiting
EVENTS_PER_BATCH = 200


def make_batches(client: int) -> list[list[dict]]:
    return [[{"type": "track", "event": "Crash Test", "anonymousId": f"c{client}", "messageId": f"c{client}-b{b}-e{e}",
              "properties": {"n": e}} for e in range(EVENTS_PER_BATCH)] for b in range(BATCHES_PER_CLIENT)]


class Sdk(threading.Thread):
    """Sends its batches in order; stops at the first failure, keeping what was not acknowledged."""

    def __init__(self, url: str, key: str, pending: list[list[dict]], acked: list[str]):
        super().__init__()
        self.url, self.pending, self.acked = url, pending, acked
        self.headers = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while self.pending:
                try:
                    answer = http.post(f"{self.url}/v1/batch", json={"batch": self.pending[0]}, headers=self.headers)
                except httpx.HTTPError:
                    return
                if answer.status_code != 200:
                    return
                self.acked.extend(e["messageId"] for e in self.pending.pop(0))


@pytest.mark.parametrize("ack", ["stored", "logged"])  # answered once inserted, or once in the fsync'd log
def test_kill_9_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, ack: str):
    data_dir = tmp_path / "data"
    env = {"NEXUS_ACK": ack}
    assert run_nexus("project", "create", "crash", data_dir=data_dir).returncode == 0
    key = run_nexus("key", "create", "--project", "crash", "--scope", "write", data_dir=data_dir).stdout.strip()
    pending = [make_batches(c) for c in range(CLIENTS)]
    acked: list[str] = []

    # Given clients streaming batches, when the server is killed mid-stream
    server = Server(data_dir, env=env)
    clients = [Sdk(server.url, key, pending[c], acked) for c in range(CLIENTS)]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 60
    while len(acked) < CLIENTS * 3 * EVENTS_PER_BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop(signal.SIGKILL)
    for c in clients:
        c.join()
    acked_before_kill = set(acked)
    assert acked_before_kill, "no batch was acknowledged before the kill"
    assert any(pending), "the kill came after every batch was sent; nothing was in flight"

    # Then after a restart, resending everything unacknowledged stores every event exactly once
    restarted = Server(data_dir, env=env)
    clients = [Sdk(restarted.url, key, pending[c], acked) for c in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert restarted.stop()[0] == 0
    assert not any(pending)

    counts = run_nexus("sql", "SELECT count(), uniqExact(message_id) FROM events", "--format", "csv", data_dir=data_dir)
    total, distinct = map(int, counts.stdout.splitlines()[1].split(","))
    assert distinct == total == CLIENTS * BATCHES_PER_CLIENT * EVENTS_PER_BATCH
    assert set(acked) >= acked_before_kill and len(set(acked)) == total
    rollup = run_nexus("sql", "SELECT sum(events) FROM events_hourly", "--format", "csv", data_dir=data_dir)
    assert int(rollup.stdout.splitlines()[1]) == total
