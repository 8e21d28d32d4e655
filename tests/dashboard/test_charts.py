"""The dashboard's chart builders: what each figure draws and from which columns, local dates on time axes,
stable colours, number formats, formula-safe CSV, and user strings kept out of every HTML template."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.models import (Axis, ColumnDataSource, GlyphRenderer, HoverTool, Label, Legend, SaveTool, Text,
                          Title)

from nexus.dashboard import charts
from nexus.dashboard.charts import SeriesData
from nexus.errors import InvalidRequest

XSS = "<img src=x onerror=alert(1)>"
DAYS = [datetime(2024, 3, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]


def glyphs(fig) -> list[str]:
    return [type(r.glyph).__name__ for r in fig.renderers if isinstance(r, GlyphRenderer)]


def sources(fig) -> list[ColumnDataSource]:
    found = []
    for r in fig.renderers:
        if isinstance(r, GlyphRenderer) and r.data_source not in found:
            found.append(r.data_source)
    return found


def hover(fig) -> HoverTool:
    (tool,) = [t for t in fig.tools if isinstance(t, HoverTool)]
    return tool


def no_data(fig) -> bool:
    return [a.text for a in fig.center if isinstance(a, Label)] == [charts.NO_DATA] and not glyphs(fig)


def every_chart(label: str) -> dict[str, object]:
    """One of each chart, with `label` wherever a user string can go."""
    line = [SeriesData(label, DAYS, [1, 2, 3, 4, 5]), SeriesData(label + " (previous)", DAYS, [1, 1, 2, 2, 3],
                                                                 dashed=True, colour_of=label)]
    return {
        **{kind: charts.time_series(line, kind=kind, timezone="Europe/Berlin") for kind in
           ("line", "bar", "stacked_bar", "area")},
        "funnel": charts.funnel_bars([label, "buy"], [10, 4], conversion=[1.0, 0.4]),
        "funnel_groups": charts.funnel_bars(["a", label], [10, 4], conversion=[1.0, 0.4],
                                            groups={label: [6, 3], "other": [4, 1]}),
        "heatmap": charts.heatmap([label], [label, "Day 1"], [[1.0, 0.5]], sizes=[10], counts=[[10, 5]]),
        "bars": charts.bars([label, "b"], [3, 1]),
        "bars_vertical": charts.bars([label, "b"], [3, 1], horizontal=False),
        "pie": charts.pie([label, "b"], [3, 1]),
        "sparkline": charts.sparkline(DAYS, [1, 2, 3, 2, 1]),
    }


# --- time series ---------------------------------------------------------------------------------------

def test_a_line_chart_draws_each_series_with_points_a_clickable_legend_and_exact_values_in_the_hover():
    fig = charts.time_series([SeriesData("signup", DAYS, [1200, None, 3, 4, 5.5]),
                              SeriesData("signup (previous)", DAYS, [1, 1, 1, 1, 1], dashed=True, colour_of="signup")],
                             kind="line", timezone="UTC", height=300)
    assert glyphs(fig) == ["Line", "Scatter", "Line", "Scatter"]
    first, previous = sources(fig)
    assert set(first.data) == {"x", "y", "label", "time_text", "value_text"}
    assert first.data["value_text"] == ["1,200", "–", "3", "4", "5.5"]
    assert math.isnan(first.data["y"][1])  # a gap in the line, not a zero
    assert first.data["time_text"][0] == "Fri 01 Mar 2024"
    lines = [r.glyph for r in fig.renderers if type(r.glyph).__name__ == "Line"]
    assert [g.line_dash for g in lines] == [[], [6]]  # solid, dashed
    assert lines[0].line_color == lines[1].line_color == charts.colour_for("signup")  # previous takes its colour
    (legend,) = fig.select(type=Legend)
    assert legend.click_policy == "hide" and fig.above == [legend]
    assert [item.label.value for item in legend.items] == ["signup", "signup (previous)"]
    assert hover(fig).tooltips == [("Series", "@label"), ("Time", "@time_text"), ("Value", "@value_text")]
    assert fig.sizing_mode == "stretch_width" and fig.height == 300
    assert {type(t).__name__ for t in fig.tools} >= {"PanTool", "WheelZoomTool", "BoxZoomTool", "ResetTool",
                                                     "SaveTool", "HoverTool"}
    assert fig.y_range.start == 0


def test_a_utc_time_late_in_the_evening_shows_on_the_next_local_day():
    # Given 23:30 UTC on 10 March, which is 00:30 on the 11th in Berlin (CET, +1)
    late = datetime(2024, 3, 10, 23, 30, tzinfo=UTC)
    fig = charts.time_series([SeriesData("e", [late], [1])], kind="line", timezone="Europe/Berlin")
    (source,) = sources(fig)
    assert source.data["x"][0] == np.datetime64("2024-03-11T00:30")
    assert source.data["time_text"] == ["Mon 11 Mar 2024 00:30"]
    # a naive time is taken as UTC, as stored; New York is on summer time (-4) from 10 March
    fig = charts.time_series([SeriesData("e", [datetime(2024, 3, 11, 3, 0)], [1])], kind="bar",
                             timezone="America/New_York")
    assert sources(fig)[0].data["x"][0] == np.datetime64("2024-03-10T23:00")
    with pytest.raises(InvalidRequest):
        charts.time_series([SeriesData("e", [late], [1])], kind="line", timezone="Mars/Olympus")
    with pytest.raises(InvalidRequest):
        charts.time_series([SeriesData("e", [late], [1])], kind="pie", timezone="UTC")


def test_stacked_bars_and_areas_stack_the_series_in_order_as_pandas_does_and_leave_dashed_ones_out():
    series = [SeriesData("a", DAYS, [1, 2, 3, 4, 5]), SeriesData("b", DAYS[1:4], [10, None, 30]),
              SeriesData("c", DAYS[::2], [100, 200, 300]),
              SeriesData("a (previous)", DAYS, [9, 9, 9, 9, 9], dashed=True, colour_of="a")]
    long = pd.DataFrame([(s.label, t, v) for s in series[:3] for t, v in zip(s.times, s.values)],
                        columns=["label", "time", "value"])
    expected = (long.pivot_table(index="time", columns="label", values="value", aggfunc="sum")
                .fillna(0).reindex(columns=["a", "b", "c"]).cumsum(axis=1))
    for kind, glyph in (("stacked_bar", "VBar"), ("area", "VArea")):
        fig = charts.time_series(series, kind=kind, timezone="UTC")
        assert glyph in glyphs(fig)
        stacked = sources(fig)[:3]
        for source, label in zip(stacked, "abc"):
            assert list(source.data["top"]) == expected[label].tolist()
            assert source.data["x"][0] == np.datetime64("2024-03-01T00:00")
        assert list(stacked[1].data["bottom"]) == expected["a"].tolist()
        dashed = sources(fig)[3]
        assert "top" not in dashed.data and list(dashed.data["y"]) == [9] * 5  # drawn as a line, not stacked
    assert hover(charts.time_series(series, kind="area", timezone="UTC")).mode == "vline"


def test_grouped_bars_stand_side_by_side_within_each_bucket():
    fig = charts.time_series([SeriesData("a", DAYS, [1] * 5), SeriesData("b", DAYS, [2] * 5)], kind="bar",
                             timezone="UTC")
    bars = [r.glyph for r in fig.renderers]
    day = 86_400_000
    assert [b.width for b in bars] == [day * 0.4, day * 0.4]
    assert [b.x.transform.value for b in bars] == [-day * 0.2, day * 0.2]
    assert hover(fig).mode == "mouse"


def test_a_long_legend_stands_right_of_the_plot_so_the_plot_keeps_its_height():
    fig = charts.time_series([SeriesData(f"s{i}", DAYS, [i] * 5) for i in range(5)], kind="line", timezone="UTC")
    (legend,) = fig.select(type=Legend)
    assert fig.right == [legend] and legend.orientation == "vertical" and not fig.above


def test_percentages_are_formatted_as_rates_on_the_axis_and_in_the_hover():
    fig = charts.time_series([SeriesData("conversion", DAYS[:2], [0.125, 0.5])], kind="line", timezone="UTC",
                             percent=True)
    assert sources(fig)[0].data["value_text"] == ["12.5%", "50.0%"]
    assert fig.yaxis[0].formatter.format == "0.[0]%"


def test_a_sparkline_is_a_bare_line():
    fig = charts.sparkline(DAYS, [1, 2, None, 2, 1])
    assert glyphs(fig) == ["VArea", "Line"]
    assert fig.toolbar_location is None and not fig.tools
    assert not any(axis.visible for axis in fig.select(type=Axis))


def test_every_builder_shows_no_data_instead_of_failing_on_empty_input():
    empties = [
        charts.time_series([], kind="line", timezone="UTC"),
        charts.time_series([SeriesData("a", DAYS[:2], [None, None])], kind="stacked_bar", timezone="UTC"),
        charts.sparkline([], []),
        charts.funnel_bars([], [], conversion=[]),
        charts.funnel_bars(["a", "b"], [0, 0], conversion=[0, 0]),
        charts.heatmap([], [], []),
        charts.heatmap(["r"], ["c"], [[None]]),
        charts.bars([], []),
        charts.pie(["a"], [0]),
        charts.pie([], [], donut=False),
    ]
    assert all(no_data(fig) for fig in empties)
    with pytest.raises(InvalidRequest):
        charts.bars(["a", "b"], [1])


# --- categories ------------------------------------------------------------------------------------------

def test_funnel_bars_label_each_step_with_persons_conversion_and_drop_off():
    fig = charts.funnel_bars(["view", "signup", "view"], [1000, 250, 100], conversion=[1.0, 0.25, 0.1])
    assert glyphs(fig) == ["HBar", "HBar", "Text"]
    (source,) = sources(fig)
    assert list(fig.y_range.factors) == ["3. view", "2. signup", "1. view"]  # first step on top
    assert source.data["bar_text"] == ["1,000 · 100.0%", "250 · 25.0%", "100 · 10.0%"]
    assert source.data["previous_text"] == ["–", "25.0%", "40.0%"]
    assert source.data["dropped_text"] == ["–", "750 (75.0%)", "150 (60.0%)"]
    assert source.data["entered"] == [1000, 1000, 1000]  # the faint bar behind each step
    assert ("Dropped off", "@dropped_text") in hover(fig).tooltips
    assert not fig.select(type=Legend)


def test_funnel_groups_are_drawn_side_by_side_each_with_its_own_conversion():
    fig = charts.funnel_bars(["view", "buy"], [30, 6], conversion=[1.0, 0.2],
                             groups={"Chrome": [20, 5], "Firefox": [10, 1]})
    chrome, firefox = sources(fig)
    assert chrome.data["conversion_text"] == ["100.0%", "25.0%"]
    assert firefox.data["conversion_text"] == ["100.0%", "10.0%"]
    (legend,) = fig.select(type=Legend)
    assert [item.label.value for item in legend.items] == ["Chrome", "Firefox"]
    fronts = [r.glyph for r in fig.renderers if type(r.glyph).__name__ == "HBar"][1::2]
    assert [g.fill_color for g in fronts] == [charts.colours_for(["Chrome", "Firefox"])[g] for g in ("Chrome", "Firefox")]
    assert fronts[0].y.transform.value != fronts[1].y.transform.value


def test_a_retention_heatmap_labels_cells_and_rows_and_scales_colour_past_the_first_column():
    fig = charts.heatmap(["2024-03-01", "2024-03-02"], ["Day 0", "Day 1", "Day 2"],
                         [[1.0, 0.4, 0.2], [1.0, 0.1, None]], sizes=[1200, 30])
    assert glyphs(fig) == ["Rect", "Text"]
    (source,) = sources(fig)
    assert list(fig.y_range.factors) == ["2024-03-02  (30)", "2024-03-01  (1,200)"]
    assert source.data["value_text"] == ["100.0%", "40.0%", "20.0%", "100.0%", "10.0%"]  # the None cell is blank
    mapper = fig.renderers[0].glyph.fill_color.transform
    assert (mapper.low, mapper.high) == (0, 0.4)
    assert source.data["text_colour"][:3] == ["#FFFFFF", "#FFFFFF", "#1A1A1A"]
    counts = charts.heatmap(["r"], ["a", "b"], [[3.0, 12.0]], percent=False)
    assert sources(counts)[0].data["value_text"] == ["3", "12"]
    assert counts.renderers[0].glyph.fill_color.transform.high == 12


def test_bars_keep_long_and_repeated_labels_apart_on_the_axis_and_whole_in_the_hover():
    long = "/docs/" + "x" * 60
    fig = charts.bars([long, "a", "a", ""], [1500, 2, 1, None])
    (source,) = sources(fig)
    assert source.data["name"] == ["/docs/" + "x" * 33 + "…", "a", "a (2)", "(empty)"]
    assert source.data["label"][0] == long
    assert source.data["value_text"] == ["1,500", "2", "1", "–"]
    assert glyphs(fig) == ["HBar", "Text"]
    assert fig.xaxis[0].ticker.min_interval == 1
    assert glyphs(charts.bars(["a"], [0.5], horizontal=False, percent=True)) == ["VBar", "Text"]


def test_a_pie_runs_clockwise_from_twelve_with_shares_in_legend_and_hover():
    fig = charts.pie(["a", "b", "c"], [2, 1, 1])
    assert glyphs(fig) == ["AnnularWedge", "Text"]
    source = sources(fig)[0]
    assert source.data["end"][0] == pytest.approx(math.pi / 2)
    assert source.data["start"][0] == pytest.approx(-math.pi / 2)  # half the pie, clockwise
    assert sum(e - s for s, e in zip(source.data["start"], source.data["end"])) == pytest.approx(2 * math.pi)
    assert source.data["share_text"] == ["50.0%", "25.0%", "25.0%"]
    assert [item.label.value for item in fig.select(type=Legend)[0].items] == ["a  50.0%", "b  25.0%", "c  25.0%"]
    assert sources(fig)[1].data["text"] == ["4"]  # the total inside the donut
    assert glyphs(charts.pie(["a"], [1], donut=False)) == ["AnnularWedge"]
    assert [type(t) for t in fig.tools] == [SaveTool, HoverTool]


# --- colours, themes, formats ----------------------------------------------------------------------------

def test_a_label_has_the_same_colour_in_every_process_and_chart():
    expected = {"signup": "#009E73", "$pageview": "#0072B2", "purchase": "#D55E00", "Firefox": "#999999"}
    assert {label: charts.colour_for(label) for label in expected} == expected
    code = "from nexus.dashboard.charts import colour_for; print(colour_for('signup'), colour_for('purchase'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.stdout.split() == ["#009E73", "#D55E00"]


def test_labels_that_want_the_same_colour_get_distinct_ones_whatever_their_order():
    # e0 and e1 both hash to the fifth colour; e4 and e7 to the last
    assert charts.colour_for("e0") == charts.colour_for("e1") == charts.PALETTE[4]
    clash = ["e1", "e0", "e7", "e4", "signup"]
    colours = charts.colours_for(clash)
    assert colours == charts.colours_for(reversed(clash))
    assert len(set(colours.values())) == 5
    assert colours["e0"] == charts.PALETTE[4] and colours["e1"] == charts.PALETTE[5]  # the first in order keeps it
    assert colours["signup"] == charts.colour_for("signup")
    assert len(set(charts.colours_for(f"e{i}" for i in range(8)).values())) == 8


def test_the_dark_theme_reaches_backgrounds_and_labels_drawn_on_the_plot():
    fig = charts.funnel_bars(["a", "b"], [10, 5], conversion=[1, 0.5])
    document = Document()
    document.add_root(fig)
    document.theme = charts.theme(dark=True)
    (text,) = fig.select(type=Text)
    assert (fig.background_fill_color, text.text_color) == ("#1E2226", "#E0E0E0")
    document.theme = charts.theme(dark=False)
    assert (fig.background_fill_color, text.text_color) == ("#FFFFFF", "#303030")


@pytest.mark.parametrize(("value", "options", "text"), [
    (1234567, {}, "1,234,567"), (1234567.0, {}, "1,234,567"), (12.3456, {}, "12.35"), (2.5, {}, "2.5"),
    (0.004, {}, "0.004"), (-1500, {}, "-1,500"), (None, {}, "–"), (float("nan"), {}, "–"),
    (0.123, {"percent": True}, "12.3%"), (1, {"percent": True}, "100.0%"),
    (45, {"duration": True}, "45s"), (2.25, {"duration": True}, "2.2s"), (185, {"duration": True}, "3m 05s"),
    (7260, {"duration": True}, "2h 01m"), (200000, {"duration": True}, "2d 7h"),
])
def test_numbers_read_as_a_person_expects(value, options, text):
    assert charts.format_number(value, **options) == text


def test_changes_are_relative_for_counts_and_in_points_for_rates():
    assert charts.format_change(1123, 1000) == "+12.3%"
    assert charts.format_change(900, 1000) == "-10.0%"
    assert charts.format_change(5, 0) == "–" and charts.format_change(0, 0) == "0.0%"
    assert charts.format_change(5, None) == "–"
    assert charts.format_change(0.25, 0.30, percent=True) == "-5.0 pp"


def test_chart_data_as_csv_neutralises_formulas_in_cells_and_header():
    text = charts.table_csv(["time", "=SUM(A1)", "value"],
                            [[datetime(2024, 3, 1, tzinfo=UTC), "=cmd|' /C calc'!A0", -5],
                             [datetime(2024, 3, 2, tzinfo=UTC), "plain, with comma", 1.5]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["time", "'=SUM(A1)", "value"]
    assert [r[1:] for r in rows[1:]] == [["'=cmd|' /C calc'!A0", "-5"], ["plain, with comma", "1.5"]]
    assert rows[1][0].startswith("2024-03-01 00:00:00")
    assert list(csv.reader(io.StringIO(charts.table_csv(["a", "b"], [])))) == [["a", "b"]]
    mixed = list(csv.reader(io.StringIO(charts.table_csv(["m", "n"], [[1, None], ["@x", None], [None, None]]))))
    assert mixed == [["m", "n"], ["1", ""], ["'@x", ""], ["", ""]]  # a column of mixed kinds is text
    with pytest.raises(InvalidRequest):
        charts.table_csv(["a"], [[1, 2]])


# --- user strings ----------------------------------------------------------------------------------------

def test_user_strings_reach_only_data_and_text_never_a_template_or_tex():
    for name, fig in every_chart(XSS).items():
        models = list(fig.references())
        for tool in (m for m in models if isinstance(m, HoverTool)):
            assert isinstance(tool.tooltips, list), name  # rows of (label, "@column"), not an HTML template
            for label, template in tool.tooltips:
                assert template.startswith("@") and template[1:].isidentifier(), (name, template)
                assert "<" not in label + template and "{safe}" not in template
        for model in models:  # titles, axis labels and Labels are parsed as TeX: none carries a user string
            texts = [getattr(model, "text", None)] if isinstance(model, (Title, Label)) else []
            if isinstance(model, Axis):
                texts += [model.axis_label, *model.major_label_overrides.values()]
            assert not any(XSS in str(t) for t in texts if t is not None), name
        data = [v for s in (m for m in models if isinstance(m, ColumnDataSource)) for col in s.data.values()
                for v in (col if isinstance(col, list) else [])]
        legends = [item.label.value for m in models if isinstance(m, Legend) for item in m.items]
        if name != "sparkline":
            assert any(XSS in str(v) for v in data + legends), name


@pytest.fixture(scope="module")
def browser():
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium),
                                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


def test_the_browser_shows_a_user_string_in_the_tooltip_as_text(browser, tmp_path):
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    page_file = tmp_path / "chart.html"
    page_file.write_text(file_html(charts.bars([XSS], [10]), INLINE, title="chart"))
    page = browser.new_page(viewport={"width": 800, "height": 300})
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(page_file.as_uri())
    page.wait_for_timeout(300)
    for x in range(300, 700, 50):  # along the one bar, which spans most of the plot's width
        page.mouse.move(x, 30)
        page.wait_for_timeout(50)
    shown = page.get_by_text(XSS, exact=True)  # Playwright's selectors pierce Bokeh's shadow roots
    assert shown.count() >= 1
    assert shown.first.evaluate("e => e.closest('.bk-tooltip-row-value') !== null || "
                                "e.parentElement.classList.contains('bk-tooltip-row-value')")
    assert page.locator("img").count() == 0 and not alerts
    page.close()
