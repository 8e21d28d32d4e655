"""The cluster layout's DDL, read as a reviewer would: every table of the schema covered once, Replicated engines with
the schema's own arguments, `events` sharded by the hash analyses key ids by, views reading and writing the tables on
their own node, every statement ON CLUSTER and accepted by ClickHouse's parser. No ClickHouse cluster runs here;
tests/analyses/test_cluster_layout.py runs every analysis against the layout's tables."""

from __future__ import annotations

import re

import pytest

from nexus.errors import InvalidConfig, MigrationError
from nexus.store import cluster, migrations
from nexus.store.sql_files import load

SCHEMA = load("schema.sql")
TABLES, VIEWS = cluster.parse_schema(SCHEMA)
LAYOUT = cluster.layout("nexus_cluster")


def _created(statement: str) -> str:
    return re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (\w+)", statement)[1]


def test_every_table_and_view_of_the_schema_is_created_once():
    schema_names = set(re.findall(r"^CREATE (?:TABLE|MATERIALIZED VIEW) (\w+)", SCHEMA, re.M))
    assert schema_names == {t.name for t in TABLES} | {v.name for v in VIEWS}
    created = [_created(s) for s in LAYOUT.statements]
    assert len(created) == len(set(created))
    assert set(created) == schema_names | {f"{t}_local" for t in LAYOUT.sharded}
    assert set(LAYOUT.sharded) | set(LAYOUT.everywhere) == {t.name for t in TABLES}
    assert set(LAYOUT.views) == {v.name for v in VIEWS}


def test_events_and_the_rollups_its_views_fill_are_sharded_and_everything_else_is_on_every_node():
    assert LAYOUT.sharded == ["events", "events_daily", "events_hourly", "sessions"]
    # The tables analyses join events with on each shard hold all their rows on every node.
    assert {"identities", "persons", "cohort_members", "person_predictions", "schema_migrations"} <= set(LAYOUT.everywhere)


def test_every_statement_runs_on_the_whole_cluster():
    for statement in LAYOUT.statements:
        assert statement.split("\n")[0].count("ON CLUSTER `nexus_cluster`") == 1, statement.split("\n")[0]


def test_local_tables_are_replicated_with_the_schema_s_engine_and_arguments():
    paths = []
    for table in TABLES:
        sharded = table.name in LAYOUT.sharded
        name = f"{table.name}_local" if sharded else table.name
        statement = next(s for s in LAYOUT.statements if _created(s) == name)
        engine = re.search(r"ENGINE = (\w+)\('([^']*)', '([^']*)'(?:, (.*))?\)\n", statement)
        assert engine, statement
        assert engine[1] == f"Replicated{table.engine}"
        assert (engine[4] or "") == table.args  # ReplacingMergeTree(version, is_deleted) keeps its version and flag
        assert engine[3] == "{replica}"
        assert engine[2].startswith("/clickhouse/tables/{shard}/" if sharded else "/clickhouse/tables/all/")
        assert engine[2].endswith(f"/{{database}}/{name}")
        paths.append(engine[2])
        # Partitioning, order and comments stay as in the single-node schema.
        assert statement.endswith(table.rest)
    assert len(paths) == len(set(paths)), "two tables would share a Keeper path"


def test_events_is_sharded_by_the_id_hash_analyses_join_on():
    events = next(s for s in LAYOUT.statements if _created(s) == "events")
    assert "ENGINE = Distributed(`nexus_cluster`, currentDatabase(), events_local, cityHash64(distinct_id))" in events
    # The same expression as events.id_key, which analyses resolve persons by (nexus.analyses.persons).
    assert "`id_key` UInt64 MATERIALIZED cityHash64(distinct_id)" in SCHEMA
    assert f"MATERIALIZED {cluster.SHARDING_KEY} " in events
    for rollup in ("events_hourly", "events_daily", "sessions"):
        statement = next(s for s in LAYOUT.statements if _created(s) == rollup)
        # No sharding key: ClickHouse refuses inserts that would bypass the views on each shard.
        assert f"ENGINE = Distributed(`nexus_cluster`, currentDatabase(), {rollup}_local)" in statement


def test_distributed_tables_have_the_columns_of_their_local_table_and_no_indexes():
    for name in LAYOUT.sharded:
        local = next(s for s in LAYOUT.statements if _created(s) == f"{name}_local")
        distributed = next(s for s in LAYOUT.statements if _created(s) == name)
        columns = re.findall(r"^    (`\w+` .*?),?$", local, re.M)
        assert re.findall(r"^    (`\w+` .*?),?$", distributed, re.M) == columns
        assert "INDEX" not in distributed


def test_views_read_the_local_events_and_write_the_local_rollup_on_their_own_node():
    for view in VIEWS:
        statement = next(s for s in LAYOUT.statements if _created(s) == view.name)
        assert f" TO {view.target}_local\n" in statement
        assert re.findall(r"\bFROM (\w+)", statement) == ["events_local"]
    # Views come after the tables they read and write.
    order = [_created(s) for s in LAYOUT.statements]
    assert max(order.index(t) for t in order if t.endswith("_local")) < min(order.index(v) for v in LAYOUT.views)


def test_every_statement_is_accepted_by_clickhouse_s_parser(client):
    for statement in LAYOUT.statements:
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert "ON CLUSTER" in formatted


def test_a_statement_the_layout_has_no_rule_for_is_refused():
    with pytest.raises(ValueError, match="no rule"):
        cluster.parse_schema(SCHEMA + "\nCREATE VIEW v AS SELECT 1;\n")
    with pytest.raises(InvalidConfig):
        cluster.layout("nexus; DROP TABLE events")


MIGRATIONS = {m.version: m for m in migrations.discover()}


def test_a_migration_that_creates_tables_needs_nothing_beyond_the_layout():
    assert migrations.cluster_statements(MIGRATIONS[2], LAYOUT) == []  # persons and identities


def test_a_new_column_goes_to_every_shard_s_table_and_to_the_distributed_one(client):
    statements = migrations.cluster_statements(MIGRATIONS[6], LAYOUT)  # events.id_key
    assert [s.split("\n")[0] for s in statements] == [
        "ALTER TABLE events_local ON CLUSTER `nexus_cluster`",
        "ALTER TABLE events ON CLUSTER `nexus_cluster`",
        "ALTER TABLE events_local ON CLUSTER `nexus_cluster`",
    ]
    assert "ADD COLUMN IF NOT EXISTS id_key UInt64 MATERIALIZED cityHash64(distinct_id)" in statements[1]
    assert statements[2].endswith("MATERIALIZE COLUMN id_key")  # rewriting parts: the shards' tables only
    for statement in statements:
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement})


def test_comments_follow_the_table_everywhere_and_a_view_s_new_query_reads_the_local_events():
    comments = migrations.cluster_statements(MIGRATIONS[5], LAYOUT)
    assert [s.split("\n")[0] for s in comments] == [
        "ALTER TABLE events_hourly_local ON CLUSTER `nexus_cluster`", "ALTER TABLE events_hourly ON CLUSTER `nexus_cluster`",
        "ALTER TABLE events_daily_local ON CLUSTER `nexus_cluster`", "ALTER TABLE events_daily ON CLUSTER `nexus_cluster`",
        "ALTER TABLE sessions_local ON CLUSTER `nexus_cluster`", "ALTER TABLE sessions ON CLUSTER `nexus_cluster`",
        "ALTER TABLE projects ON CLUSTER `nexus_cluster`"]
    # The Distributed table takes each column change once, split where the commas separate changes only.
    assert comments[5].count("COMMENT COLUMN") == 5 and "session''s first event" in comments[5]
    view = next(s for s in cluster.on_cluster(
        "ALTER TABLE events_hourly_mv MODIFY QUERY SELECT project_id FROM events GROUP BY project_id", LAYOUT))
    assert view == ("ALTER TABLE events_hourly_mv ON CLUSTER `nexus_cluster` MODIFY QUERY SELECT project_id "
                    "FROM events_local GROUP BY project_id")


def test_a_back_fill_or_a_table_swap_is_refused_before_anything_runs():
    for version in (7, 8):  # TRUNCATE and INSERT ... SELECT; CREATE TABLE AS and EXCHANGE TABLES
        with pytest.raises(MigrationError, match="cannot be applied to a cluster as written"):
            migrations.cluster_statements(MIGRATIONS[version], LAYOUT)


def test_a_cluster_name_on_chdb_is_refused(client):
    with pytest.raises(MigrationError, match="ON CLUSTER|cluster"):
        migrations.migrate(client, cluster="nexus_cluster")
