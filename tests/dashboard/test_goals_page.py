"""The Goals page in Chromium: a saved goal's KPIs are the numbers POST /v1/analyses/goals gives, its chart
draws, a breakdown shows a row per group, the goal's name (hostile markup) shows as text, the Overview's
KPI row carries the goal's conversions, and project B's key sees none of it. Screenshots go to
test-artifacts/dashboard/."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from nexus.dashboard import charts
from nexus.meta import goals
from tests.dashboard.conftest import XSS, Browse, Stack, page_text, wait_for_plots

pytestmark = pytest.mark.dashboard

NAME = f"Purchases {XSS}"


@pytest.fixture(scope="module")
def goal(stack: Stack) -> goals.Goal:
    return goals.create(stack.runtime.clickhouse, stack.a.project_id,
                        goals.GoalInput(name=NAME, event="purchase", value_property="revenue", currency="USD"),
                        stack.a.key_ids["admin"])


def expected(stack: Stack, goal: goals.Goal, **extra: Any) -> dict[str, Any]:
    request = {"goals": [goal.goal_id], "date_range": {"date_from": "-7d"}, "timezone": stack.a.timezone,
               "interval": "day", **extra}
    return stack.analysis(stack.a, "goals", request)


def test_the_goals_page_shows_what_the_analysis_api_answers(browse: Browse, stack: Stack, goal: goals.Goal):
    page = browse.page(stack.a.keys["read"], "/goals")
    wait_for_plots(page, 1)
    page.locator("[data-goal-kpi=conversions]").first.wait_for()
    total = expected(stack, goal)["lines"][0]["total"]
    shown = {m: page.locator(f"[data-goal-kpi={m}] .nx-kpi").inner_text()
             for m in ("conversions", "persons", "person_rate", "session_rate", "value")}
    assert shown == {"conversions": charts.format_number(total["conversions"]),
                     "persons": charts.format_number(total["persons"]),
                     "person_rate": charts.format_number(total["person_rate"], percent=True),
                     "session_rate": charts.format_number(total["session_rate"], percent=True),
                     "value": charts.format_number(total["value"]) + " USD"}
    assert total["conversions"] > 0
    assert NAME in page_text(page) and goal.goal_id in page_text(page)  # the hostile name, as text

    # A breakdown by country: a row per group in the table, as the API groups them
    page.goto(stack.url + "/goals?" + urlencode({"breakdown": "country", "breakdown_source": "column"}))
    wait_for_plots(page, 1)
    page.locator(".nx-table").first.wait_for()
    lines = expected(stack, goal, breakdown={"key": "country", "source": "column"})["lines"]
    rows = page.locator(".nx-table").first.locator("tbody tr")
    assert rows.count() == len(lines) > 1
    assert rows.first.locator("td").nth(2).inner_text() == charts.format_number(lines[0]["total"]["conversions"])
    browse.assert_clean()


def test_the_overview_kpi_row_carries_the_goal(browse: Browse, stack: Stack, goal: goals.Goal):
    page = browse.page(stack.a.keys["read"], "/overview")
    wait_for_plots(page, 1)
    card = page.locator(f"[data-goal='{goal.goal_id}']")
    card.wait_for()
    overview = stack.analysis(stack.a, "overview", {"goals": [goal.goal_id], "date_range": {"date_from": "-7d"},
                                                    "timezone": stack.a.timezone, "interval": "day"})
    assert card.locator(".nx-kpi").inner_text() == charts.format_number(overview["goals"][0]["conversions"]["value"])
    assert NAME in card.locator(".nx-kpi-label").text_content()  # as text (CSS shows labels in capitals)
    browse.assert_clean()


def test_project_b_sees_none_of_project_a_s_goals(browse: Browse, stack: Stack, goal: goals.Goal):
    page = browse.page(stack.b.keys["read"], "/goals")
    page.locator("[data-role=goals-empty]").wait_for()
    assert "Purchases" not in page_text(page) and goal.goal_id not in page_text(page)
    page = browse.page(stack.b.keys["read"], f"/goals?goal={goal.goal_id}")
    page.locator("[data-role=goals-empty]").wait_for()
    assert "Purchases" not in page_text(page)
    browse.assert_clean()
