"""Backups of a store's Nexus database with ClickHouse's own BACKUP and RESTORE, and the fingerprint (rows
and a checksum per table) that says a restore gave back what was saved.

chDB writes backups only under `backups.allowed_path`, set at engine start to a directory beside the data
dir (nexus.store.client.backup_area): a backup is written there and then moved to the path asked for, and
a restore reads a backup moved or linked there. ClickHouse backs a MergeTree table up from the parts active
when it starts on it, so one table is always consistent; across tables (events and the rollups its views
feed, identities) a running server pauses its event writer for the backup's length (nexus.runtime), so no
insert lands between two tables' snapshots.

Server mode runs the same statements on the server (see the README): the destination is a disk or S3
bucket the server's configuration allows, and the files stay where the server wrote them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NexusError
from nexus.store.client import StoreAddress, backup_area


# A database name as ClickHouse creates them for Nexus: what a backup's manifest may name in RESTORE.
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class BackupFailed(NexusError):
    """BACKUP or RESTORE did not finish; the engine's reason is in the message."""


class TableFingerprint(msgspec.Struct, frozen=True):
    rows: int
    checksum: int  # sum of every row's cityHash64, so equal tables give equal numbers whatever their parts


class BackupRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str  # a new directory, on the machine of the process that backs up


class BackupSummary(msgspec.Struct, frozen=True):
    path: str
    tables: dict[str, TableFingerprint]  # what a restore checks
    seconds: float
    # Tables written while the backup ran (a server pauses its event writer, not jobs or metadata edits): backed
    # up at one moment of that time, so no fingerprint names their content and a restore cannot check them.
    unchecked: list[str] = []


def fingerprints(client: Client, database: str) -> dict[str, TableFingerprint]:
    """Rows and checksum of every table of the database (views have no rows of their own: left out), as its
    readers see it: a Replacing or Aggregating table through FINAL, aggregate states by their values, so a
    background merge (which collapses rows and re-encodes states) changes no fingerprint."""
    tables = client.query("SELECT name, engine FROM system.tables WHERE database = {db:String} AND NOT is_temporary "
                          "AND engine NOT IN ('MaterializedView', 'View') ORDER BY name",
                          parameters={"db": database}).result_rows
    columns: dict[str, list[str]] = {}
    for table, column, kind in client.query("SELECT table, name, type FROM system.columns WHERE database = {db:String} "
                                            "ORDER BY table, position", parameters={"db": database}).result_rows:
        name = f"`{column}`"
        columns.setdefault(table, []).append(f"finalizeAggregation({name})" if kind.startswith("AggregateFunction")
                                             else name)
    found = {}
    for name, engine in tables:
        final = " FINAL" if engine != "MergeTree" and engine.endswith("MergeTree") else ""
        # A NULL in any column makes cityHash64 of the tuple NULL, so each row is hashed as its text.
        rows, checksum = client.query(f"SELECT count(), sum(cityHash64(toString(tuple({', '.join(columns[name])}))))"
                                      f" FROM `{database}`.`{name}`{final}").result_rows[0]
        found[name] = TableFingerprint(int(rows), int(checksum or 0))
    return found


def backup(client: Client, address: StoreAddress, path: Path) -> BackupSummary:
    """Back the embedded store's database up to the new directory `path` (it must not exist yet). A table's
    fingerprint is recorded when it was the same before and after the BACKUP, hence what was saved."""
    target = _new_target(path)
    started = time.monotonic()
    staged = _staging(address, "backup")
    try:
        before = fingerprints(client, address.database)
        _run(client, f"BACKUP DATABASE `{address.database}` TO File({_quoted(staged)})")
        after = fingerprints(client, address.database)
        tables = {name: found for name, found in after.items() if before.get(name) == found}
        unchecked = sorted(after.keys() - tables.keys())
        (staged / "nexus-backup.json").write_bytes(msgspec.json.encode(
            {"database": address.database, "tables": tables, "unchecked": unchecked}))
        shutil.move(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return BackupSummary(str(target), tables, time.monotonic() - started, unchecked)


class _Manifest(msgspec.Struct, frozen=True):
    """nexus-backup.json: the backed-up database's name, and what a restore checks."""

    database: str
    tables: dict[str, TableFingerprint]
    unchecked: list[str] = []


def restore(client: Client, address: StoreAddress, path: Path) -> dict[str, TableFingerprint]:
    """Replace the embedded store's database with the backup at `path`, and check every recorded table's rows
    and checksum. The old database is renamed aside first, dropped once the restored one checked and put back
    if anything failed or was interrupted. (Restoring under a temporary name and renaming after would not
    do: a materialized view keeps naming its target in the database it was restored into.)"""
    recorded = _recorded(path)
    staged = _staging(address, "restore")
    shutil.copytree(path, staged, copy_function=_link_or_copy)
    database = address.database
    aside = f"{database}_replaced_{secrets.token_hex(3)}"
    exists = client.query("SELECT count() FROM system.databases WHERE name = {db:String}",
                          parameters={"db": database}).result_rows[0][0]
    if exists:
        client.command(f"RENAME DATABASE `{database}` TO `{aside}`")
    try:
        _run(client, f"RESTORE DATABASE `{recorded.database}` AS `{database}` FROM File({_quoted(staged)})")
        restored = {name: found for name, found in fingerprints(client, database).items()
                    if name not in recorded.unchecked}
        if restored != recorded.tables:
            differing = sorted(n for n in recorded.tables.keys() | restored.keys()
                               if recorded.tables.get(n) != restored.get(n))
            raise BackupFailed(f"the restored tables differ from the backup's record: {', '.join(differing)}; "
                               f"the store was left as it was")
    except BaseException:  # Ctrl-C included: the store goes back to what it was, never left empty
        client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        if exists:
            client.command(f"RENAME DATABASE `{aside}` TO `{database}`")
        raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if exists:
        client.command(f"DROP DATABASE `{aside}` SYNC")
    return restored


def _recorded(path: Path) -> _Manifest:
    manifest = path / "nexus-backup.json"
    if not manifest.is_file():
        raise InvalidRequest(f"{path} is not a Nexus backup (it has no nexus-backup.json)", "path")
    try:
        recorded = msgspec.json.decode(manifest.read_bytes(), type=_Manifest)
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"{manifest} is not a Nexus backup's record: {e}", "path") from None
    # It names a database in RESTORE, which takes no bound parameters: a name as Nexus makes them, or nothing.
    if not _DATABASE_NAME.fullmatch(recorded.database):
        raise InvalidRequest(f"{manifest} names an impossible database {recorded.database!r}", "path")
    return recorded


def _new_target(path: Path) -> Path:
    target = path.expanduser().resolve()
    if target.exists():
        raise InvalidRequest(f"{target} exists already: a backup goes to a new directory", "path")
    if not target.parent.is_dir():
        raise InvalidRequest(f"{target.parent} is not a directory", "path")
    return target


def _staging(address: StoreAddress, purpose: str) -> Path:
    if address.engine != "chdb":
        raise InvalidRequest("nexus backup and restore work on the embedded store; a ClickHouse server backs up "
                             "with BACKUP … TO Disk(…) or S3(…) (see the README)", "url")
    area = backup_area(address)
    area.mkdir(mode=0o700, exist_ok=True)
    return area / f"{purpose}-{os.getpid()}-{secrets.token_hex(4)}"


def _quoted(path: Path) -> str:
    """A path as a ClickHouse string literal (BACKUP takes no bound parameters)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(client: Client, statement: str) -> None:
    try:
        client.command(statement)
    except NexusError as e:
        raise BackupFailed(f"{statement.split(' ', 1)[0]} failed: {e}") from None


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link when the backup is on the data dir's file system (no copy of the data), else a copy."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
