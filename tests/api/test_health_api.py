"""/health/ready in server mode (this module's server has a Redis server): every check, and the job worker
processes counted by their heartbeat."""

from __future__ import annotations

import time


def test_readiness_counts_live_workers_without_depending_on_them(server, http):
    # Given no worker running: ready all the same, with none alive
    answer = http.get("/health/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "checks": {"clickhouse": "ok", "redis": "ok", "migrations": "ok",
                                                        "writer": "ok"}, "workers_alive": 0}
    # When worker threads start (as `nexus worker` does), their process is counted
    server.runtime.jobs.start(1)
    try:
        assert http.get("/health/ready").json()["workers_alive"] == 1
    finally:
        server.runtime.jobs.stop()
    # And its heartbeat lapses once it stopped beating (here: taken away, as a crash leaves it)
    for key in server.runtime.redis.client.scan_iter(match="nexus:worker-alive:*"):
        server.runtime.redis.client.delete(key)
    time.sleep(0.1)
    assert http.get("/health/ready").json()["workers_alive"] == 0


def test_a_pending_migration_makes_the_process_unready(server, http):
    # Given the record of the last migration gone (as if a newer Nexus had a migration this store lacks)
    client = server.runtime.clickhouse
    last = client.query("SELECT max(version) FROM schema_migrations").result_rows[0][0]
    saved = client.query("SELECT * FROM schema_migrations WHERE version = {v:UInt32}", parameters={"v": last})
    client.command("DELETE FROM schema_migrations WHERE version = {v:UInt32}", parameters={"v": last})
    try:
        answer = http.get("/health/ready")
        assert answer.status_code == 503
        assert answer.json()["checks"]["migrations"].startswith(f"not applied: {last:03d}_")
    finally:
        client.insert("schema_migrations", saved.result_rows, column_names=list(saved.column_names))
    assert http.get("/health/ready").status_code == 200
