"""The data dir is readable by its user only: what a running `nexus serve`, its embedded redis-server, an
import's spool and the CLI create is 700 (directories) and 600 (files), and a wider dir gets a warning."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from pathlib import Path

import httpx
import pytest
import redis

from nexus import permissions
from tests.conftest import run_nexus
from tests.test_serve import Server

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security


def open_entries(root: Path) -> list[str]:
    """Every path under `root` (itself included) that another local user could enter or read."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        expected = 0o700 if stat.S_ISDIR(mode) or stat.S_ISSOCK(mode) else 0o600
        if stat.S_IMODE(mode) & 0o077 or (stat.S_ISREG(mode) and stat.S_IMODE(mode) & ~expected):
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(mode):o}")
    return found


@pytest.fixture
def loose_umask():
    """The usual login umask, 022, as a person's shell would start Nexus with."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_running_server_creates_every_file_for_its_user_only(tmp_path: Path, loose_umask):
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--demo", "500")
    try:
        instance = next(re.findall(r"nx_\S+", line)[-1] for line in server.lines if "Instance admin key" in line)
        headers = {"Authorization": f"Bearer {instance}"}
        admin = httpx.post(f"{server.url}/v1/keys", json={"project_id": 1, "scope": "admin"}, headers=headers)
        assert admin.status_code == 201, admin.text
        # An import goes through the spool; an event through the writer, the dedup keys and Redis's AOF
        lines = "\n".join(json.dumps({"type": "track", "event": "imported", "userId": f"u{i}",
                                      "timestamp": "2026-01-05T10:00:00Z"}) for i in range(20))
        imported = httpx.post(f"{server.url}/v1/import", content=lines.encode(),
                              headers={"Authorization": f"Bearer {admin.json()['secret']}"})
        assert imported.status_code == 200, imported.text
        assert (data_dir / "spool").is_dir()
        aof = [p for p in (data_dir / "redis").rglob("*.aof*") if p.is_file()]
        assert aof and aof[0].stat().st_size
        redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock")).save()  # the RDB snapshot too
        assert (data_dir / "redis" / "nexus.rdb").stat().st_size
        # While it runs: parts, metadata, the AOF, the spool
        assert open_entries(data_dir) == []
    finally:
        code, _ = server.stop()
    assert code == 0
    assert open_entries(data_dir) == []


def test_cli_commands_on_a_new_store_create_it_for_their_user_only_and_a_dir_opened_later_is_reported(
        tmp_path: Path, loose_umask):
    data_dir = tmp_path / "data"
    assert run_nexus("project", "create", "shared", data_dir=data_dir).returncode == 0
    assert open_entries(data_dir) == []
    # When the owner opens it to others, the next start reports it
    data_dir.chmod(0o755)
    (data_dir / "clickhouse").chmod(0o750)
    server = Server(data_dir)
    server.process.send_signal(signal.SIGTERM)
    _, stderr = server.process.communicate(timeout=60)
    assert f"{data_dir} is open to other local users (mode 755)" in stderr, stderr
    assert f"{data_dir / 'clickhouse'} is open to other local users (mode 750)" in stderr
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # reported, not changed behind the owner's back


def test_the_check_names_what_others_may_do(tmp_path: Path, caplog):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    opened = tmp_path / "opened"
    opened.mkdir()
    opened.chmod(0o711)
    assert not permissions.warn_if_open(closed) and not permissions.warn_if_open(tmp_path / "missing")
    assert permissions.warn_if_open(opened)
    assert "mode 711" in caplog.text and "chmod -R go-rwx" in caplog.text
