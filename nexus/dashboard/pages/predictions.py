"""Predictions: how the project's persons are scored — churn probability, expected revenue (LTV) and
engagement distributions from the latest scoring run, the persons most at risk by expected revenue lost
(linking to their profiles), the active churn model's calibration, and every model version with its metrics.

Models are trained, activated and rolled back through /v1/models (an admin's change); this page reads one
answer of the `predictions` analysis (nexus/analyses/predictions.py) that its cards share, and the version
records (nexus/predict/versions.py). Person ids are users' text: escaped in markup, data in charts.
"""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, Range1d
from bokeh.plotting import figure

from nexus.analyses.predictions import Bin, PredictionsResult
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.persons import profile_link
from nexus.dashboard.pages.shared import html_table, sharing
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, page
from nexus.predict.versions import VersionView

REQUEST = {"bins": 10, "top": 20}
HISTOGRAMS = {"churn": "Churn probability", "ltv": "Expected revenue (LTV)", "engagement": "Engagement score"}


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    return page(dashboard, "predictions", body, uses_interval=False, uses_filters=False, uses_dates=False)


def body(ctx: Context) -> pn.viewable.Viewable:
    ctx = sharing(ctx)  # every card shows the same answer: one query

    def part(title: str, chart: str, height: int) -> pn.viewable.Viewable:
        return card(ctx, title, "predictions", REQUEST, lambda result, _: draw(ctx, result, chart), chart=chart,
                    height=height)

    versions = ctx.reader.model_versions()
    histograms = pn.Row(*(part(title, name, 240) for name, title in HISTOGRAMS.items()), sizing_mode="stretch_width")
    return pn.Column(histograms, part("Most at risk: expected revenue lost", "table", 200),
                     pn.Row(_calibration_card(versions), _versions_card(versions), sizing_mode="stretch_width"),
                     sizing_mode="stretch_width")


def draw(ctx: Context | None, result: PredictionsResult, chart: str = "table") -> pn.viewable.Viewable:
    """A predictions result as one of its histograms (`churn`, `ltv`, `engagement`) or as the `table` of
    the persons most at risk (links to their profiles when drawn on the page)."""
    if not result.run_id:
        return theme.html("<div class='nx-notice' data-role='predictions-empty'>No scores yet: an admin key trains "
                          "a model with POST /v1/models/churn/train or /v1/models/ltv/train; its activation scores "
                          "every person, and scoring runs daily after that.</div>")
    if chart in HISTOGRAMS:
        return histogram(getattr(result, chart), HISTOGRAMS[chart])
    return _at_risk(ctx, result)


def histogram(bins: list[Bin], label: str) -> pn.viewable.Viewable:
    if not bins:
        return theme.html(f"<div class='nx-muted' data-role='no-model'>No active model scores {escape(label)}.</div>")
    source = ColumnDataSource({"left": [b.low for b in bins], "right": [b.high for b in bins],
                               "persons": [b.persons for b in bins]})
    plot = figure(height=200, sizing_mode="stretch_width", toolbar_location=None, x_axis_label=label,
                  y_axis_label="persons")
    plot.quad(left="left", right="right", top="persons", bottom=0, source=source, fill_color=charts.PALETTE[0],
              line_color="white")
    plot.add_tools(HoverTool(tooltips=[("from", "@left{0.00}"), ("to", "@right{0.00}"), ("persons", "@persons")]))
    return pn.pane.Bokeh(plot, sizing_mode="stretch_width")


def _at_risk(ctx: Context | None, result: PredictionsResult) -> pn.viewable.Viewable:
    rows = "".join(
        f"<tr data-person='{escape(p.person, quote=True)}'>"
        f"<td>{profile_link(ctx, p.person) if ctx is not None else escape(p.person)}</td>"
        f"<td style='text-align:right'>{p.churn_probability:.2f}</td>"
        f"<td style='text-align:right'>{charts.format_number(p.ltv)}</td>"
        f"<td style='text-align:right'>{charts.format_number(p.expected_loss)}</td>"
        f"<td style='text-align:right'>{p.engagement:.0f}</td></tr>" for p in result.at_risk)
    return theme.html(f"<table class='nx-table' data-role='at-risk'><thead><tr><th>Person</th>"
                      f"<th style='text-align:right'>Churn probability</th><th style='text-align:right'>LTV</th>"
                      f"<th style='text-align:right'>Expected loss</th><th style='text-align:right'>Engagement</th>"
                      f"</tr></thead><tbody>{rows}</tbody></table>", margin=(5, 10))


def _calibration_card(versions: list[VersionView]) -> pn.viewable.Viewable:
    """Predicted against observed churn per probability bin, on the active churn version's validation rows."""
    active = next((v.version for v in versions if v.active and v.version.kind == "churn"), None)
    title = theme.html("<div class='nx-card-title'>Calibration of the active churn model</div>", margin=(5, 10, 0, 10))
    if active is None:
        return pn.Column(title, theme.html("<div class='nx-muted'>No active churn model.</div>"),
                         sizing_mode="stretch_width")
    table = [b for b in active.metrics["calibration"] if b["persons"]]
    plot = figure(height=260, sizing_mode="stretch_width", toolbar_location=None, x_axis_label="predicted",
                  y_axis_label="observed churn", x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    plot.line([0, 1], [0, 1], line_dash="dashed", line_color="#999999")
    source = ColumnDataSource({"predicted": [b["predicted"] for b in table], "observed": [b["observed"] for b in table],
                               "persons": [b["persons"] for b in table]})
    plot.line("predicted", "observed", source=source, line_color=charts.PALETTE[1], line_width=2)
    plot.scatter("predicted", "observed", source=source, size=8, color=charts.PALETTE[1])
    plot.add_tools(HoverTool(tooltips=[("predicted", "@predicted{0.00}"), ("observed", "@observed{0.00}"),
                                       ("persons", "@persons")]))
    return pn.Column(title, pn.pane.Bokeh(plot, sizing_mode="stretch_width"), sizing_mode="stretch_width",
                     css_classes=["nx-card"])


def _versions_card(versions: list[VersionView]) -> pn.viewable.Viewable:
    rows = [[("▶ " if v.active else "") + v.version.kind, v.version.version_id,
             v.version.created_at.strftime("%Y-%m-%d %H:%M"), *_measures(v.version.kind, v.version.metrics),
             f"{v.version.rows['train']:,} / {v.version.rows['validation']:,}"] for v in versions]
    return pn.Column(theme.html("<div class='nx-card-title'>Model versions (▶ active)</div>", margin=(5, 10, 0, 10)),
                     html_table(["Model", "Version", "Trained", "Measure", "Model", "Baseline", "Rows (train / validation)"],
                                rows, numeric_from=4),
                     sizing_mode="stretch_width", css_classes=["nx-model-versions"])


def _measures(kind: str, metrics: dict[str, Any]) -> list[str]:
    if kind == "churn":
        return ["ROC AUC · top-decile lift", f"{metrics['roc_auc']:.3f} · {metrics['top_decile_lift']:.2f}",
                f"{metrics['baseline']['roc_auc']:.3f} · {metrics['baseline']['top_decile_lift']:.2f}"]
    return ["top-decile capture · MAE", f"{metrics['top_decile_capture']:.0%} · {metrics['mae']:.2f}",
            f"{metrics['baseline']['top_decile_capture']:.0%} · {metrics['baseline']['mae']:.2f}"]
