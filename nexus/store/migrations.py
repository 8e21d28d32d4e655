"""Brings a database's schema up to date from sql/migrations/NNN_name.sql, in order, exactly once each.

Each applied migration is recorded with the SHA-256 of its file. Before anything runs, every recorded
checksum is compared with the file on disk: a changed or missing file stops the whole run, so a store is
never migrated by files that disagree with its history. ClickHouse DDL is not transactional, so every
statement in a migration must be idempotent (`IF NOT EXISTS`, `IF EXISTS`): a migration interrupted
half-way is completed by the next run, and it is recorded only after its last statement succeeded.

On a cluster (NEXUS_CLICKHOUSE_CLUSTER) a new database is not built by replaying the files: `nexus.store.cluster`
creates the schema they produce (sql/schema.sql) as Replicated and Distributed tables ON CLUSTER, every object
`IF NOT EXISTS`, and every migration is recorded as applied. On a migrated cluster the layout creates a pending migration's new
tables and views, and its ALTERs run ON CLUSTER on the tables each shard holds (`cluster.on_cluster`); a
migration with statements that have no such rule (a back-fill, TRUNCATE, EXCHANGE) is refused before anything
runs, with the steps to apply it by hand (docs/deployment.md, "Upgrades").
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus.errors import EngineError, MigrationError
from nexus.store import cluster
from nexus.store.client import describe_error
from nexus.store.sql_files import sql_dir

_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
COMMENT 'Schema migrations applied to this database, with the checksum of each file'
"""


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    text: str

    @property
    def file_name(self) -> str:
        return f"{self.version:03d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements: split where a line ends with `;`, comment-only chunks dropped."""
        chunks = re.split(r";[ \t]*(?:\n|$)", self.text)
        return [c.strip() for c in chunks if _strip_comments(c).strip()]


class AppliedMigration(msgspec.Struct, frozen=True):
    version: int
    name: str
    checksum: str
    applied_at: datetime


def discover() -> list[Migration]:
    """Every migration file, in version order; refuses gaps and duplicate numbers."""
    migrations = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {migration.file_name} is out of sequence: expected {expected:03d}")
    return migrations


def use_database(client: Client, database: str, *, cluster: str = "") -> None:
    """Create the database if needed (on every node of `cluster`) and make it the client's default."""
    on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""  # the name is checked by settings.load
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`{on_cluster}")  # name checked by parse_url
    except (EngineError, ClickHouseError) as e:  # an unreachable server stays StorageUnavailable
        raise MigrationError(f"cannot create database {database}: {describe_error(e)}") from None
    client.database = database


def applied(client: Client) -> list[AppliedMigration]:
    """The migrations recorded in the store (none before its first migration: nothing is created here, so a
    reader that only checks, /health/ready or a read-only service, writes nothing)."""
    if not _has_migrations_table(client):
        return []
    rows = client.query(
        "SELECT version, any(name), any(checksum), min(applied_at) FROM schema_migrations "
        "GROUP BY version ORDER BY version"
    ).result_rows
    return [AppliedMigration(*row) for row in rows]


def pending(client: Client) -> list[Migration]:
    """Migrations not yet applied, after checking that the applied ones still match their files."""
    available = {m.version: m for m in discover()}
    done = applied(client)
    for record in done:
        migration = available.get(record.version)
        if migration is None:
            raise MigrationError(
                f"the store has migration {record.version:03d}_{record.name} applied, which this Nexus does "
                f"not have: it was migrated by a newer version"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"migration {migration.file_name} was changed after it was applied (checksum "
                f"{record.checksum[:12]} recorded, {migration.checksum[:12]} on disk): restore the file and "
                f"put the change in a new migration"
            )
    done_versions = {r.version for r in done}
    return [m for v, m in sorted(available.items()) if v not in done_versions]


def migrate(client: Client, *, cluster: str = "") -> list[Migration]:
    """Apply every pending migration in order; return those applied (none when up to date)."""
    if cluster:
        return _migrate_cluster(client, cluster)
    client.command(MIGRATIONS_TABLE)
    todo = pending(client)
    for migration in todo:
        for number, statement in enumerate(migration.statements(), start=1):
            try:
                client.command(statement)
            except (EngineError, ClickHouseError) as e:
                raise MigrationError(
                    f"migration {migration.file_name} failed at statement {number}: {describe_error(e)} "
                    f"(its earlier statements are idempotent; fix the cause and run nexus migrate again)"
                ) from None
        _record(client, migration)
    return todo


def _migrate_cluster(client: Client, cluster_name: str) -> list[Migration]:
    plan = cluster.layout(cluster_name)
    fresh = not applied(client)  # then the layout is the whole history
    todo = discover() if fresh else pending(client)
    # Decided before anything runs: a migration the cluster cannot take stops the run with nothing changed.
    changes = {m.version: [] if fresh else cluster_statements(m, plan) for m in todo}
    _run(client, plan.statements, "the cluster layout")  # every table and view as the migrations leave them
    for migration in todo:
        _run(client, changes[migration.version], f"migration {migration.file_name} on the cluster")
        _record(client, migration)
    return todo


def cluster_statements(migration: Migration, plan: cluster.Layout) -> list[str]:
    """What a migration does to a migrated cluster beyond the layout, which creates its new tables and views."""
    statements = []
    for statement in (_strip_comments(s).strip() for s in migration.statements()):
        if _CREATES.match(statement):
            continue
        try:
            statements += cluster.on_cluster(statement, plan)
        except ValueError as e:
            raise MigrationError(
                f"migration {migration.file_name} cannot be applied to a cluster as written ({e}): apply it by hand "
                f"as docs/deployment.md (Upgrades) shows, record it, and run nexus migrate again"
            ) from None
    return statements


def _has_migrations_table(client: Client) -> bool:
    return bool(client.query("EXISTS TABLE schema_migrations").result_rows[0][0])


def _run(client: Client, statements: list[str], what: str) -> None:
    for number, statement in enumerate(statements, start=1):
        try:
            client.command(statement)
        except (EngineError, ClickHouseError) as e:
            raise MigrationError(
                f"{what} failed at statement {number} ({statement.splitlines()[0]}): {describe_error(e)} (its "
                f"statements can run again; fix the cause and run nexus migrate again)"
            ) from None


def _record(client: Client, migration: Migration) -> None:
    client.insert(
        "schema_migrations",
        [[migration.version, migration.name, migration.checksum, datetime.now(timezone.utc)]],
        column_names=["version", "name", "checksum", "applied_at"],
    )


def dump_schema(client: Client) -> str:
    """`SHOW CREATE` of every table and view, by name, database name removed: sql/schema.sql."""
    names = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND NOT is_temporary "
        "ORDER BY name"
    ).result_rows
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    parts = ["-- Generated by `nexus migrate --dump-schema`: the schema the migrations produce. Do not edit.\n"]
    for (name,) in names:
        ddl = client.query(f"SHOW CREATE TABLE `{name}`").result_rows[0][0]
        ddl = ddl.replace(f"{database}.", "")
        parts.append(ddl.rstrip() + ";\n")
    return "\n".join(parts)


_CREATES = re.compile(r"CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS \w+\b")


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)
