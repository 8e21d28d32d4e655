"""POST /v1/backups while events arrive: the backup is one cut across tables (every event in it is in its
rollups too), it holds every event acknowledged before it began, and only the instance admin key may ask."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import httpx
import msgspec
import pytest

from nexus.meta import keys
from nexus.store import backup
from nexus.store.client import parse_url


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def instance(server) -> str:
    return keys.create_instance_key(server.runtime.clickhouse)[1]


def test_a_backup_while_events_arrive_is_one_cut(server, http, instance, database_url, tmp_path: Path):
    project_id, secrets = server.project_with_keys("busy")
    acknowledged: list[int] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as sender:
            batch_number = 0
            while not stop.is_set():
                now = datetime.now(timezone.utc).isoformat()
                batch = [{"type": "track", "event": "tick", "userId": f"u{i % 7}", "timestamp": now,
                          "messageId": f"b{batch_number}-{i}"} for i in range(50)]
                if sender.post("/v1/batch", json={"batch": batch}, headers=bearer(secrets["write"])).status_code == 200:
                    acknowledged.append(50)
                batch_number += 1

    # Given a client sending batches all along
    sender = threading.Thread(target=send)
    sender.start()
    try:
        while len(acknowledged) < 5:
            stop.wait(0.05)
        before = sum(acknowledged)
        # When the instance admin backs the store up
        answer = http.post("/v1/backups", json={"path": str(tmp_path / "live")}, headers=bearer(instance))
    finally:
        stop.set()
        sender.join()
    assert answer.status_code == 201, answer.text
    summary = msgspec.convert(answer.json(), backup.BackupSummary)
    # Then, restored aside, the backup has every event acknowledged before it, and its rollups count the same
    aside = msgspec.structs.replace(parse_url(database_url), database="t_backup_aside")
    client = server.runtime.clickhouse
    restored = backup.restore(client, aside, Path(summary.path))
    assert restored == summary.tables
    raw = client.query("SELECT count() FROM t_backup_aside.events WHERE project_id = {p:UInt32}",
                       parameters={"p": project_id}).result_rows[0][0]
    for rollup in ("events_hourly", "events_daily"):
        rolled = client.query(f"SELECT sum(events) FROM t_backup_aside.{rollup} WHERE project_id = {{p:UInt32}}",
                              parameters={"p": project_id}).result_rows[0][0]
        assert rolled == raw
    assert before <= raw <= sum(acknowledged)
    client.command("DROP DATABASE t_backup_aside SYNC")


def test_only_the_instance_admin_key_backs_up_and_a_bad_path_names_its_field(server, http, instance, tmp_path):
    _, secrets = server.project_with_keys("other")
    wanted = {"path": str(tmp_path / "b")}
    assert http.post("/v1/backups", json=wanted).status_code == 401
    assert http.post("/v1/backups", json=wanted, headers=bearer(secrets["admin"])).status_code == 403
    assert not (tmp_path / "b").exists()
    taken = http.post("/v1/backups", json={"path": str(tmp_path)}, headers=bearer(instance))
    assert taken.status_code == 400 and taken.json()["field"] == "path"
    missing = http.post("/v1/backups", json={}, headers=bearer(instance))
    assert missing.status_code == 400 and "path" in missing.json()["error"]
    relative = http.post("/v1/backups", json={"path": "b"}, headers=bearer(instance))
    assert relative.status_code == 400 and relative.json()["field"] == "path", relative.text
    assert "absolute" in relative.json()["error"] and not Path("b").exists()


@pytest.mark.parametrize("statement", ["BACKUP DATABASE {db} TO File('{path}')",
                                       "BACKUP TABLE {db}.events TO File('{path}')",
                                       "RESTORE DATABASE {db} AS stolen FROM File('{path}')"])
def test_ad_hoc_sql_cannot_back_up_or_restore(server, http, database_url, tmp_path, statement):
    # The engine may now write backups under its allowed path: a project's SQL must never reach it
    _, secrets = server.project_with_keys(f"sql-{len(statement)}")
    path = parse_url(database_url).path + f"-backups/stolen-{len(statement)}"
    sql = statement.format(db=parse_url(database_url).database, path=path)
    for key in (secrets["read"], secrets["admin"]):
        answer = http.post("/v1/query", json={"sql": sql}, headers=bearer(key))
        assert answer.status_code == 403 and "only SELECT queries" in answer.json()["error"], answer.text
    assert not Path(path).exists()
