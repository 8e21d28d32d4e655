"""Migrations: fresh apply, re-apply is a no-op, changed or unknown history refused, failures not recorded."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nexus.errors import MigrationError
from nexus.store import migrations
from nexus.store.client import connect, parse_url
from nexus.store.sql_files import sql_dir

NEXT = f"{len(migrations.discover()) + 1:03d}_extra.sql"  # a migration after the real ones


@pytest.fixture
def scratch(engine_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A fresh database and a private copy of sql/ that a test may edit."""
    copy = tmp_path / "sql"
    shutil.copytree(sql_dir(), copy)
    monkeypatch.setattr(migrations, "sql_dir", lambda: copy)
    address = parse_url(f"chdb://{engine_dir}?database=m_{request.node.name[:40]}")
    client = connect(address)
    client.command(f"DROP DATABASE IF EXISTS `{address.database}`")
    migrations.use_database(client, address.database)
    return client, copy / "migrations"


def tables(client) -> set[str]:
    return {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows}


def test_fresh_database_gets_every_migration_in_order(scratch):
    client, folder = scratch
    applied = migrations.migrate(client)
    assert [m.file_name for m in applied] == sorted(p.name for p in folder.glob("*.sql"))
    assert {"events", "persons", "identities", "events_hourly", "events_daily", "sessions", "projects",
            "api_keys", "schema_migrations"} <= tables(client)
    recorded = migrations.applied(client)
    assert [(r.version, r.checksum) for r in recorded] == [(m.version, m.checksum) for m in applied]


def test_reapplying_is_a_no_op(scratch):
    client, _ = scratch
    migrations.migrate(client)
    before = client.query("SELECT count() FROM schema_migrations").result_rows
    assert migrations.migrate(client) == []
    assert client.query("SELECT count() FROM schema_migrations").result_rows == before


def test_a_changed_applied_migration_is_refused_before_anything_runs(scratch):
    client, folder = scratch
    migrations.migrate(client)
    # Given an applied file edited afterwards, and a new migration waiting behind it
    first = folder / "001_events.sql"
    first.write_text(first.read_text() + "\n-- edited\n")
    (folder / NEXT).write_text("CREATE TABLE IF NOT EXISTS extra (project_id UInt32) ENGINE = MergeTree ORDER BY project_id;\n")
    with pytest.raises(MigrationError, match="001_events.sql was changed after it was applied"):
        migrations.migrate(client)
    assert "extra" not in tables(client)


def test_a_store_migrated_by_a_newer_nexus_is_refused(scratch):
    client, folder = scratch
    (folder / NEXT).write_text("CREATE TABLE IF NOT EXISTS extra (project_id UInt32) ENGINE = MergeTree ORDER BY project_id;\n")
    migrations.migrate(client)
    (folder / NEXT).unlink()
    with pytest.raises(MigrationError, match="newer version"):
        migrations.migrate(client)


def test_a_failing_migration_is_not_recorded_and_completes_once_fixed(scratch):
    client, folder = scratch
    migrations.migrate(client)
    broken = folder / NEXT
    broken.write_text(
        "CREATE TABLE IF NOT EXISTS extra (project_id UInt32) ENGINE = MergeTree ORDER BY project_id;\n"
        "CREATE TABLE IF NOT EXISTS extra2 (project_id UInt32) ENGINE = NoSuchEngine;\n"
    )
    with pytest.raises(MigrationError, match=f"{NEXT} failed at statement 2"):
        migrations.migrate(client)
    assert int(NEXT[:3]) not in {r.version for r in migrations.applied(client)}
    broken.write_text(broken.read_text().replace("NoSuchEngine", "MergeTree ORDER BY project_id"))
    assert [m.version for m in migrations.migrate(client)] == [int(NEXT[:3])]
    assert {"extra", "extra2"} <= tables(client)


def test_files_out_of_sequence_or_misnamed_are_refused(scratch):
    client, folder = scratch
    (folder / f"{int(NEXT[:3]) + 2:03d}_gap.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="out of sequence"):
        migrations.migrate(client)
    (folder / f"{int(NEXT[:3]) + 2:03d}_gap.sql").rename(folder / "five.sql")
    with pytest.raises(MigrationError, match="not named NNN_name.sql"):
        migrations.migrate(client)


def test_statements_split_on_line_ending_semicolons_only():
    migration = migrations.Migration(1, "x", "-- a comment; not a split\nSELECT ';'\n;\nSELECT 2;\n-- trailing\n")
    assert migration.statements() == ["-- a comment; not a split\nSELECT ';'", "SELECT 2"]


def test_schema_sql_is_what_the_migrations_produce(client):
    """sql/schema.sql is generated (nexus migrate --dump-schema sql/schema.sql); it must not drift."""
    assert migrations.dump_schema(client) == (sql_dir() / "schema.sql").read_text()


def migrated_before(client, folder: Path, name: str) -> list[str]:
    """Migrates up to (not including) migration `name`, then puts it and the later ones back: their names."""
    later = {path: path.read_text() for path in sorted(folder.glob("*.sql")) if path.name >= name}
    for path in later:
        path.unlink()
    migrations.migrate(client)
    for path, text in later.items():
        path.write_text(text)
    return [path.name for path in later]


def test_events_stored_before_the_id_key_migration_get_their_key(scratch):
    client, folder = scratch
    later = migrated_before(client, folder, "006_events_id_key.sql")
    client.insert("events", [[1, "anon-1", "m1"], [1, "user-2", "m2"]],
                  column_names=["project_id", "distinct_id", "message_id"])
    assert [m.file_name for m in migrations.migrate(client)] == later
    client.insert("events", [[1, "user-3", "m3"]], column_names=["project_id", "distinct_id", "message_id"])
    rows = client.query("SELECT distinct_id, id_key = cityHash64(distinct_id), id_key != 0 FROM events "
                        "ORDER BY distinct_id").result_rows
    assert rows == [("anon-1", True, True), ("user-2", True, True), ("user-3", True, True)]


def test_revenue_stored_as_float_sums_is_rebuilt_exact(scratch):
    client, folder = scratch
    migrated_before(client, folder, "007_exact_revenue.sql")
    columns = ["project_id", "ts", "event", "distinct_id", "message_id", "properties"]
    client.insert("events", [[1, datetime(2026, 10, 5, 1, m, tzinfo=timezone.utc), "purchase", "u", f"m{m}",
                              {"revenue": value}] for m, value in enumerate([0.1, 0.7])], column_names=columns)
    assert client.query("SELECT sum(revenue) FROM events_hourly").result_rows == [(0.7999999999999999,)]
    migrations.migrate(client)
    client.insert("events", [[1, datetime(2026, 10, 5, 2, tzinfo=timezone.utc), "purchase", "u", "m9",
                              {"revenue": 0.2}]], column_names=columns)
    for table in ("events_hourly", "events_daily"):
        rows = client.query(f"SELECT toString(sum(revenue)), sum(events) FROM {table}").result_rows
        assert rows == [("1", 3)], table  # rebuilt from the stored events, and fed by new ones


def _project_partitioned_store(client) -> dict[str, list]:
    """What the tables hold, per table, as sorted rows: the same before and after a repartition."""
    contents = {}
    for table, order in (("events", "message_id"), ("events_hourly", "project_id, hour, event"),
                         ("events_daily", "project_id, day, event"), ("sessions", "project_id, session_id"),
                         ("persons", "project_id, person_id"), ("identities", "project_id, distinct_id")):
        contents[table] = client.query(f"SELECT * EXCEPT (properties) APPLY(toString) FROM {table} ORDER BY {order}"
                                       if table in ("events", "persons") else
                                       f"SELECT * APPLY(toString) FROM {table} ORDER BY {order}").result_rows
    return contents


def test_tables_are_repartitioned_by_project_keeping_every_row(scratch):
    client, folder = scratch
    later = migrated_before(client, folder, "008_project_partitions.sql")
    # Given events of three projects in one month, rollups and sessions fed, persons and identities
    columns = ["project_id", "ts", "event", "type", "distinct_id", "message_id", "session_id", "properties"]
    client.insert("events", [[p, datetime(2026, 10, 5, h, tzinfo=timezone.utc), "viewed", "page", f"u{h}",
                              f"m{p}-{h}", f"s{p}-{h % 3}", {"plan": f"p{p}"}] for p in (1, 2, 3) for h in range(12)],
                  column_names=columns)
    client.insert("persons", [[p, f"00000000-0000-0000-0000-00000000000{p}", 1, 0] for p in (1, 2, 3)],
                  column_names=["project_id", "person_id", "version", "is_deleted"])
    client.insert("identities", [[p, "u1", f"00000000-0000-0000-0000-00000000000{p}", 1, 0] for p in (1, 2, 3)],
                  column_names=["project_id", "distinct_id", "person_id", "version", "is_deleted"])
    before = _project_partitioned_store(client)
    # When a first run stops right after the events were swapped, and the migration runs again
    text = (folder / "008_project_partitions.sql").read_text()
    cut = text.index("DROP TABLE events_repartition;")
    for statement in migrations.Migration(8, "x", text[:cut]).statements():
        client.command(statement)
    assert [m.file_name for m in migrations.migrate(client)] == later  # 008 and the migrations after it
    # Then every row is there once, each table is partitioned by project, and the views still feed
    assert _project_partitioned_store(client) == before
    keys = dict(client.query("SELECT name, partition_key FROM system.tables WHERE database = currentDatabase() "
                             "AND partition_key != ''").result_rows)
    assert all(keys[table].strip("(").startswith("project_id") for table in
               ("events", "events_hourly", "events_daily", "sessions", "persons", "identities", "projects",
                "saved_queries")), keys
    assert not tables(client) & {f"{t}_repartition" for t in keys}
    client.insert("events", [[1, datetime(2026, 10, 5, 23, tzinfo=timezone.utc), "viewed", "page", "u1", "m-new",
                              "s1-0", {}]], column_names=columns)
    assert client.query("SELECT sum(events) FROM events_hourly WHERE project_id = 1").result_rows == [(13,)]
    assert client.query("SELECT sum(events) FROM events_daily WHERE project_id = 1").result_rows == [(13,)]
    assert client.query("SELECT sum(events) FROM sessions WHERE session_id = 's1-0'").result_rows == [(5,)]
    parts = client.query("SELECT uniqExact(partition_id) FROM system.parts WHERE database = currentDatabase() "
                         "AND table = 'events' AND active").result_rows
    assert parts == [(3,)]
