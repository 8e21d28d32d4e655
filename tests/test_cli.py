"""The `nexus` command as a person uses it: projects, keys, demo data and SQL in every format."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_nexus


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    assert run_nexus("project", "create", "shop", data_dir=directory).returncode == 0
    loaded = run_nexus("demo", "--events", "3000", "--project", "shop", "--seed", "5", data_dir=directory)
    assert loaded.returncode == 0 and "stored 3,000 demo events in project 'shop' (id 1)" in loaded.stdout
    return directory


def test_version(tmp_path: Path):
    result = run_nexus("version", data_dir=tmp_path)
    assert result.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\S+\n", result.stdout)


def test_key_create_prints_the_key_alone_on_stdout_and_lists_only_its_id(data_dir: Path):
    created = run_nexus("key", "create", "--project", "shop", "--scope", "write", "--name", "site", data_dir=data_dir)
    assert created.returncode == 0
    assert re.fullmatch(r"nx_[A-Za-z0-9_-]{40}\n", created.stdout), created.stdout
    secret = created.stdout.strip()
    listed = run_nexus("key", "list", "--project", "shop", data_dir=data_dir)
    assert secret[:11] in listed.stdout and secret not in listed.stdout and "write" in listed.stdout
    revoked = run_nexus("key", "revoke", secret[:11], data_dir=data_dir)
    assert revoked.returncode == 0 and f"revoked key {secret[:11]}" in revoked.stdout
    row = next(line for line in run_nexus("key", "list", data_dir=data_dir).stdout.splitlines() if secret[:11] in line)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*\s*$", row), row  # revoked_at is filled


def test_sql_prints_a_readable_table(data_dir: Path):
    result = run_nexus("sql", "SELECT event, count() AS n FROM events GROUP BY event ORDER BY event", data_dir=data_dir)
    assert result.returncode == 0
    assert re.search(r"page_view\s+│\s+\d+", result.stdout)
    assert "(10 rows)" in result.stderr


@pytest.mark.parametrize("output_format", ["csv", "json", "parquet", "arrow"])
def test_sql_writes_every_format_readably(data_dir: Path, tmp_path: Path, output_format: str):
    target = tmp_path / f"out.{output_format}"
    query = "SELECT message_id, ts, event, properties FROM events ORDER BY message_id"
    result = run_nexus("sql", query, "--format", output_format, "--output", str(target), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    if output_format == "csv":
        frame = pd.read_csv(target)
    elif output_format == "json":
        frame = pd.DataFrame(json.loads(target.read_text()))
    elif output_format == "parquet":
        frame = pq.read_table(target).to_pandas()
    else:
        frame = ipc.open_stream(io.BytesIO(target.read_bytes())).read_all().to_pandas()
    assert len(frame) == 3000 and list(frame.columns) == ["message_id", "ts", "event", "properties"]
    assert frame["message_id"].is_unique


def test_csv_goes_to_stdout_without_output(data_dir: Path):
    result = run_nexus("sql", "SELECT 1 AS one, 'a,b' AS two", "--format", "csv", data_dir=data_dir)
    assert result.stdout == '"one","two"\n1,"a,b"\n'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("key", "create", "--project", "nope", "--scope", "read"), "no project 'nope'"),
        (("project", "create", "shop"), "a project named 'shop' already exists"),
        (("key", "revoke", "nx_unknown"), "no API key 'nx_unknown'"),
        (("key", "create", "--scope", "read"), "project_id is required"),
        (("key", "limits", "nx_unknown", "--max-seconds", "5"), "no API key 'nx_unknown'"),
        (("project", "create", "tz", "--timezone", "Mars/Base"), "timezone: unknown time zone 'Mars/Base'"),
        (("sql", "SELEC 1"), "Syntax error"),
        (("sql", "SELECT * FROM no_such_table"), "Unknown table"),
        (("demo", "--events", "10", "--project", "shop"), "already has 3000 events"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(data_dir: Path, args: tuple[str, ...], message: str):
    result = run_nexus(*args, data_dir=data_dir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("key", "create", "--project", "shop", "--scope", "root"),
     "error: Invalid value for '--scope': 'root' is not one of 'write', 'read', 'admin'. (see nexus key create --help)"),
    (("demo", "--events", "0"), "error: Invalid value for '--events': 0 is not in the range x>=1. (see nexus demo --help)"),
    (("sql",), "error: Missing argument 'QUERY'. (see nexus sql --help)"),
    (("sql", "SELECT 1", "--fromat", "csv"), "error: No such option '--fromat'. Did you mean '--format'? (see nexus sql --help)"),
    (("nope",), "error: No such command 'nope'. (see nexus --help)"),
    (("key", "limits", "nx_x", "--defaults", "--max-seconds", "3"),
     "error: --defaults sets every limit back to its default: give no limit with it (see nexus key limits --help)"),
])
def test_usage_errors_are_one_line_and_exit_2(data_dir: Path, args: tuple[str, ...], message: str):
    result = run_nexus(*args, data_dir=data_dir)
    assert result.returncode == 2 and result.stderr == message + "\n" and result.stdout == ""


def test_a_bare_group_still_shows_its_help(data_dir: Path):
    result = run_nexus("key", data_dir=data_dir)
    assert result.returncode == 2 and "Commands:" in result.stderr and "limits" in result.stderr


def test_bad_settings_are_one_line(tmp_path: Path):
    result = run_nexus("migrate", data_dir=tmp_path, env={"NEXUS_PORT": "http"})
    assert result.returncode == 1 and result.stderr.strip() == "error: NEXUS_PORT must be a whole number, not 'http'"


def test_sql_parameters_row_limits_and_ndjson(data_dir: Path):
    result = run_nexus("sql", "SELECT number * {k:UInt8} AS n FROM numbers(10)", "--param", "k=3", "--max-rows", "4",
                       "--format", "ndjson", data_dir=data_dir)
    assert result.returncode == 0 and result.stdout.splitlines() == ['{"n":0}', '{"n":3}', '{"n":6}', '{"n":9}']
    bad = run_nexus("sql", "SELECT 1", "--param", "oops", data_dir=data_dir)
    assert bad.returncode == 1 and "--param takes NAME=VALUE" in bad.stderr


def test_sql_through_a_running_server_uses_its_sandbox(tmp_path: Path):
    from tests.test_serve import Server

    data_dir = tmp_path / "data"
    for name in ("mine", "theirs"):
        assert run_nexus("project", "create", name, data_dir=data_dir).returncode == 0
        assert run_nexus("demo", "--events", "500", "--project", name, "--seed", str(len(name)), data_dir=data_dir).returncode == 0
    key = run_nexus("key", "create", "--project", "mine", "--scope", "read", data_dir=data_dir).stdout.strip()
    server = Server(data_dir)
    try:
        remote = ("--url", server.url, "--key", key)
        counted = run_nexus("sql", "SELECT count() AS n, uniqExact(project_id) AS p FROM events", "--format", "csv",
                            *remote, data_dir=tmp_path / "elsewhere")
        assert counted.returncode == 0 and counted.stdout.splitlines()[1] == "500,1"
        table = run_nexus("sql", "SELECT 'hello' AS greeting", *remote, data_dir=tmp_path / "elsewhere")
        assert table.returncode == 0 and "hello" in table.stdout
        escape = run_nexus("sql", "SELECT count() FROM system.tables", *remote, data_dir=tmp_path / "elsewhere")
        assert escape.returncode == 1 and len(escape.stderr.strip().splitlines()) == 1
        assert escape.stderr.startswith("error: ") and "system.tables" in escape.stderr
        keyless = run_nexus("sql", "SELECT 1", "--url", server.url, data_dir=tmp_path / "elsewhere")
        assert keyless.returncode == 1 and "--url needs --key" in keyless.stderr
    finally:
        server.stop()


def test_demo_data_invalidates_cached_analyses_in_a_shared_redis(tmp_path: Path, redis):
    url = f"unix://{redis.client.connection_pool.connection_kwargs['path']}"
    assert run_nexus("project", "create", "fresh", data_dir=tmp_path).returncode == 0
    before = int(redis.client.get("gen:1") or 0)
    loaded = run_nexus("demo", "--events", "100", "--project", "fresh", data_dir=tmp_path,
                       env={"NEXUS_REDIS_URL": url})
    assert loaded.returncode == 0, loaded.stderr
    assert int(redis.client.get("gen:1") or 0) == before + 1


def test_projects_and_keys_are_managed_through_a_running_server(tmp_path: Path):
    from tests.test_serve import Server

    server = Server(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    try:
        instance = next(re.findall(r"nx_\S+", line)[-1] for line in server.lines if "Instance admin key" in line)
        as_instance = ("--url", server.url, "--key", instance)
        created = run_nexus("project", "create", "live", "--timezone", "Europe/Paris", *as_instance, data_dir=elsewhere)
        assert created.returncode == 0 and created.stdout == "created project 'live' with id 1\n", created.stderr
        # Given the project's admin key, made with the instance key from NEXUS_ADMIN_KEY
        made = run_nexus("key", "create", "--project", "live", "--scope", "admin", "--url", server.url,
                         data_dir=elsewhere, env={"NEXUS_ADMIN_KEY": instance})
        assert made.returncode == 0 and re.fullmatch(r"nx_[A-Za-z0-9_-]{40}\n", made.stdout), made.stderr
        as_admin = ("--url", server.url, "--key", made.stdout.strip())
        # When it makes a write key for its project, the key sends events
        write = run_nexus("key", "create", "--scope", "write", "--name", "site", *as_admin, data_dir=elsewhere).stdout.strip()
        event = {"event": "x", "anonymousId": "a"}
        assert httpx.post(f"{server.url}/v1/track", json=event, auth=(write, "")).status_code == 200
        listed = run_nexus("key", "list", "--project", "live", *as_admin, data_dir=elsewhere)
        assert listed.returncode == 0 and write[:11] in listed.stdout and made.stdout[:11] in listed.stdout
        assert instance[:11] not in listed.stdout and write not in listed.stdout
        limited = run_nexus("key", "limits", write[:11], "--max-seconds", "5", *as_admin, data_dir=elsewhere)
        assert limited.returncode == 0 and limited.stdout == f"query limits of key {write[:11]}: max_seconds=5\n"
        shown = run_nexus("key", "limits", write[:11], *as_admin, data_dir=elsewhere)
        assert shown.returncode == 0 and re.search(r"max_seconds\s+│ 5\s+│ this key", shown.stdout), shown.stdout
        # Then revoking it while the server runs stops it within a second
        revoked = run_nexus("key", "revoke", write[:11], *as_admin, data_dir=elsewhere)
        assert revoked.returncode == 0 and revoked.stdout == f"revoked key {write[:11]} of project 1\n"
        deadline = time.monotonic() + 1
        while httpx.post(f"{server.url}/v1/track", json=event, auth=(write, "")).status_code != 401:
            assert time.monotonic() < deadline, "the revoked key still works after a second"
        projects = run_nexus("project", "list", *as_admin, data_dir=elsewhere)
        assert projects.returncode == 0 and "live" in projects.stdout and "(1 row)" in projects.stderr
        # A project's admin key cannot create projects; errors are one line
        for args, message in [(("project", "create", "other", *as_admin), "takes the instance admin key"),
                              (("key", "revoke", "nx_nothere", *as_admin), "no API key 'nx_nothere'"),
                              (("key", "list", "--project", "99", *as_admin), "no project '99'"),
                              (("project", "list", "--url", server.url), "--url needs --key"),
                              (("project", "list", "--url", server.url, "--key", "nx_wrong"), "not valid"),
                              (("project", "list", "--url", "http://127.0.0.1:9", "--key", "k"), "cannot reach Nexus")]:
            failed = run_nexus(*args, data_dir=elsewhere)
            assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr
        # Without --url, the store itself stays the server's
        held = run_nexus("key", "list", data_dir=tmp_path / "data")
        assert held.returncode == 1 and f"in use by process {server.process.pid}" in held.stderr
    finally:
        server.stop()
