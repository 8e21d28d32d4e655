"""NEXUS_ACK=logged: a request answered once its events are in the fsync'd ack log loses none of them and stores
none twice when the server is killed with -9 between the log append and the insert, or while it replays the
log at the next start, and when SDKs resend everything after."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nexus.errors import InvalidConfig
from nexus.settings import load
from tests.conftest import run_nexus
from tests.test_serve import Server

BATCHES = 8
EVENTS_PER_BATCH = 500
# No block is inserted while the test sends: the writer waits for 100,000 events or ten minutes.
LOGGED = {"NEXUS_ACK": "logged", "NEXUS_WRITER_MAX_DELAY_MS": "600000"}


def batches() -> list[list[dict]]:
    return [[{"type": "track", "event": "Logged", "anonymousId": f"a{e % 7}", "messageId": f"b{b}-e{e}",
              "properties": {"n": e}} for e in range(EVENTS_PER_BATCH)] for b in range(BATCHES)]


def send(url: str, key: str, batch: list[dict]) -> dict:
    headers = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    answer = httpx.post(f"{url}/v1/batch", json={"batch": batch}, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored(data_dir: Path) -> tuple[int, int, int]:
    """Events, distinct messageIds, and the hourly rollup's events, read while no server runs."""
    counts = run_nexus("sql", "SELECT count(), uniqExact(message_id), (SELECT sum(events) FROM events_hourly) "
                       "FROM events", "--format", "csv", data_dir=data_dir)
    assert counts.returncode == 0, counts.stderr
    total, distinct, rollup = map(int, counts.stdout.splitlines()[1].split(","))
    return total, distinct, rollup


def segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "ack-log").glob("*.log"))


@pytest.fixture(scope="module")
def killed_after_ack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A data dir whose server acknowledged every batch and was killed before inserting any, its key, and a
    copy of the dir as the kill left it."""
    data_dir = tmp_path_factory.mktemp("ack-log") / "data"
    assert run_nexus("project", "create", "logged", data_dir=data_dir).returncode == 0
    key = run_nexus("key", "create", "--project", "logged", "--scope", "write", data_dir=data_dir).stdout.strip()
    server = Server(data_dir, env=LOGGED)
    for batch in batches():
        assert send(server.url, key, batch) == {"success": True, "stored": EVENTS_PER_BATCH, "duplicates": 0}
    server.stop(signal.SIGKILL)
    snapshot = data_dir.parent / "snapshot"
    shutil.copytree(data_dir, snapshot, symlinks=True, ignore=shutil.ignore_patterns("*.sock"))
    return data_dir, key, snapshot


def test_kill_9_between_log_append_and_insert_loses_nothing(killed_after_ack: tuple[Path, str, Path]):
    data_dir, key, _ = killed_after_ack
    # Given every batch acknowledged and none inserted when the server was killed
    assert segments(data_dir)
    assert stored(data_dir) == (0, 0, 0)
    saved = data_dir.parent / "saved-log"
    shutil.copytree(data_dir / "ack-log", saved)

    # When the server starts again and SDKs resend every batch
    restarted = Server(data_dir, env=LOGGED)
    answers = [send(restarted.url, key, batch) for batch in batches()]
    assert restarted.stop()[0] == 0

    # Then the log was inserted before the first request, the resends are duplicates, and the log is empty
    assert answers == [{"success": True, "stored": 0, "duplicates": EVENTS_PER_BATCH}] * BATCHES
    total = BATCHES * EVENTS_PER_BATCH
    assert stored(data_dir) == (total, total, total)
    assert not segments(data_dir)

    # And a log replayed again after its events were inserted (killed after the insert, before the log was
    # deleted) stores nothing twice
    for segment in saved.glob("*.log"):
        shutil.copy(segment, data_dir / "ack-log")
    Server(data_dir, env=LOGGED).stop()
    assert stored(data_dir) == (total, total, total)
    assert not segments(data_dir)


def test_kill_9_during_replay_replays_again_without_duplicates(tmp_path: Path,
                                                               killed_after_ack: tuple[Path, str, Path]):
    _, key, snapshot = killed_after_ack
    data_dir = tmp_path / "data"
    shutil.copytree(snapshot, data_dir, symlinks=True)
    assert segments(data_dir)

    # Given a server killed while it inserts the log at start
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    environment.update(NEXUS_DATA_DIR=str(data_dir), **LOGGED)
    replaying = subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--port", "0"], env=environment,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        said.append(replaying.stderr.readline())
        assert said[-1], f"the server exited before replaying its log: {said}"
        if "acknowledged events from the ack log" in said[-1]:
            break
    replaying.send_signal(signal.SIGKILL)
    replaying.wait(30)
    assert segments(data_dir), "the replay finished before the kill"

    # When it starts again, and SDKs resend every batch
    restarted = Server(data_dir, env=LOGGED)
    answers = [send(restarted.url, key, batch) for batch in batches()]
    assert restarted.stop()[0] == 0

    # Then every acknowledged event is stored once, and the rollups saw each once
    assert all(a["stored"] == 0 for a in answers), json.dumps(answers)
    total = BATCHES * EVENTS_PER_BATCH
    assert stored(data_dir) == (total, total, total)
    assert not segments(data_dir)


def test_logged_acknowledgement_is_refused_outside_embedded_mode():
    with pytest.raises(InvalidConfig, match="NEXUS_ACK=logged is for embedded mode"):
        load({"NEXUS_ACK": "logged", "NEXUS_CLICKHOUSE_URL": "http://nexus:secret@clickhouse:8123/nexus"})
    with pytest.raises(InvalidConfig, match="NEXUS_ACK must be stored or logged, not 'sometimes'"):
        load({"NEXUS_ACK": "sometimes"})
