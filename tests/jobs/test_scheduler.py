"""The scheduler: due times in a zone across daylight saving time, each due run queued once (by racing
schedulers too), missed runs (run_once, skip), paused schedules, the hourly cleanup, a tick that fails, and
a schedule running for real in a server with its workers and scheduler thread.

Most tests drive `Scheduler.tick(now=...)` with an explicit clock a little past a due time, on a server
with no workers: the runs they queue stay queued, and the test reads them from the job store."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from nexus import redis_server
from nexus.jobs import cron, schedules, store
from nexus.jobs.handlers import CLEANUP_PROJECT
from nexus.jobs.scheduler import Scheduler, run_id
from nexus.meta import records
from nexus.runtime import open_runtime
from tests.jobs.conftest import JOB_ENV, wait_for_job
from tests.jobs.schedule_helpers import auth, schedule_body


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# Due times ----------------------------------------------------------------------------------------------------


def test_a_daily_time_the_clocks_skip_runs_once_at_the_end_of_the_gap():
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST
    due = list(cron.due_between("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27), utc(2026, 3, 31)))
    assert due == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_a_daily_time_the_clocks_show_twice_runs_once_and_an_hourly_one_runs_each_hour():
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice
    daily = list(cron.due_between("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12)))
    assert daily == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    hourly = list(cron.due_between("30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23), utc(2026, 10, 25, 2)))
    assert hourly == [utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
    assert cron.latest_due("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24), utc(2026, 10, 25, 1, 45)) == utc(
        2026, 10, 25, 0, 30)


def test_weekdays_in_new_york():
    due = list(cron.due_between("0 9 * * mon-fri", "America/New_York", utc(2026, 11, 6), utc(2026, 11, 10)))
    # Friday 6 (EST after the 1st), Monday 9; the weekend none
    assert due == [utc(2026, 11, 6, 14), utc(2026, 11, 9, 14)]


# Queueing -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**JOB_ENV, "NEXUS_DELIVERY_DIR": str(tmp_path_factory.mktemp("delivery"))}


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("scheduler")


def _create(http, keys, **changes) -> dict:
    answer = http.post("/v1/schedules", json=schedule_body([{"type": "folder", "path": "x"}], **changes),
                       headers=auth(keys["admin"]))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _runs(server, project_id: int, schedule_id: str) -> list[store.Job]:
    return store.list_for(server.runtime.clickhouse, project_id, schedule_id=schedule_id)


def _ids(jobs: list[store.Job], schedule: dict) -> list[datetime | None]:
    return sorted(job.due_at for job in jobs if job.schedule_id == schedule["schedule_id"])


def test_a_due_run_is_queued_once_with_its_due_time_and_a_job_id_of_its_own(server, http, project):
    project_id, keys = project
    schedule = _create(http, keys, cron="*/5 * * * *")
    due = datetime.fromisoformat(schedule["next_run_at"])
    scheduler = Scheduler(server.runtime)
    assert _ids(scheduler.tick(now=due - timedelta(seconds=1)), schedule) == []
    queued = scheduler.tick(now=due + timedelta(seconds=2))
    assert _ids(queued, schedule) == [due]
    # Ticking again, in this scheduler or a new one, queues nothing more
    assert _ids(scheduler.tick(now=due + timedelta(seconds=3)), schedule) == []
    assert _ids(Scheduler(server.runtime).tick(now=due + timedelta(seconds=4)), schedule) == []
    runs = _runs(server, project_id, schedule["schedule_id"])
    assert [(j.job_id, j.kind, j.state, j.due_at, j.created_by) for j in runs] == [
        (run_id(schedule["schedule_id"], due), "export", "queued", due, schedule["created_by"])]
    assert msgspec.json.decode(runs[0].definition)["source"]["query"] == schedule["export"]["source"]["query"]
    # The next due time is queued at its turn
    assert _ids(scheduler.tick(now=due + timedelta(minutes=5, seconds=1)), schedule) == [due + timedelta(minutes=5)]


def test_a_new_schedule_does_not_run_for_the_past(server, http, project):
    _, keys = project
    schedule = _create(http, keys, cron="* * * * *")
    created = datetime.fromisoformat(schedule["updated_at"])
    # A minute that began before the schedule existed is not due for it
    assert _ids(Scheduler(server.runtime).tick(now=created + timedelta(milliseconds=1)), schedule) == []
    http.delete(f"/v1/schedules/{schedule['schedule_id']}", headers=auth(keys["admin"]))


def test_racing_schedulers_queue_each_due_run_exactly_once(server, http, project):
    # Given two schedulers, the second with clients of its own as another process would have
    project_id, keys = project
    racing = [_create(http, keys, cron="*/10 * * * *", name=f"race {i}", on_missed="skip") for i in range(4)]
    due = max(datetime.fromisoformat(s["next_run_at"]) for s in racing)
    with open_runtime(server.runtime.settings, ingest=False) as second:
        schedulers = [Scheduler(server.runtime), Scheduler(second)]
        for round_ in range(3):
            now = due + timedelta(minutes=10 * round_, seconds=1)
            barrier = threading.Barrier(2)
            queued: list[list[store.Job]] = [[], []]

            def tick(i: int) -> None:
                barrier.wait()
                queued[i] = schedulers[i].tick(now=now)  # noqa: B023

            # When both tick at the same instant
            threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            # Then each run due by then is queued by one of them, and the hour's cleanup once
            mine = [[job.job_id for job in jobs if job.schedule_id or job.kind == "cleanup"] for jobs in queued]
            assert not set(mine[0]) & set(mine[1]), round_
            for schedule in racing:
                assert sum(_ids(jobs, schedule) == [now - timedelta(seconds=1)] for jobs in queued) == 1
            assert len([job for jobs in queued for job in jobs if job.kind == "cleanup"]) <= 1
    for schedule in racing:
        assert len(_runs(server, project_id, schedule["schedule_id"])) == 3


@pytest.mark.parametrize(("on_missed", "expected"), [("run_once", 1), ("skip", 0)])
def test_runs_missed_while_nothing_ran(server, http, project, on_missed, expected):
    # Given an hourly schedule and no scheduler for five and a half hours after it was created
    project_id, keys = project
    schedule = _create(http, keys, cron="0 * * * *", on_missed=on_missed)
    first = datetime.fromisoformat(schedule["next_run_at"])
    back = first + timedelta(hours=4, minutes=30)
    # When a scheduler starts again
    queued = Scheduler(server.runtime).tick(now=back)
    # Then with run_once the latest missed run is queued, and with skip none
    assert _ids(queued, schedule) == [first + timedelta(hours=4)] * expected
    # And from then on each run is queued at its time
    later = Scheduler(server.runtime).tick(now=first + timedelta(hours=5, seconds=1))
    assert _ids(later, schedule) == [first + timedelta(hours=5)]
    assert len(_runs(server, project_id, schedule["schedule_id"])) == expected + 1


def test_a_paused_schedule_queues_nothing_until_resumed(server, http, project):
    # (skip: on the test's clock the schedule is resumed before it was paused, so runs in between would be
    # "missed while paused")
    _, keys = project
    schedule = _create(http, keys, cron="*/15 * * * *", on_missed="skip")
    path = f"/v1/schedules/{schedule['schedule_id']}"
    due = datetime.fromisoformat(schedule["next_run_at"])
    http.post(f"{path}/pause", headers=auth(keys["admin"]))
    scheduler = Scheduler(server.runtime)
    assert _ids(scheduler.tick(now=due + timedelta(seconds=1)), schedule) == []
    http.post(f"{path}/resume", headers=auth(keys["admin"]))
    assert _ids(scheduler.tick(now=due + timedelta(minutes=15, seconds=1)), schedule) == [due + timedelta(minutes=15)]
    http.delete(path, headers=auth(keys["admin"]))
    assert _ids(scheduler.tick(now=due + timedelta(minutes=30, seconds=1)), schedule) == []


def test_the_cleanup_is_queued_once_an_hour(server):
    scheduler = Scheduler(server.runtime)
    hour = utc(2031, 5, 1, 7)
    first = [job for job in scheduler.tick(now=hour + timedelta(minutes=1)) if job.kind == "cleanup"]
    assert [(job.project_id, job.job_id, job.created_by) for job in first] == [
        (CLEANUP_PROJECT, run_id("cleanup", hour), "")]
    assert [job for job in Scheduler(server.runtime).tick(now=hour + timedelta(minutes=59)) if job.kind == "cleanup"] == []
    assert len([job for job in scheduler.tick(now=hour + timedelta(hours=1)) if job.kind == "cleanup"]) == 1


def test_a_tick_that_fails_is_logged_and_the_next_one_tries_again(server, http, project, caplog):
    # Given a schedule due within seconds (written as if saved 50 s ago) and a scheduler whose Redis is down
    project_id, keys = project
    schedule = _backdated(server, http, project, "* * * * *", seconds=50)
    down = redis_server.RedisHandle(redis_server.NexusRedis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1),
                                    "redis://127.0.0.1:1")
    scheduler = Scheduler(msgspec.structs.replace(server.runtime, redis=down))
    scheduler.tick_seconds = 0.2
    caplog.set_level(logging.WARNING, logger="nexus.scheduler")
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while sum("scheduler tick failed" in r.getMessage() for r in caplog.records) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum("scheduler tick failed" in r.getMessage() for r in caplog.records) >= 2
        assert "Redis is unavailable" in caplog.text
        assert _runs(server, project_id, schedule.schedule_id) == []
        # When Redis is back
        scheduler.runtime = server.runtime
        # Then the same thread queues the run
        deadline = time.monotonic() + 30
        while not _runs(server, project_id, schedule.schedule_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_runs(server, project_id, schedule.schedule_id)) == 1
    finally:
        scheduler.stop()
        schedules.set_paused(server.runtime.clickhouse, project_id, schedule.schedule_id, True)


def _backdated(server, http, project, expression: str, seconds: int) -> schedules.Record:
    """A schedule stored as if saved `seconds` ago, so that its first due time comes within a minute."""
    project_id, keys = project
    created = _create(http, keys, cron=expression)
    record = schedules.find(server.runtime.clickhouse, project_id, created["schedule_id"])
    earlier = records.now() - timedelta(seconds=seconds)
    record = msgspec.structs.replace(record, created_at=earlier, updated_at=earlier)
    records.save(server.runtime.clickhouse, schedules.TABLE, record)
    return record


def test_an_every_minute_schedule_runs_in_a_server_with_workers(workers, http, project):
    # Given a server with its workers and scheduler thread (a tick a second), and a schedule saved as if
    # 50 s ago, so that its first minute comes within seconds
    project_id, keys = project
    for job in [*store.list_for(workers.runtime.clickhouse, project_id, limit=1000),
                *store.list_for(workers.runtime.clickhouse, CLEANUP_PROJECT, limit=1000)]:
        workers.runtime.jobs.cancel(job)  # the runs queued by the tests above: not for these workers
    record = _backdated(workers, http, project, "* * * * *", seconds=50)
    deadline = time.monotonic() + 70  # its minute comes within 10 s; a loaded machine may take a while more
    while not (runs := http.get(f"/v1/schedules/{record.schedule_id}/runs", headers=auth(keys["read"])).json()["runs"]):
        assert time.monotonic() < deadline, f"no run within 70 s of {record.updated_at}"
        time.sleep(0.2)
    # Then its run is queued and done, with its file delivered to the folder
    job = wait_for_job(http, keys["read"], runs[0]["job_id"])
    http.post(f"/v1/schedules/{record.schedule_id}/pause", headers=auth(keys["admin"]))
    assert job["state"] == "done", job
    assert job["rows"] == 3 and job["file_name"].endswith(".csv")
    assert [(d["destination"], d["ok"]) for d in job["deliveries"]] == [("folder x", True)]
    due = datetime.fromisoformat(job["due_at"])
    assert due.second == 0 and due > datetime.fromisoformat(runs[0]["created_at"]) - timedelta(minutes=1)
