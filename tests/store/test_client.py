"""Opening the store: URL parsing, and one clear line for every way opening can fail."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nexus.errors import InvalidConfig
from nexus.store.client import parse_url, redact_url
from tests.conftest import run_nexus


def test_chdb_urls_name_a_data_dir_and_optionally_a_database(tmp_path: Path):
    assert parse_url(f"chdb://{tmp_path}/ch").path == str(tmp_path / "ch")
    assert parse_url(f"chdb://{tmp_path}/ch").database == "nexus"
    assert parse_url(f"chdb://{tmp_path}/ch?database=other").database == "other"


def test_http_urls_carry_credentials_port_and_database():
    address = parse_url("https://alice:s%40cret@ch.example.com/analytics")
    assert (address.engine, address.host, address.port, address.username, address.password, address.database,
            address.secure) == ("http", "ch.example.com", 8443, "alice", "s@cret", "analytics", True)
    assert parse_url("http://ch:9000").port == 9000
    assert "s@cret" not in address.describe()
    assert redact_url("http://alice:secret@host:8123/db") == "http://alice:***@host:8123/db"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://host/db", "must start with chdb:// or http"),
        ("http:///db", "names no host"),
        ("http://host:99999/db", "invalid port"),
        ("http://host:8123/bad-name!", "database name"),
        ("chdb://", "names no data dir"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str):
    with pytest.raises(InvalidConfig, match=reason):
        parse_url(url)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_an_invalid_url_is_one_line_and_a_non_zero_exit(tmp_path: Path):
    line = one_line_error(run_nexus("migrate", data_dir=tmp_path, env={"NEXUS_CLICKHOUSE_URL": "ftp://x"}))
    assert "NEXUS_CLICKHOUSE_URL must start with" in line


def test_an_unreachable_server_is_one_line(tmp_path: Path):
    line = one_line_error(run_nexus("migrate", data_dir=tmp_path,
                                    env={"NEXUS_CLICKHOUSE_URL": "http://default:pw@127.0.0.1:1/nexus"}))
    assert "cannot open ClickHouse at http://127.0.0.1:1" in line and "pw" not in line


def test_a_data_dir_that_cannot_be_written_is_one_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_error(run_nexus("migrate", data_dir=blocker / "data"))
    assert f"cannot use data dir {blocker}/data/clickhouse" in line


def test_a_held_data_dir_names_its_holder(tmp_path: Path):
    # Given a process that holds the embedded store open
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from nexus.store.database import open_database; "
         f"open_database('chdb://{tmp_path}/clickhouse'); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        # When another process opens it
        line = one_line_error(run_nexus("sql", "SELECT 1", data_dir=tmp_path))
        # Then it is told who holds it and what to do
        assert f"is in use by process {holder.pid}" in line and "stop it" in line
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone, the store opens (a lock is released with its process, even after SIGKILL)
    deadline = time.monotonic() + 10
    result = run_nexus("sql", "SELECT 41 + 1", data_dir=tmp_path)
    while result.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        result = run_nexus("sql", "SELECT 41 + 1", data_dir=tmp_path)
    assert "42" in result.stdout


def test_a_full_disk_is_one_line(tmp_path: Path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        assert run_nexus("migrate", data_dir=tiny).returncode == 0
        line = one_line_error(run_nexus("demo", "--events", "100000", data_dir=tiny))
        assert "the disk is full" in line
        # The store still opens and answers afterwards
        assert run_nexus("sql", "SELECT count() FROM projects", "--format", "csv", data_dir=tiny).returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(tiny)])


def test_one_insert_may_span_many_projects_and_months(client):
    # Given tables partitioned by project and month, one group-commit block of 150 projects (or an
    # import of 13 years) touches more partitions than the engine's default of 100 per insert allows:
    # here 60 projects in two months far apart, 120 partitions (each one costs parts on disk, so no more)
    rows = [[project, datetime(2010 + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc), f"m{project}-{month}"]
            for project in range(1000, 1060) for month in (0, 104)]
    client.insert("events", rows, column_names=["project_id", "ts", "message_id"])
    stored = client.query("SELECT count(), uniqExact(_partition_id) FROM events WHERE project_id >= 1000").result_rows
    assert stored == [(120, 120)]
