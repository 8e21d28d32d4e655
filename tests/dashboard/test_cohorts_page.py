"""The Cohorts page in Chromium: a saved cohort's size now is the number POST /v1/analyses/cohort_size gives,
its size over time draws, its name (hostile markup) shows as text, an analysis page filtered by the cohort
through the global filter bar draws, and project B's key sees none of it. Screenshots go to
test-artifacts/dashboard/."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import msgspec
import pytest

from nexus.dashboard import charts
from nexus.dashboard.shell import new_filter
from nexus.errors import InvalidRequest
from nexus.meta import cohorts
from tests.dashboard.conftest import XSS, Browse, Stack, page_text, wait_for_plots

pytestmark = pytest.mark.dashboard

NAME = f"Viewers {XSS}"


@pytest.fixture(scope="module")
def cohort(stack: Stack) -> cohorts.Cohort:
    definition = {"conditions": [{"type": "performed", "event": "page_view", "count": 2, "days": 7}]}
    return cohorts.create(stack.runtime.clickhouse, stack.a.project_id,
                          cohorts.decode_input(msgspec.json.encode({"name": NAME, "definition": definition})),
                          stack.a.key_ids["admin"])


def test_the_cohorts_page_shows_what_the_analysis_api_answers(browse: Browse, stack: Stack, cohort: cohorts.Cohort):
    page = browse.page(stack.a.keys["read"], "/cohorts")
    wait_for_plots(page, 1)
    page.locator(".nx-cohort-list td").first.wait_for()
    size = stack.analysis(stack.a, "cohort_size", {"cohort": cohort.cohort_id, "date_range": {"date_from": "today"},
                                                   "timezone": stack.a.timezone})["size"]
    row = page.locator(".nx-cohort-list tbody tr").first
    assert row.locator("td").nth(3).inner_text() == charts.format_number(size) and size > 0
    assert NAME in page_text(page) and cohort.cohort_id in page_text(page)  # the hostile name, as text

    # The trends page filtered to the cohort through the global filters (as the filter bar writes them)
    leaf = {"key": cohort.cohort_id, "op": "in", "source": "cohort"}
    page.goto(stack.url + "/trends?" + urlencode({"filters": json.dumps([leaf])}))
    wait_for_plots(page, 1)
    assert f"cohort.{cohort.cohort_id} in" in page_text(page)  # its chip
    assert page.locator(".nx-notice.nx-danger, .nx-notice.nx-warning").all_inner_texts() == []
    browse.assert_clean()


def test_project_b_sees_none_of_project_a_s_cohorts(browse: Browse, stack: Stack, cohort: cohorts.Cohort):
    page = browse.page(stack.b.keys["read"], "/cohorts")
    page.locator("[data-role=cohorts-empty]").wait_for()
    assert "Viewers" not in page_text(page) and cohort.cohort_id not in page_text(page)
    # A's cohort named in B's filters: refused as not found, nothing of A's shown
    leaf = {"key": cohort.cohort_id, "op": "in", "source": "cohort"}
    page = browse.page(stack.b.keys["read"], "/trends?" + urlencode({"filters": json.dumps([leaf])}))
    page.locator(".nx-notice").first.wait_for()
    assert "Viewers" not in page_text(page)
    browse.assert_clean()


def test_the_filter_bar_writes_a_cohort_leaf_without_a_value():
    assert new_filter(" c_abcdefghijkl ", "not_in", "cohort", "ignored") == {
        "key": "c_abcdefghijkl", "op": "not_in", "source": "cohort"}
    with pytest.raises(InvalidRequest, match="'in' or 'not_in'"):
        new_filter("c_abcdefghijkl", "eq", "cohort", "")
    with pytest.raises(InvalidRequest, match="not a cohort id"):
        new_filter("buyers", "in", "cohort", "")
