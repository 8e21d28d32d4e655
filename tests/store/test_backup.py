"""A backup restores every table as it was (rows and checksums), the restored store keeps working (its
views feed the rollups again), and a changed store goes back to the backup's state."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nexus.demo.generator import generate
from nexus.demo.load import load
from nexus.errors import InvalidRequest
from nexus.meta import dashboards, projects
from nexus.store import backup
from nexus.store.client import parse_url

END = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _rollups_equal_raw(client) -> bool:
    raw = client.query("SELECT project_id, count() FROM events GROUP BY project_id ORDER BY project_id").result_rows
    rolled = client.query("SELECT project_id, sum(events) FROM events_daily GROUP BY project_id "
                          "ORDER BY project_id").result_rows
    return raw == rolled


def test_a_restore_gives_back_every_table_as_backed_up(client, database_url, tmp_path: Path):
    # Given a project with events, metadata (its default dashboard) and a second project
    address = parse_url(database_url)
    shop = projects.create(client, "shop")
    load(client, shop.project_id, 1500, end=END, seed=3)
    before = backup.fingerprints(client, address.database)
    assert before["events"].rows == 1500 and before["dashboards"].rows >= 1 and before["schema_migrations"].rows
    # When it is backed up, then changed: new events in another project, a dashboard deleted
    summary = backup.backup(client, address, tmp_path / "nightly")
    assert summary.tables == before and (tmp_path / "nightly" / "nexus-backup.json").is_file()
    other = projects.create(client, "other")
    load(client, other.project_id, 300, end=END, seed=4)
    dashboards.delete(client, shop.project_id, dashboards.list_all(client, shop.project_id)[0].dashboard_id)
    assert backup.fingerprints(client, address.database) != before
    # Then a restore gives back exactly the backed-up tables
    assert backup.restore(client, address, tmp_path / "nightly") == before
    assert backup.fingerprints(client, address.database) == before
    assert [p.name for p in projects.list_all(client)] == ["shop"]
    # And the restored store takes events again, its views feeding the rollups
    load(client, projects.create(client, "after").project_id, 200, end=END, seed=5)
    assert _rollups_equal_raw(client)


def test_a_backup_never_overwrites_and_a_restore_needs_a_backup(client, database_url, tmp_path: Path):
    address = parse_url(database_url)
    (tmp_path / "taken").mkdir()
    with pytest.raises(InvalidRequest, match="exists already"):
        backup.backup(client, address, tmp_path / "taken")
    with pytest.raises(InvalidRequest, match="not a Nexus backup"):
        backup.restore(client, address, tmp_path / "taken")


def test_a_merge_changes_no_fingerprint(client, database_url):
    # Given rollup rows of the same keys in two parts (two inserts of a project's events) and a person's
    # link replaced by a later version in another part
    address = parse_url(database_url)
    merged = projects.create(client, "merged").project_id
    for seed in (6, 7):
        for chunk in generate(merged, 400, end=END, seed=seed):
            client.insert_arrow("events", chunk.events)
    for version in (1, 2):
        client.command(f"INSERT INTO identities (project_id, distinct_id, person_id, version) VALUES "
                       f"({merged}, 'anon-1', generateUUIDv4(), {version})")
    before = backup.fingerprints(client, address.database)
    # When background merges collapse them (aggregate states merged, replaced versions dropped)
    for table in ("events_daily", "events_hourly", "sessions", "identities", "persons"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    # Then every table reads the same, so a backup's record still holds
    assert backup.fingerprints(client, address.database) == before


def test_a_restore_that_does_not_check_puts_the_store_back(client, database_url, tmp_path: Path):
    address = parse_url(database_url)
    projects.create(client, "kept")
    backup.backup(client, address, tmp_path / "b")
    manifest = tmp_path / "b" / "nexus-backup.json"
    record = json.loads(manifest.read_text())
    now = backup.fingerprints(client, address.database)
    # A record the restored tables cannot match: the store stays as it was
    record["tables"]["projects"]["checksum"] += 1
    manifest.write_text(json.dumps(record))
    with pytest.raises(backup.BackupFailed, match="projects; the store was left as it was"):
        backup.restore(client, address, tmp_path / "b")
    assert backup.fingerprints(client, address.database) == now
    # A record naming a database that is not a plain name is refused before anything runs
    record["database"] = "x` AS y FROM File('/etc') --"
    manifest.write_text(json.dumps(record))
    with pytest.raises(InvalidRequest, match="impossible database"):
        backup.restore(client, address, tmp_path / "b")
    assert backup.fingerprints(client, address.database) == now
