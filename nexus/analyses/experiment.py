"""Experiment: per variant of an A/B experiment, who was exposed and how each metric came out, with the
statistics (nexus.analyses.experiment_stats) and a verdict in a sentence.

Definition. The experiment is a saved one (`experiment`: its key) or given inline. Persons are resolved
through identities (every distinct id of a person is that person). A person is exposed when one of their
events is the experiment's exposure event whose `experiment` property is the key, at or after `start` and
before `end` (or now), and passes the targeting filter (`targeting`: event and person properties of that
event, or a cohort); the person's first such event is their exposure, its `variant` property their
variant. A person whose exposures name more than one variant is counted in `excluded.multiple_variants`
and left out; one whose variant is not the experiment's, in `excluded.unknown_variants`.
Per exposed person and metric, over the metric's events (`nexus.meta.goals.condition`):
- y, the metric: among the person's events at or after their first exposure and before first exposure +
  conversion window (and before now; the window may run past `end`): `conversion` 1 when there is one,
  else 0; `count` how many; `sum` the sum of the value property (missing or not a number: 0);
- x, the same measure over the window before the first exposure (`[first - window, first)`), CUPED's
  covariate.
Per variant and metric the sufficient statistics are exact sums in ClickHouse (persons, Σy, Σy², Σx,
Σx², Σxy); no person leaves the engine. `timeline` holds the same per local day of first exposure,
cumulated: day d counts the persons first exposed up to the end of d, each with their metric as of now.
Each treatment is compared with the control (the first variant) on every metric; p-values are adjusted
across all those comparisons (Holm, or Benjamini–Hochberg), and the sample-ratio check compares the
variants' exposed persons with their weights. Persons per variant needed: from the design's baseline, and
only when the experiment has one; it tunes the always-valid test and, once reached, hands the verdict to
the fixed-horizon test. Without it the always-valid test is tuned to DEFAULT_PLANNED_N and alone decides:
a sample size taken from the data seen so far would move at every look and void the always-valid
guarantee.
"""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import NormalDist

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import cohort_store, dates, persons, time_sql
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.dates import Span
from nexus.analyses.experiment_stats import (
    DEFAULT_PLANNED_N,
    Comparison,
    CorrectionMethod,
    Sample,
    SrmCheck,
    adjust_p_values,
    compare,
    srm_check,
    verdict,
)
from nexus.analyses.filters import all_of, compile_group
from nexus.analyses.properties import Property
from nexus.analyses.scope import AnalysisScope
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.errors import InvalidRequest
from nexus.meta import experiments as saved
from nexus.meta import goals, projects
from nexus.meta.experiments import ExperimentDefinition, Metric
from nexus.meta.goals import GoalDefinition
from nexus.timezones import zone

SUMS = ("sum", "sum_squares", "pre_sum", "pre_sum_squares", "cross_sum")


class InlineExperiment(ExperimentDefinition, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An experiment defined in the request itself; `key` is the exposures' `experiment` property."""

    key: str
    name: str = ""

    def __post_init__(self) -> None:
        if not saved.KEY.fullmatch(self.key):
            raise InvalidRequest(f"an experiment's key must match {saved.KEY.pattern}", field="key")
        saved.check(self)


class ExperimentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    experiment: str | InlineExperiment  # a saved experiment's key, or an inline definition
    timezone: str | None = None  # of the timeline's days (default: the project's)
    cuped: bool = True  # verdicts on CUPED-adjusted comparisons when the pre-exposure period varies
    correction: CorrectionMethod = "holm"


class Excluded(msgspec.Struct, frozen=True):
    multiple_variants: int
    unknown_variants: dict[str, int]


class VariantStats(msgspec.Struct, frozen=True, kw_only=True):
    variant: str
    n: int
    mean: float | None
    sum: float
    sum_squares: float
    pre_sum: float
    pre_sum_squares: float
    cross_sum: float


class VariantComparison(msgspec.Struct, frozen=True, kw_only=True):
    """A treatment against the control: `comparison` without CUPED, `cuped` with it (None when a variant
    has under 2 persons, or for `cuped` when the pre-exposure values do not vary); the adjusted p-values
    (fixed-horizon and always-valid) and the verdict are of the one the request relies on."""

    variant: str
    comparison: Comparison | None
    cuped: Comparison | None
    adjusted_p_value: float | None
    adjusted_sequential_p_value: float | None
    verdict: str


class MetricResult(msgspec.Struct, frozen=True, kw_only=True):
    metric: int  # 0 is the primary metric
    name: str
    measure: saved.Measure
    variants: list[VariantStats]
    comparisons: list[VariantComparison]


class TimelinePoint(msgspec.Struct, frozen=True, kw_only=True):
    """Cumulative to the end of `day`: a treatment's persons and mean against the control's."""

    day: datetime
    metric: int
    variant: str
    n: int
    mean: float | None
    control_mean: float | None
    relative_lift: float | None
    low: float | None
    high: float | None


class ExperimentResult(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    timezone: str
    date_from: datetime  # exposures counted from here ...
    date_to: datetime  # ... to here (the end, or now)
    variants: list[str]
    exposed: list[int]  # persons per variant, in `variants` order
    excluded: Excluded
    required_sample_size: int | None  # persons per variant, from the design's baseline (None without one)
    srm: SrmCheck
    correction: CorrectionMethod
    metrics: list[MetricResult]
    timeline: list[TimelinePoint]
    verdict: str  # the primary metric's, one sentence per treatment


Request = ExperimentRequest
Result = ExperimentResult


class _Resolved(msgspec.Struct, frozen=True):
    key: str
    name: str
    definition: ExperimentDefinition
    targets: list[tuple[GoalDefinition, str | None]]  # per metric: what matches, the property a sum reads


def _resolve(client: Client, project_id: int, request: ExperimentRequest) -> _Resolved:
    if isinstance(request.experiment, str):
        found = saved.get(client, project_id, request.experiment)
        key, name, definition = found.key, found.name, found.definition
    else:
        key, name, definition = request.experiment.key, request.experiment.name, saved.definition_of(request.experiment)
    fields = ["primary_metric", *(f"secondary_metrics[{i}]" for i in range(len(definition.secondary_metrics)))]
    targets = [saved.resolved_metric(client, project_id, m, f"experiment.{f}") for f, m in zip(fields, definition.metrics)]
    return _Resolved(key, name or key, definition, targets)


def saved_definitions(client: Client, project_id: int, request: ExperimentRequest) -> bytes:
    """The saved experiment, goals and cohorts the request reaches, as stored now: part of the read service's
    cache key, so an answer cached before one of them changed is not served after."""
    resolved = _resolve(client, project_id, request)
    cohorts = cohort_store.load(client, project_id, cohort_store.referenced(resolved.definition))
    return msgspec.json.encode([resolved, sorted(cohorts.values(), key=lambda c: c.cohort_id)])


def _scope(client: Client, project_id: int, request: ExperimentRequest, resolved: _Resolved,
           now: datetime | None) -> AnalysisScope:
    """Exposures from the start to the end or now (empty before the start); cohorts from the definition."""
    tz = request.timezone or projects.get(client, project_id).timezone
    zone(tz)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    start = resolved.definition.starts
    end = min(resolved.definition.ends or moment, moment)
    cohorts = Cohorts(cohort_store.load(client, project_id, cohort_store.referenced(resolved.definition)), tz, moment)
    return AnalysisScope(project_id, tz, Span(start, max(start, end)), moment, cohorts)


def _query(scope: AnalysisScope, resolved: _Resolved) -> Query:
    """One scan of the events that are exposures or metric events, grouped by person (first exposure, the
    variants named, the metric events as (time, metric bits, sum values)); each exposed person's y and x per
    metric from those arrays; then per (mixed, variant, day of first exposure) the persons and, per metric,
    Σy, Σy², Σx, Σx², Σxy. Arrays, not a self-join: the window starts at each person's own exposure, and
    one pass over the events with one GROUP BY is cheaper than joining exposures back onto events.

    Each event's person is resolved as it is read (not its id's events grouped first, then regrouped by
    person): the scan keeps only exposures and metric events, few enough that one identities lookup each
    costs less than grouping every id's arrays twice. The scan first keeps the events whose name (or page
    type) could match at all: plain columns the engine filters on before it reads any property."""
    definition = resolved.definition
    params = Params(scope.project_id, scope.cohorts)
    metrics = definition.metrics
    joins = persons.joins(True, definition.targeting, *(goal for goal, _ in resolved.targets))
    window = int(definition.window.total_seconds() * 1000)
    start, stop = scope.span.start, scope.span.end
    scan_from = start - definition.window
    scan_to = min(stop + definition.window, scope.now)
    exposure = all_of(f"e.event = {params.add(definition.exposure_event, 'String')}",
                      f"{Property('experiment').text()} = {params.add(resolved.key, 'String')}",
                      f"e.ts >= {params.add(start, UTC_TIME)}", f"e.ts < {params.add(stop, UTC_TIME)}",
                      compile_group(definition.targeting, params))
    conditions = [goals.condition(goal, params) for goal, _ in resolved.targets]
    bits = " + ".join(f"({c}) * {1 << i}" for i, c in enumerate(conditions))
    # A sum metric's value rides in the event's tuple; other metrics only need their bit.
    valued = [i for i, metric in enumerate(metrics) if metric.measure == "sum"]
    # resolved_metric gives every sum metric its property
    values = [f"ifNull({Property(amount).number()}, 0)" for (_, amount), metric in zip(resolved.targets, metrics)
              if metric.measure == "sum" and amount]
    event = ", ".join(["toUnixTimestamp64Milli(e.ts)", f"toUInt32({bits})", *values])
    names = sorted({definition.exposure_event} | {goal.event for goal, _ in resolved.targets if goal.event})
    candidates = f"e.event IN {params.add(names, 'Array(String)')}"
    if any(goal.path is not None for goal, _ in resolved.targets):
        candidates = f"({candidates} OR e.type = {params.add(goals.PAGE_TYPE, 'String')})"
    rows = (
        f"SELECT {persons.PERSON_KEY} AS person, {exposure} AS exposed,"
        f" if(exposed, {Property('variant').text()}, '') AS variant, ({event}) AS ev\n"
        f"FROM events AS e\n{joins.sql}\n"
        f"WHERE e.project_id = {PROJECT} AND e.ts >= {params.add(scan_from, UTC_TIME)}"
        f" AND e.ts < {params.add(scan_to, UTC_TIME)} AND {candidates} AND (exposed OR {' OR '.join(conditions)})"
    )
    per_person = (f"SELECT person, minIf(ev.1, exposed) AS first, countIf(exposed) AS exposures,"
                  f" groupUniqArrayIf(variant, exposed) AS variants, groupArrayIf(ev, ev.2 != 0) AS evs\n"
                  f"FROM ({rows})\nGROUP BY person\nHAVING exposures > 0")
    w = params.add(window, "Int64")
    after = f"x.1 >= first AND x.1 < first + {w}"
    before = f"x.1 >= first - {w} AND x.1 < first"
    measures = []
    for i, metric in enumerate(metrics):
        for name, inside in (("y", after), ("x", before)):
            matched = f"bitTest(x.2, {i}) AND {inside}"
            if metric.measure == "conversion":
                measures.append(f"toFloat64(arrayExists(x -> {matched}, evs)) AS {name}{i}")
            elif metric.measure == "count":
                measures.append(f"toFloat64(arrayCount(x -> {matched}, evs)) AS {name}{i}")
            else:
                measures.append(f"arraySum(x -> if({matched}, x.{3 + valued.index(i)}, 0), evs) AS {name}{i}")
    tz = params.add(scope.timezone, "String")
    day = time_sql.bucket("day", "fromUnixTimestamp64Milli(first, 'UTC')", tz)
    per_metric = ", ".join(f"sum(y{i}), sum(y{i} * y{i}), sum(x{i}), sum(x{i} * x{i}), sum(x{i} * y{i})"
                           for i in range(len(metrics)))
    return params.query(
        f"SELECT length(variants) > 1 AS mixed, if(mixed, '', variants[1]) AS variant, {day} AS day, count() AS n,"
        f" {per_metric}\n"
        f"FROM (SELECT first, variants, {', '.join(measures)}\nFROM ({per_person}))\n"
        f"GROUP BY mixed, variant, day\nORDER BY mixed, variant, day"
    )


def run(client: Client, project_id: int, request: ExperimentRequest, *, now: datetime | None = None) -> ExperimentResult:
    resolved = _resolve(client, project_id, request)
    scope = _scope(client, project_id, request, resolved, now)
    definition = resolved.definition
    variants = [v.key for v in definition.variants]
    metrics = definition.metrics
    days = dates.bucket_starts(scope.span, "day", scope.timezone) if scope.span.end > scope.span.start else []
    position = {dates.key(d): i for i, d in enumerate(days)}
    # sums[variant][day][metric] = [n, Σy, Σy², Σx, Σx², Σxy]
    sums = {v: [[[0.0] * 6 for _ in metrics] for _ in days] for v in variants}
    mixed, unknown = 0, {}
    for row in fetch(client, _query(scope, resolved)):
        is_mixed, variant, day, n, numbers = row[0], row[1], row[2], int(row[3]), row[4:]
        if is_mixed:
            mixed += n
        elif variant not in sums:
            unknown[variant] = unknown.get(variant, 0) + n
        else:
            for m in range(len(metrics)):
                sums[variant][position[day]][m] = [n, *map(float, numbers[5 * m:5 * m + 5])]
    # cumulative[variant][metric][d]: the persons first exposed on days 0..d; the last day is the total
    cumulative = {v: [_cumulative(sums[v], m) for m in range(len(metrics))] for v in variants}
    totals = {v: [found[-1] if found else Sample(0, 0.0, 0.0) for found in cumulative[v]] for v in variants}
    exposed = [totals[v][0].n for v in variants]
    srm = srm_check(exposed, [v.weight for v in definition.variants])
    required = saved.design_n(definition)
    planned = required or DEFAULT_PLANNED_N
    comparisons = [[_compare(totals[variants[0]][m], totals[v][m], metric, definition, request.cuped, planned)
                    for v in variants[1:]] for m, metric in enumerate(metrics)]
    relied = [c[1] if request.cuped and c[1] is not None else c[0] for row in comparisons for c in row]
    tested = [i for i, c in enumerate(relied) if c is not None]
    adjusted = dict(zip(tested, adjust_p_values([relied[i].p_value for i in tested], request.correction)))
    adjusted_sequential = dict(zip(tested, adjust_p_values([relied[i].sequential_p_value for i in tested],
                                                           request.correction)))
    results = []
    for m, metric in enumerate(metrics):
        shown = []
        for t, variant in enumerate(variants[1:]):
            index = m * (len(variants) - 1) + t
            plain, cuped = comparisons[m][t]
            shown.append(VariantComparison(
                variant=variant, comparison=plain, cuped=cuped, adjusted_p_value=adjusted.get(index),
                adjusted_sequential_p_value=adjusted_sequential.get(index),
                verdict=_sentence(relied[index], adjusted.get(index), adjusted_sequential.get(index), variants[0],
                                  variant, metric, srm, required, totals[variants[0]][m].n, totals[variant][m].n)))
        results.append(MetricResult(metric=m, name=metric.label(), measure=metric.measure,
                                    variants=[_stats(v, totals[v][m]) for v in variants], comparisons=shown))
    timeline = [point for m in range(len(metrics))
                for point in _timeline(cumulative, variants, days, m, metrics[m], definition.alpha)]
    primary = " ".join(c.verdict for c in results[0].comparisons)
    return ExperimentResult(
        key=resolved.key, name=resolved.name, timezone=scope.timezone, date_from=scope.span.start,
        date_to=scope.span.end, variants=variants, exposed=exposed, excluded=Excluded(mixed, unknown),
        required_sample_size=required, srm=srm, correction=request.correction, metrics=results, timeline=timeline,
        verdict=primary)


def explain(client: Client, project_id: int, request: ExperimentRequest, *, now: datetime | None = None) -> Query:
    resolved = _resolve(client, project_id, request)
    return _query(_scope(client, project_id, request, resolved, now), resolved)


def _cumulative(per_day: list[list[list[float]]], metric: int) -> list[Sample]:
    """The metric's sufficient statistics over the persons first exposed up to each day."""
    running = [0.0] * 6
    found = []
    for day in per_day:
        running = [a + b for a, b in zip(running, day[metric])]
        n, *rest = running
        found.append(Sample(int(n), *rest))
    return found


def _stats(variant: str, sample: Sample) -> VariantStats:
    return VariantStats(variant=variant, n=sample.n, mean=_mean(sample),
                        **{name: getattr(sample, name) for name in SUMS})


def _compare(control: Sample, treatment: Sample, metric: Metric, definition: ExperimentDefinition, cuped: bool,
             planned: int) -> tuple[Comparison | None, Comparison | None]:
    """(plain, CUPED) comparisons, the always-valid test tuned to `planned` persons per variant; None where
    the statistics need more persons (or, for CUPED, a varying pre-exposure value)."""
    if min(control.n, treatment.n) < 2:
        return None, None
    plain = compare(control, treatment, kind=metric.kind, alpha=definition.alpha, planned_n=planned)
    varies = all(s.pre_sum_squares * s.n > s.pre_sum ** 2 for s in (control, treatment))
    adjusted = compare(control, treatment, kind=metric.kind, alpha=definition.alpha, cuped=True,
                       planned_n=planned) if cuped and varies else None
    return plain, adjusted


def _sentence(comparison: Comparison | None, adjusted: float | None, adjusted_sequential: float | None,
              control: str, treatment: str, metric: Metric, srm: SrmCheck, required: int | None, control_n: int,
              treatment_n: int) -> str:
    if comparison is None:
        return (f"{treatment} vs {control} on {metric.label()}: not enough data yet ({control_n:,} and "
                f"{treatment_n:,} persons exposed; each variant needs at least 2).")
    return verdict(comparison, control=control, treatment=treatment, metric=metric.label(), srm=srm,
                   required_n=required, adjusted_p_value=adjusted, adjusted_sequential_p_value=adjusted_sequential)


def _timeline(cumulative: dict[str, list[list[Sample]]], variants: list[str], days: list[datetime], metric: int,
              definition: Metric, alpha: float) -> list[TimelinePoint]:
    """Each treatment against the control, cumulated to the end of each day: the relative lift and its
    delta-method interval as `compare` computes them without CUPED, in plain arithmetic (a full comparison
    a day, variant and metric cost most of the answer's time: ~3 ms each)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    points = []
    for d, day in enumerate(days):
        control = cumulative[variants[0]][metric][d]
        for variant in variants[1:]:
            treatment = cumulative[variant][metric][d]
            lift = low = high = None
            moments_c, moments_t = _moments(control, definition), _moments(treatment, definition)
            if moments_c and moments_t and moments_c[1]:
                (n_c, mean_c, var_c), (n_t, mean_t, var_t) = moments_c, moments_t
                lift = mean_t / mean_c - 1
                error = (var_t / n_t / mean_c**2 + mean_t**2 * var_c / n_c / mean_c**4) ** 0.5
                low, high = lift - z * error, lift + z * error
            points.append(TimelinePoint(
                day=day, metric=metric, variant=variant, n=treatment.n, mean=_mean(treatment),
                control_mean=_mean(control), relative_lift=lift, low=low, high=high))
    return points


def _mean(sample: Sample) -> float | None:
    return sample.sum / sample.n if sample.n else None


def _moments(sample: Sample, metric: Metric) -> tuple[int, float, float] | None:
    """(n, mean, variance of a person's value): p(1 - p) for a conversion, the sample variance otherwise;
    None under 2 persons."""
    if sample.n < 2:
        return None
    mean = sample.sum / sample.n
    if metric.kind == "conversion":
        return sample.n, mean, mean * (1 - mean)
    return sample.n, mean, max(sample.sum_squares - sample.sum * mean, 0.0) / (sample.n - 1)
