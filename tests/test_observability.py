"""What an operator sees of a running `nexus serve`: /metrics (behind the instance admin key, and on
NEXUS_METRICS_PORT without one), JSON log lines with a request id that follows a request into its job,
and /health/ready's checks. One server for the module; its log is read after it stops."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.jobs.conftest import wait_for_job
from tests.test_serve import Server

ADMIN_KEY = "nx_admin_" + "k" * 40
MARKER = "payload-marker-7f3a9c"  # a property value that must never reach the log


class Observed(msgspec.Struct):
    server: Server
    http: httpx.Client
    metrics_port: int
    keys: dict[str, str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    port = _free_port()
    server = Server(tmp_path_factory.mktemp("observed") / "data",
                    env={"NEXUS_ADMIN_KEY": ADMIN_KEY, "NEXUS_METRICS_PORT": str(port), "NEXUS_LOG_LEVEL": "info"})
    http = httpx.Client(base_url=server.url, timeout=60)
    project = http.post("/v1/projects", json={"name": "shop"}, headers=bearer(ADMIN_KEY)).json()
    keys = {scope: http.post("/v1/keys", json={"scope": scope, "project_id": project["project_id"]},
                             headers=bearer(ADMIN_KEY)).json()["secret"] for scope in ("write", "read")}
    try:
        yield Observed(server, http, port, keys)
    finally:
        http.close()
        if server.process.poll() is None:  # the module's last test stops it to read its whole log
            server.stop()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(observed: Observed) -> dict[tuple[str, tuple], float]:
    answer = observed.http.get("/metrics", headers=bearer(ADMIN_KEY))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


def test_metrics_need_the_instance_admin_key_on_the_api_port(observed):
    assert observed.http.get("/metrics").status_code == 401
    assert observed.http.get("/metrics", headers=bearer(observed.keys["read"])).status_code == 403


def test_ingestion_requests_analyses_and_jobs_are_counted(observed):
    # Given three events (one sent twice, one refused for its time) and an analysis asked twice
    now = datetime.now(timezone.utc)
    batch = [{"type": "track", "event": "bought", "userId": f"u{i}", "messageId": f"m{i}",
              "properties": {"note": MARKER}, "timestamp": now.isoformat()} for i in range(2)]
    refused = {"type": "track", "event": "bought", "userId": "u9", "messageId": "m9",
               "timestamp": (now + timedelta(days=30)).isoformat()}
    statuses = [observed.http.post("/v1/batch", json=body, headers=bearer(observed.keys["write"])).status_code
                for body in ({"batch": batch}, {"batch": [batch[0], refused]})]
    assert statuses == [200, 400]  # the second names its refused event
    trends = {"series": [{"event": "bought"}], "interval": "day"}
    answers = [observed.http.post("/v1/analyses/trends", json=trends, headers=bearer(observed.keys["read"])).json()
               for _ in range(2)]
    assert [a["cached"] for a in answers] == [False, True]
    # And an export job, sent with a request id of the caller's
    created = observed.http.post("/v1/exports", json={"source": {"type": "sql", "query": "SELECT 1 AS one"},
                                                      "format": "csv"},
                                 headers={**bearer(observed.keys["read"]), "X-Request-Id": "trace-export-0001"})
    assert created.status_code == 202 and created.headers["x-request-id"] == "trace-export-0001"
    assert wait_for_job(observed.http, observed.keys["read"], created.json()["job_id"])["state"] == "done"
    time.sleep(0.2)
    # Then the metrics say so
    found = scrape(observed)
    events = {outcome: found[("nexus_ingest_events_total", (("outcome", outcome),))]
              for outcome in ("received", "stored", "rejected", "deduplicated")}
    assert events == {"received": 4, "stored": 2, "rejected": 1, "deduplicated": 1}
    assert found[("nexus_http_requests_total", (("method", "POST"), ("route", "/v1/analyses/{kind}"),
                                                ("status", "200")))] == 2
    assert found[("nexus_http_requests_total", (("method", "POST"), ("route", "/v1/batch"), ("status", "400")))] == 1
    assert found[("nexus_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/batch")))] == 2
    assert found[("nexus_analysis_answers_total", (("cache", "miss"), ("kind", "trends")))] == 1
    assert found[("nexus_analysis_answers_total", (("cache", "hit"), ("kind", "trends")))] == 1
    assert found[("nexus_analysis_query_duration_seconds_count", (("kind", "trends"),))] == 1
    assert found[("nexus_writer_insert_rows_sum", ())] == 2
    assert found[("nexus_writer_insert_duration_seconds_count", ())] >= 1
    assert found[("nexus_writer_queued_events", ())] == 0
    assert found[("nexus_jobs_total", (("kind", "export"), ("outcome", "done")))] == 1
    assert found[("nexus_job_duration_seconds_count", (("kind", "export"),))] == 1
    assert found[("nexus_dependency_up", (("dependency", "redis"),))] == 1
    assert found[("nexus_dependency_up", (("dependency", "clickhouse"),))] == 1
    # The engine's memory: all it tracks, at least its mark cache (the analyses above read marks), and its
    # allocator's summary, whose resident memory holds at least what it has allocated
    assert found[("nexus_engine_memory_bytes", (("kind", "tracked"),))] > 0
    assert 0 < found[("nexus_engine_memory_bytes", (("kind", "mark_cache"),))]
    assert found[("nexus_engine_memory_bytes", (("kind", "allocator_resident"),))] >= \
        found[("nexus_engine_memory_bytes", (("kind", "allocator_allocated"),))] > 0


def test_the_metrics_port_serves_without_a_key(observed):
    text = httpx.get(f"http://127.0.0.1:{observed.metrics_port}/metrics", timeout=30).text
    assert ("nexus_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401"))) in samples(text)


def test_an_unknown_path_is_counted_under_one_route(observed):
    assert observed.http.get("/no/such/path-12345").status_code == 404
    assert scrape(observed)[("nexus_http_requests_total", (("method", "GET"), ("route", "(unmatched)"),
                                                           ("status", "404")))] >= 1


def test_readiness_reports_every_check(observed):
    answer = observed.http.get("/health/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "checks": {"clickhouse": "ok", "redis": "ok", "migrations": "ok",
                                                        "writer": "ok"}, "workers_alive": None}


def test_the_log_has_one_json_line_per_request_and_per_job_and_no_key_or_payload(observed):
    # Given the server stopped after the module's other tests (last in the file: pytest runs them in order)
    observed.server.process.send_signal(signal.SIGTERM)
    _, err = observed.server.process.communicate(timeout=60)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    # Then each request has its line, with its route template and status
    requests = [line for line in lines if line["message"] == "request"]
    assert {(r["route"], r["status"]) for r in requests} >= {("/v1/batch", 200), ("/v1/exports", 202),
                                                              ("(unmatched)", 404), ("/metrics", 401)}
    assert all(re.fullmatch(r"[0-9a-f]{16}|trace-export-0001", r["request_id"]) for r in requests)
    # And the export job's line carries the id of the request that enqueued it
    jobs = [line for line in lines if line["message"] == "job"]
    assert [(j["outcome"], j["request_id"]) for j in jobs if j["kind"] == "export"] == [("done", "trace-export-0001")]
    assert all("request_id" not in j for j in jobs if j["kind"] != "export")  # the scheduler's, of no request
    # And no key, no event payload appears anywhere
    text = err
    for secret in (ADMIN_KEY, *observed.keys.values()):
        assert secret not in text
    assert MARKER not in text and "u9" not in text
    assert any(line["level"] == "info" for line in lines)
