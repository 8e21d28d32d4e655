"""Experiments: how a saved A/B experiment stands — the verdict in a sentence, whether the split is sound
(sample-ratio check), how far it is from the persons it needs, each variant's numbers, each treatment's lift
with its interval per metric (a forest plot) and the cumulative lift day by day.

Experiments are defined through /v1/experiments (an admin's change); this page reads them and one answer of
the `experiment` analysis (nexus/analyses/experiment.py, statistics in experiment_stats.py) that all its
cards share. Names, variant keys and metric names are users' text: escaped in markup, data in charts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import panel as pn
import param
from bokeh.models import (
    ColumnDataSource,
    HoverTool,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.plotting import figure

from nexus.analyses.experiment import ExperimentResult, MetricResult, VariantComparison
from nexus.analyses.experiment_stats import Comparison, deciding_p_value
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.shared import checked, html_table, sharing
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page
from nexus.meta.experiments import Experiment
from nexus.timezones import zone

MUTED = "#999999"
MetricChart = Callable[[ExperimentResult, MetricResult], pn.viewable.Viewable]


class Settings(param.Parameterized):
    experiment = param.String(default="")  # a saved experiment's key; empty: the project's first


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "experiments", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(ctx, settings)], uses_filters=False)


def request(ctx: Context, key: str) -> dict[str, Any]:
    """The experiment request of the page: the saved experiment, its timeline's days in the page's zone."""
    return {"experiment": key, "timezone": ctx.timezone}


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.experiments()
    if not saved:
        return theme.html("<div class='nx-notice' data-role='experiments-empty'>This project has no experiments "
                          "yet: an admin key defines one with POST /v1/experiments (variants and weights, the "
                          "metrics, the exposure event and the design), and clients assign persons with "
                          "GET /v1/experiments/{key}/assign.</div>")
    keys = [e.key for e in saved]
    chosen = next(e for e in saved if e.key == (settings.experiment if settings.experiment in keys else keys[0]))
    ctx = sharing(ctx)  # every card shows the same answer: one query
    asked = checked("experiment", request(ctx, chosen.key))

    def part(title: str, chart: str, height: int) -> pn.viewable.Viewable:
        return card(ctx, title, "experiment", asked, lambda result, _: draw(ctx, result, chart), chart=chart,
                    height=height)

    return pn.Column(_about(chosen), part("Verdict", "totals", 170), part("Variants", "table", 160),
                     part("Lift by metric, with its interval", "bar", 220),
                     part("Cumulative lift over time", "line", 300), sizing_mode="stretch_width")


def draw(ctx: Context | None, result: ExperimentResult, chart: str = "totals") -> pn.viewable.Viewable:
    """An experiment result as `totals` (verdict, sample-ratio check and progress to the sample size),
    `table` (a row per metric and variant), `bar` (a forest plot per metric: each treatment's relative lift
    and interval) or `line` (the cumulative relative lift per day, its interval as a band)."""
    if chart == "totals":
        return theme.html(summary_html(result), css_classes=["nx-experiment-summary"])
    if chart == "bar":
        return _per_metric(result, forest)
    if chart == "line":
        return _per_metric(result, cumulative_lift)
    return _variants_table(result)


def relied(comparison: VariantComparison) -> Comparison | None:
    """The comparison the verdict rests on: CUPED's when the analysis made one (the request asked for it and
    the pre-exposure values vary), else the plain one."""
    return comparison.cuped if comparison.cuped is not None else comparison.comparison


def summary_html(result: ExperimentResult) -> str:
    """The verdict of every treatment on every metric, the sample-ratio check (loud when it fails) and the
    progress of the smallest variant towards the persons each needs; every user string escaped."""
    srm = result.srm
    split = " / ".join(f"{escape(v)} {n:,}" for v, n in zip(result.variants, srm.observed))
    expected = " / ".join(f"{e:,.0f}" for e in srm.expected)
    if srm.passed:
        check = (f"<div class='nx-srm nx-srm-passed' data-role='srm' data-passed='true'>✓ Sample ratio check "
                 f"passed (chi-square p = {srm.p_value:.3g}): {split} persons exposed.</div>")
    else:
        check = (f"<div class='nx-srm nx-srm-failed' data-role='srm' data-passed='false' role='alert'>⚠ Sample "
                 f"ratio mismatch: {split} persons exposed where the weights expect {expected} (chi-square "
                 f"p = {srm.p_value:.2g} &lt; {srm.threshold:g}). Assignment or exposure logging is broken: no "
                 f"verdict until it is fixed.</div>")
    smallest = min(result.exposed) if result.exposed else 0
    if result.required_sample_size:
        share = min(smallest / result.required_sample_size, 1.0)
        progress = (f"<div class='nx-progress' data-role='progress' data-share='{share:.4f}'>"
                    f"<div class='nx-progress-bar' style='width:{share * 100:.1f}%'></div></div>"
                    f"<div class='nx-muted' data-role='progress-text'>"
                    f"{smallest:,} of {result.required_sample_size:,} persons in the smallest variant "
                    f"({share * 100:.0f}% of the sample size)</div>")
    else:
        progress = ("<div class='nx-muted' data-role='progress-text'>No sample size: the design has no baseline, "
                    "so the always-valid test alone decides.</div>")
    sentences = "".join(f"<li data-metric='{m.metric}'><b>{escape(m.name)}</b>: {escape(c.verdict)}</li>"
                        for m in result.metrics for c in m.comparisons)
    excluded = result.excluded.multiple_variants + sum(result.excluded.unknown_variants.values())
    note = (f"<div class='nx-muted' data-role='excluded'>{excluded:,} persons left out (exposed to more than one "
            f"variant, or to a variant the experiment lacks).</div>") if excluded else ""
    return (f"{check}<ul class='nx-verdicts' data-role='verdict'>{sentences}</ul>{progress}{note}"
            f"<style>{SUMMARY_CSS}</style>")


def _variants_table(result: ExperimentResult) -> pn.viewable.Viewable:
    header = ["Metric", "Variant", "Persons", "Mean", "Lift", "Interval", "p (adjusted)", "P(beats control)",
              "Always-valid p", "CUPED: variance removed"]
    rows = []
    for metric in result.metrics:
        by_variant = {c.variant: c for c in metric.comparisons}
        percent = metric.measure == "conversion"
        for stats in metric.variants:
            compared = by_variant.get(stats.variant)
            found = relied(compared) if compared is not None else None
            cells = [metric.name, stats.variant, charts.format_number(stats.n),
                     charts.format_number(stats.mean, percent=percent)]
            if found is None:
                cells += ["control" if compared is None else charts.MISSING] + [""] * 5
            else:
                reduction = found.variance_reduction
                cells += [_lift(found), _interval(found), _p(compared.adjusted_p_value if compared else None),
                          charts.format_number(found.probability_to_beat, percent=True),
                          _p(compared.adjusted_sequential_p_value if compared else None),
                          charts.format_number(reduction, percent=True) if reduction is not None else "off"]
            rows.append(cells)
    return html_table(header, rows, numeric_from=2)


def _lift(found: Comparison) -> str:
    if found.relative_lift is not None:
        return f"{found.relative_lift * 100:+.1f}%"
    return f"{found.absolute_lift:+.4g}"


def _interval(found: Comparison) -> str:
    level = f"{(1 - found.alpha) * 100:.0f}%"
    if found.relative_interval is not None:
        return f"{level}: {found.relative_interval.low * 100:+.1f}% to {found.relative_interval.high * 100:+.1f}%"
    return f"{level}: {found.absolute_interval.low:+.4g} to {found.absolute_interval.high:+.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return charts.MISSING
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _per_metric(result: ExperimentResult, chart: MetricChart) -> pn.viewable.Viewable:
    """A chart per metric under the metric's name (markup, escaped)."""
    parts: list[Any] = []
    for metric in result.metrics:
        parts.append(theme.html(f"<div class='nx-muted' data-role='metric-name'>{escape(metric.name)}</div>",
                                margin=(5, 10, 0, 10)))
        parts.append(chart(result, metric))
    return pn.Column(*parts, sizing_mode="stretch_width") if parts else empty("This experiment has no metrics.")


def forest(result: ExperimentResult, metric: MetricResult) -> pn.viewable.Viewable:
    """Each treatment's relative lift (a dot) and interval (a bar) against 0, a row per treatment; coloured
    (up or down) when the verdict calls it, grey when not."""
    rows = []
    for compared in metric.comparisons:
        found = relied(compared)
        if found is None or found.relative_lift is None or found.relative_interval is None:
            continue
        p_value, _ = deciding_p_value(found, result.required_sample_size, compared.adjusted_p_value,
                                      compared.adjusted_sequential_p_value)
        colour = MUTED
        if result.srm.passed and p_value < found.alpha:  # what the verdict calls a winner or a loser
            colour = theme.PALETTES[theme.dark()]["up" if found.relative_lift > 0 else "down"]
        rows.append({"variant": compared.variant, "lift": found.relative_lift, "low": found.relative_interval.low,
                     "high": found.relative_interval.high, "colour": colour, "lift_text": _lift(found),
                     "interval_text": _interval(found), "p_text": _p(compared.adjusted_p_value),
                     "beat_text": charts.format_number(found.probability_to_beat, percent=True),
                     "sequential_text": _p(compared.adjusted_sequential_p_value)})
    if not rows:
        return empty("No lift yet: each variant needs persons, and the control a non-zero mean.")
    source = ColumnDataSource({name: [row[name] for row in rows] for name in rows[0]})
    names = [row["variant"] for row in rows]
    # The axis always holds 0, so an interval's distance from "no effect" shows at a glance.
    low, high = min(0.0, *source.data["low"]), max(0.0, *source.data["high"])
    pad = (high - low) * 0.05 or 0.01
    fig = figure(height=60 + 40 * len(rows), sizing_mode="stretch_width", y_range=list(reversed(names)),
                 x_range=Range1d(low - pad, high + pad), tools="save", toolbar_location="right")
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.add_layout(Span(location=0, dimension="height", line_color=MUTED, line_dash="dashed"))
    bars = fig.hbar(y="variant", left="low", right="high", height=0.35, source=source, fill_color="colour",
                    fill_alpha=0.35, line_color="colour")
    fig.scatter(x="lift", y="variant", size=11, source=source, color="colour")
    fig.xaxis.formatter = NumeralTickFormatter(format="+0.[0]%")
    fig.xaxis.axis_label = "Relative lift against the control"
    fig.ygrid.visible = False
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[
        ("Variant", "@variant"), ("Lift", "@lift_text"), ("Interval", "@interval_text"), ("p (adjusted)", "@p_text"),
        ("P(beats control)", "@beat_text"), ("Always-valid p", "@sequential_text")]))
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width")


def cumulative_lift(result: ExperimentResult, metric: MetricResult) -> pn.viewable.Viewable:
    """Each treatment's relative lift over the persons first exposed up to each day, with its fixed-horizon
    interval as a band (the band is wide early on: reading a winner off an early day is what the
    always-valid p-value is for)."""
    tz = zone(result.timezone)
    points = [p for p in result.timeline if p.metric == metric.metric and p.relative_lift is not None]
    if not points:
        return empty("No lift yet: each variant needs persons, and the control a non-zero mean.")
    fig = figure(height=260, sizing_mode="stretch_width", x_axis_type="datetime", tools=charts.TOOLS,
                 toolbar_location="right")
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.toolbar.active_scroll = None
    fig.add_layout(Span(location=0, dimension="width", line_color=MUTED, line_dash="dashed"))
    colours = charts.colours_for(c.variant for c in metric.comparisons)
    hovered = []
    for variant, colour in colours.items():
        mine = [p for p in points if p.variant == variant]
        if not mine:
            continue
        source = ColumnDataSource({
            "day": [_wall(p.day, tz) for p in mine], "lift": [p.relative_lift for p in mine],
            "low": [p.low for p in mine], "high": [p.high for p in mine], "variant": [variant] * len(mine),
            "day_text": [_wall(p.day, tz).strftime("%Y-%m-%d") for p in mine],
            "lift_text": [f"{(p.relative_lift or 0) * 100:+.1f}%" for p in mine],
            "persons_text": [charts.format_number(p.n) for p in mine]})
        fig.varea(x="day", y1="low", y2="high", source=source, fill_color=colour, fill_alpha=0.15)
        fig.line(x="day", y="lift", source=source, line_width=2, color=colour, legend_label=variant)
        hovered.append(fig.scatter(x="day", y="lift", source=source, size=5, color=colour))
    fig.yaxis.formatter = NumeralTickFormatter(format="+0.[0]%")
    fig.yaxis.axis_label = "Relative lift, cumulative"
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    fig.add_tools(HoverTool(renderers=hovered, tooltips=[("Variant", "@variant"), ("Day", "@day_text"),
                                                          ("Lift", "@lift_text"), ("Persons", "@persons_text")]))
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width")


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The local wall time of an instant (the axis shows local days)."""
    return moment.astimezone(tz).replace(tzinfo=None)


def _about(experiment: Experiment) -> pn.viewable.Viewable:
    """What the experiment tests: its name, hypothesis, variants and weights, metrics and dates (escaped)."""
    definition = experiment.definition
    variants = ", ".join(f"{escape(v.key)} ({v.weight:g})" for v in definition.variants)
    metrics = ", ".join(escape(m.label()) for m in definition.metrics)
    ends = definition.end.strftime("%Y-%m-%d %H:%M UTC") if definition.end else "open"
    hypothesis = f"<div data-role='hypothesis'>{escape(experiment.hypothesis)}</div>" if experiment.hypothesis else ""
    return theme.html(
        f"<div class='nx-card-title' data-role='experiment-name'>{escape(experiment.name)}</div>{hypothesis}"
        f"<div class='nx-muted'>Variants (weights): {variants} · metrics: {metrics} · from "
        f"{definition.start.strftime('%Y-%m-%d %H:%M UTC')} to {ends} · alpha {definition.alpha:g}, power "
        f"{definition.power:g}, minimum detectable effect {definition.mde:g}</div>", margin=(5, 10))


def builder(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.experiments()
    options = {f"{e.name} ({e.key})": e.key for e in saved}
    current = settings.experiment if settings.experiment in options.values() else next(iter(options.values()), None)
    picker = pn.widgets.Select(label="Experiment", options=options, value=current, width=320, disabled=not options)
    picker.param.watch(lambda e: setattr(settings, "experiment", e.new or ""), "value")
    return pn.Row(picker, sizing_mode="stretch_width")


SUMMARY_CSS = (".nx-srm { padding: .5rem .7rem; border-radius: 8px; margin-bottom: .4rem; font-size: .9rem; }"
               ".nx-srm-passed { border: 1px solid var(--nx-up); }"
               ".nx-srm-failed { border: 2px solid var(--nx-down); color: var(--nx-down); font-weight: 700; }"
               ".nx-verdicts { margin: .3rem 0 .6rem; padding-left: 1.2rem; font-size: .95rem; }"
               ".nx-progress { height: .7rem; border-radius: .35rem; background: var(--nx-line); overflow: hidden; }"
               ".nx-progress-bar { height: 100%; background: var(--nx-accent); }")
