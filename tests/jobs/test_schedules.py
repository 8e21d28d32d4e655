"""Schedules over HTTP: create, read, list, replace, pause, resume, delete; every refusal naming its field;
another project's key finding nothing; the webhook secret never shown; private addresses refused. This
module's server runs no workers and no scheduler: nothing here is delivered, and the public addresses in its
webhooks are never contacted."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import msgspec
import pytest

from nexus.errors import InvalidRequest
from nexus.exports.request import ExportRequest
from nexus.jobs import schedules
from tests.jobs.conftest import JOB_ENV
from tests.jobs.schedule_helpers import SMALL_EXPORT, auth, schedule_body

PUBLIC_HOOK = "https://1.1.1.1/nexus-hook"  # an address literal: saving resolves it without the network


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**JOB_ENV, "NEXUS_DELIVERY_DIR": str(tmp_path_factory.mktemp("delivery")),
            "NEXUS_SMTP_URL": "smtp://127.0.0.1:1"}


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("schedules")


def test_a_schedule_is_created_read_listed_replaced_and_deleted(http, project):
    _, keys = project
    body = schedule_body([{"type": "folder", "path": "reports/weekly"},
                          {"type": "email", "to": ["ops@example.com"]}],
                         name="Weekly <b>export</b>", cron="0 9 * * mon", timezone="Europe/Berlin")
    created = http.post("/v1/schedules", json=body, headers=auth(keys["admin"]))
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["schedule_id"].startswith("s_")
    assert {k: schedule[k] for k in ("name", "cron", "timezone", "on_missed", "paused")} == {
        "name": "Weekly <b>export</b>", "cron": "0 9 * * mon", "timezone": "Europe/Berlin", "on_missed": "run_once",
        "paused": False}
    assert schedule["destinations"] == [{"type": "folder", "path": "reports/weekly"},
                                        {"type": "email", "to": ["ops@example.com"], "mode": "attach"}]
    assert schedule["export"] == {"source": {**SMALL_EXPORT["source"], "params": {}}, "format": "csv", "max_rows": None,
                                  "name": ""}
    assert schedule["next_run_at"] == _next_monday_nine_berlin().isoformat().replace("+00:00", "Z")

    read = http.get(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["read"]))
    assert read.status_code == 200 and read.json() == schedule
    listed = http.get("/v1/schedules", headers=auth(keys["read"])).json()["schedules"]
    assert schedule in listed

    replaced = http.put(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["admin"]),
                        json=schedule_body([{"type": "folder", "path": "daily"}], name="Daily", cron="30 6 * * *",
                                           on_missed="skip"))
    assert replaced.status_code == 200, replaced.text
    changed = replaced.json()
    assert (changed["schedule_id"], changed["created_at"], changed["created_by"]) == (
        schedule["schedule_id"], schedule["created_at"], schedule["created_by"])
    assert (changed["name"], changed["cron"], changed["on_missed"], changed["timezone"]) == (
        "Daily", "30 6 * * *", "skip", "UTC")
    assert changed["updated_at"] > schedule["updated_at"]

    assert http.delete(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["admin"])).status_code == 204
    gone = http.get(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["read"]))
    assert gone.status_code == 404
    assert schedule["schedule_id"] not in [s["schedule_id"] for s in
                                           http.get("/v1/schedules", headers=auth(keys["read"])).json()["schedules"]]


def _next_monday_nine_berlin() -> datetime:
    """09:00 Berlin time on the next Monday, worked out without cron."""
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime.now(berlin)
    for days in range(8):
        candidate = datetime.combine(now.date() + timedelta(days=days), time(9), berlin)
        if candidate.weekday() == 0 and candidate > now:
            return candidate.astimezone(timezone.utc)
    raise AssertionError("no Monday within a week")


BAD_BODIES = [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "* * * * * *"}, "cron"),
    ({"cron": "0 0 30 2 *"}, "cron"),
    ({"cron": "@daily"}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"on_missed": "later"}, "on_missed"),
    ({"name": "   "}, "name"),
    ({"destinations": []}, "destinations"),
    ({"destinations": [{"type": "folder", "path": f"f{i}"} for i in range(11)]}, "destinations"),
    ({"destinations": [{"type": "ftp", "url": "ftp://x"}]}, "destinations[0].type"),
    ({"destinations": [{"type": "folder", "path": "/etc"}]}, "destinations[0].path"),
    ({"destinations": [{"type": "folder", "path": "a/../../etc"}]}, "destinations[0].path"),
    ({"destinations": [{"type": "folder", "path": "ok"}, {"type": "webhook", "url": "ftp://example.com/x"}]},
     "destinations[1].url"),
    ({"destinations": [{"type": "webhook", "url": "https://"}]}, "destinations[0].url"),
    ({"destinations": [{"type": "webhook", "url": "https://1.1.1.1:99999/x"}]}, "destinations[0].url"),
    ({"destinations": [{"type": "webhook", "url": PUBLIC_HOOK, "mode": "link"}]}, "destinations[0].mode"),
    ({"destinations": [{"type": "webhook", "url": PUBLIC_HOOK, "secret": schedules.SECRET_MASK}]},
     "destinations[0].secret"),
    ({"destinations": [{"type": "email", "to": ["ops@example.com", "not an address"]}]}, "destinations[0].to[1]"),
    ({"destinations": [{"type": "email", "to": ["a@example.com\r\nBcc: x@example.com"]}]}, "destinations[0].to[0]"),
    ({"destinations": [{"type": "email", "to": []}]}, "destinations[0].to"),
    ({"destinations": [{"type": "email", "to": ["a@example.com"], "mode": "link"}]}, "destinations[0].mode"),
    ({"destinations": [{"type": "folder", "path": "x"}, {"type": "folder", "path": "x"}]}, "destinations[1]"),
    ({"export": {**SMALL_EXPORT, "format": "docx"}}, "export.format"),
    ({"export": {"source": {"type": "analysis", "kind": "horoscope"}, "format": "csv"}}, "export.source.kind"),
    ({"export": {"source": {"type": "saved_query", "query_id": "q_nothere0000"}, "format": "csv"}}, "export.source"),
    ({"export": {**SMALL_EXPORT, "max_rows": 10**12}}, "export.max_rows"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
def test_a_bad_schedule_is_refused_naming_its_field(http, project, change, field):
    _, keys = project
    answer = http.post("/v1/schedules", json={**schedule_body([{"type": "folder", "path": "x"}]), **change},
                       headers=auth(keys["admin"]))
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field, answer.json()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
                                 "http://192.168.0.1/", "http://0.0.0.0/"])
def test_webhooks_to_loopback_private_and_link_local_addresses_are_refused(http, project, url):
    _, keys = project
    answer = http.post("/v1/schedules", json=schedule_body([{"type": "webhook", "url": url}]),
                       headers=auth(keys["admin"]))
    assert answer.status_code == 400
    assert answer.json()["field"] == "destinations[0].url"
    assert "NEXUS_WEBHOOK_PRIVATE_ADDRESSES" in answer.json()["error"]


def test_destinations_whose_setting_is_empty_are_refused(server, project):
    project_id, _ = project
    bare = msgspec.structs.replace(server.runtime.settings, delivery_dir="", smtp_url="")
    runtime = msgspec.structs.replace(server.runtime, settings=bare)
    for destination in ({"type": "folder", "path": "x"}, {"type": "email", "to": ["a@example.com"]}):
        data = msgspec.convert(schedule_body([destination]), schedules.ScheduleInput)
        with pytest.raises(InvalidRequest) as refused:
            schedules.create(runtime, project_id, data, "key")
        assert refused.value.field == "destinations[0]"
        assert "NEXUS_" in str(refused.value)


def test_a_webhook_secret_is_never_shown_and_survives_a_put_of_what_was_shown(server, http, project):
    project_id, keys = project
    body = schedule_body([{"type": "webhook", "url": PUBLIC_HOOK, "secret": "s3cret-value"}])
    schedule = http.post("/v1/schedules", json=body, headers=auth(keys["admin"])).json()
    assert schedule["destinations"][0]["secret"] == schedules.SECRET_MASK
    path = f"/v1/schedules/{schedule['schedule_id']}"
    for answer in (http.get(path, headers=auth(keys["read"])), http.get("/v1/schedules", headers=auth(keys["read"])),
                   http.post(f"{path}/pause", headers=auth(keys["admin"]))):
        assert "s3cret-value" not in answer.text

    # When a client sends back what it was shown, with a new name
    shown = http.get(path, headers=auth(keys["read"])).json()
    body = {k: shown[k] for k in ("cron", "timezone", "export", "destinations", "on_missed", "paused")}
    assert http.put(path, json={**body, "name": "Renamed"}, headers=auth(keys["admin"])).status_code == 200
    # Then the stored secret is the one given first
    stored = schedules.find(server.runtime.clickhouse, project_id, schedule["schedule_id"]).plan
    assert stored.destinations[0].secret == "s3cret-value"

    # A new secret replaces it; the mask on another URL has no secret to keep
    body["destinations"] = [{"type": "webhook", "url": PUBLIC_HOOK, "secret": "another"}]
    assert http.put(path, json={**body, "name": "Renamed"}, headers=auth(keys["admin"])).status_code == 200
    assert schedules.find(server.runtime.clickhouse, project_id,
                          schedule["schedule_id"]).plan.destinations[0].secret == "another"
    body["destinations"] = [{"type": "webhook", "url": PUBLIC_HOOK + "/other", "secret": schedules.SECRET_MASK}]
    refused = http.put(path, json={**body, "name": "Renamed"}, headers=auth(keys["admin"]))
    assert (refused.status_code, refused.json()["field"]) == (400, "destinations[0].secret")


def test_pause_and_resume(http, project):
    _, keys = project
    schedule = http.post("/v1/schedules", json=schedule_body([{"type": "folder", "path": "p"}], cron="*/5 * * * *"),
                         headers=auth(keys["admin"])).json()
    path = f"/v1/schedules/{schedule['schedule_id']}"
    paused = http.post(f"{path}/pause", headers=auth(keys["admin"]))
    assert paused.status_code == 200
    assert (paused.json()["paused"], paused.json()["next_run_at"]) == (True, None)
    assert http.get(path, headers=auth(keys["read"])).json()["paused"] is True
    assert http.post(f"{path}/pause", headers=auth(keys["admin"])).json()["updated_at"] == paused.json()["updated_at"]

    resumed = http.post(f"{path}/resume", headers=auth(keys["admin"])).json()
    assert resumed["paused"] is False
    next_run = datetime.fromisoformat(resumed["next_run_at"])
    assert next_run.minute % 5 == 0 and timedelta(0) < next_run - datetime.now(timezone.utc) <= timedelta(minutes=5)
    assert resumed["updated_at"] > paused.json()["updated_at"]


def test_keys_need_their_scope(http, project):
    _, keys = project
    body = schedule_body([{"type": "folder", "path": "x"}])
    assert http.post("/v1/schedules", json=body, headers=auth(keys["read"])).status_code == 403
    assert http.get("/v1/schedules", headers=auth(keys["write"])).status_code == 403
    assert http.get("/v1/schedules").status_code == 401
    schedule = http.post("/v1/schedules", json=body, headers=auth(keys["admin"])).json()
    for method, suffix in (("PUT", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume")):
        answer = http.request(method, f"/v1/schedules/{schedule['schedule_id']}{suffix}", json=body,
                              headers=auth(keys["read"]))
        assert answer.status_code == 403, (method, suffix)


def test_another_projects_schedule_is_not_found_as_a_missing_one_is(server, http, project):
    _, keys = project
    _, other = server.project_with_keys("schedules-other")
    secret_name = "Board numbers for Q4"
    schedule = http.post("/v1/schedules", json=schedule_body([{"type": "folder", "path": "board"}], name=secret_name),
                         headers=auth(keys["admin"])).json()
    body = schedule_body([{"type": "folder", "path": "mine"}])
    for target in (schedule["schedule_id"], "s_000000000000"):
        answers = [http.get(f"/v1/schedules/{target}", headers=auth(other["admin"])),
                   http.get(f"/v1/schedules/{target}/runs", headers=auth(other["admin"])),
                   http.put(f"/v1/schedules/{target}", json=body, headers=auth(other["admin"])),
                   http.post(f"/v1/schedules/{target}/pause", headers=auth(other["admin"])),
                   http.post(f"/v1/schedules/{target}/resume", headers=auth(other["admin"])),
                   http.delete(f"/v1/schedules/{target}", headers=auth(other["admin"]))]
        for answer in answers:
            assert answer.status_code == 404, answer.text
            assert answer.json() == {"error": f"no schedule {target!r} in this project"}
    assert http.get("/v1/schedules", headers=auth(other["read"])).json() == {"schedules": []}
    # Nothing the other key tried changed it
    assert http.get(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["read"])).json() == schedule


def test_runs_are_the_schedules_jobs_newest_first(server, http, project):
    project_id, keys = project
    first, second = (http.post("/v1/schedules", json=schedule_body([{"type": "folder", "path": name}]),
                               headers=auth(keys["admin"])).json() for name in ("one", "two"))
    export = msgspec.convert(SMALL_EXPORT, ExportRequest)
    due = datetime(2027, 1, 1, tzinfo=timezone.utc)
    jobs = [server.runtime.jobs.submit(project_id, "export", export, "", schedule_id=s["schedule_id"],
                                       due_at=due + timedelta(days=i)) for i, s in enumerate((first, second, first))]
    runs = http.get(f"/v1/schedules/{first['schedule_id']}/runs", headers=auth(keys["read"]))
    assert runs.status_code == 200
    assert [(r["job_id"], r["schedule_id"], r["due_at"], r["state"], r["deliveries"]) for r in runs.json()["runs"]] == [
        (jobs[2].job_id, first["schedule_id"], "2027-01-03T00:00:00Z", "queued", []),
        (jobs[0].job_id, first["schedule_id"], "2027-01-01T00:00:00Z", "queued", [])]
    for job in jobs:  # no worker would take them here; none must be left for the next module's
        server.runtime.jobs.cancel(job)


def test_the_openapi_document_lists_the_schedule_routes(http):
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/schedules", "/v1/schedules/{schedule_id}", "/v1/schedules/{schedule_id}/pause",
            "/v1/schedules/{schedule_id}/resume", "/v1/schedules/{schedule_id}/runs"} <= set(paths)
    assert set(paths["/v1/schedules/{schedule_id}"]) == {"get", "put", "delete"}
