"""`nexus serve` end to end: demo data on an empty store, health over HTTP, clean stop, data kept."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nexus.dashboard.signin import COOKIE
from nexus.serve import _listen
from tests.conftest import run_nexus


class Server:
    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
        environment.update(NEXUS_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"server exited: {self.process.wait()} {self.process.stderr.read()}")
            self.lines.append(line)
            if match := re.match(r"Nexus is serving (http://\S+)", line):
                self.url = match[1]
                return
        raise AssertionError("server did not start in time")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=60)
        return self.process.returncode, out


def redis_servers_under(data_dir: Path) -> list[str]:
    """Pids of live redis-server processes whose command line names this data dir."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode()
            state = (cmdline.parent / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if "redis-server" in text and str(data_dir) in text and state != "Z":
            found.append(cmdline.parent.name)
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store without projects, shared by the tests that leave it so (migrating costs seconds); each
    test leaves it held by no process."""
    directory = tmp_path_factory.mktemp("empty") / "data"
    assert run_nexus("migrate", data_dir=directory).returncode == 0
    return directory


def test_serve_loads_demo_answers_health_and_stops_cleanly(data_dir: Path):
    server = Server(data_dir, "--demo", "2000")
    try:
        assert any("Loading 2,000 demo events into project 'demo'" in line for line in server.lines)
        assert sum("key (shown once): nx_" in line for line in server.lines) == 2
        live = httpx.get(f"{server.url}/health/live")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/health/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"clickhouse": "ok", "redis": "ok", "migrations": "ok", "writer": "ok"}, "workers_alive": None}, ready.text
        missing = httpx.get(f"{server.url}/nope")
        assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
        check_dashboard(server.lines, re.findall(r"Demo read key \(shown once\): (\S+)", "".join(server.lines))[0])
        # While it runs, the embedded store belongs to it
        held = run_nexus("sql", "SELECT 1", data_dir=data_dir)
        assert held.returncode == 1 and f"in use by process {server.process.pid}" in held.stderr
        assert len(redis_servers_under(data_dir)) == 1
    finally:
        code, out = server.stop()
    assert code == 0 and "Nexus stopped" in out
    assert redis_servers_under(data_dir) == []
    # The data survives the restart, and a second start loads no more demo data, saying so and how to get keys
    instance = next(re.findall(r"nx_\S+", line)[-1] for line in server.lines if "Instance admin key" in line)
    again = Server(data_dir, "--demo", "2000")
    try:
        assert not any("Loading" in line or "key (shown once)" in line for line in again.lines)
        [skipped] = [line for line in again.lines if line.startswith("Demo skipped")]
        assert "already has projects ('demo')" in skipped
        command = re.search(r"nexus (key create --url \S+ --key INSTANCE_KEY --project demo --scope read)", skipped)
        assert command and again.url in command[1]
        # Following it with the instance admin key of the first start gives a read key that works
        made = run_nexus(*command[1].replace("INSTANCE_KEY", instance).split(), data_dir=data_dir.parent / "cwd")
        assert made.returncode == 0, made.stderr
        answer = httpx.post(f"{again.url}/v1/query", json={"sql": "SELECT count() FROM events"},
                            headers={"Authorization": f"Bearer {made.stdout.strip()}"})
        assert answer.json()["rows"] == [[2000]]
    finally:
        assert again.stop()[0] == 0
    counted = run_nexus("sql", "SELECT count() FROM events", "--format", "csv", data_dir=data_dir)
    assert counted.stdout.splitlines()[1] == "2000"


def check_dashboard(lines: list[str], read_key: str) -> None:
    """The dashboard named on its start-up line: pages only after sign-in, a read key signs in."""
    [url] = [m[1] for line in lines if (m := re.match(r"Dashboard: (http://\S+/)", line))]
    with httpx.Client(base_url=url) as browser:
        page = browser.get("overview")
        assert page.status_code == 302 and page.headers["location"].endswith("login?next=%2Foverview")
        assert "Sign in" in browser.get("login").text
        refused = browser.post("login", data={"key": "nx_wrong", "next": "/overview"})
        assert refused.status_code == 401 and COOKIE not in refused.headers.get("set-cookie", "")
        signed = browser.post("login", data={"key": read_key, "next": "/overview"})
        assert signed.status_code == 302 and signed.headers["location"] == "/overview"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        shown = browser.get("overview")
        assert shown.status_code == 200 and "bokeh" in shown.text


def test_a_killed_server_takes_its_redis_with_it_and_the_store_reopens(empty_store: Path):
    server = Server(empty_store)
    try:
        # A store without projects: the start says which data dir it opened, in case it was not the one meant
        assert f"Note: no projects in the store at {empty_store} (the data dir is NEXUS_DATA_DIR" in "".join(server.lines)
        assert redis_servers_under(empty_store)
        # Its port is taken: another server asked for it says so in one line
        port = server.url.rsplit(":", 1)[1]
        result = run_nexus("serve", "--port", port, data_dir=empty_store.parent / "other")
        assert result.returncode == 1
        assert re.fullmatch(rf"error: cannot listen on 127.0.0.1:{port}: .*\n", result.stderr), result.stderr
    finally:
        server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while redis_servers_under(empty_store) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers_under(empty_store) == []
    restarted = Server(empty_store)
    try:
        assert httpx.get(f"{restarted.url}/health/ready").status_code == 200
    finally:
        assert restarted.stop()[0] == 0


def test_a_taken_dashboard_port_is_one_line(empty_store: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_nexus("serve", "--port", "0", "--dashboard-port", str(port), data_dir=empty_store)
    assert result.returncode == 1
    assert re.fullmatch(rf"error: cannot listen on 127.0.0.1:{port} \(the dashboard's port, NEXUS_DASHBOARD_PORT\): .*\n",
                        result.stderr), result.stderr


def test_nexus_dashboard_serves_a_migrated_store_alone(empty_store: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    env.update(NEXUS_DATA_DIR=str(empty_store), NEXUS_DASHBOARD_PORT="0", PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "nexus", "dashboard"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        url = re.match(r"Nexus dashboard is serving (http://\S+/)", line)
        assert url, line
        assert httpx.get(f"{url[1]}login").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_nexus_dashboard_on_a_store_never_migrated_says_so_at_start(tmp_path: Path):
    result = run_nexus("dashboard", "--port", "0", data_dir=tmp_path / "new")
    assert result.returncode == 1
    assert re.fullmatch(r"error: the store is not migrated \(\d+ migrations pending, from 001_events.sql\): "
                        r"run `nexus migrate` first\n", result.stderr), result.stderr


def test_answers_on_a_kept_alive_connection_are_not_held_back_by_nagle():
    # Given the listener nexus serve hands to uvicorn, served by asyncio as uvicorn serves it
    listener = _listen("127.0.0.1", 0)
    accepted: list[bool] = []

    async def main() -> None:
        def connected(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            writer.close()

        server = await asyncio.start_server(connected, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        while not accepted:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()

    asyncio.run(main())
    # Then each accepted connection sends without Nagle's wait (with it, every answer after the first on a
    # kept-alive connection waited ~40 ms for the client's delayed ACK)
    assert accepted == [True]
