"""The Attribution page in Chromium: its KPIs, model table and paths table are the numbers POST
/v1/analyses/attribution and conversion_paths give; the bars draw; an admin edits the channel rules (saved
as PUT /v1/channels saves them, a bad edit refused naming its field, the defaults restored), a read key
cannot; a hostile channel name shows as text; project B sees none of it. Screenshots go to
test-artifacts/dashboard/. The drawers are also checked without a browser on a small answer."""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest

from nexus.analyses import registry
from nexus.dashboard import charts
from nexus.dashboard.pages import DRAWERS
from nexus.dashboard.pages.attribution import MODEL_NAMES, shown
from nexus.dashboard.pages.channel_rules import read_when, written
from nexus.errors import InvalidRequest
from nexus.meta import channels, goals
from tests.dashboard.conftest import (
    XSS,
    Browse,
    Stack,
    page_text,
    wait_for_plots,
    wait_until,
)

pytestmark = pytest.mark.dashboard

PURCHASE = {"event": "purchase", "value_property": "revenue"}
QUERY = "/attribution?" + urlencode({"conversion": "event:purchase", "value_property": "revenue"})
MARKER = "Acme paid"  # a channel of project A's edited rules, which project B must never see
HOSTILE_CHANNEL = f"{MARKER} {XSS}"


def expected(stack: Stack, kind: str, **extra: Any) -> dict[str, Any]:
    request = {"conversion": PURCHASE, "date_range": {"date_from": "-7d"}, "timezone": stack.a.timezone,
               "by": "channel", "lookback_days": 30, **extra}
    return stack.analysis(stack.a, kind, request)


def channels_of(stack: Stack, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.api}/v1/channels", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def rows_of(table: Any) -> list[list[str]]:
    return [row.locator("td").all_inner_texts() for row in table.locator("tbody tr").all()]


def test_the_attribution_page_shows_what_the_analysis_api_answers(browse: Browse, stack: Stack):
    page = browse.page(stack.a.keys["read"], QUERY)
    wait_for_plots(page, 1)
    page.locator("[data-attribution-kpi=attributed]").wait_for()
    result = expected(stack, "attribution", half_life_days=7.0)
    assert result["attributed"] > 0 and len(result["labels"]) > 1
    kpis = {name: page.locator(f"[data-attribution-kpi={name}] .nx-kpi").inner_text()
            for name in ("conversions", "attributed", "unattributed", "lost_journeys", "value")}
    assert kpis == {name: charts.format_number(result[name]) for name in kpis}

    # The model table: a row per label in the answer's order, a column per model, credits and shares.
    models = page.locator(".nx-model-table .nx-table")
    models.wait_for()
    header = models.locator("th").all_inner_texts()
    assert header == ["Channel", *(MODEL_NAMES[m] for m in result["models"])]
    credit = {(r["model"], r["label"]): r for r in result["rows"]}
    rows = rows_of(models)
    assert [row[0] for row in rows] == [shown(label) for label in result["labels"]]
    first = result["labels"][0]
    assert rows[0][1:] == [f"{charts.format_number(credit[(m, first)]['conversions'])} "
                           f"({charts.format_number(credit[(m, first)]['share'], percent=True)})"
                           for m in result["models"]]

    # The paths table: the top paths as conversion_paths answers them.
    paths = expected(stack, "conversion_paths", limit=20)["paths"]
    path_rows = rows_of(page.locator(".nx-conversion-paths .nx-table"))
    assert [row[0] for row in path_rows] == [" → ".join(map(shown, p["path"])) for p in paths]
    assert [row[1] for row in path_rows] == [charts.format_number(p["conversions"]) for p in paths]

    # By campaign, showing credited value: the table follows.
    page.goto(stack.url + QUERY + "&" + urlencode({"by": "campaign", "measure": "value", "half_life_days": 3}))
    wait_for_plots(page, 1)
    page.locator(".nx-model-table .nx-table").wait_for()
    by_campaign = expected(stack, "attribution", by="campaign", half_life_days=3)
    rows = rows_of(page.locator(".nx-model-table .nx-table"))
    assert [row[0] for row in rows] == [shown(label) for label in by_campaign["labels"]]
    value = {(r["model"], r["label"]): r["value"] for r in by_campaign["rows"]}
    label = by_campaign["labels"][0]
    assert rows[0][1:] == [charts.format_number(value[(m, label)]) for m in by_campaign["models"]]
    # The link's half-life is the one used: the default's time decay credits this label otherwise.
    seven = expected(stack, "attribution", by="campaign", half_life_days=7)
    assert rows[0][1 + by_campaign["models"].index("time_decay")] != charts.format_number(
        next(r["value"] for r in seven["rows"] if (r["model"], r["label"]) == ("time_decay", label)))
    browse.assert_clean()


def test_a_saved_goal_is_the_page_s_first_conversion(browse: Browse, stack: Stack):
    # Given a goal with a hostile name, the page opened bare attributes its conversions.
    goal = goals.create(stack.runtime.clickhouse, stack.a.project_id,
                        goals.GoalInput(name=f"Purchases {XSS}", event="purchase", value_property="revenue"),
                        stack.a.key_ids["admin"])
    page = browse.page(stack.a.keys["read"], "/attribution")
    wait_for_plots(page, 1)
    page.locator("[data-attribution-kpi=value]").wait_for()
    result = stack.analysis(stack.a, "attribution", {"conversion": goal.goal_id, "date_range": {"date_from": "-7d"},
                                                    "timezone": stack.a.timezone})
    assert result["goal"]["name"] == goal.name and result["attributed"] > 0
    kpis = {name: page.locator(f"[data-attribution-kpi={name}] .nx-kpi").inner_text()
            for name in ("conversions", "attributed", "value")}
    assert kpis == {name: charts.format_number(result[name]) for name in kpis}
    assert f"Goal: {goal.name}" in page_text(page)  # the picker names it, as text
    browse.assert_clean()


def open_rules(page: Any) -> Any:
    """The channel rules card, opened."""
    rules = page.locator(".nx-channel-rules")
    rules.locator(".card-header").first.click()
    rules.locator(".nx-rule-lines").first.wait_for()
    return rules


def open_json(rules: Any) -> Any:
    """The rules' JSON box, opened."""
    rules.locator(".nx-rules-json .card-header").first.click()
    rules.locator("textarea").wait_for()
    return rules.locator("textarea")


def lines_of(rules: Any) -> list[tuple[str, str]]:
    """(channel, when) of each rule line, as the inputs hold them."""
    values = [box.input_value() for box in rules.locator(".nx-rule-lines input").all()]
    return list(zip(values[::2], values[1::2]))


def check_of(rules: Any, which: str) -> str:
    """What the editor's live check (`lines` or `json`) says of the edits that reached the server."""
    found = rules.locator(f".nx-{which}-check .nx-muted, .nx-{which}-check .nx-notice")
    return found.first.inner_text() if found.count() else ""


def typed(box: Any, text: str) -> None:
    """Type into a box and leave it, so that its value goes to the server."""
    box.fill(text)
    box.press("Tab")


def saved_rules(stack: Stack) -> list[dict[str, Any]]:
    return channels_of(stack, stack.a.keys["read"])["rules"]


def test_an_admin_edits_the_channel_rules_and_a_read_key_cannot(browse: Browse, stack: Stack):
    page = browse.page(stack.a.keys["admin"], QUERY)
    wait_for_plots(page, 1)
    rules = open_rules(page)
    assert lines_of(rules) == [(rule.channel, written(rule)) for rule in channels.DEFAULT_SETTINGS.rules]
    text = open_json(rules)
    assert json.loads(text.input_value())["rules"] == saved_rules(stack)  # the defaults, as GET shows them
    message = rules.locator(".nx-rules-message .nx-notice")

    # A bad edit is refused and names its field; nothing is saved.
    typed(text, json.dumps({**json.loads(text.input_value()), "direct_channel": "Nowhere"}))
    wait_until(lambda: "direct_channel" in check_of(rules, "json"), page=page, what="the live check of the JSON")
    rules.get_by_role("button", name="Save JSON").click()
    wait_until(lambda: message.count() and "direct_channel" in message.inner_text(), page=page,
               what="the refusal naming direct_channel")
    assert channels_of(stack, stack.a.keys["read"])["default"] is True

    # Paid clicks become a channel with a hostile name, saved as PUT /v1/channels saves it.
    edited = {"last_non_direct": True, "direct_channel": "Direct", "rules": [
        {"channel": HOSTILE_CHANNEL, "when": [{"field": "utm_medium", "op": "in", "values": ["cpc", "ppc"]}]},
        {"channel": "Direct", "when": [{"field": "utm_source", "op": "is_not_set", "values": []},
                                       {"field": "referrer_class", "op": "in", "values": ["direct", "internal", ""]}]}]}
    typed(text, json.dumps(edited))
    wait_until(lambda: check_of(rules, "json") == "Ready to save: 2 rules.", page=page, what="the JSON checked")
    rules.get_by_role("button", name="Save JSON").click()
    wait_until(lambda: not channels_of(stack, stack.a.keys["read"])["default"], page=page, what="the rules saved")
    saved = channels_of(stack, stack.a.keys["read"])
    assert saved["rules"] == edited["rules"] and saved["updated_by"] == stack.a.key_ids["admin"]
    assert saved["channels"] == [HOSTILE_CHANNEL, "Direct", "Other"]
    # The page is drawn again with the new rules: the hostile name is a row of the model table, as text.
    result = expected(stack, "attribution", half_life_days=7.0)
    assert HOSTILE_CHANNEL in result["labels"]
    models = page.locator(".nx-model-table .nx-table")
    wait_until(lambda: HOSTILE_CHANNEL in models.inner_text(), page=page, what="the model table with the new channel")
    assert [row[0] for row in rows_of(models)] == [shown(label) for label in result["labels"]]
    wait_until(lambda: len(lines_of(rules)) == 2, page=page, what="the rule lines drawn anew")
    assert lines_of(rules) == [(HOSTILE_CHANNEL, "utm_medium in cpc, ppc"),
                               ("Direct", "utm_source is not set; referrer_class in direct, internal, (empty)")]

    # A rule added as a line: a condition it cannot read is refused naming it; moved first and saved.
    rules.get_by_role("button", name="+ Add a rule").click()
    wait_until(lambda: len(lines_of(rules)) == 3, page=page, what="the new line")
    channel_box, when_box = rules.locator(".nx-rule-lines input").nth(4), rules.locator(".nx-rule-lines input").nth(5)
    typed(channel_box, "Acme newsletter")
    typed(when_box, "utm_medium newsletter")
    wait_until(lambda: "rules[2].when" in check_of(rules, "lines"), page=page, what="the live check of the lines")
    rules.get_by_role("button", name="Save rules").click()
    wait_until(lambda: "rules[2].when" in message.inner_text(), page=page, what="the refusal naming rules[2].when")
    assert saved_rules(stack) == edited["rules"]
    typed(when_box, "utm_medium in email, newsletter")
    wait_until(lambda: check_of(rules, "lines") == "Ready to save: 3 rules.", page=page, what="the lines checked")
    for at in (2, 1):
        rules.locator(".nx-rule-lines").get_by_role("button", name="↑").nth(at).click()
        wait_until(lambda at=at: lines_of(rules)[at - 1][0] == "Acme newsletter", page=page, what="the line moved up")
    rules.get_by_role("button", name="Save rules").click()
    newsletter = {"channel": "Acme newsletter",
                  "when": [{"field": "utm_medium", "op": "in", "values": ["email", "newsletter"]}]}
    wait_until(lambda: saved_rules(stack) == [newsletter, *edited["rules"]], page=page, what="the line saved")

    # A read key sees the rules but cannot change them.
    reader = browse.page(stack.a.keys["read"], QUERY)
    wait_for_plots(reader, 1)
    read_rules = open_rules(reader)
    assert rows_of(read_rules.locator(".nx-rule-lines .nx-table")) == [
        ["1", "Acme newsletter", "utm_medium in email, newsletter"], ["2", HOSTILE_CHANNEL, "utm_medium in cpc, ppc"],
        ["3", "Direct", "utm_source is not set; referrer_class in direct, internal, (empty)"]]
    assert read_rules.get_by_role("button", name="Save rules").count() == 0
    assert open_json(read_rules).is_disabled()
    assert read_rules.get_by_role("button", name="Save JSON").count() == 0

    # Project B's rules and page know nothing of A's.
    assert channels_of(stack, stack.b.keys["read"])["default"] is True
    other = browse.page(stack.b.keys["read"], "/attribution")
    wait_for_plots(other, 0)
    open_json(open_rules(other))
    assert MARKER not in page_text(other) and "Acme newsletter" not in page_text(other)

    # Back to the defaults.
    rules.get_by_role("button", name="Restore the default rules").click()
    wait_until(lambda: channels_of(stack, stack.a.keys["read"])["default"], page=page, what="the defaults back")
    wait_until(lambda: MARKER not in page.locator(".nx-model-table .nx-table").inner_text(), page=page,
               what="the model table without the edited channel")
    wait_for_plots(page, 1)  # the bars drawn again too
    browse.assert_clean()


def test_the_line_form_reads_what_it_writes() -> None:
    for rule in channels.DEFAULT_SETTINGS.rules:
        line = written(rule)
        assert line is not None and read_when(line, 0) == msgspec.to_builtins(rule.when)
    # What the line form cannot hold exactly is left to the JSON.
    odd = [channels.Condition(field="utm_source", op="in", values=["a, b"]),
           channels.Condition(field="utm_source", op="in", values=[" padded"]),
           channels.Condition(field="utm_campaign", op="regex", values=["^a;b$"])]
    assert [written(channels.ChannelRule(channel="x", when=[c])) for c in odd] == [None, None, None]
    assert written(channels.ChannelRule(channel="x")) == "every visit" and read_when("every visit", 0) == []
    for wrong, reason in (("source in a", "'source' is not a field"), ("utm_source is maybe", "after utm_source"),
                          ("utm_source in a; utm_medium", "after utm_medium")):
        with pytest.raises(InvalidRequest, match=reason) as refused:
            read_when(wrong, 4)
        assert refused.value.field == "rules[4].when"


# --- the drawers, without a browser, on a small answer with hostile labels ----------------------------------

SPAN = {"timezone": "UTC", "date_from": "2026-11-01T00:00:00Z", "date_to": "2026-11-03T00:00:00Z",
        "date_range": {"date_from": "-7d"}, "by": "channel", "lookback_days": 30,
        "goal": {"goal_id": None, "name": "purchase", "definition": {"event": "purchase"}}}
LABELS = [XSS, "Email", "$other"]
ATTRIBUTION = {**SPAN, "models": ["first_touch", "markov"], "conversions": 5, "attributed": 4, "unattributed": 1,
               "value": 50.0, "lost_journeys": 3, "cost": 20.0, "labels": LABELS, "rows": [
                   {"model": model, "label": label, "conversions": c, "value": c * 10, "share": c / 4, "cost": 10.0,
                    "cost_per_conversion": 10 / c if c else None, "roas": c}
                   for model in ("first_touch", "markov") for label, c in zip(LABELS, (2.0, 1.5, 0.5))]}
PATHS = {**SPAN, "conversions": 5, "unattributed": 1, "distinct_paths": 2, "avg_touches": 1.5,
         "avg_seconds_to_convert": 3600.0, "paths": [
             {"path": [XSS, "Email"], "conversions": 3, "value": 30.0, "lost": 1, "conversion_rate": 0.75,
              "avg_seconds_to_convert": 7200.0, "touches": 2}]}


@pytest.mark.parametrize("kind,answer,chart", [
    ("attribution", ATTRIBUTION, "bar"), ("attribution", ATTRIBUTION, "table"), ("attribution", ATTRIBUTION, "totals"),
    ("conversion_paths", PATHS, "table")])
def test_each_drawer_draws_its_answer_and_escapes_labels(kind: str, answer: dict[str, Any], chart: str) -> None:
    from bokeh.embed import json_item
    from panel.pane import HTML, Bokeh

    drawn = DRAWERS[kind](None, msgspec.convert(answer, registry.module(kind).Result, strict=False), chart)
    figures = [p.object for p in drawn.select(Bokeh)]
    markup = " ".join(str(p.object) for p in drawn.select(HTML))
    assert figures or markup, "nothing drawn"
    assert XSS not in markup
    if chart == "table":
        assert escape(XSS) in markup  # the label, as text
    if kind == "attribution" and chart == "table":
        assert "(other)" in markup and "Ad spend" in markup
    for fig in figures:
        data = json_item(fig)  # a figure Bokeh can send to the browser
        assert json.dumps(XSS)[1:-1] in json.dumps(data)  # the label, as data the canvas draws as text


def test_a_measure_the_answer_lacks_says_what_is_missing() -> None:
    from panel.pane import HTML

    def said(answer: dict[str, Any], measure: str) -> str:
        result = msgspec.convert(answer, registry.module("attribution").Result, strict=False)
        return " ".join(str(p.object) for p in DRAWERS["attribution"](None, result, "bar", measure).select(HTML))

    unvalued = {**ATTRIBUTION, "value": None,
                "rows": [{**row, "value": None, "roas": None} for row in ATTRIBUTION["rows"]]}
    no_spend = {**ATTRIBUTION, "cost": None, "rows": [{**row, "cost": None, "cost_per_conversion": None, "roas": None}
                                                      for row in ATTRIBUTION["rows"]]}
    assert "has no value" in said(unvalued, "value") and "has no value" in said(unvalued, "roas")
    assert "No ad spend" in said(no_spend, "cost_per_conversion")
    assert "No ad spend" not in said(ATTRIBUTION, "cost_per_conversion")
    assert "touch in its lookback" in said({**ATTRIBUTION, "attributed": 0}, "conversions")
