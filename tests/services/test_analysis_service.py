"""The read service without HTTP, as the dashboard, jobs and the CLI use it: a runtime opened to read
only (no migration, no writer) answers analyses from the cache with their explain, and gives each
result's table in every file format, read back by the formats' own readers."""

from __future__ import annotations

import io
import json

import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest

from nexus import changes
from nexus.analyses import registry
from nexus.demo.load import load
from nexus.errors import MigrationError
from nexus.meta import projects
from nexus.runtime import open_runtime
from nexus.settings import load as load_settings
from tests.conftest import DEMO_END

BODY = {"event": "page_view", "period": "day", "date_range": {"date_from": "2026-10-01T00:00:00Z",
                                                              "date_to": "2026-11-01T00:00:00Z"}}


@pytest.fixture(scope="module")
def reader(client, database_url, redis, tmp_path_factory):
    project_id = projects.create(client, "read-only").project_id
    load(client, project_id, 5_000, seed=3, end=DEMO_END)
    settings = load_settings({"NEXUS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
                              "NEXUS_CLICKHOUSE_URL": database_url, "NEXUS_REDIS_URL": redis.url})
    with open_runtime(settings, ingest=False) as runtime:
        yield runtime, project_id


def test_a_read_only_runtime_has_no_writer_and_answers_analyses(reader, client):
    runtime, project_id = reader
    assert runtime.ingestor is None
    with pytest.raises(RuntimeError, match="read only"):
        runtime.ingest()
    first = runtime.analyses.answer(project_id, "stickiness", BODY)
    again = runtime.analyses.answer(project_id, "stickiness", json.dumps(BODY).encode())
    expected = registry.run(client, project_id, "stickiness", registry.decode("stickiness", BODY))
    assert (first.cached, again.cached) == (False, True)
    assert first.decoded() == again.decoded() == expected
    assert again.explain == first.explain and "{project_id:UInt32}" in first.explain.sql
    # New data for the project makes the cached answer unreachable
    changes.mark_changed(runtime.redis.client, {project_id})
    assert runtime.analyses.answer(project_id, "stickiness", BODY).cached is False


def test_a_read_only_runtime_does_not_migrate_and_says_so(redis, engine_dir, tmp_path_factory, client):
    url = f"chdb://{engine_dir}?database=t_unmigrated_reader"
    settings = load_settings({"NEXUS_DATA_DIR": str(tmp_path_factory.mktemp("data")), "NEXUS_CLICKHOUSE_URL": url,
                              "NEXUS_REDIS_URL": redis.url})
    with pytest.raises(MigrationError, match=r"not migrated \(\d+ migrations pending, from 001_events.sql\): run "):
        with open_runtime(settings, ingest=False):
            pass
    tables = client.query("SELECT count() FROM system.tables WHERE database = 't_unmigrated_reader'").result_rows[0][0]
    assert tables == 0  # not even the migrations' own table


def test_a_result_s_table_in_every_file_format(reader):
    runtime, project_id = reader
    answer = runtime.analyses.answer(project_id, "stickiness", BODY)
    table = answer.table()
    assert table.num_rows > 0
    assert pa_csv.read_csv(io.BytesIO(answer.table_bytes("csv"))).num_rows == table.num_rows
    assert pa_ipc.open_stream(io.BytesIO(answer.table_bytes("arrow"))).read_all().equals(table)
    assert pq.read_table(io.BytesIO(answer.table_bytes("parquet"))).to_pylist() == table.to_pylist()
    ndjson = [json.loads(line) for line in answer.table_bytes("ndjson").splitlines()]
    assert len(ndjson) == table.num_rows and set(ndjson[0]) == set(table.column_names)


def test_a_request_without_a_time_zone_is_answered_in_the_project_s_zone(reader, client):
    # Given a project in Tokyo and a trend that names no zone (the service looks the zone up once)
    runtime, _ = reader
    tokyo = projects.create(client, "read-only-tokyo", "Asia/Tokyo").project_id
    load(client, tokyo, 2_000, seed=4, end=DEMO_END)
    body = {"series": [{"event": "page_view"}], "date_range": {"date_from": "2026-10-20", "date_to": "2026-10-26"}}
    answer = runtime.analyses.answer(tokyo, "trends", body)
    # then the answer is the analysis's own in that zone: Tokyo's midnights, and the zone bound in its SQL
    expected = registry.run(client, tokyo, "trends", registry.decode("trends", body))
    assert answer.decoded() == expected
    assert expected.timezone == "Asia/Tokyo" and expected.buckets[0].utcoffset().total_seconds() == 9 * 3600
    assert "Asia/Tokyo" in answer.explain.params.values()
