"""The SQL explorer: ad-hoc ClickHouse SQL over the project's tables, in the same read-only sandbox, limits
and slots as POST /v1/query (the key's own), its result as a grid and a chart, the whole result as CSV or
Parquet, and the project's saved queries to open or add to.

The query and its parameters live in the URL (`sql`, `params`): a card's "Show me the SQL" links here, and
a URL that brings SQL runs it at once, so the analyst sees the very number the card drew. The chart's
columns (`x`, `y`, `series`) are in the URL too, but choosing them redraws the chart, never the query.
"""

from __future__ import annotations

import io
import time
from html import escape
from typing import Any

import panel as pn
import param

from nexus.adhoc.sandbox import JsonAnswer
from nexus.dashboard import charts, theme
from nexus.dashboard.pages import grid, sql_result
from nexus.dashboard.pages.sql_result import BarChart, Choice
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, error_notice, guarded, page
from nexus.dashboard.url_state import dumps, synced
from nexus.errors import InvalidRequest, NexusError

MAX_ROWS = 5_000  # rows shown in the grid and chart; the downloads carry the whole result
EXAMPLE = ("SELECT event, count() AS events\nFROM events\nWHERE ts >= now() - INTERVAL 7 DAY\nGROUP BY event\n"
           "ORDER BY events DESC")
NONE = "(none)"


class Settings(param.Parameterized):
    """What runs: a change runs the query again."""

    sql = param.String(default="")
    params = param.String(default="")  # a JSON object of the SQL's {name:Type} values


class ChartSettings(param.Parameterized):
    """What the chart draws: a change redraws the chart only."""

    x = param.String(default="")
    y = param.String(default="")
    series = param.String(default="")


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings, chart = Settings(), ChartSettings()
    return page(dashboard, "sql", lambda ctx: body(ctx, settings, chart), settings=settings, uses_interval=False,
                uses_filters=False, controls=lambda ctx: [editor(ctx, settings, chart)])


def editor(ctx: Context, settings: Settings, chart: ChartSettings) -> pn.viewable.Viewable:
    """The SQL editor, its parameters, Run, and the saved queries (open one; save this one)."""
    synced(chart)
    code = pn.widgets.CodeEditor(value=settings.sql or EXAMPLE, language="sql", theme=_editor_theme(ctx),
                                 height=180, sizing_mode="stretch_width", css_classes=["nx-sql-editor"])
    params = pn.widgets.TextAreaInput(label="Parameters (JSON: the SQL's {name:Type} values)",
                                      value=settings.params, height=70,
                                      placeholder='{"event": "signup", "days": 7}', sizing_mode="stretch_width",
                                      css_classes=["nx-sql-params"])
    run = pn.widgets.Button(label="Run", button_type="primary", width=90, css_classes=["nx-run"])
    message = theme.html("", visible=False)

    def on_run(_: object = None) -> None:
        message.visible = False
        try:
            sql_result.parse_params(params.value)  # a mistake is shown here, and nothing runs
        except InvalidRequest as e:
            message.object, message.visible = error_notice(e).object, True
            return
        if (code.value, params.value) == (settings.sql, settings.params):
            settings.param.trigger("sql")  # the same query again: run it anew
        else:
            settings.param.update(sql=code.value, params=params.value)

    run.on_click(on_run)
    return pn.Column(code, params, pn.Row(run, _saved(ctx, code, params, message, on_run)), message,
                     sizing_mode="stretch_width")


def _saved(ctx: Context, code: Any, params: Any, message: Any, run: Any) -> pn.viewable.Viewable:
    """Open a saved query (any key), and save this one under a name (an admin key, as POST /v1/queries)."""
    found = {q.name: q for q in ctx.reader.saved_queries()}
    choose = pn.widgets.Select(label="Saved queries", options=["", *found], value="", width=240,
                               disabled=not found, css_classes=["nx-saved"])
    name = pn.widgets.TextInput(label="Save as", placeholder="a name for this query", width=220)
    save = pn.widgets.Button(label="Save", width=80, margin=(23, 5, 5, 5), disabled=not ctx.reader.can_edit,
                             description=None if ctx.reader.can_edit else "Saving takes an admin key of the project")

    def say(html: str) -> None:
        message.object, message.visible = html, True

    def on_open(event: param.parameterized.Event) -> None:
        query = found.get(event.new)
        if query is not None:
            code.value = query.sql
            params.value = dumps(query.default_params) if query.default_params else ""
            run()
            say(f"<div class='nx-notice'>Opened <b>{escape(query.name)}</b>"
                f"{': ' + escape(query.description) if query.description else ''}.</div>")

    def on_save(_: object) -> None:
        try:
            kept = ctx.reader.save_query(name.value.strip(), code.value, sql_result.parse_params(params.value))
        except NexusError as e:
            message.object, message.visible = error_notice(e).object, True
            return
        found[kept.name] = kept
        choose.options, choose.disabled = ["", *sorted(found)], False
        say(f"<div class='nx-notice'>Saved as <b>{escape(kept.name)}</b> ({escape(kept.query_id)}).</div>")

    choose.param.watch(on_open, "value")
    save.on_click(on_save)
    return pn.Row(choose, name, save)


def body(ctx: Context, settings: Settings, chart: ChartSettings) -> pn.viewable.Viewable:
    """The result of the query in the URL, loaded off the event loop; nothing runs until there is SQL."""
    if not settings.sql.strip():
        return empty("Write a query (the tables are events, persons, sessions and the rollups) and press Run.")
    holder = pn.Column(sizing_mode="stretch_width", min_height=120)

    def load() -> None:
        holder.loading = True
        try:
            holder.objects = [guarded(lambda: _result(ctx, settings, chart))]
        finally:
            holder.loading = False

    pn.state.onload(load, threaded=True)
    return holder


def _result(ctx: Context, settings: Settings, chart: ChartSettings) -> pn.viewable.Viewable:
    sql, params = settings.sql, sql_result.parse_params(settings.params)
    started = time.monotonic()
    answer = ctx.reader.query(sql, params, MAX_ROWS)
    waited = time.monotonic() - started
    rows = sql_result.rows_of(answer)
    return pn.Column(_stats(answer, waited), _downloads(ctx, sql, params), _grid(ctx, answer, rows),
                     _chart(ctx, answer, rows, chart), sizing_mode="stretch_width")


def _stats(answer: JsonAnswer, waited: float) -> pn.viewable.Viewable:
    cut = (f" <span style='color: var(--nx-down)'>· the first {answer.row_count:,} rows are shown: download the whole "
           f"result</span>") if answer.truncated else ""
    return theme.html(
        f"<div style='color: var(--nx-muted)' data-role='stats'>{answer.row_count:,} rows · "
        f"{answer.elapsed_ms / 1000:.3f} s in the engine ({waited:.2f} s in all) · {answer.rows_read:,} rows and "
        f"{_bytes(answer.bytes_read)} read{cut}</div>")


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _grid(ctx: Context, answer: JsonAnswer, rows: list[list[Any]]) -> pn.viewable.Viewable:
    """The rows as text cells; the titles, which the SQL names, escaped (see grid)."""
    if not answer.columns:
        return empty("The query returned no columns.")
    columns = [(f"c{j}", escape(f"{c.name} ({c.type})"), 100) for j, c in enumerate(answer.columns)]
    table = grid.text_table(sql_result.grid(answer.columns, rows), columns, css="nx-result", dark=ctx.dark,
                            height=min(420, 30 + 26 * max(len(rows), 1)))
    return pn.pane.Bokeh(table, sizing_mode="stretch_width", css_classes=["nx-grid"])


def _downloads(ctx: Context, sql: str, params: dict[str, Any]) -> pn.viewable.Viewable:
    """The whole result as CSV or Parquet, run again when asked for (within the key's limits)."""
    problem = theme.html("", visible=False)

    def fetch(fmt: str) -> io.BytesIO | None:
        try:
            data = ctx.reader.query_file(sql, params, fmt)
        except NexusError as e:
            problem.object, problem.visible = error_notice(e).object, True
            return None
        problem.visible = False
        return io.BytesIO(data)

    buttons = [pn.widgets.FileDownload(callback=lambda fmt=fmt: fetch(fmt), filename=f"result.{fmt}",
                                       label=f"Download {fmt.upper() if fmt == 'csv' else fmt.title()}",
                                       button_type="light", width=150) for fmt in ("csv", "parquet")]
    return pn.Column(pn.Row(*buttons), problem, sizing_mode="stretch_width")


def _chart(ctx: Context, answer: JsonAnswer, rows: list[list[Any]], chart: ChartSettings) -> pn.viewable.Viewable:
    """Pick x, y and series among the result's columns; the chart follows the choice (and the URL keeps it)."""
    first = sql_result.default_choice(answer.columns, rows)
    if first is None or not rows:
        return empty("Nothing to chart: the result has no rows or no numeric column.")
    names = [c.name for c in answer.columns]
    numeric = [c.name for c in answer.columns if sql_result.is_number(c.type)]
    x = pn.widgets.Select(label="x", options=names, value=chart.x if chart.x in names else first.x, width=180)
    y = pn.widgets.Select(label="y (numbers)", options=numeric, value=chart.y if chart.y in numeric else first.y,
                          width=180)
    series = pn.widgets.Select(label="series", options=[NONE, *names],
                               value=chart.series if chart.series in names else NONE, width=180)
    drawn = pn.Column(sizing_mode="stretch_width")

    def redraw(*_: object) -> None:
        choice = Choice(x.value, y.value, "" if series.value == NONE else series.value)
        chart.param.update(x=choice.x, y=choice.y, series=choice.series)
        drawn.objects = [guarded(lambda: _figure(ctx, answer, rows, choice))]

    for widget in (x, y, series):
        widget.param.watch(redraw, "value")
    redraw()
    return pn.Column(theme.html("<div class='nx-card-title'>Chart</div>"), pn.Row(x, y, series), drawn,
                     sizing_mode="stretch_width", css_classes=["nx-sql-chart"])


def _figure(ctx: Context, answer: JsonAnswer, rows: list[list[Any]], choice: Choice) -> pn.viewable.Viewable:
    data = sql_result.chart_data(answer.columns, rows, choice)
    if isinstance(data, BarChart):
        figure = charts.bars(data.labels, data.values, horizontal=False)
    else:
        figure = charts.time_series(data.series, timezone=data.timezone)
    note = [theme.html(f"<div style='color: var(--nx-muted)'>{escape(data.note)}.</div>")] if data.note else []
    return pn.Column(pn.pane.Bokeh(figure, sizing_mode="stretch_width"), *note, sizing_mode="stretch_width")


def _editor_theme(ctx: Context) -> str:
    return "github_dark" if ctx.dark else "github_light_default"
