"""The `nexus` command as a person uses it: projects, keys, demo data and SQL in every format."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pandas as pd
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_nexus
from tests.test_serve import Server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    assert run_nexus("project", "create", "shop", data_dir=directory).returncode == 0
    loaded = run_nexus("demo", "--events", "3000", "--project", "shop", "--seed", "5", data_dir=directory)
    assert loaded.returncode == 0 and "stored 3,000 demo events in project 'shop' (id 1)" in loaded.stdout
    return directory


SHARED_QUERY = ("SELECT event, count() AS n, max(ts) AS last, toDateTime(max(ts)) AS second, [1, 2] AS a, "
                "map('k', count()) AS m, NULL AS nothing, 'a\n\"b\"' AS text FROM events WHERE project_id = {p:UInt32} "
                "GROUP BY event ORDER BY n DESC, event")
# Each output of SHARED_QUERY, named "<format>-<number of --max-rows arguments>": the format and those arguments.
SHARED_OUTPUTS = {f"{fmt}-{len(max_rows)}": (fmt, max_rows)
                  for fmt in ["table", "csv", "json", "ndjson", "parquet", "arrow"]
                  for max_rows in ([], ["--max-rows", "3"])}


class ServedStore(msgspec.Struct):
    """A store of two projects served by `nexus serve`, and what the CLI wrote from the store itself before."""

    data_dir: Path
    server: Server
    read_key: str  # of project 'mine' (id 1)
    local: dict[str, bytes]  # each of SHARED_OUTPUTS, as `nexus sql` wrote it on the store, without a server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStore]:
    """One `nexus serve` for the module's tests through a server (each start costs seconds): projects 'mine'
    and 'theirs' with 500 demo events each, a read key of 'mine', and SHARED_OUTPUTS written locally first
    (while the server runs, the store is its own)."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    for name in ("mine", "theirs"):
        assert run_nexus("project", "create", name, data_dir=data_dir).returncode == 0
        assert run_nexus("demo", "--events", "500", "--project", name, "--seed", "3", data_dir=data_dir).returncode == 0
    key = run_nexus("key", "create", "--project", "mine", "--scope", "read", data_dir=data_dir).stdout.strip()
    local: dict[str, bytes] = {}
    for output, (fmt, max_rows) in SHARED_OUTPUTS.items():
        target = data_dir.parent / f"local-{output}"
        done = run_nexus("sql", SHARED_QUERY, "--param", "p=1", "--format", fmt, *max_rows, "--output", str(target),
                         data_dir=data_dir)
        assert done.returncode == 0, done.stderr
        local[output] = target.read_bytes()
    server = Server(data_dir)
    try:
        yield ServedStore(data_dir, server, key, local)
    finally:
        server.stop()


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
    assert "(11 rows)" in result.stderr  # the demo's 10 event names and its experiment's exposures


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
    assert result.stderr == "(4 rows, cut at --max-rows 4: the result has more)\n"
    whole = run_nexus("sql", "SELECT number AS n FROM numbers(4)", "--max-rows", "4", "--format", "csv", data_dir=data_dir)
    assert whole.stdout.splitlines() == ['"n"', "0", "1", "2", "3"] and whole.stderr == ""
    bad = run_nexus("sql", "SELECT 1", "--param", "oops", data_dir=data_dir)
    assert bad.returncode == 1 and "--param takes NAME=VALUE" in bad.stderr


def test_sql_writes_a_table_to_a_file(data_dir: Path, tmp_path: Path):
    target = tmp_path / "table.txt"
    query = "SELECT event, count() AS n FROM events GROUP BY event ORDER BY n DESC, event"
    result = run_nexus("sql", query, "--output", str(target), data_dir=data_dir)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "(11 rows)\n", result.stderr
    lines = target.read_text().splitlines()
    assert re.fullmatch(r" event\s+┃ n", lines[0]) and set(lines[1]) <= {"━", "╇"} and len(lines) == 13
    assert re.fullmatch(r" page_view\s+│ \d+", lines[2])
    empty = run_nexus("sql", "SELECT event FROM events WHERE event = 'never'", data_dir=data_dir)
    assert empty.stdout.split() == ["event", "━━━━━━━"] and empty.stderr == "(0 rows)\n"


def test_sql_on_a_store_without_projects_says_which_store_it_opened(tmp_path: Path):
    result = run_nexus("sql", "SELECT count() AS n FROM events", "--format", "csv", data_dir=tmp_path / "new")
    assert result.returncode == 0 and result.stdout == '"n"\n0\n'
    assert result.stderr == (f"note: no projects in the store at {tmp_path / 'new'}: the data dir is NEXUS_DATA_DIR, "
                             f"by default .nexus in the working directory\n")


PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, done.stderr.strip()[-300:])
"""


def peak_rss_mb(data_dir: Path, *args: str) -> int:
    """The peak resident memory of `nexus ARGS` alone, in MB: a process that runs only it reads its children's."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    environment["NEXUS_DATA_DIR"] = str(data_dir)
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "nexus", *args],
                          capture_output=True, text=True, env=environment, timeout=300)
    code, peak, stderr = done.stdout.split(" ", 2)
    assert code == "0", stderr
    return int(peak)


@pytest.mark.parametrize("output_format", ["table", "csv", "json", "ndjson", "parquet", "arrow"])
def test_sql_memory_stays_bounded_whatever_the_result_size(data_dir: Path, tmp_path: Path, output_format: str):
    # Given a result of 3M rows, ~700 MB as Python objects (the table gathered it whole: 2.5 GB peak)
    query = "SELECT number, repeat('x', 200) AS pad, toString(number) AS s FROM numbers(3000000)"
    baseline = peak_rss_mb(data_dir, "sql", "SELECT 1", "--format", output_format, "--output", str(tmp_path / "one"))
    # When its first rows are asked for, in any format
    peak = peak_rss_mb(data_dir, "sql", query, "--format", output_format, "--max-rows", "3",
                       "--output", str(tmp_path / "out"))
    # Then the command uses about what a one-row query uses
    assert peak < baseline + 200, (baseline, peak)


def test_the_table_is_written_a_page_at_a_time():
    import tracemalloc

    from nexus.cli import sql

    # Given 50 MB of the engine's JSON rows, arriving in 1 MB chunks
    def chunks():
        row = b'{"n":%d,"text":"' + b"x" * 980 + b'"}\n'
        for start in range(0, 50_000, 1000):
            yield b"".join(row % n for n in range(start, start + 1000))

    class Sink:
        lines = 0

        def write(self, text: str) -> None:
            self.lines += text.count("\n")

    sink = Sink()
    tracemalloc.start()
    try:
        rows = sql._write_table(sql._Result(sql._json_rows(chunks()), lambda: False), sink, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then every row is written, while at most a few pages (1,000 rows, ~1 MB each) are held at once
    assert rows == 50_000 and sink.lines == 50_002
    assert peak < 10_000_000, peak


def test_sql_writes_the_same_in_every_format_locally_and_through_a_server(served: ServedStore, tmp_path: Path):
    # When the query of each local output runs through the server's sandbox, written to a file
    for output, (fmt, max_rows) in SHARED_OUTPUTS.items():
        target = tmp_path / f"remote-{output}"
        done = run_nexus("sql", SHARED_QUERY, "--param", "p=1", "--format", fmt, *max_rows, "--output", str(target),
                         "--url", served.server.url, "--key", served.read_key, data_dir=tmp_path / "elsewhere")
        assert done.returncode == 0, done.stderr
        assert ("cut at --max-rows 3: the result has more" in done.stderr) == bool(max_rows), done.stderr
        # Then the file holds exactly what the store itself wrote
        assert target.read_bytes() == served.local[output], fmt
    rows = json.loads(served.local["json-0"])
    assert isinstance(rows, list) and rows[0]["text"] == 'a\n"b"' and len(json.loads(served.local["json-2"])) == 3


def test_key_limits_alone_shows_them(data_dir: Path):
    secret = run_nexus("key", "create", "--project", "shop", "--scope", "read", data_dir=data_dir).stdout.strip()
    assert run_nexus("key", "limits", secret[:11], "--max-seconds", "7", data_dir=data_dir).returncode == 0
    shown = run_nexus("key", "limits", secret[:11], data_dir=data_dir)
    assert shown.returncode == 0 and shown.stderr == "(6 rows)\n"
    rows = {line.split()[0]: line.split()[2:] for line in shown.stdout.splitlines()[2:]}
    assert rows["max_seconds"] == ["7", "│", "this", "key"]
    assert rows["max_json_rows"] == ["100000", "│", "NEXUS_QUERY_MAX_JSON_ROWS"]
    assert run_nexus("key", "limits", secret[:11], "--defaults", data_dir=data_dir).stdout.endswith(": defaults\n")
    again = run_nexus("key", "limits", secret[:11], data_dir=data_dir)
    assert "this key" not in again.stdout and "NEXUS_QUERY_MAX_SECONDS" in again.stdout


def test_sql_through_a_running_server_uses_its_sandbox(served: ServedStore, tmp_path: Path):
    remote = ("--url", served.server.url, "--key", served.read_key)
    counted = run_nexus("sql", "SELECT count() AS n, uniqExact(project_id) AS p FROM events", "--format", "csv",
                        *remote, data_dir=tmp_path / "elsewhere")
    assert counted.returncode == 0 and counted.stdout.splitlines()[1] == "500,1"
    table = run_nexus("sql", "SELECT 'hello' AS greeting", *remote, data_dir=tmp_path / "elsewhere")
    assert table.returncode == 0 and "hello" in table.stdout
    escape = run_nexus("sql", "SELECT count() FROM system.tables", *remote, data_dir=tmp_path / "elsewhere")
    assert escape.returncode == 1 and len(escape.stderr.strip().splitlines()) == 1
    assert escape.stderr.startswith("error: ") and "system.tables" in escape.stderr
    keyless = run_nexus("sql", "SELECT 1", "--url", served.server.url, data_dir=tmp_path / "elsewhere")
    assert keyless.returncode == 1 and "--url needs --key" in keyless.stderr


def test_export_through_a_running_server_and_on_the_store(served: ServedStore, data_dir: Path, tmp_path: Path):
    """`nexus export` follows a server's job to its file, or writes it on the store itself; the same
    source gives the same rows either way, and bad input is one line naming the field."""
    source = '{"type": "sql", "query": "SELECT count() AS n, uniqExact(project_id) AS p FROM events"}'
    remote = run_nexus("export", source, "--format", "parquet", "--output", str(tmp_path / "remote.parquet"),
                       "--url", served.server.url, "--key", served.read_key, data_dir=tmp_path / "elsewhere")
    assert remote.returncode == 0, remote.stderr
    assert pq.read_table(tmp_path / "remote.parquet").to_pylist() == [{"n": 500, "p": 1}]
    events = '{"type": "events", "request": {"date_range": {"date_from": "-3650d"}, "columns": ["ts", "event"]}}'
    local = run_nexus("export", events, "--format", "csv", "--output", str(tmp_path / "local.csv"), "--project", "shop",
                      "--max-rows", "100", data_dir=data_dir)
    assert local.returncode == 0 and "100 rows written" in local.stderr, local.stderr
    assert len((tmp_path / "local.csv").read_text().splitlines()) == 101
    bad = run_nexus("export", '{"type": "events", "request": {"columns": ["nope"]}}', "--format", "csv", "--output",
                    str(tmp_path / "bad.csv"), "--project", "shop", data_dir=data_dir)
    assert bad.returncode == 1 and bad.stderr.startswith("error: source.request.columns[0]: ")
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.csv").exists()


def test_demo_data_invalidates_cached_analyses_in_a_shared_redis(tmp_path: Path, redis):
    url = f"unix://{redis.client.connection_pool.connection_kwargs['path']}"
    assert run_nexus("project", "create", "fresh", data_dir=tmp_path).returncode == 0
    before = int(redis.client.get("gen:1") or 0)
    loaded = run_nexus("demo", "--events", "100", "--project", "fresh", data_dir=tmp_path,
                       env={"NEXUS_REDIS_URL": url})
    assert loaded.returncode == 0, loaded.stderr
    assert int(redis.client.get("gen:1") or 0) == before + 1


def test_projects_and_keys_are_managed_through_a_running_server(served: ServedStore, tmp_path: Path):
    server = served.server
    elsewhere = tmp_path / "elsewhere"
    instance = next(re.findall(r"nx_\S+", line)[-1] for line in server.lines if "Instance admin key" in line)
    as_instance = ("--url", server.url, "--key", instance)
    created = run_nexus("project", "create", "live", "--timezone", "Europe/Paris", *as_instance, data_dir=elsewhere)
    # (the store's third project: 'mine' and 'theirs' came first)
    assert created.returncode == 0 and created.stdout == "created project 'live' with id 3\n", created.stderr
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
    assert revoked.returncode == 0 and revoked.stdout == f"revoked key {write[:11]} of project 3\n"
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
    held = run_nexus("key", "list", data_dir=served.data_dir)
    assert held.returncode == 1 and f"in use by process {server.process.pid}" in held.stderr
