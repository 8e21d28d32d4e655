"""The Experiments page in Chromium: a saved experiment with a real effect shows the verdicts, the sample-ratio
check, the progress to the sample size and the variants' numbers that POST /v1/analyses/experiment gives,
draws a forest plot and a cumulative lift per metric; a broken split says so loudly and gives no verdict;
hostile names stay text; project B's key sees none of it. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import pytest
from panel.pane import HTML, Bokeh

from nexus.analyses.experiment import ExperimentResult
from nexus.dashboard import charts
from nexus.dashboard.pages import DRAWERS
from nexus.meta import experiments
from nexus.meta.experiments import ExperimentInput, Metric, Variant
from tests.dashboard.conftest import XSS, Browse, Stack, page_text, wait_for_plots

pytestmark = pytest.mark.dashboard

NAME = f"Checkout button {XSS}"
METRIC = f"Purchase {XSS}"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=6)


def _exposures(key: str, split: dict[str, int], rates: dict[str, float]) -> list[dict[str, Any]]:
    """Persons exposed over five days, each then buying (1 hour later) at their variant's rate, exactly: the
    first round(rate × n) persons of a variant buy; every other person of either variant views a page."""
    batch = []
    for variant, persons in split.items():
        for i in range(persons):
            person, at = f"{key}-{variant}-{i}", START + timedelta(hours=2 + (i * 120) // persons)
            batch.append({"type": "track", "event": "$experiment_exposure", "userId": person,
                          "timestamp": at.isoformat(), "messageId": f"{person}-x",
                          "properties": {"experiment": key, "variant": variant}})
            if i < round(rates[variant] * persons):
                batch.append({"type": "track", "event": "purchase", "userId": person,
                              "timestamp": (at + timedelta(hours=1)).isoformat(), "messageId": f"{person}-p"})
            if i % 2:
                batch.append({"type": "track", "event": "page_view", "userId": person,
                              "timestamp": (at + timedelta(hours=2)).isoformat(), "messageId": f"{person}-v"})
    return batch


def _save(stack: Stack, key: str, name: str, batch: list[dict[str, Any]]) -> experiments.Experiment:
    saved = experiments.create(stack.runtime.clickhouse, stack.a.project_id, ExperimentInput(
        key=key, name=name, hypothesis=f"A green button sells more {XSS}",
        variants=[Variant("control"), Variant("treatment")],
        primary_metric=Metric(name=METRIC, event="purchase"),
        secondary_metrics=[Metric(event="page_view")], start=START, baseline=0.1, mde=0.9),
        stack.a.key_ids["admin"])
    sent = httpx.post(f"{stack.api}/v1/batch", json={"batch": batch}, auth=(stack.a.keys["write"], ""), timeout=60)
    assert sent.status_code == 200 and not sent.json().get("rejected"), sent.text
    return saved


@pytest.fixture(scope="module")
def running(stack: Stack) -> experiments.Experiment:
    # Given 260 persons a variant: 10% of control buy, 30% of the treatment's; half of each view a page
    return _save(stack, "green-button", NAME,
                 _exposures("green-button", {"control": 260, "treatment": 260}, {"control": 0.1, "treatment": 0.3}))


@pytest.fixture(scope="module")
def broken(stack: Stack) -> experiments.Experiment:
    # Given a 50/50 design whose exposures came in 150 / 60
    return _save(stack, "broken-split", "Broken split",
                 _exposures("broken-split", {"control": 150, "treatment": 60}, {"control": 0.1, "treatment": 0.1}))


def answer(stack: Stack, key: str) -> dict[str, Any]:
    return stack.analysis(stack.a, "experiment", {"experiment": key, "timezone": stack.a.timezone})


def _verdicts(page: Any) -> list[str]:
    return page.locator("[data-role=verdict] li").all_inner_texts()


def test_the_experiments_page_shows_what_the_analysis_api_answers(
        browse: Browse, stack: Stack, running: experiments.Experiment, broken: experiments.Experiment):
    page = browse.page(stack.a.keys["read"], "/experiments?" + urlencode({"experiment": running.key}))
    wait_for_plots(page, 4)  # a forest plot and a cumulative lift for each of the two metrics
    page.locator("[data-role=verdict] li").first.wait_for()
    result = answer(stack, running.key)

    # Then the verdicts are the analysis' sentences, the treatment wins on purchases, the split is sound
    expected = [f"{m['name']}: {c['verdict']}" for m in result["metrics"] for c in m["comparisons"]]
    assert _verdicts(page) == expected
    assert expected[0].startswith(f"{METRIC}: treatment beats control on {METRIC}: +200.0%")
    assert page.locator("[data-role=srm]").get_attribute("data-passed") == "true"
    assert result["exposed"] == [260, 260] and result["srm"]["passed"]
    required = result["required_sample_size"]
    assert page.locator("[data-role=progress-text]").inner_text().startswith(f"260 of {required:,} persons")
    assert page.locator("[data-role=progress]").get_attribute("data-share") == f"{min(260 / required, 1):.4f}"
    # The variants table: a row per metric and variant, with the persons and rates the analysis counted
    rows = page.locator(".nx-table tbody tr")
    assert rows.count() == 4
    first = rows.nth(1).locator("td").all_inner_texts()
    treatment = result["metrics"][0]["variants"][1]
    assert first[:4] == [METRIC, "treatment", "260", charts.format_number(treatment["mean"], percent=True)]
    assert first[3] == "30.0%"
    text = page_text(page)
    assert NAME in text and "A green button sells more " + XSS in text  # hostile names, as text
    browse.assert_clean()

    # The dark theme draws the same page
    page = browse.page(stack.a.keys["read"], "/experiments?" + urlencode({"experiment": running.key, "theme": "dark"}))
    wait_for_plots(page, 4)
    assert _verdicts(page) == expected
    browse.assert_clean()

    # A broken split: a loud warning and no verdict (in a page of its own: each page leaves a screenshot)
    page = browse.page(stack.a.keys["read"], "/experiments?" + urlencode({"experiment": broken.key}))
    page.locator("[data-role=srm][data-passed=false]").wait_for()
    assert "Sample ratio mismatch: control 150 / treatment 60 persons exposed" in page_text(page)
    assert all("No verdict: sample ratio mismatch" in v for v in _verdicts(page))
    browse.assert_clean()


def test_project_b_sees_none_of_project_a_s_experiments(
        browse: Browse, stack: Stack, running: experiments.Experiment):
    page = browse.page(stack.b.keys["read"], "/experiments")
    page.locator("[data-role=experiments-empty]").wait_for()
    page = browse.page(stack.b.keys["read"], "/experiments?" + urlencode({"experiment": running.key}))
    page.locator("[data-role=experiments-empty]").wait_for()
    assert "Checkout" not in page_text(page) and running.key not in page_text(page)
    browse.assert_clean()


def test_every_chart_of_an_experiment_escapes_its_names(stack: Stack, running: experiments.Experiment):
    result = msgspec.convert(answer(stack, running.key), ExperimentResult, strict=False)
    for chart in ("totals", "table", "bar", "line"):
        drawn = DRAWERS["experiment"](None, result, chart)
        panes = [drawn] if isinstance(drawn, (HTML, Bokeh)) else list(drawn.select(HTML)) + list(drawn.select(Bokeh))
        markup = " ".join(str(p.object) for p in panes if isinstance(p, HTML))
        assert XSS not in markup and "&lt;img src=x" in markup, chart
        assert chart in ("totals", "table") or any(isinstance(p, Bokeh) for p in panes), chart
