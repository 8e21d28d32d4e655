"""`nexus backup`, `nexus restore` and `nexus copy` as an operator runs them, on real data dirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_nexus
from tests.test_serve import Server

COUNTS = "SELECT event, count() AS n FROM events GROUP BY event ORDER BY event"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with project 'shop' (id 1): 1,000 demo events, its default dashboard and a key."""
    directory = tmp_path_factory.mktemp("source") / "data"
    assert run_nexus("project", "create", "shop", data_dir=directory).returncode == 0
    assert run_nexus("demo", "--events", "1000", "--project", "shop", "--seed", "9", data_dir=directory).returncode == 0
    assert run_nexus("key", "create", "--project", "shop", "--scope", "read", data_dir=directory).returncode == 0
    return directory


def csv(data_dir: Path, query: str) -> str:
    done = run_nexus("sql", query, "--format", "csv", data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_backup_then_restore_brings_the_store_back(source: Path, tmp_path: Path):
    # Given a backup of the store
    before = csv(source, COUNTS)
    made = run_nexus("backup", str(tmp_path / "b1"), data_dir=source)
    assert made.returncode == 0, made.stderr
    assert "(1,000 events) to" in made.stdout
    # When the store changes (a project and its default dashboard), then the backup is restored
    assert run_nexus("project", "create", "later", data_dir=source).returncode == 0
    restored = run_nexus("restore", str(tmp_path / "b1"), "--yes", data_dir=source)
    assert restored.returncode == 0, restored.stderr
    assert "rows and checksums match the backup" in restored.stdout
    # Then the store is as it was backed up
    assert csv(source, COUNTS) == before
    assert csv(source, "SELECT name FROM projects FINAL ORDER BY name") == '"name"\n"shop"\n'


def test_copy_survives_a_kill_and_resumes_to_an_equal_copy(source: Path, tmp_path: Path):
    # Given a destination whose project 1 is another one
    destination = tmp_path / "destination"
    assert run_nexus("project", "create", "first", data_dir=destination).returncode == 0
    staging = tmp_path / "staging"
    command = ["copy", "--project", "shop", "--from", f"chdb://{source}/clickhouse",
               "--to", f"chdb://{destination}/clickhouse", "--staging", str(staging), "--batch-rows", "10"]
    # When a copy is killed while it writes the destination
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    copying = subprocess.Popen([sys.executable, "-m", "nexus", *command], env={**environment, "NEXUS_DATA_DIR": str(destination)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = staging / "loaded.jsonl"
    deadline = time.monotonic() + 120
    while (not journal.exists() or journal.read_bytes().count(b"\n") < 5) and time.monotonic() < deadline:
        assert copying.poll() is None, copying.communicate()
        time.sleep(0.01)
    copying.send_signal(signal.SIGKILL)
    copying.wait()
    partial = int(csv(destination, "SELECT count() AS n FROM events WHERE project_id = 2").split()[1])
    assert 0 < partial < 1000 and (staging / "target.json").is_file()
    # Then running it again finishes the copy, verified
    resumed = run_nexus(*command, data_dir=destination, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "each with equal rows and checksum; its id in the destination is 2" in resumed.stdout
    assert not staging.exists()
    # And the destination answers as the source does: events, the dashboard, the key, the rollups
    seen = ("SELECT (SELECT arraySort(groupArray((event, n))) FROM (SELECT event, count() AS n FROM events "
            "WHERE project_id = {p} GROUP BY event)) AS events, (SELECT arraySort(groupArray((event, n))) FROM "
            "(SELECT event, sum(events) AS n FROM events_daily WHERE project_id = {p} GROUP BY event)) AS rollup, "
            "(SELECT groupArray(name) FROM projects FINAL WHERE project_id = {p}) AS name, "
            "(SELECT count() FROM dashboards FINAL WHERE project_id = {p}) AS boards, "
            "(SELECT groupArray(key_id) FROM api_keys FINAL WHERE project_id = {p}) AS keys")
    assert csv(destination, seen.format(p=2)) == csv(source, seen.format(p=1))
    assert "1000" in csv(source, "SELECT count() FROM events WHERE project_id = 1")
    # And a second copy of the same project is refused, naming why
    again = run_nexus(*command, data_dir=destination, timeout=300)
    assert again.returncode == 1 and "has a project named 'shop' already" in again.stderr


def test_backup_through_a_running_server(source: Path, tmp_path: Path):
    # Given the store served (it is the server's own: a local backup is refused, naming the holder)
    admin = "nx_admin_" + "b" * 40
    server = Server(source, env={"NEXUS_ADMIN_KEY": admin})
    try:
        held = run_nexus("backup", str(tmp_path / "local"), data_dir=source)
        assert held.returncode == 1 and f"in use by process {server.process.pid}" in held.stderr
        # When the backup goes through the server with the instance admin key
        done = run_nexus("backup", str(tmp_path / "served"), "--url", server.url, "--key", admin,
                         data_dir=tmp_path / "elsewhere")
        refused = run_nexus("backup", str(tmp_path / "other"), "--url", server.url, "--key", "nx_wrong",
                            data_dir=tmp_path / "elsewhere")
    finally:
        server.stop()
    # Then it is written where asked, and a wrong key gets one line
    assert done.returncode == 0, done.stderr
    assert "(1,000 events) to " + str(tmp_path / "served") in done.stdout
    assert (tmp_path / "served" / "nexus-backup.json").is_file()
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and not (tmp_path / "other").exists()
