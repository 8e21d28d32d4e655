"""Delivery of scheduled runs, end to end: a server with its workers runs each schedule's due run and sends
its file to a folder, to a real local webhook (signed, or as a link), to a real local SMTP server; receivers
that are down, that recover, that refuse. Webhooks may reach loopback here (NEXUS_WEBHOOK_PRIVATE_ADDRESSES=1):
the receivers are on this machine."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest
from aiosmtpd.controller import Controller

from nexus.errors import NexusError
from nexus.exports.request import ExportRequest
from nexus.jobs import delivery, store
from nexus.jobs.scheduler import Scheduler
from nexus.jobs.worker import JobContext
from nexus.meta import records
from nexus.runtime import Runtime
from tests.analyses.journeys import insert_events
from tests.jobs.conftest import JOB_ENV, wait_for_job
from tests.jobs.schedule_helpers import SMALL_EXPORT, auth, schedule_body

PUBLIC_URL = "http://nexus.test"


class Hook:
    """A webhook receiver on loopback: answers each POST with the next of `answers` (then 200), and keeps
    every request. With `down_after`, it closes its port once its answers are used up: nothing listens."""

    def __init__(self, answers: list[int], down_after: bool = False):
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append((self.path, dict(self.headers), body))
                status = hook.answers.pop(0) if hook.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"busy" if status >= 500 else b"thanks")
                if down_after and not hook.answers:
                    threading.Thread(target=hook.close).start()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """The aiosmtpd handler: keeps each message; refuses the addresses in `busy` once each with 451."""

    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.busy: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.busy:
            self.busy.discard(address)
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def delivery_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delivery")


@pytest.fixture(scope="module")
def server_env(mailbox, delivery_dir) -> dict[str, str]:
    return {**JOB_ENV, "NEXUS_DELIVERY_DIR": str(delivery_dir), "NEXUS_SMTP_URL": f"smtp://127.0.0.1:{mailbox[1]}",
            "NEXUS_SMTP_FROM": "nexus@example.com", "NEXUS_PUBLIC_URL": PUBLIC_URL, "NEXUS_WEBHOOK_PRIVATE_ADDRESSES": "1"}


@pytest.fixture(scope="module")
def project(workers):
    return workers.project_with_keys("delivery")


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    opened: list[Hook] = []
    yield opened
    for hook in opened:
        if hook.server.socket.fileno() != -1:
            hook.close()


def due_now(runtime: Runtime, schedule: dict) -> str:
    """Tick a scheduler one second past the schedule's next due time: the id of the run it queued."""
    due = datetime.fromisoformat(schedule["next_run_at"])
    queued = Scheduler(runtime).tick(now=due + timedelta(seconds=1))
    runs = [job for job in queued if job.schedule_id == schedule["schedule_id"]]
    assert [job.due_at for job in runs] == [due]
    return runs[0].job_id


def _run(workers, http, keys: dict, destinations: list[dict], **changes) -> tuple[dict, dict]:
    """Create the schedule, run its next due run now, and wait for the job to end: (schedule, job)."""
    created = http.post("/v1/schedules", json=schedule_body(destinations, **changes), headers=auth(keys["admin"]))
    assert created.status_code == 201, created.text
    schedule = created.json()
    job = wait_for_job(http, keys["read"], due_now(workers.runtime, schedule))
    return schedule, job


def _file(http, keys: dict, job: dict) -> bytes:
    answer = http.get(f"/v1/exports/{job['job_id']}/file", headers=auth(keys["read"]))
    assert answer.status_code == 200
    return answer.content


def _delivered(job: dict) -> list[tuple[str, bool]]:
    return [(d["destination"], d["ok"]) for d in job["deliveries"]]


def test_a_run_is_copied_to_a_folder_and_posted_signed_to_a_webhook(workers, http, project, delivery_dir, hooks):
    _, keys = project
    hooks.append(hook := Hook([]))
    schedule, job = _run(workers, http, keys, [{"type": "folder", "path": "team/exports"},
                                               {"type": "webhook", "url": hook.url, "secret": "topsecret"}])
    assert job["state"] == "done", job
    content = _file(http, keys, job)
    assert content.decode().splitlines() == ['"n","label"', '1,"x1"', '2,"x2"', '3,"x3"']
    assert (delivery_dir / "team" / "exports" / job["file_name"]).read_bytes() == content
    assert _delivered(job) == [("folder team/exports", True), (f"webhook {hook.url}", True)]

    [(path, headers, body)] = hook.requests
    assert (path, body) == ("/hook", content)
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="{job["file_name"]}"'
    assert (headers["X-Nexus-Job"], headers["X-Nexus-Schedule"]) == (job["job_id"], schedule["schedule_id"])
    timestamp = headers["X-Nexus-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(b"topsecret", timestamp.encode() + b"." + content, hashlib.sha256).hexdigest()
    assert headers["X-Nexus-Signature"] == f"sha256={expected}"


def test_a_link_webhook_gets_a_signed_url_that_downloads_the_file_without_a_key(workers, http, project, hooks):
    _, keys = project
    hooks.append(hook := Hook([]))
    schedule, job = _run(workers, http, keys, [{"type": "webhook", "url": hook.url, "mode": "link"}])
    assert job["state"] == "done", job
    [(_, headers, body)] = hook.requests
    assert headers["Content-Type"] == "application/json"
    assert "X-Nexus-Signature" not in headers  # no secret, no signature
    sent = json.loads(body)
    assert {k: sent[k] for k in ("job_id", "schedule_id", "file_name", "rows", "bytes", "due_at")} == {
        "job_id": job["job_id"], "schedule_id": schedule["schedule_id"], "file_name": job["file_name"], "rows": 3,
        "bytes": job["bytes"], "due_at": job["due_at"]}
    assert sent["url"].startswith(f"{PUBLIC_URL}/v1/exports/{job['job_id']}/file?")
    link = sent["url"].removeprefix(PUBLIC_URL)
    downloaded = http.get(link)
    assert downloaded.status_code == 200 and downloaded.content == _file(http, keys, job)
    assert http.get(link.replace("signature=", "signature=0")).status_code == 401
    assert http.get(link.replace("signature=", "signature=%C3%A9")).status_code == 401  # not ASCII: still only wrong


def test_a_webhook_that_stays_down_is_retried_then_the_run_fails_with_the_reason(workers, http, project, hooks):
    # Given a webhook that answers 503 once, then stops listening
    _, keys = project
    hooks.append(hook := Hook([503], down_after=True))
    schedule, job = _run(workers, http, keys, [{"type": "webhook", "url": hook.url}])
    # Then every attempt (NEXUS_JOB_MAX_ATTEMPTS=3) was made and the job failed naming the webhook and why
    assert (job["state"], job["attempts"]) == ("failed", 3), job
    assert job["error"].startswith("failed 3 times; the last time: delivery failed: ")
    assert f"webhook {hook.url}: cannot connect: Connection refused" in job["error"]
    assert len(hook.requests) == 1
    runs = http.get(f"/v1/schedules/{schedule['schedule_id']}/runs", headers=auth(keys["read"])).json()["runs"]
    assert [(r["job_id"], r["state"], r["error"]) for r in runs] == [(job["job_id"], "failed", job["error"])]
    assert runs[0]["deliveries"] == job["deliveries"]
    assert [(d["destination"], d["ok"], d["detail"]) for d in job["deliveries"]] == [
        (f"webhook {hook.url}", False, "cannot connect: Connection refused")]


def test_a_webhook_that_recovers_gets_the_file_once_and_the_folder_is_not_written_twice(workers, http, project,
                                                                                        delivery_dir, hooks):
    _, keys = project
    hooks.append(hook := Hook([503]))
    _, job = _run(workers, http, keys, [{"type": "folder", "path": "recovering"}, {"type": "webhook", "url": hook.url}])
    assert (job["state"], job["attempts"], job["error"]) == ("done", 2, ""), job
    assert _delivered(job) == [("folder recovering", True), (f"webhook {hook.url}", True)]
    assert [body for _, _, body in hook.requests] == [_file(http, keys, job)] * 2  # a 503, then the 200
    assert hook.answers == []
    assert [p.name for p in (delivery_dir / "recovering").iterdir()] == [job["file_name"]]


def test_a_webhook_that_refuses_fails_the_run_at_once(workers, http, project, hooks):
    _, keys = project
    hooks.append(hook := Hook([404]))
    _, job = _run(workers, http, keys, [{"type": "webhook", "url": hook.url}])
    assert (job["state"], job["attempts"]) == ("failed", 1), job
    assert job["error"] == f"delivery failed: webhook {hook.url}: answered HTTP 404: thanks"


def test_a_file_in_the_folder_already_is_not_overwritten(workers, http, project, delivery_dir):
    _, keys = project
    (delivery_dir / "named").mkdir()
    (delivery_dir / "named" / "daily.csv").write_text("keep me")
    export = {**schedule_body([])["export"], "name": "daily"}
    _, job = _run(workers, http, keys, [{"type": "folder", "path": "named"}], export=export)
    assert job["state"] == "done", job
    due = datetime.fromisoformat(job["due_at"])
    assert (delivery_dir / "named" / "daily.csv").read_text() == "keep me"
    assert (delivery_dir / "named" / f"daily-{due:%Y%m%d-%H%M%S}.csv").read_bytes() == _file(http, keys, job)
    assert job["deliveries"][0]["detail"] == f"copied to named/daily-{due:%Y%m%d-%H%M%S}.csv"


def test_an_email_carries_the_file_as_an_attachment(workers, http, project, mailbox):
    _, keys = project
    box, _ = mailbox
    before = len(box.messages)
    schedule, job = _run(workers, http, keys, [{"type": "email", "to": ["ana@example.com", "bo@example.com"]}],
                         name="Revenue\r\nBcc: eve@example.com", timezone="Europe/Berlin")
    assert job["state"] == "done", job
    assert _delivered(job) == [("email ana@example.com", True), ("email bo@example.com", True)]
    [(recipients, raw)] = box.messages[before:]
    assert recipients == ["ana@example.com", "bo@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    due = datetime.fromisoformat(job["due_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert message["Subject"] == f"Revenue Bcc: eve@example.com — {due:%Y-%m-%d %H:%M} Europe/Berlin"
    assert (message["From"], message["To"], message["Bcc"]) == ("nexus@example.com", "ana@example.com, bo@example.com",
                                                                 None)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == job["file_name"]
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == _file(http, keys, job)
    assert "3 rows" in message.get_body(("plain",)).get_content()
    assert schedule["schedule_id"] == job["schedule_id"]


def test_an_email_link_and_a_busy_mailbox_retried_without_sending_twice(workers, http, project, mailbox):
    # Given a mail server that answers 451 (try later) for one of two recipients, once
    _, keys = project
    box, _ = mailbox
    box.busy.add("busy@example.com")
    before = len(box.messages)
    _, job = _run(workers, http, keys, [{"type": "email", "to": ["first@example.com", "busy@example.com"],
                                         "mode": "link"}])
    # Then the run was retried and each recipient got the message once
    assert (job["state"], job["attempts"]) == ("done", 2), job
    assert [recipients for recipients, _ in box.messages[before:]] == [["first@example.com"], ["busy@example.com"]]
    message = email.message_from_bytes(box.messages[-1][1], policy=email.policy.default)
    assert list(message.iter_attachments()) == []
    text = message.get_body(("plain",)).get_content()
    assert f"{PUBLIC_URL}/v1/exports/{job['job_id']}/file?project=" in text


def test_relative_dates_resolve_at_the_runs_due_time(workers, http, project, delivery_dir):
    # Given events 1 and 5 days ago, and a daily run at midnight UTC exporting the last 7 days
    project_id, keys = project
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    recent, old = today - timedelta(days=1, hours=-12), today - timedelta(days=5, hours=-12)
    insert_events(workers.runtime.clickhouse, project_id, {
        "u1": [("recent", recent.isoformat()), ("old", old.isoformat())]})
    export = {"source": {"type": "events", "request": {"date_range": {"date_from": "-7d"}, "timezone": "UTC",
                                                       "columns": ["event"]}}, "format": "csv"}
    created = http.post("/v1/schedules", headers=auth(keys["admin"]), json=schedule_body(
        [{"type": "folder", "path": "relative"}], cron="0 0 * * *", export=export, on_missed="skip")).json()
    # When the run due three midnights from now runs: its last 7 days start 3 days ago
    due = today + timedelta(days=3)
    queued = [j for j in Scheduler(workers.runtime).tick(now=due + timedelta(seconds=1))
              if j.schedule_id == created["schedule_id"]]
    assert [j.due_at for j in queued] == [due]
    job = wait_for_job(http, keys["read"], queued[0].job_id)
    # Then only the recent event is in its file; run now, the same export has both
    assert job["state"] == "done", job
    assert _file(http, keys, job).decode().splitlines() == ['"event"', '"recent"']
    now_job = http.post("/v1/exports", json=export, headers=auth(keys["read"])).json()
    assert wait_for_job(http, keys["read"], now_job["job_id"])["rows"] == 2


def test_a_webhook_whose_host_is_private_at_delivery_is_not_called(workers, http, project, hooks, tmp_path):
    # Given a schedule saved while its webhook's host was allowed, and a run of it delivered where private
    # addresses are not (as when a name that resolved to a public address now resolves to loopback)
    project_id, keys = project
    hooks.append(hook := Hook([]))
    url = hook.url.replace("127.0.0.1", "localhost")
    schedule = http.post("/v1/schedules", json=schedule_body([{"type": "webhook", "url": url}]),
                         headers=auth(keys["admin"])).json()
    job = store.create(workers.runtime.clickhouse, project_id, "export", msgspec.convert(SMALL_EXPORT, ExportRequest),
                       "", schedule_id=schedule["schedule_id"], due_at=records.now())
    job = store.save(workers.runtime.clickhouse, job, file_name="run.csv", rows=1, bytes=2)
    (tmp_path / "run.csv").write_text("1\n")
    context = JobContext(workers.runtime.jobs, job)
    context.runtime = msgspec.structs.replace(workers.runtime, settings=msgspec.structs.replace(
        workers.runtime.settings, webhook_private_addresses=0))
    # When it is delivered
    with pytest.raises(NexusError) as failed:
        delivery.deliver(context, tmp_path / "run.csv")
    # Then it fails at once (not a Transient: no retry), recorded, and the webhook heard nothing
    assert type(failed.value) is NexusError
    assert "localhost resolves to" in str(failed.value)
    assert "a loopback, private or reserved address" in str(failed.value)
    assert hook.requests == []
    recorded = store.get(workers.runtime.clickhouse, project_id, job.job_id)
    assert [(d.destination, d.ok) for d in msgspec.json.decode(recorded.deliveries, type=list[store.Delivery])] == [
        (f"webhook {url}", False)]
