"""The exports page: start an export of this project's data (its overview report, a saved dashboard, raw
events under the page's date range and filters, a saved query) as a file, follow the jobs to their files
and download them, and see the project's schedules with their last runs (an admin key pauses and resumes
them). Everything goes through the Reader, which does what /v1/exports, /v1/jobs and /v1/schedules do.

The jobs list is drawn again every 2 s while a job is queued or running, and only then: a page of
finished jobs asks nothing more. A row whose job did not change keeps its widgets (a Download button
clicked stays the same button)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from html import escape
from typing import Any

import msgspec
import panel as pn

from nexus.analyses.event_rows import COLUMNS, DEFAULT_COLUMNS
from nexus.dashboard import theme
from nexus.dashboard.session import Dashboard, Reader
from nexus.dashboard.shell import PRESETS, Context, error_notice, guarded, page
from nexus.errors import NexusError
from nexus.exports.request import ExportRequest
from nexus.jobs.schedules import Schedule
from nexus.jobs.store import JobView
from nexus.json_input import decode_json
from nexus.timezones import zone

SOURCES = {"This project's overview report": "report", "A saved dashboard": "dashboard", "Raw events": "events",
           "A saved query": "saved_query"}
FORMATS = ["csv", "ndjson", "parquet", "xlsx", "pdf"]
REPORT_FORMATS = ["pdf", "xlsx"]  # a report is drawn: no rows to stream
ACTIVE = frozenset({"queued", "running"})
REFRESH_MS = 2_000
RUNS_SHOWN = 5
ACTION_WIDTH = 100  # a row's button (Download, Cancel), or the room left for one
ACTION_MARGIN = (5, 10)  # a widget's own, kept by the room left for one so that the columns line up
# A file reaches the browser inside one websocket message (base64): a larger one is the API's to serve.
DOWNLOAD_LIMIT = 200 * 1024 * 1024


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    jobs = JobList()  # one per session, kept when the page's settings draw the body again
    return page(dashboard, "exports", lambda ctx: body(ctx, jobs), uses_interval=False)


class Names(msgspec.Struct, frozen=True):
    """The project's saved dashboards and queries by id: the form's choices, and what the jobs list calls them."""

    dashboards: dict[str, str] = {}
    queries: dict[str, str] = {}


def body(ctx: Context, jobs: JobList) -> pn.viewable.Viewable:
    names = Names({d.dashboard_id: d.name for d in ctx.reader.dashboards()},
                  {q.query_id: q.name for q in ctx.reader.saved_queries()})
    return pn.Column(_title("New export"), export_form(ctx, jobs, names), _title("Jobs"), jobs.show(ctx, names),
                     _title("Schedules"), schedules_section(ctx), sizing_mode="stretch_width")


# --- what the form asks for (pure) ----------------------------------------------------------------------

def export_body(source: str, fmt: str, common: dict[str, Any], *, dashboard_id: str = "", query_id: str = "",
                columns: list[str] | None = None, max_rows: int | None = None) -> dict[str, Any]:
    """The export as POST /v1/exports takes it (its JSON), from the form's choices; `common` is the page's
    `ctx.common(interval=False)`: raw events take its range, zone and filters, a report and a dashboard its range."""
    if source == "report":
        chosen: dict[str, Any] = {"type": "report", "report": {"template": "overview", "date_range": common["date_range"]}}
    elif source == "dashboard":
        chosen = {"type": "dashboard", "dashboard_id": dashboard_id, "date_range": common["date_range"]}
    elif source == "events":
        rows = {name: common[name] for name in ("date_range", "timezone", "where") if name in common}
        chosen = {"type": "events", "request": {**rows, "columns": list(columns or DEFAULT_COLUMNS)}}
    else:
        chosen = {"type": "saved_query", "query_id": query_id}
    return {"source": chosen, "format": fmt, **({"max_rows": max_rows} if max_rows else {})}


def export_request(body: dict[str, Any]) -> ExportRequest:
    """`body` read as the API reads its JSON: a mistake is an InvalidRequest naming the field."""
    return decode_json(msgspec.json.encode(body), ExportRequest)


# --- the form -------------------------------------------------------------------------------------------

def export_form(ctx: Context, jobs: JobList, names: Names) -> pn.viewable.Viewable:
    boards, queries = choices(names.dashboards), choices(names.queries)
    source = pn.widgets.Select(label="Export", options=SOURCES, value="events", width=230)
    board = pn.widgets.Select(label="Dashboard", options=boards, width=220, visible=False)
    query = pn.widgets.Select(label="Saved query", options=queries, width=220, visible=False)
    columns = pn.widgets.MultiChoice(label="Columns", options=list(COLUMNS), value=list(DEFAULT_COLUMNS),
                                     sizing_mode="stretch_width", min_width=300)
    fmt = pn.widgets.Select(label="Format", options=FORMATS, value="csv", width=100)
    max_rows = pn.widgets.IntInput(label="Max rows", value=None, start=1, placeholder="all", width=110)
    start = pn.widgets.Button(label="Export", button_type="primary", width=100, margin=(23, 5, 5, 5))
    problem = pn.Column(sizing_mode="stretch_width")
    scope = theme.html(_events_scope(ctx), margin=(0, 10))

    def on_source(_: object = None) -> None:
        chosen = source.value
        board.visible, query.visible = chosen == "dashboard", chosen == "saved_query"
        columns.visible = scope.visible = chosen == "events"
        fmt.options = REPORT_FORMATS if chosen == "report" else FORMATS
        if fmt.value not in fmt.options:
            fmt.value = fmt.options[0]

    def on_start(_: object) -> None:
        try:
            body = export_body(source.value, fmt.value, ctx.common(interval=False), dashboard_id=board.value,
                               query_id=query.value, columns=columns.value, max_rows=max_rows.value)
            ctx.reader.export(export_request(body))
        except NexusError as e:
            problem.objects = [error_notice(e)]
            return
        problem.objects = []
        jobs.refresh()

    source.param.watch(on_source, "value")
    start.on_click(on_start)
    on_source()
    return pn.Column(pn.Row(source, board, query, fmt, max_rows, start), columns, scope, problem,
                     sizing_mode="stretch_width", css_classes=["nx-export-form"])


def choices(names: dict[str, str]) -> dict[str, str]:
    """A picker's options, label → id: the names, each one that two share told apart by its id."""
    shared = {name for name, count in Counter(names.values()).items() if count > 1}
    return {(f"{name} ({key})" if name in shared else name): key for key, name in names.items()} or {"(none)": ""}


def _events_scope(ctx: Context) -> str:
    view = ctx.view
    span = PRESETS[view.range] if view.range != "custom" else " – ".join(
        v for v in ctx.common(interval=False)["date_range"].values())
    filters = len(view.filter_list())
    matching = f", matching {filters} filter{'s' if filters > 1 else ''}" if filters else ""
    return (f"<div class='nx-muted' data-role='events-scope'>Raw events: {escape(span)}, {escape(ctx.timezone)}"
            f"{matching}, oldest first (the page's date range, time zone and filters, above).</div>")


# --- the jobs -------------------------------------------------------------------------------------------

class JobList:
    """The project's latest jobs, one row each, newest first."""

    def __init__(self) -> None:
        self.holder = pn.Column(sizing_mode="stretch_width", css_classes=["nx-jobs"])
        self.ctx: Context | None = None
        self.names = Names()
        self.header: pn.viewable.Viewable | None = None
        self.rows: dict[str, tuple[JobView, pn.viewable.Viewable]] = {}
        self.callback: Any = None
        self.lock = threading.Lock()  # a click's refresh (Panel's threads) and the timer's (the event loop)

    def show(self, ctx: Context, names: Names) -> pn.Column:
        self.ctx, self.names = ctx, names
        if self.callback is None:  # the first drawing of the page (in its session's theme)
            self.header = pn.Row(theme.html(JOBS_HEADER, margin=(2, 5)), _no_action(),
                                 sizing_mode="stretch_width")
            self.callback = pn.state.add_periodic_callback(self.refresh, period=REFRESH_MS, start=False)
            pn.state.on_session_destroyed(lambda _: self.callback.stop())
        self.refresh()
        return self.holder

    def refresh(self) -> None:
        """Draw the jobs as they stand; keep refreshing while one is queued or running, and no longer."""
        assert self.ctx is not None
        with self.lock:
            try:
                found = self.ctx.reader.jobs()
            except NexusError as e:  # a sign-in that ended, a store that is down: say so, and stop asking
                self.holder.objects = [error_notice(e)]
                self.callback.stop()
                return
            rows = [self._row(job) for job in found]
            self.rows = {job.job_id: (job, row) for job, row in zip(found, rows)}
            shown = [self.header, *rows] if rows else [theme.html(
                "<div class='nx-muted'>No exports yet: start one above.</div>")]
            if shown != self.holder.objects:
                self.holder.objects = shown
            active = any(job.state in ACTIVE for job in found)
            if active and not self.callback.running:
                self.callback.start()
            elif not active and self.callback.running:
                self.callback.stop()

    def _row(self, job: JobView) -> pn.viewable.Viewable:
        kept = self.rows.get(job.job_id)
        if kept is not None and kept[0] == job:
            return kept[1]
        assert self.ctx is not None
        cells = theme.html(job_html(job, self.names, self.ctx.timezone), margin=(2, 5))
        return pn.Row(cells, self._action(job), sizing_mode="stretch_width", css_classes=["nx-job-row"])

    def _action(self, job: JobView) -> pn.viewable.Viewable:
        assert self.ctx is not None
        reader = self.ctx.reader
        if job.state in ACTIVE:
            cancel = pn.widgets.Button(label="Cancel", button_type="light", width=ACTION_WIDTH)
            cancel.on_click(lambda _: self._cancel(reader, job.job_id))
            return cancel
        if job.state == "done" and job.file_name and job.bytes <= DOWNLOAD_LIMIT:
            # The callback runs at the click: a file removed by then raises NotFound, which Panel logs.
            return pn.widgets.FileDownload(callback=lambda: reader.job_file(job.job_id)[0], filename=job.file_name,
                                           label="Download", button_type="primary", width=ACTION_WIDTH)
        return _no_action()

    def _cancel(self, reader: Reader, job_id: str) -> None:
        try:
            reader.cancel_job(job_id)
        except NexusError:
            pass  # gone or finished meanwhile: the list drawn again shows how it stands
        self.refresh()


def _no_action() -> pn.viewable.Viewable:
    return pn.Spacer(width=ACTION_WIDTH, margin=ACTION_MARGIN)


JOBS_CSS = """.nx-job { display: grid; grid-template-columns: minmax(16rem, 1fr) 8rem 6rem 6rem 10rem 10rem;
  gap: .2rem .8rem; font-size: .85rem; align-items: baseline; padding: .35rem .2rem; border-bottom: 1px solid var(--nx-line); }
.nx-job-head { color: var(--nx-muted); font-weight: 600; border-bottom: 1px solid var(--nx-line); }
.nx-job .nx-num { text-align: right; font-variant-numeric: tabular-nums; }
.nx-job-file, .nx-job-error { grid-column: 1 / -1; font-size: .8rem; }
.nx-job-file { color: var(--nx-muted); } .nx-job-error { color: var(--nx-down); }
.nx-state-done { color: var(--nx-up); } .nx-state-failed { color: var(--nx-down); }
.nx-state-cancelled { color: var(--nx-muted); } .nx-state-running, .nx-state-queued { color: var(--nx-accent); }"""

JOBS_HEADER = ("<div class='nx-job nx-job-head'><span>Export</span><span>State</span><span class='nx-num'>Rows</span>"
               f"<span class='nx-num'>Size</span><span>Created</span><span>Finished</span></div><style>{JOBS_CSS}</style>")


def job_html(job: JobView, names: Names, timezone_name: str) -> str:
    """A job's cells as markup (every user string escaped): what it exports, its state (with its progress
    while it runs), rows, size, times in `timezone_name`, and what went wrong or what its file is called."""
    state = job.state + (f" {job.progress:.0f}%" if job.state == "running" and job.progress is not None else "")
    notes = ""
    if job.state == "done":
        notes = f"<div class='nx-job-file'>{escape(job.file_name) or 'file removed after its retention time'}</div>"
    elif job.error and job.state != "cancelled":  # a failure, or a queued retry's reason
        notes = f"<div class='nx-job-error' data-role='job-error'>{escape(job.error)}</div>"
    return (f"<div class='nx-job' data-job='{escape(job.job_id, quote=True)}' data-state='{escape(job.state, quote=True)}'>"
            f"<span>{escape(job_summary(job, names))}</span><span class='nx-state-{escape(job.state, quote=True)}'>"
            f"{escape(state)}</span><span class='nx-num'>{job.rows:,}</span><span class='nx-num'>{size_text(job.bytes)}"
            f"</span><span>{_time(job.created_at, timezone_name)}</span><span>{_time(job.finished_at, timezone_name)}"
            f"</span>{notes}</div><style>{JOBS_CSS}</style>")


def job_summary(job: JobView, names: Names) -> str:
    """What the job makes, as text: "Raw events (-7d) · csv", "Dashboard Marketing · xlsx", "scheduled"."""
    if job.kind != "export":
        return job.kind
    source, fmt = job.definition.get("source", {}), job.definition.get("format", "")
    kind = source.get("type")
    if kind == "report":
        report = source.get("report", {})
        what = f"{report.get('template', 'overview').title()} report{_range(report.get('date_range'))}"
    elif kind == "dashboard":
        board = source.get("dashboard_id", "")
        what = f"Dashboard {names.dashboards.get(board, board)}{_range(source.get('date_range'))}"
    elif kind == "events":
        what = "Raw events" + _range(source.get("request", {}).get("date_range"))
    elif kind == "saved_query":
        query = source.get("query_id", "")
        what = f"Saved query {names.queries.get(query, query)}"
    else:
        what = {"sql": "SQL query", "analysis": f"{source.get('kind', '')} analysis"}.get(kind, str(kind))
    return f"{what} · {fmt}" + (" · scheduled" if job.schedule_id else "")


def size_text(count: int) -> str:
    """Bytes as a person reads them: 812 B, 14.2 KB, 3.0 MB."""
    if count < 1024:
        return f"{count:,} B"
    size, unit = count / 1024, "KB"
    for bigger in ("MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:,.1f} {unit}"


def _range(date_range: dict[str, Any] | None) -> str:
    return f" ({' – '.join(str(v) for v in date_range.values() if v)})" if date_range else ""


def _time(moment: datetime | None, timezone_name: str) -> str:
    if moment is None:
        return "–"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(zone(timezone_name)).strftime("%Y-%m-%d %H:%M:%S")


# --- the schedules ----------------------------------------------------------------------------------------

def schedules_section(ctx: Context) -> pn.viewable.Viewable:
    holder = pn.Column(sizing_mode="stretch_width", css_classes=["nx-schedules"])

    def draw(problem: NexusError | None = None) -> None:
        holder.objects = [*([error_notice(problem)] if problem else []), guarded(lambda: _schedules(ctx, toggle))]

    def toggle(schedule: Schedule) -> None:
        try:
            (ctx.reader.resume_schedule if schedule.paused else ctx.reader.pause_schedule)(schedule.schedule_id)
        except NexusError as e:
            draw(e)
            return
        draw()

    draw()
    return holder


def _schedules(ctx: Context, toggle: Callable[[Schedule], None]) -> pn.viewable.Viewable:
    found = ctx.reader.schedules()
    if not found:
        return theme.html("<div class='nx-muted'>No schedules: an admin key creates them with POST /v1/schedules.</div>")
    drawn = []
    for schedule in found:
        runs = ctx.reader.schedule_runs(schedule.schedule_id, RUNS_SHOWN)
        parts: list[Any] = [theme.html(schedule_html(schedule, runs, ctx.timezone))]
        if ctx.reader.can_edit:
            button = pn.widgets.Button(label="Resume" if schedule.paused else "Pause", button_type="light",
                                       width=ACTION_WIDTH)
            button.on_click(lambda _, chosen=schedule: toggle(chosen))
            parts.append(button)
        drawn.append(pn.Row(*parts, sizing_mode="stretch_width", css_classes=["nx-schedule"]))
    return pn.Column(*drawn, sizing_mode="stretch_width")


def schedule_html(schedule: Schedule, runs: list[JobView], timezone_name: str) -> str:
    """A schedule as markup (its name escaped): when it runs, its next run in its own zone, and its last runs."""
    if schedule.paused or schedule.next_run_at is None:
        when = "<strong>paused</strong>"
    else:
        when = f"next run {escape(_time(schedule.next_run_at, schedule.timezone))}"
    last = "".join(
        f"<li><span class='nx-state-{escape(r.state, quote=True)}'>{escape(r.state)}</span> · "
        f"{_time(r.due_at or r.created_at, timezone_name)} · {r.rows:,} rows"
        f"{f' · <span class=nx-job-error>{escape(r.error)}</span>' if r.error and r.state == 'failed' else ''}</li>"
        for r in runs) or "<li>no runs yet</li>"
    return (f"<div class='nx-schedule-card' data-schedule='{escape(schedule.schedule_id, quote=True)}'>"
            f"<div class='nx-card-title'>{escape(schedule.name)}</div>"
            f"<div class='nx-muted'><code>{escape(schedule.cron)}</code> in {escape(schedule.timezone)} · {when}</div>"
            f"<ul class='nx-runs'>{last}</ul></div><style>{JOBS_CSS}"
            ".nx-runs { margin: .3rem 0; padding-left: 1.2rem; font-size: .85rem; }</style>")


def _title(text: str) -> pn.viewable.Viewable:
    return theme.html(f"<div class='nx-card-title'>{escape(text)}</div>", margin=(12, 10, 0, 10))
