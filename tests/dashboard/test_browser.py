"""The dashboard in Chromium, as an analyst uses it: sign in, open every page and see its charts drawn, read
the numbers the analysis API gives for the same request, build a funnel, follow "Show me the SQL" into the
SQL explorer to the same number, pin a tile, open a shared link, and never see another project's data, a
hostile name run as markup, a request leave the machine, or a revoked key keep a page open.

One API and one dashboard serve the whole module (tests/dashboard/conftest.py); each test opens fresh
browser contexts and leaves a screenshot in test-artifacts/dashboard/. Run them alone with
`pytest -m dashboard`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from nexus.dashboard import charts
from nexus.dashboard.pages import ROUTES
from nexus.dashboard.signin import COOKIE
from nexus.meta import dashboards, keys
from tests.dashboard.conftest import (A_SECRET, A_SECRET_TILE, ARTIFACTS, XSS, Browse, Stack, fresh, mark_stale, page_text,
                                      settled, sign_in, wait_for_plots, wait_until)

pytestmark = pytest.mark.dashboard  # pytest -m dashboard runs these alone

SIGNED_OUT = re.compile(r"/login(\?|$)")
SQL_CHART = "SELECT toStartOfDay(ts) AS day, count() AS events FROM events GROUP BY day ORDER BY day"
# How each page is opened and what shows it has drawn: at least this many Bokeh canvases (a chart is one or
# more), or an element that only a loaded result has. A page missing here opens bare and needs one canvas.
PAGES: dict[str, tuple[str, int, str | None]] = {
    "overview": ("/overview", 1, "[data-kpi=events]"),
    "trends": ("/trends", 1, None),
    "funnels": ("/funnels", 1, ".nx-table"),
    "retention": ("/retention", 2, None),
    "sessions": ("/sessions", 4, None),
    "stickiness": ("/stickiness", 2, None),
    "dashboards": ("/dashboards", 6, None),  # the default dashboard's seven tiles
    "sql": ("/sql?" + urlencode({"sql": SQL_CHART}), 1, "[data-role=stats]"),
    "events": ("/events", 0, ".slick-row"),
    "exports": ("/exports", 0, "[data-role=events-scope]"),
    "persons": ("/persons", 0, "[data-role=persons]"),
    "person": ("/person", 0, "[data-role=no-person]"),
    "goals": ("/goals", 0, "[data-role=goals-empty]"),  # this module's projects have no goals (test_goals_page)
    "cohorts": ("/cohorts", 0, "[data-role=cohorts-empty]"),  # none here either (test_cohorts_page)
    "predictions": ("/predictions", 0, "[data-role=predictions-empty]"),  # no model trained here (test_predictions_page)
}
# Pages whose first load a journey below checks as test_every_page_draws_its_charts would (assert_drawn, then a
# clean browser): loading them once more only for that would cost seconds each.
DRAWN_IN_JOURNEYS = {"overview", "trends", "funnels", "exports"}
KPIS = {"events": {}, "persons": {}, "sessions": {}, "bounce_rate": {"percent": True},
        "avg_session_duration": {"duration": True}, "revenue": {}}


def problems(page: Any) -> list[str]:
    """The notices of a failure a page shows (a user's mistake is a warning, a fault is danger)."""
    return page.locator(".nx-notice.nx-danger, .nx-notice.nx-warning").all_inner_texts()


def assert_drawn(page: Any, name: str) -> None:
    """The page `name`, opened as PAGES says, has drawn its charts (and its loaded element) and shows no notice
    of a failure."""
    _, canvases, shown = PAGES.get(name, (f"/{name}", 1, None))
    wait_for_plots(page, canvases)
    if shown:
        page.locator(shown).first.wait_for()
    assert urlsplit(page.url).path == f"/{name}"
    assert problems(page) == []


@pytest.mark.parametrize("name", [name for name in ROUTES if name not in DRAWN_IN_JOURNEYS])
def test_every_page_draws_its_charts(browse: Browse, stack: Stack, name: str):
    page = browse.page(stack.a.keys["read"], PAGES.get(name, (f"/{name}", 1, None))[0])
    assert_drawn(page, name)
    browse.assert_clean()


def test_nothing_is_fetched_from_another_host(browse: Browse, stack: Stack):
    page = browse.context(stack.a.keys["read"]).new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    browse.pages.append(page)
    page.goto(stack.url + PAGES["trends"][0])
    assert_drawn(page, "trends")
    assert len(asked) > 5 and all(urlsplit(u).hostname == "127.0.0.1" for u in asked), asked
    assert any(u.endswith(".js") or ".js?" in u for u in asked)  # the scripts came from this server
    browse.assert_clean()
    # The guard is live: a request to another host is refused and recorded (so the check above can fail).
    page.evaluate("fetch('https://cdn.example.com/x.js').catch(() => null)")
    wait_until(lambda: browse.elsewhere, page=page, what="the refused request to be recorded")
    assert browse.elsewhere == ["https://cdn.example.com/x.js"]
    browse.elsewhere.clear()


def test_signing_in_takes_an_active_read_key_and_sets_a_safe_cookie(browse: Browse, stack: Stack):
    context = browse.context()
    page = browse.page(context=context, path="/overview")
    page.wait_for_url(SIGNED_OUT)
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/overview"]
    for wrong in ("nx_not-a-key-at-all", stack.a.keys["write"]):  # a write key is for SDKs, not people
        page.fill("input[name=key]", wrong)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.get_by_role("alert").inner_text() == "That is not an active read or admin key of a project."
        assert context.cookies() == []
    page.fill("input[name=key]", stack.a.keys["read"])
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert urlsplit(page.url).path == "/overview"
    wait_for_plots(page)
    [cookie] = context.cookies()
    assert cookie["name"] == COOKIE and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert COOKIE not in page.evaluate("document.cookie")  # no script can read it
    # Neither a page nor its websocket (the data) answers without a valid sign-in, forged cookies included.
    for jar in ({}, {COOKIE: "forged"}, {COOKIE: cookie["value"].replace("|", "|0", 1)}):
        for path in ("/overview", "/dashboards", "/overview/ws"):
            with httpx.Client(cookies=jar, timeout=30) as client:
                answer = client.get(stack.url + path, follow_redirects=False)
            assert answer.status_code in (302, 401, 403), (path, jar, answer.status_code)
            assert answer.status_code != 302 or SIGNED_OUT.search(answer.headers["location"])
    browse.assert_clean(expected_console=("status of 401",))


def test_signing_out_ends_the_sign_in_itself_and_a_revoked_key_closes_its_open_pages(browse: Browse, stack: Stack):
    # Given a page open with a key that is then revoked: the shell checks every 10 s, so the sign-out below
    # runs while that check comes round
    revoked_id, revoked_secret = stack.new_key(stack.a, "read")
    revoked = browse.page(revoked_secret, "/overview")
    wait_for_plots(revoked)
    keys.revoke(stack.runtime.clickhouse, revoked_id)
    keys.changed(stack.runtime.redis.client)

    _, secret = stack.new_key(stack.a, "read")
    context = browse.context(secret)
    page = browse.page(context=context, path="/overview")
    wait_for_plots(page)
    [cookie] = context.cookies()
    with page.expect_navigation():
        page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(SIGNED_OUT)
    assert context.cookies() == []
    page.go_back()
    page.wait_for_url(SIGNED_OUT)
    # The old cookie, put back by hand, opens nothing: the sign-in it named is gone from Redis.
    again = browse.page(context=browse.context())
    again.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path")}])
    again.goto(stack.url + "/overview")
    again.wait_for_url(SIGNED_OUT)

    # The revoked key's page says so, well within the minute, and no longer opens.
    revoked.get_by_text("Your sign-in ended or its key was revoked.").wait_for(timeout=20_000)
    revoked.reload()
    revoked.wait_for_url(SIGNED_OUT)
    browse.assert_clean()


def kpis_shown(page: Any) -> dict[str, str]:
    return {name: page.locator(f"[data-kpi={name}] .nx-kpi").inner_text() for name in KPIS}


def expected_kpis(stack: Stack, request: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The KPIs as the Overview should show them for `request`, from POST /v1/analyses/overview."""
    result = stack.analysis(stack.a, "overview", request)
    values = {k["name"]: k["value"] for k in result["kpis"]}
    return {name: charts.format_number(values[name], **style) for name, style in KPIS.items()}, result


def assert_overview_is(page: Any, stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    shown = kpis_shown(page)
    expected, result = expected_kpis(stack, request)
    assert shown == expected, request
    values = {k["name"]: k["value"] for k in result["kpis"]}
    assert int(shown["events"].replace(",", "")) == values["events"] > 0
    assert int(shown["persons"].replace(",", "")) == values["persons"]
    return result


def test_the_overview_shows_what_the_analysis_api_answers(browse: Browse, stack: Stack):
    a = stack.a
    common = {"timezone": a.timezone, "interval": "day"}
    page = browse.page(a.keys["read"], PAGES["overview"][0])
    assert_drawn(page, "overview")
    assert_overview_is(page, stack, {"date_range": {"date_from": "-7d"}, **common})

    # The date-range picker: the page draws again for the last 30 days, and the URL keeps the choice.
    mark_stale(page, "[data-kpi=events]")
    page.get_by_label("Date range", exact=True).select_option(label="Last 30 days")
    page.wait_for_url(re.compile(r"range=-30d"))
    fresh(page, "[data-kpi=events]")
    wait_for_plots(page)
    assert_overview_is(page, stack, {"date_range": {"date_from": "-30d"}, **common})

    # A range in the URL, days long past included (the demo's data ends at today's midnight in UTC).
    today = datetime.now(ZoneInfo(a.timezone)).date()
    since, until = (today - timedelta(days=24)).isoformat(), (today - timedelta(days=10)).isoformat()
    page.goto(stack.url + "/overview?" + urlencode({"range": "custom", "date_from": since, "date_to": until}))
    wait_for_plots(page)
    custom = {"date_range": {"date_from": since, "date_to": until}, **common}
    result = assert_overview_is(page, stack, custom)

    # A click on a top list's row filters the page by its value: the numbers are the API's for that filter,
    # and (by the overview's definition) the row's own events and persons.
    browsers = next(t for t in result["top"] if t["dimension"] == "browsers")
    row = browsers["rows"][0]
    link = page.locator("[data-list=browsers] .nx-top-row").first
    assert link.locator(".nx-top-label").inner_text() == row["label"]
    with page.expect_navigation():
        link.click()
    wait_for_plots(page)
    target = browsers["filter"]
    wanted = {"key": target["key"], "op": "eq", "value": row["value"], "source": target["source"]}
    assert json.loads(parse_qs(urlsplit(page.url).query)["filters"][0]) == [wanted]
    filtered = assert_overview_is(page, stack, {**custom, "where": {"filters": [wanted]}})
    values = {k["name"]: k["value"] for k in filtered["kpis"]}
    assert (values["events"], values["persons"]) == (row["events"], row["persons"])
    assert page.get_by_role("button", name=re.compile(re.escape(f"{wanted['key']} eq {row['value']}"))).count() == 1
    browse.assert_clean()


def test_a_funnel_built_in_the_page_counts_what_the_api_counts(browse: Browse, stack: Stack):
    a = stack.a
    page = browse.page(a.keys["read"], PAGES["funnels"][0])
    assert_drawn(page, "funnels")
    table = page.locator(".nx-table tbody tr")

    def labels() -> list[str]:
        return table.locator("td:first-child").all_inner_texts()

    def drawn(check: Any, what: str) -> None:
        """Until the funnel's table passes `check`: the page drew the funnel again, and the builder's rows
        (drawn anew with it) can take the next pick."""
        wait_until(lambda: check(labels()), page=page, what=what)

    def picked(index: int, event: str) -> bool:
        """Step `index` is `event` in the table; picked again while not, since a pick made while the builder
        was being drawn anew lands on a picker about to be replaced (under load, now and then)."""
        picker = page.get_by_label(f"Step {index + 1}", exact=True)
        if picker.count() and picker.input_value() != event:
            picker.select_option(event)
        return labels()[index:index + 1] == [f"{index + 1}. {event}"]

    # Given the default funnel (the most frequent events), when the steps are picked and one is added,
    steps = ["page_view", "signup", "add_to_cart", "purchase"]
    for index, event in enumerate(steps[:3]):
        wait_until(lambda i=index, e=event: picked(i, e), page=page, what=f"step {index + 1}: {event}")
    page.get_by_role("button", name="+ Step").click()
    drawn(lambda shown: len(shown) == 4, "a fourth step")
    wait_until(lambda: picked(3, steps[3]), page=page, what=f"step 4: {steps[3]}")
    drawn(lambda shown: shown == [f"{i + 1}. {e}" for i, e in enumerate(steps)], f"the funnel {steps}")
    wait_for_plots(page)
    # then the URL holds them, and the table counts what the API counts for the same request.
    given = json.loads(parse_qs(page.evaluate("location.search").lstrip("?"))["steps"][0])
    assert [s["event"] for s in given] == steps
    shown = [table.nth(i).locator("td").all_inner_texts() for i in range(len(steps))]
    result = stack.analysis(a, "funnel", {"steps": [{"event": e} for e in steps], "timezone": a.timezone,
                                          "date_range": {"date_from": "-7d"}, "mode": "ordered", "window": 14,
                                          "window_unit": "day"})
    everyone = result["groups"][0]["steps"]
    assert [cells[1] for cells in shown] == [charts.format_number(s["persons"]) for s in everyone]
    assert [cells[2] for cells in shown] == [charts.format_number(s["conversion_from_first"], percent=True)
                                             for s in everyone]
    assert everyone[0]["persons"] > everyone[-1]["persons"] > 0
    browse.assert_clean()


def test_show_me_the_sql_runs_in_the_explorer_to_the_same_number(browse: Browse, stack: Stack):
    series = json.dumps([{"event": "signup", "metric": "events"}])
    page = browse.page(stack.a.keys["read"], "/trends?" + urlencode({"chart": "number", "series": series}))
    number = page.locator(".nx-card .nx-kpi").first
    number.wait_for()
    shown = number.inner_text()
    page.get_by_role("button", name="Show me the SQL").click()
    sql = page.locator("pre[data-role=sql]").first
    sql.wait_for()
    assert "FROM" in sql.inner_text()
    with page.expect_navigation():
        page.get_by_role("link", name="Open in the SQL explorer").click()
    assert urlsplit(page.url).path == "/sql"
    page.locator("[data-role=stats]").wait_for()
    settled(page)
    header = page.locator(".slick-header-column").all_inner_texts()
    rows = [page.locator(".slick-row").nth(i).locator(".slick-cell").all_inner_texts()
            for i in range(page.locator(".slick-row").count())]
    columns = [h.split(" (")[0] for h in header]
    total = [r for r in rows if r[columns.index("is_total")] == "1"]
    assert len(total) == 1, rows
    assert charts.format_number(float(total[0][columns.index("value")])) == shown
    expected = stack.analysis(stack.a, "trends", {"series": [{"event": "signup", "metric": "events"}],
                                                  "date_range": {"date_from": "-7d"}, "timezone": stack.a.timezone,
                                                  "interval": "day", "compare": False})
    assert shown == charts.format_number(expected["lines"][0]["total"])
    browse.assert_clean()


def test_a_pinned_tile_is_on_the_dashboard_after_a_reload(browse: Browse, stack: Stack):
    series = json.dumps([{"event": "signup", "metric": "events"}])
    page = browse.page(stack.a.keys["admin"], "/trends?" + urlencode({"series": series}))
    wait_for_plots(page)
    page.get_by_role("button", name="Pin to dashboard").click()
    target = page.get_by_label("Dashboard", exact=True)
    target.locator("option", has_text="Default").wait_for(state="attached")  # the project's dashboards are listed
    target.select_option(label="+ New dashboard")
    page.get_by_label("New dashboard's name").fill("Pinned in the browser")
    page.get_by_label("Tile title").fill(XSS)  # a hostile tile title, shown as text
    page.get_by_role("button", name="Pin", exact=True).click()
    link = page.get_by_role("link", name="Pinned in the browser")
    link.wait_for()
    with page.expect_navigation():
        link.click()
    for _ in range(2):  # as pinned, then after a reload: it is stored, not just drawn
        wait_for_plots(page)
        assert page.get_by_text(XSS, exact=True).is_visible()
        assert page.get_by_role("link", name="Pinned in the browser").count() == 1
        page.reload()
    # The tile is in the project's saved dashboard, as the API lists it.
    dashboard_id = parse_qs(urlsplit(page.url).query)["dashboard"][0]
    listed = httpx.get(f"{stack.api}/v1/dashboards/{dashboard_id}", timeout=30,
                       headers={"Authorization": f"Bearer {stack.a.keys['read']}"}).json()
    assert [(t["title"], t["kind"], t["request"]["series"]) for t in listed["tiles"]] == \
        [(XSS, "trends", [{"event": "signup", "metric": "events"}])]
    wait_for_plots(page)
    browse.assert_clean()


def test_a_shared_link_opens_the_same_view_after_signing_in(browse: Browse, stack: Stack):
    series = [{"event": "signup", "metric": "persons"}, {"event": "page_view", "metric": "events"}]
    shared = "/trends?" + urlencode({"range": "-30d", "series": json.dumps(series, separators=(",", ":")),
                                     "breakdown": "browser", "breakdown_source": "column", "chart": "bar"})
    page = browse.page(path=shared)  # a fresh context: nobody signed in
    page.wait_for_url(SIGNED_OUT)
    sign_in(page, stack, stack.a.keys["read"])
    assert urlsplit(page.url).path == "/trends"
    assert parse_qs(urlsplit(page.url).query) == parse_qs(urlsplit(shared).query)
    wait_for_plots(page)
    assert page.get_by_label("Date range", exact=True).input_value() == "Last 30 days"
    assert page.get_by_label("Series 1: event", exact=True).input_value() == "signup"
    assert page.get_by_label("Series 2: event", exact=True).input_value() == "page_view"
    assert [page.get_by_label("Metric", exact=True).nth(i).input_value() for i in range(2)] == ["persons", "events"]
    assert page.get_by_label("Breakdown by", exact=True).input_value() == "browser"
    assert page.get_by_label("of", exact=True).input_value() == "column"
    assert page.get_by_label("Chart", exact=True).input_value() == "bar"
    assert problems(page) == []
    browse.assert_clean()


def test_an_export_of_raw_events_downloads_the_events_of_the_range(browse: Browse, stack: Stack):
    a = stack.a
    stack.runtime.jobs.start(1)
    try:
        page = browse.page(a.keys["read"], PAGES["exports"][0])
        assert_drawn(page, "exports")
        # Raw events as CSV is what the form starts with: the page's range (the last 7 days) in A's zone
        page.get_by_role("button", name="Export", exact=True).click()
        page.locator(".nx-job[data-state=done]").wait_for(timeout=60_000)  # the list refreshes itself
        with page.expect_download() as download:
            page.get_by_role("button", name="Download", exact=True).click()
        frame = pd.read_csv(download.value.path(), keep_default_na=False)
    finally:
        stack.runtime.jobs.stop()
    overview = stack.analysis(a, "overview", {"date_range": {"date_from": "-7d"}, "timezone": a.timezone})
    events = int(next(k["value"] for k in overview["kpis"] if k["name"] == "events"))
    assert len(frame) == events > 0
    assert download.value.suggested_filename.endswith(".csv") and "event" in frame.columns
    assert page.locator(".nx-job[data-state=done]").inner_text().count(f"{events:,}") == 1  # its rows, shown
    assert problems(page) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exports.png"), full_page=True)
    browse.assert_clean()


def test_a_key_of_project_b_sees_nothing_of_project_a(browse: Browse, stack: Stack):
    a, b = stack.a, stack.b
    page = browse.page(b.keys["read"], f"/dashboards?project={a.project_id}&dashboard={stack.a_board}")
    page.get_by_text(f"None of your keys opens project {a.project_id}").wait_for()
    overview = stack.analysis(a, "overview", {"date_range": {"date_from": "-7d"}, "timezone": a.timezone})
    a_events = charts.format_number(next(k["value"] for k in overview["kpis"] if k["name"] == "events"))
    secrets = (A_SECRET, A_SECRET_TILE, a.name, a_events)
    text = page_text(page)
    assert not [s for s in secrets if s in text]
    # A's dashboard id in B's project is not found there; B's own dashboards show, read-only.
    page.goto(stack.url + f"/dashboards?dashboard={stack.a_board}")
    page.get_by_text(f"No dashboard '{stack.a_board}' in this project.").wait_for()
    text = page_text(page)
    assert b.name in text and not [s for s in secrets if s in text]
    page.goto(stack.url + "/dashboards")
    wait_for_plots(page)
    text = page_text(page)
    assert not [s for s in secrets if s in text]
    for name in ("Pin to dashboard", "Rename", "Create", "Delete dashboard", "Remove"):
        assert page.get_by_role("button", name=name).count() == 0, name  # a read key changes nothing
    assert page.get_by_role("button", name="Show me the SQL").count() > 0  # (the tiles' actions are there)
    browse.assert_clean()


def test_hostile_names_show_as_text_everywhere(browse: Browse, stack: Stack):
    b = stack.b
    context = browse.context(b.keys["read"])
    page = browse.page(context=context, path="/overview")
    wait_for_plots(page)
    assert XSS in page.locator("[data-list=events] .nx-top-label").all_inner_texts()
    assert f"/{XSS}" in page.locator("[data-list=pages] .nx-top-label").all_inner_texts()
    live = page.locator(".nx-live-table")
    live.wait_for()
    assert XSS in live.locator("td").all_inner_texts()
    assert page.get_by_text(XSS, exact=True).first.is_visible()

    page.goto(stack.url + "/trends?" + urlencode({"series": json.dumps([{"event": XSS, "metric": "events"}])}))
    wait_for_plots(page)
    picker = page.get_by_label("Series 1: event", exact=True)
    assert picker.input_value() == XSS
    assert XSS in picker.locator("option").all_inner_texts()

    page.goto(stack.url + "/funnels?" + urlencode({"steps": json.dumps([{"event": XSS}, {"event": "signup"}])}))
    wait_for_plots(page)
    assert page.locator(".nx-table td").filter(has_text=XSS).first.inner_text() == f"1. {XSS}"

    boards = {d.name: d.dashboard_id for d in dashboards.list_all(stack.runtime.clickhouse, b.project_id)}
    page.goto(stack.url + "/dashboards?" + urlencode({"dashboard": boards[XSS]}))
    wait_for_plots(page)
    assert page.get_by_role("link", name=XSS, exact=True).count() == 1  # the dashboard's name in the picker
    assert page.locator(".nx-card-title").filter(has_text=XSS).first.inner_text() == XSS  # the tile's title

    if "events" in ROUTES:  # the events explorer: names and property values in its tables
        page.goto(stack.url + "/events")
        page.locator(".slick-row").first.wait_for()
        settled(page)
        cells = page.locator(".slick-cell").all_inner_texts()
        assert XSS in cells  # the event's name
        assert any("plan" in c and "<img src=x onerror=" in c for c in cells), cells  # in its properties' JSON

    assert browse.xss == []
    browse.assert_clean()
    # The canary is live: the same markup put into the page as HTML does fire (so the checks above can fail).
    page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", XSS)
    wait_until(lambda: browse.xss, page=page, what="the canary to fire")
    browse.xss.clear()


def test_persons_list_searches_sorts_and_opens_a_profile_with_its_sessions(browse: Browse, stack: Stack):
    # Given project A's demo persons, listed by events as the API lists them
    expected = stack.analysis(stack.a, "persons", {"sort": "events", "limit": 25})["persons"]
    page = browse.page(stack.a.keys["read"], "/persons?sort=events&limit=25")
    table = page.locator("table[data-role=persons]")
    table.wait_for()
    assert table.locator("a.nx-person").all_inner_texts() == [p["person"] for p in expected]
    # When searching for a distinct id of the second person, the list is the API's for that search (ids are
    # matched as substrings: user-11-61 finds user-11-618 too), the second person among them
    term = expected[1]["distinct_ids"][-1]
    searched = stack.analysis(stack.a, "persons", {"sort": "events", "limit": 25, "q": term})["persons"]
    mark_stale(page, "table[data-role=persons]")
    page.get_by_placeholder("a distinct id, person id or trait value").fill(term)
    page.keyboard.press("Enter")
    fresh(page, "table[data-role=persons]")
    listed = page.locator("table[data-role=persons] a.nx-person").all_inner_texts()
    assert listed == [p["person"] for p in searched] and expected[1]["person"] in listed
    # And following the link opens their profile: the API's numbers and a boundary for each session shown
    page.locator("table[data-role=persons] a.nx-person", has_text=expected[1]["person"]).click()
    page.locator("table[data-role=timeline]").wait_for()
    profile = stack.analysis(stack.a, "person", {"person": expected[1]["person"], "limit": 50})
    assert page.locator("[data-role=person]").inner_text() == expected[1]["person"]
    assert f"{profile['events']:,}" in page.locator("[data-role=summary]").inner_text()
    starts = sum(e["session_start"] for e in profile["timeline"])
    assert page.locator("table[data-role=timeline] tr[data-session-start]").count() == starts > 0
    assert page.locator("table[data-role=timeline] tbody tr").count() == len(profile["timeline"])
    browse.assert_clean()


def test_the_persons_list_takes_the_global_filters(browse: Browse, stack: Stack):
    # Given the filter bar's filters in the URL: persons on the pro plan (a trait)
    pro = [{"key": "plan", "source": "person", "op": "eq", "value": "pro"}]
    expected = stack.analysis(stack.a, "persons", {"sort": "events", "limit": 25, "where": {"filters": pro}})["persons"]
    everyone = stack.analysis(stack.a, "persons", {"sort": "events", "limit": 25})["persons"]
    assert expected and expected != everyone
    page = browse.page(stack.a.keys["read"], "/persons?" + urlencode({"sort": "events", "limit": 25,
                                                                      "filters": json.dumps(pro)}))
    # Then the list is the API's list under that filter, and the bar shows no date range (the list has none)
    page.locator("table[data-role=persons]").wait_for()
    assert page.locator("table[data-role=persons] a.nx-person").all_inner_texts() == [p["person"] for p in expected]
    assert page.get_by_text("Date range").count() == 0
    browse.assert_clean()


def test_an_admin_erases_a_person_from_the_profile_after_typing_their_id(browse: Browse, stack: Stack):
    # Given a person of project A with two events, sent now
    person = f"erase-me-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc).isoformat()
    sent = httpx.post(f"{stack.api}/v1/batch", auth=(stack.a.keys["write"], ""), timeout=60, json={"batch": [
        {"type": "track", "event": "erasable", "userId": person, "timestamp": now, "messageId": f"{person}-{i}"}
        for i in range(2)]})
    assert sent.status_code == 200 and sent.json()["stored"] == 2, sent.text
    profile = "/person?" + urlencode({"person": person})
    # A read key's profile has no way to erase
    reader = browse.page(stack.a.keys["read"], profile)
    reader.locator("table[data-role=timeline]").wait_for()
    assert reader.get_by_role("button", name="Erase this person…").count() == 0
    # When an admin asks to erase, the button to do it stays off until the id is typed
    page = browse.page(stack.a.keys["admin"], profile)
    page.locator("table[data-role=timeline]").wait_for()
    page.get_by_role("button", name="Erase this person…").click()
    page.locator("[data-role=erase-warning]").wait_for()
    confirm = page.get_by_role("button", name="Erase for good")
    assert confirm.is_disabled()
    page.get_by_placeholder("type the person's id to confirm").press_sequentially(person)
    wait_until(lambda: confirm.is_enabled(), page=page, what="the confirm button")
    confirm.click()
    # Then the page says what went, and the person is gone from the API
    done = page.locator("[data-role=erased]")
    done.wait_for(timeout=60_000)
    assert person in done.inner_text() and "events 2" in done.inner_text()
    wait_until(lambda: not page.locator("table[data-role=timeline]").is_visible(), page=page,
               what="their events to be hidden")
    answer = httpx.get(f"{stack.api}/v1/persons/{person}", headers={"Authorization": f"Bearer {stack.a.keys['read']}"})
    assert answer.status_code == 404
    browse.assert_clean()


def test_persons_of_another_project_never_show_and_hostile_ids_stay_text(browse: Browse, stack: Stack):
    page = browse.page(stack.b.keys["read"], "/persons")
    page.locator("table[data-role=persons]").wait_for()
    links = page.locator("table[data-role=persons] a.nx-person")
    assert XSS in links.all_inner_texts() and len(links.all_inner_texts()) == 5  # B's five ids, none of A's
    links.filter(has_text=XSS).first.click()
    page.locator("table[data-role=timeline]").wait_for()
    assert page.locator("[data-role=person]").inner_text() == XSS
    # A's key does not open B's person: the same "not found" as an unknown id
    other = browse.page(stack.a.keys["read"], "/person?" + urlencode({"person": XSS}))
    other.locator(".nx-notice").first.wait_for()
    assert other.locator("table[data-role=timeline]").count() == 0
    assert browse.xss == []
    browse.assert_clean()



def test_a_funnel_drop_off_and_a_retention_cell_link_to_profiles(browse: Browse, stack: Stack):
    steps = [{"event": "page_view"}, {"event": "signup"}]
    page = browse.page(stack.a.keys["read"], "/funnels?" + urlencode({"steps": json.dumps(steps)}))
    wait_for_plots(page)
    # When opening who dropped off after step 1 and clicking the first of them
    page.get_by_role("button", name="Dropped off after step 1").click()
    page.locator(".slick-row").first.wait_for()
    first = page.locator(".slick-row").first.locator(".slick-cell").first.inner_text()
    page.locator(".slick-row").first.locator(".slick-cell").first.click()
    link = page.locator("[data-role=profile-link] a")
    link.wait_for()
    link.click()
    page.locator("[data-role=person]").wait_for()
    assert page.locator("[data-role=person]").inner_text() == first
    # And a retention cell: its persons are the API's, each a link to their profile
    page.goto(stack.url + "/retention?" + urlencode({"start": "signup", "period": "week", "periods": 3,
                                                     "range": "-90d"}))
    wait_for_plots(page, 2)
    page.get_by_role("button", name="List persons").click()
    cell = page.locator("[data-role=cell-persons] a.nx-person")
    cell.first.wait_for()
    cohort = page.get_by_label("Persons of the cohort of").input_value()
    asked = {"retention": {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3,
                           "date_range": {"date_from": "-90d"}}, "cohort": cohort, "k": 0, "limit": 50}
    expected = [p["person"] for p in stack.analysis(stack.a, "retention_persons", asked)["persons"]]
    assert cell.all_inner_texts() == expected
    cell.first.click()
    page.locator("[data-role=person]").wait_for()
    assert page.locator("[data-role=person]").inner_text() == expected[0]
    browse.assert_clean()
