"""The analysis pages (funnels, retention, sessions, stickiness & lifecycle) without a browser: every request a
page builds from its settings — defaults, set ones, each choice its widgets offer — is one its analysis
accepts (registry.decode), and the page's own drawing puts numbers where they belong and user strings in
as text."""

from __future__ import annotations

import itertools
import json
import threading
import time
from urllib.parse import parse_qsl, urlencode
from datetime import date, datetime, timezone
from typing import Any

import msgspec
import panel as pn
import pytest
from bokeh.models import DataTable, GlyphRenderer, StringFormatter
from panel.io.location import Location

from nexus.analyses import registry
from nexus.analyses.funnel_persons import FunnelPersonsRequest
from nexus.analyses.dates import DateRange
from nexus.analyses.funnels import FunnelRequest
from nexus.analyses.lifecycle import LifecycleResult
from nexus.analyses.retention import MAX_PERIODS, RetentionRequest, RetentionResult
from nexus.analyses.sessions import SessionsRequest
from nexus.analyses.stickiness import StickinessRequest
from nexus.dashboard.pages import funnels, retention, sessions, shared, stickiness
from nexus.dashboard.shell import INTERVALS, Context, View, new_filter
from nexus.dashboard.url_state import dumps, keep_json_in_url
from nexus.errors import InvalidRequest

XSS = "<img src=x onerror=alert(1)>"
NAMES = ["page_view", "signup", "purchase", "invite_sent"]  # most frequent first, as event_names() gives them


def common(with_interval: bool, **view: Any) -> dict[str, Any]:
    """What the shell adds to every request (`ctx.common`), from global settings as the URL would set them."""
    return Context(None, View(tz=view.pop("tz", "UTC"), **view), "test").common(  # type: ignore[arg-type]
        interval=with_interval)


GLOBALS = [  # the shell's global settings: defaults, a custom range in another zone with filters, a preset
    {},
    {"range": "custom", "date_from": "2026-10-01", "date_to": "2026-10-31", "tz": "Europe/Berlin",
     "filters": '[{"key":"$browser","op":"eq","value":"Firefox"},'
                '{"key":"plan","op":"in","value":["pro"],"source":"person"}]'},
    {"range": "-90d", "interval": "week"},
]


# --- funnels --------------------------------------------------------------------------------------------

def test_funnel_default_steps_are_the_most_frequent_events() -> None:
    request = registry.decode("funnel", funnels.request(common(False), funnels.Settings(), NAMES))
    assert isinstance(request, FunnelRequest)
    assert [s.event for s in request.steps] == NAMES[:3]
    assert (request.mode, request.window, request.window_unit, request.breakdown) == ("ordered", 14, "day", None)
    assert request.date_range.date_from == "-7d" and request.timezone == "UTC"
    # Given a project with two kinds of event: two steps (with fewer, the page says why it draws none)
    assert len(funnels.steps_of(funnels.Settings(), NAMES[:2])) == 2
    assert funnels.steps_of(funnels.Settings(), []) == []


@pytest.mark.parametrize("view", GLOBALS)
def test_funnel_requests_from_set_settings_decode(view: dict[str, Any]) -> None:
    steps = [{"event": "page_view"},
             {"event": "signup", "where": {"filters": [{"key": "plan", "op": "eq", "value": "pro"}]}},
             {"event": XSS, "where": {"filters": [{"key": "revenue", "op": "gt", "value": 10}]}}]
    settings = funnels.Settings(steps=dumps(steps), mode="strict", window=2, window_unit="hour",
                                breakdown="country", breakdown_source="person")
    request = registry.decode("funnel", funnels.request(common(False, **view), settings, NAMES))
    assert [s.event for s in request.steps] == ["page_view", "signup", XSS]
    assert request.steps[1].where.filters[0].value == "pro" and request.steps[2].where.filters[0].op == "gt"
    assert (request.mode, request.window_ms, request.breakdown.key, request.breakdown.source) == \
        ("strict", 2 * 3600_000, "country", "person")
    if view.get("filters"):
        assert [f.key for f in request.where.filters] == ["$browser", "plan"]


def test_every_mode_and_window_unit_the_builder_offers_decode() -> None:
    offered = funnels.Settings.param
    for mode, unit in itertools.product(offered.mode.objects, offered.window_unit.objects):
        settings = funnels.Settings(mode=mode, window_unit=unit, window=1)
        request = registry.decode("funnel", funnels.request(common(False), settings, NAMES))
        assert (request.mode, request.window_unit) == (mode, unit)


def test_a_funnel_link_keeps_its_steps_and_drops_what_is_not_a_step() -> None:
    # Given a hand-edited link: a list holding a step, junk, a step without an event and one with a label
    text = dumps([{"event": "a", "extra": 1}, 5, {"where": {}}, {"event": "b", "label": "Bought"}])
    assert funnels.steps_of(funnels.Settings(steps=text), NAMES) == [{"event": "a"}, {"event": "b", "label": "Bought"}]
    # Not a JSON list at all: the default steps
    assert funnels.steps_of(funnels.Settings(steps="{not json"), NAMES) == [{"event": n} for n in NAMES[:3]]


def test_a_funnel_the_analysis_refuses_says_why() -> None:
    # Eleven steps, or a window over 365 days, reach the analysis's own refusal (the page shows its reason)
    eleven = funnels.Settings(steps=dumps([{"event": "a"}] * 11))
    with pytest.raises(InvalidRequest, match="2 to 10 steps"):
        registry.decode("funnel", funnels.request(common(False), eleven, NAMES))
    with pytest.raises(InvalidRequest, match="365 days"):
        too_long = funnels.Settings(window=53, window_unit="week")
        registry.decode("funnel", funnels.request(common(False), too_long, NAMES))


@pytest.mark.parametrize("steps", [2, 3, 10])
def test_every_persons_button_asks_for_a_list_the_analysis_gives(steps: int) -> None:
    settings = funnels.Settings(steps=dumps([{"event": f"e{k}"} for k in range(steps)]), breakdown="plan")
    funnel = funnels.request(common(False), settings, NAMES)
    lists = funnels.person_lists(steps)
    assert len(lists) == steps and [len(row) for row in lists] == [2] * (steps - 1) + [1]
    asked = [pair for row in lists for pair in row]
    # Every person of the funnel is in exactly one "dropped" list or the last step's list
    assert sorted(k for k, status in asked if status == "dropped") == list(range(1, steps))
    for step, status in asked:
        for group in (None, "pro"):
            request = registry.decode("funnel_persons", funnels.persons_request(funnel, step, status, group, 100))
            assert isinstance(request, FunnelPersonsRequest)
            assert (request.step, request.status, request.breakdown_value, request.offset) == (step, status, group, 100)
    assert [funnels.persons_title(k, s) for k, s in lists[0]] == ["Entered the funnel", "Dropped off after step 1"]
    assert [funnels.persons_title(k, s) for k, s in lists[-1]] == [f"Reached step {steps}"]


def test_a_condition_is_typed_as_the_filter_vocabulary_wants() -> None:
    def value(text: str, op: str) -> object:
        return new_filter("n", op, "event", text).get("value")
    assert value("10", "gt") == 10 and value("2.5", "lte") == 2.5
    assert value("10", "eq") == "10"  # eq compares text unless the value is a number in the request
    assert value("a, b,", "in") == ["a", "b"] and value("1, 2.5", "in") == [1, 2.5]
    assert value("x", "is_set") is None
    with pytest.raises(InvalidRequest, match="needs a number"):
        new_filter("n", "gt", "event", "ten")
    with pytest.raises(InvalidRequest):
        new_filter("bad key!", "eq", "column", "x")
    one = {"key": "k", "value": 1}
    assert funnels.step_filter({"event": "a", "where": {"filters": [one]}}) == one
    assert funnels.step_filter({"event": "a", "where": "junk"}) is None


# --- retention ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("view", GLOBALS)
def test_retention_requests_decode(view: dict[str, Any]) -> None:
    default = registry.decode("retention", retention.request(common(False, **view), retention.Settings()))
    assert isinstance(default, RetentionRequest)
    assert (default.start.event, default.returning.event, default.period, default.periods, default.start_mode) == \
        (None, None, "day", 7, "first_time")
    settings = retention.Settings(start=XSS, returning="purchase", period="month", periods=MAX_PERIODS,
                                  start_mode="recurring", breakdown="$browser")
    request = registry.decode("retention", retention.request(common(False, **view), settings))
    assert (request.start.event, request.returning.event, request.period, request.periods, request.start_mode,
            request.breakdown.key) == (XSS, "purchase", "month", MAX_PERIODS, "recurring", "$browser")


def test_every_retention_choice_decodes() -> None:
    for period, mode, periods in itertools.product(retention.PERIODS, retention.START_MODES, (0, MAX_PERIODS)):
        settings = retention.Settings(period=period, start_mode=mode, periods=periods)
        assert registry.decode("retention", retention.request(common(False), settings)).periods == periods
    with pytest.raises(ValueError):  # the page's bound is the analysis's: a link cannot set more
        retention.Settings(periods=MAX_PERIODS + 1)


def test_the_cohort_table_leaves_a_cohort_nobody_started_in_blank() -> None:
    result = msgspec.convert({
        "period": "day", "timezone": "UTC", "date_from": "2026-11-01T00:00:00Z", "date_to": "2026-11-03T00:00:00Z",
        "date_range": {"date_from": "-7d"}, "average": [1.0, 0.5],
        "cohorts": [{"period": "2026-11-01", "persons": 4, "counts": [4, 2], "percentages": [1.0, 0.5]},
                    {"period": "2026-11-02", "persons": 0, "counts": [0, None], "percentages": [0.0, None]}],
    }, RetentionResult)
    source = retention.cohort_table(result.period, result.cohorts).object.renderers[0].data_source
    assert source.data["value_text"] == ["100.0%", "50.0%"]  # two cells, both of the first cohort
    assert set(source.data["cohort"]) == {"Sun 01 Nov 2026"}


# --- sessions -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("view", GLOBALS)
def test_sessions_requests_decode(view: dict[str, Any]) -> None:
    default = registry.decode("sessions", sessions.request(common(True, **view), sessions.Settings()))
    assert isinstance(default, SessionsRequest)
    assert (default.gap_minutes, default.breakdown, default.interval) == (30, None, view.get("interval", "day"))
    for gap in (1, 24 * 60):
        settings = sessions.Settings(gap_minutes=gap, breakdown="browser", breakdown_source="column")
        request = registry.decode("sessions", sessions.request(common(True, **view), settings))
        assert (request.gap_minutes, request.breakdown.key, request.breakdown.source) == (gap, "browser", "column")


def test_every_interval_of_the_shell_is_one_sessions_takes() -> None:
    for interval in INTERVALS:
        assert registry.decode("sessions", sessions.request(common(True, interval=interval),
                                                            sessions.Settings())).interval == interval


# --- stickiness and lifecycle ---------------------------------------------------------------------------

@pytest.mark.parametrize("view", GLOBALS)
def test_stickiness_and_lifecycle_take_the_same_request(view: dict[str, Any]) -> None:
    for settings in (stickiness.Settings(), *(stickiness.Settings(event=XSS, period=p) for p in stickiness.PERIODS)):
        asked = stickiness.request(common(False, **view), settings)
        for kind in ("stickiness", "lifecycle"):
            request = registry.decode(kind, asked)
            assert (request.event, request.period) == (settings.event or None, settings.period)
    assert isinstance(registry.decode("stickiness", stickiness.request(common(False), stickiness.Settings())),
                      StickinessRequest)


def test_lifecycle_stacks_up_from_zero_and_dormant_down() -> None:
    result = LifecycleResult("day", "UTC", datetime(2026, 11, 1, tzinfo=timezone.utc),
                             datetime(2026, 11, 3, tzinfo=timezone.utc), DateRange(),
                             [date(2026, 11, 1), date(2026, 11, 2)], new=[3, 1], returning=[0, 2],
                             resurrecting=[1, 4], dormant=[5, 2])
    fig = stickiness.lifecycle_bars(result)
    bars = {r.data_source.data["status"][0]: r.data_source.data for r in fig.renderers if isinstance(r, GlyphRenderer)}
    assert list(bars) == ["new", "returning", "resurrecting", "dormant"]
    assert (bars["new"]["bottom"], bars["new"]["top"]) == ([0, 0], [3, 1])
    assert (bars["returning"]["bottom"], bars["returning"]["top"]) == ([3, 1], [3, 3])
    assert (bars["resurrecting"]["bottom"], bars["resurrecting"]["top"]) == ([3, 3], [4, 7])
    assert (bars["dormant"]["bottom"], bars["dormant"]["top"]) == ([0, 0], [-5, -2])
    assert bars["dormant"]["persons_text"] == ["5", "2"]  # the hover shows a count, not a negative


# --- shared parts ---------------------------------------------------------------------------------------

def test_persons_and_small_tables_show_user_strings_as_text() -> None:
    persons = msgspec.convert({"persons": [{"person": XSS, "depth": 2, "entered_at": "2026-11-01T10:00:00Z"}],
                               "has_more": False, "timezone": "Europe/Berlin", "date_from": "2026-11-01T00:00:00Z",
                               "date_to": "2026-11-02T00:00:00Z", "date_range": {"date_from": "-7d"}},
                              registry.module("funnel_persons").Result)
    table = funnels.persons_table(persons).object
    assert isinstance(table, DataTable)
    assert all(isinstance(c.formatter, StringFormatter) for c in table.columns)  # escaped by Bokeh, never HTML
    assert table.source.data["person"] == [XSS] and table.source.data["entered"] == ["2026-11-01 11:00:00"]
    markup = shared.html_table(["Step", "n"], [[XSS, "1"]]).object
    assert XSS not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_cards_showing_one_request_ask_once() -> None:
    # Given a reader that takes a while to answer, asked by four cards at once
    class Slow:
        calls = 0

        def answer(self, kind: str, request: dict[str, Any]) -> str:
            Slow.calls += 1
            time.sleep(0.05)
            return f"{kind}:{request['n']}"

    reader = shared.OneAnswer(Slow())  # type: ignore[arg-type]
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(reader.answer("sessions", {"n": 1}))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == ["sessions:1"] * 4 and Slow.calls == 1
    assert reader.answer("sessions", {"n": 2}) == "sessions:2" and Slow.calls == 2


def test_a_json_setting_stays_json_in_the_url_when_another_changes() -> None:
    steps = '[{"event":"a"},{"event":"b"}]'
    # Panel's own merge re-reads the JSON and writes it back as Python's repr, which no page can read
    plain = Location(search="?" + urlencode({"steps": steps}))
    plain.update_query(breakdown="plan")
    assert dict(parse_qsl(plain.search[1:]))["steps"] == "[{'event': 'a'}, {'event': 'b'}]"
    kept = Location(search="?" + urlencode({"steps": steps, "window": "3"}))
    keep_json_in_url(kept)
    kept.update_query(breakdown="plan", periods=4)
    assert dict(parse_qsl(kept.search[1:])) == {"steps": steps, "window": "3", "breakdown": "plan", "periods": "4"}


def test_the_step_builder_writes_what_its_widgets_say() -> None:
    # Given a link's funnel whose second step holds two conditions, the row showing only the first
    two = {"filters": [{"key": "plan", "op": "eq", "value": "pro"}, {"key": "n", "op": "gt", "value": 1}]}
    settings = funnels.Settings(steps=dumps([{"event": "page_view"}, {"event": "signup", "where": two}]))
    built = funnels.builder(settings, NAMES)
    rows, problem = built.objects[0], built.objects[1]

    def widgets(row: int) -> dict[str, Any]:
        return {w.label: w for w in rows.objects[row].objects if isinstance(w, pn.widgets.Widget)}

    assert "and 1 more condition from the link" in rows.objects[1].objects[-1].object
    # When the second step's event changes, its conditions stay
    widgets(1)["Step 2"].value = "purchase"
    assert json_steps(settings) == [{"event": "page_view"}, {"event": "purchase", "where": two}]
    # A condition typed on the first step: numbers for comparisons
    first = widgets(0)
    first["Operator"].value = "gte"
    first["Value"].value = "20"
    first["Property"].value = "revenue"
    assert json_steps(settings)[0] == {"event": "page_view", "where": {"filters": [
        {"key": "revenue", "op": "gte", "source": "event", "value": 20}]}}
    # A property name the filter vocabulary refuses: the builder says why and keeps the funnel as it was
    before = settings.steps
    widgets(0)["Property"].value = XSS
    assert settings.steps == before and problem.visible and XSS not in problem.object
    # Adding, then removing the first step
    built.objects[2].objects[0].clicks += 1
    assert [s["event"] for s in json_steps(settings)] == ["page_view", "purchase", NAMES[0]]
    widgets(0)["✕"].clicks += 1
    assert [s["event"] for s in json_steps(settings)] == ["purchase", NAMES[0]]
    assert widgets(0)["✕"].disabled  # two steps left: none can go


def json_steps(settings: funnels.Settings) -> list[dict[str, Any]]:
    return json.loads(settings.steps)


# --- every drawer, on a small answer of its kind (a saved dashboard's tiles are drawn by these) ------------

SPAN = {"timezone": "UTC", "date_from": "2026-11-01T00:00:00Z", "date_to": "2026-11-03T00:00:00Z",
        "date_range": {"date_from": "-7d"}}
STEP = {"conversion_from_first": 1.0, "conversion_from_previous": 1.0, "dropped": 0, "avg_seconds": None,
        "median_seconds": None}
ANSWERS = {
    "funnel": {**SPAN, "mode": "ordered", "window_seconds": 60, "groups": [
        {"breakdown": group, "steps": [{**STEP, "step": 0, "event": XSS, "label": XSS, "persons": 4},
                                       {**STEP, "step": 1, "event": "b", "label": "b", "persons": 1, "dropped": 3,
                                        "avg_seconds": 61.0, "median_seconds": 30.0}]}
        for group in (None, XSS)]},
    "retention": {**SPAN, "period": "week", "average": [1.0, None], "breakdowns": [
        {"breakdown": XSS, "average": [1.0, None],
         "cohorts": [{"period": "2026-10-26", "persons": 2, "counts": [2, None], "percentages": [1.0, None]}]}],
        "cohorts": [{"period": "2026-10-26", "persons": 2, "counts": [2, None], "percentages": [1.0, None]}]},
    "sessions": {**SPAN, "interval": "day", "buckets": ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"],
                 "entry_pages": [{"path": XSS, "sessions": 2}], "exit_pages": [], "lines": [
        {"breakdown": group, "sessions": [2, 0], "avg_duration": [60.0, None], "median_duration": [60.0, None],
         "pages_per_session": [1.5, None], "bounce_rate": [0.5, None],
         "total": {"sessions": 2, "avg_duration": 60.0, "median_duration": 60.0, "pages_per_session": 1.5,
                   "bounce_rate": 0.5}} for group in (XSS, "$other")]},
    "stickiness": {**SPAN, "period": "day", "periods": 2, "persons": [3, 1], "cumulative": [4, 1]},
    "lifecycle": {**SPAN, "period": "day", "periods": ["2026-11-01", "2026-11-02"], "new": [1, 0],
                  "returning": [0, 1], "resurrecting": [0, 0], "dormant": [0, 1]},
}
CHARTS = {"funnel": ["funnel"], "retention": ["heatmap", "curve"], "stickiness": ["bar"], "lifecycle": ["stacked_bar"],
          "sessions": ["totals", *sessions.SERIES, *sessions.PAGES]}


@pytest.mark.parametrize("kind,chart", [(kind, chart) for kind, charts in CHARTS.items() for chart in charts])
def test_each_drawer_draws_its_kind(kind: str, chart: str) -> None:
    from bokeh.embed import json_item
    from panel.pane import HTML, Bokeh

    from nexus.dashboard.pages import DRAWERS
    drawn = DRAWERS[kind](None, msgspec.convert(ANSWERS[kind], registry.module(kind).Result, strict=False), chart)
    panes = list(drawn.select(Bokeh)) if hasattr(drawn, "select") else [drawn]
    figures = [p.object for p in panes if isinstance(p, Bokeh)]
    markup = " ".join(str(p.object) for p in drawn.select(HTML))
    assert figures or markup, "nothing drawn"
    assert XSS not in markup  # an event name, path or group in markup is escaped
    for fig in figures:
        json_item(fig)  # a figure Bokeh can send to the browser
