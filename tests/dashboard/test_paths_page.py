"""The Paths page in Chromium: the Sankey draws the flows POST /v1/analyses/paths gives, a click on a node
lists the persons the paths_persons analysis lists for it, hostile step names stay text, and project B's
key sees none of project A's paths. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
import panel as pn
import pytest

from nexus.analyses import paths
from nexus.analyses.dates import DateRange
from nexus.dashboard import charts
from nexus.dashboard.pages.paths import draw
from nexus.meta.dashboards import Tile
from tests.dashboard.conftest import XSS, Browse, Stack, page_text, wait_for_plots, wait_until

pytestmark = pytest.mark.dashboard

SETTINGS = {"anchor": "/", "step_type": "pages", "steps": 4, "nodes_per_step": 4}

# The Sankey's node bars as the browser lays them out: Bokeh's view of the plot maps each bar's centre from
# data to canvas pixels, and the canvas gives where that is on the page (Panel draws in shadow roots).
NODE_CENTRES = """() => {
  const found = [];
  const walk = (view) => {
    if (!view) return;
    const nodes = view.model && view.model.renderers && view.model.renderers.find(r => r.name === "nodes");
    if (nodes && view.frame) {
      const data = nodes.data_source.data, box = view.canvas_view.el.getBoundingClientRect();
      for (let i = 0; i < data.left.length; i++) {
        const x = view.frame.x_scale.compute((data.left[i] + data.right[i]) / 2);
        const y = view.frame.y_scale.compute((data.top[i] + data.bottom[i]) / 2);
        found.push({name: data.name[i], step: data.step[i], x: box.left + x, y: box.top + y});
      }
    }
    for (const child of view.child_views || []) walk(child);
  };
  for (const view of Object.values(Bokeh.index)) walk(view);
  return found;
}"""


def expected(stack: Stack, project: Any) -> dict[str, Any]:
    return stack.analysis(project, "paths", {"start": "/", "step_type": "pages", "steps": 4, "nodes_per_step": 4,
                                             "date_range": {"date_from": "-7d"}, "timezone": project.timezone})


def test_the_sankey_draws_the_api_flows_and_a_clicked_node_lists_its_persons(browse: Browse, stack: Stack):
    page = browse.page(stack.a.keys["read"], "/paths?" + urlencode(SETTINGS))
    wait_for_plots(page, 1)
    result = expected(stack, stack.a)
    assert result["paths"] > 0
    shown = wait_until(lambda: page.evaluate(NODE_CENTRES), page=page, what="the Sankey's nodes")
    assert sorted((n["step"], n["name"]) for n in shown) == sorted((n["step"], n["name"].replace("$other", "(other steps)"))
                                                                    for n in result["nodes"])
    assert f"{charts.format_number(result['paths'])} sessions start here" in page_text(page)

    # A click on a node of step 1: its persons, as paths_persons lists them, each linked to their profile
    node = next(n for n in result["nodes"] if n["step"] == 1 and n["name"] != "$other")
    centre = next(n for n in shown if n["step"] == 1 and n["name"] == node["name"])
    page.mouse.click(centre["x"], centre["y"])
    page.locator("[data-role=path-persons] a.nx-person").first.wait_for()
    listed = stack.analysis(stack.a, "paths_persons", {
        "paths": {"start": "/", "step_type": "pages", "steps": 4, "nodes_per_step": 4,
                  "date_range": {"date_from": "-7d"}, "timezone": stack.a.timezone},
        "step": 1, "node": node["name"], "limit": 100})
    links = page.locator("[data-role=path-persons] a.nx-person").all_inner_texts()
    assert links == [p["person"] for p in listed["persons"]] and len(links) == min(node["persons"], 100)
    assert f"Persons who reached {node['name']} (step 1)" in page_text(page)
    browse.assert_clean()


def test_project_b_sees_its_own_paths_and_hostile_names_stay_text(browse: Browse, stack: Stack):
    page = browse.page(stack.b.keys["read"], "/paths?" + urlencode({"step_type": "both", "steps": 3}))
    wait_for_plots(page, 1)
    shown = wait_until(lambda: page.evaluate(NODE_CENTRES), page=page, what="the Sankey's nodes")
    names = {n["name"] for n in shown}
    assert XSS in names and names <= {XSS, "signup"}  # B's steps only, its hostile name drawn as text
    centre = next(n for n in shown if n["step"] == 0)
    page.mouse.click(centre["x"], centre["y"])
    page.locator("[data-role=path-persons] a.nx-person").first.wait_for()
    assert XSS in page_text(page)  # B's hostile distinct id, listed as text
    browse.assert_clean()


def test_a_paths_tile_draws_as_a_sankey_or_as_a_table_of_edges_with_names_as_text():
    result = paths.PathsResult("forward", "persons", 2, "UTC", datetime(2026, 10, 1, tzinfo=UTC),
                               datetime(2026, 10, 2, tzinfo=UTC), DateRange(), [
                                   paths.PathNode("0:/", 0, "/", 2, 2, 0),
                                   paths.PathNode(f"1:{XSS}", 1, XSS, 2, 2, 2)],
                               [paths.PathEdge("0:/", f"1:{XSS}", 2, 2)])
    drawn = draw(None, result, "table").object  # type: ignore[arg-type]  (a table reads nothing of the page)
    assert "&lt;img src=x" in drawn and "<img" not in drawn and "<td style='text-align:right'>2</td>" in drawn
    # Pinned from the page, a tile keeps the page's chart: the Sankey (nexus.meta.dashboards.Chart has it)
    sankey = draw(None, result, "sankey")  # type: ignore[arg-type]
    assert any(isinstance(part, pn.pane.Bokeh) for part in sankey.objects)
    tile = {"title": "Flows", "kind": "paths", "request": {}, "chart": "sankey"}
    assert msgspec.convert(tile, Tile).chart == "sankey"  # a saved tile may say so
