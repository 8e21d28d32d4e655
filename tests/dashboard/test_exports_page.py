"""The exports page without a browser, on a real Nexus (the API under uvicorn, Dramatiq workers on the
session's redis-server): every choice of its form is an export the API's checks take; an export started
through the dashboard's Reader is run by the workers as the signed-in key, and its file is the very one
GET /v1/exports/{id}/file serves; another project's job is not found; pausing a schedule takes an admin
key; and every user string on the page (a job's error, a file's name, a schedule's name) is text."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import msgspec
import pandas as pd
import panel as pn
import pytest

from nexus.dashboard.pages import exports
from nexus.dashboard.session import Dashboard, Reader
from nexus.dashboard.shell import Context, View
from nexus.dashboard.signin import SignIns
from nexus.demo.load import load
from nexus.errors import Forbidden, InvalidRequest, NotFound
from nexus.exports.request import DashboardSource, EventsSource, ReportSource, SavedQuerySource
from nexus.jobs import schedules, store
from nexus.jobs.schedules import ScheduleInput
from nexus.jobs.store import JobView
from nexus.adhoc import saved
from tests.api.conftest import Server, server  # noqa: F401  (the API fixtures, reused here)
from tests.jobs.schedule_helpers import SMALL_EXPORT, YEARLY

SCRIPT = "<script>alert(1)</script>"
NOW = datetime.now(timezone.utc)
LAST_WEEK = {"range": "-7d", "tz": "Europe/Berlin"}


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {"NEXUS_DELIVERY_DIR": str(tmp_path_factory.mktemp("delivery"))}


@pytest.fixture
def workers(server: Server) -> Iterator[None]:  # noqa: F811
    """One worker thread for the test; without this fixture, jobs stay queued."""
    server.runtime.jobs.start(1)
    try:
        yield
    finally:
        server.runtime.jobs.stop()


class Project(msgspec.Struct):
    project_id: int
    secrets: dict[str, str]  # scope → secret


@pytest.fixture(scope="module")
def project(server: Server) -> Project:  # noqa: F811
    project_id, secrets = server.project_with_keys("exports page")
    load(server.runtime.clickhouse, project_id, 2000, end=NOW)
    return Project(project_id, secrets)


@pytest.fixture(scope="module")
def other(server: Server) -> Project:  # noqa: F811
    project_id, secrets = server.project_with_keys("another project")
    return Project(project_id, secrets)


def reader(server: Server, project: Project, scope: str) -> Reader:  # noqa: F811
    runtime = server.runtime
    signins = SignIns(runtime.clickhouse, runtime.redis.client, hours=1)
    viewer = signins.viewer(signins.sign_in(project.secrets[scope], None))
    return Reader(Dashboard(runtime, signins), viewer, viewer.grant(project.project_id))


def common(**view: str) -> dict:
    """What the page's settings give an export (`ctx.common`), from global settings as the URL sets them."""
    return Context(None, View(**{"tz": "UTC", **view}), "exports").common(interval=False)  # type: ignore[arg-type]


def wait_done(signed_in: Reader, job_id: str, timeout: float = 60) -> JobView:
    deadline = time.monotonic() + timeout
    while True:
        job = next(j for j in signed_in.jobs() if j.job_id == job_id)
        if job.state in store.FINISHED or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_every_choice_of_the_form_is_an_export_the_api_takes(server, project) -> None:
    admin = reader(server, project, "admin")
    board = admin.dashboards()[0].dashboard_id
    query = admin.save_query("signups", "SELECT count() AS n FROM events WHERE event = 'signup'", {}).query_id
    filtered = common(**LAST_WEEK, filters='[{"key":"$browser","op":"eq","value":"Firefox"}]')
    built = {source: exports.export_request(exports.export_body(
        source, "xlsx", filtered, dashboard_id=board, query_id=query, columns=["ts", "event"], max_rows=10))
        for source in exports.SOURCES.values()}
    assert isinstance(built["report"].source, ReportSource) and built["report"].source.report.template == "overview"
    assert built["dashboard"].source == DashboardSource(board, {"date_from": "-7d"})
    assert built["saved_query"].source == SavedQuerySource(query)
    events = built["events"].source
    assert isinstance(events, EventsSource)
    assert (events.request.date_range.date_from, events.request.timezone, events.request.columns) == \
        ("-7d", "Europe/Berlin", ["ts", "event"])
    assert events.request.where.filters[0].value == "Firefox"
    for request in built.values():
        assert request.format == "xlsx" and request.max_rows == 10
        # the API's checks pass (without workers the job stays queued; cancelled, no later worker runs it)
        queued = admin.export(request)
        assert queued.state == "queued" and admin.cancel_job(queued.job_id).state == "cancelled"
    with pytest.raises(InvalidRequest) as refused:
        admin.export(exports.export_request(exports.export_body("report", "csv", filtered)))
    assert refused.value.field == "format"
    with pytest.raises(InvalidRequest) as refused:
        exports.export_request(exports.export_body("events", "csv", filtered, columns=["ts", "nope"]))
    assert "nope" in str(refused.value)


def test_a_queued_export_is_cancelled_and_another_projects_job_is_not_found(server, project, other) -> None:
    mine, theirs = reader(server, project, "read"), reader(server, other, "read")
    listing = exports.JobList()
    listing.show(Context(mine, View(), "exports"), exports.Names())
    assert not listing.callback.running  # nothing queued or running: the list is not asked again
    job = mine.export(exports.export_request(exports.export_body("events", "csv", common())))
    assert mine.jobs()[0].job_id == job.job_id  # the newest first
    listing.refresh()
    assert listing.callback.running and f"data-job='{job.job_id}'" in listing.holder.objects[1].objects[0].object
    for ask in (theirs.job_file, theirs.cancel_job):
        with pytest.raises(NotFound):
            ask(job.job_id)
    assert job.job_id not in [j.job_id for j in theirs.jobs()]
    with pytest.raises(NotFound, match="it is queued"):
        mine.job_file(job.job_id)
    assert mine.cancel_job(job.job_id).state == "cancelled"
    assert next(j for j in mine.jobs() if j.job_id == job.job_id).state == "cancelled"
    listing.refresh()
    assert not listing.callback.running  # the last active job ended: the refreshing stops


def test_an_export_through_the_reader_is_run_as_its_key_and_its_file_is_the_apis(server, project, workers) -> None:
    signed_in = reader(server, project, "read")  # a read key may export, as through the API
    request = exports.export_request(exports.export_body("events", "csv", common(**LAST_WEEK),
                                                         columns=["ts", "event", "distinct_id"]))
    job = wait_done(signed_in, signed_in.export(request).job_id)
    assert (job.state, job.created_by, job.progress) == ("done", signed_in.grant.key_id, 100)
    path, file_name, media_type = signed_in.job_file(job.job_id)
    served = httpx.get(f"{server.url}/v1/exports/{job.job_id}/file", timeout=30,
                       headers={"Authorization": f"Bearer {project.secrets['read']}"})
    assert served.status_code == 200, served.text
    assert path.read_bytes() == served.content
    assert served.headers["content-type"] == f"{media_type}; charset=utf-8" and file_name == job.file_name
    assert file_name in served.headers["content-disposition"]
    # The rows are the week's events in Berlin's calendar, counted another way
    frame = pd.read_csv(io.BytesIO(served.content))
    expected = server.runtime.clickhouse.query(
        "SELECT count() FROM events WHERE project_id = {p:UInt32} AND ts >= toStartOfDay(now('Europe/Berlin')) - "
        "INTERVAL 6 DAY AND ts < toStartOfDay(now('Europe/Berlin')) + INTERVAL 1 DAY",
        parameters={"p": project.project_id}).result_rows[0][0]
    assert len(frame) == job.rows == expected > 0
    assert list(frame.columns) == ["ts", "event", "distinct_id"]


def test_a_read_key_reads_schedules_and_only_an_admin_key_pauses_them(server, project) -> None:
    admin, viewer = reader(server, project, "admin"), reader(server, project, "read")
    made = schedules.create(server.runtime, project.project_id, msgspec.convert(
        {"name": "Nightly", "cron": YEARLY, "export": SMALL_EXPORT, "destinations": [{"type": "folder", "path": "x"}]},
        ScheduleInput), admin.grant.key_id)
    assert [s.schedule_id for s in viewer.schedules()] == [made.schedule_id]
    assert viewer.schedule_runs(made.schedule_id) == []
    for change in (viewer.pause_schedule, viewer.resume_schedule):
        with pytest.raises(Forbidden, match="admin key"):
            change(made.schedule_id)
    paused = admin.pause_schedule(made.schedule_id)
    assert (paused.paused, paused.next_run_at) == (True, None)
    assert viewer.schedules()[0].paused
    resumed = admin.resume_schedule(made.schedule_id)
    assert not resumed.paused and resumed.next_run_at is not None
    with pytest.raises(NotFound):
        reader(server, project, "admin").pause_schedule("s_" + "x" * 12)


def test_user_strings_on_the_page_are_text(server, project) -> None:
    admin = reader(server, project, "admin")
    runtime = server.runtime
    # Given a failed job whose error holds markup, a finished one whose file name does, and such a schedule
    failed = store.create(runtime.clickhouse, project.project_id, "export", exports.export_request(
        exports.export_body("events", "csv", common())), admin.grant.key_id)
    store.save(runtime.clickhouse, failed, state="failed", error=f"bad {SCRIPT}")
    done = store.create(runtime.clickhouse, project.project_id, "export", exports.export_request(
        exports.export_body("events", "csv", common())), admin.grant.key_id)
    store.save(runtime.clickhouse, done, state="done", file_name=f"{SCRIPT}.csv", rows=3, bytes=20)
    schedules.create(runtime, project.project_id, msgspec.convert(
        {"name": SCRIPT, "cron": YEARLY, "export": SMALL_EXPORT, "destinations": [{"type": "folder", "path": "y"}]},
        ScheduleInput), admin.grant.key_id)
    saved.create(runtime.queries, project.project_id, saved.SavedQueryInput(name=SCRIPT, sql="SELECT 1"),
                 admin.grant.key_id)
    # When the page's body is built for the admin
    page = exports.body(Context(admin, View(), "exports"), exports.JobList())
    markup = "".join(pane.object for pane in page.select(pn.pane.HTML) if isinstance(pane.object, str))
    # Then the markup carries each string escaped, and none as markup
    assert "<script" not in markup
    assert f"bad {SCRIPT}".replace("<", "&lt;").replace(">", "&gt;") in markup
    assert f"{SCRIPT}.csv".replace("<", "&lt;").replace(">", "&gt;") in markup
    assert markup.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # the error, the file name, the schedule
    downloads = page.select(pn.widgets.FileDownload)
    assert f"{SCRIPT}.csv" in [d.filename for d in downloads]  # a property the browser sets as text
    picker = next(s for s in page.select(pn.widgets.Select) if s.label == "Saved query")
    assert any(SCRIPT in label for label in picker.options)  # options are text in the browser


def test_pickers_tell_apart_names_two_share() -> None:
    assert exports.choices({"d_1": "Board", "d_2": "Board", "d_3": "Sales"}) == \
        {"Board (d_1)": "d_1", "Board (d_2)": "d_2", "Sales": "d_3"}
    assert exports.choices({}) == {"(none)": ""}


@pytest.mark.parametrize(("count", "text"), [(0, "0 B"), (812, "812 B"), (14_540, "14.2 KB"),
                                             (3 * 1024 ** 2, "3.0 MB"), (5 * 1024 ** 4, "5,120.0 GB")])
def test_sizes_read_as_people_read_them(count: int, text: str) -> None:
    assert exports.size_text(count) == text


def test_a_job_row_says_what_it_exports_and_how_it_stands() -> None:
    definition = msgspec.to_builtins(exports.export_request(exports.export_body(
        "dashboard", "xlsx", common(range="custom", date_from="2026-10-01", date_to="2026-10-31"), dashboard_id="d_1")))
    at = datetime(2026, 10, 21, 12, 0, tzinfo=timezone.utc)
    running = JobView("j_1", "export", "running", 42.0, 1, "", 1200, 0, "", "s_1", None, [], definition, "k", at, at,
                      None)
    names = exports.Names({"d_1": "Marketing"})
    assert exports.job_summary(running, names) == "Dashboard Marketing (2026-10-01 – 2026-10-31) · xlsx · scheduled"
    row = exports.job_html(running, names, "Asia/Tokyo")
    assert "running 42%" in row and "2026-10-21 21:00:00" in row and "1,200" in row
