"""The tabular part of each analysis's result, as an Arrow table, for CSV and Arrow answers.

Series over time become long tables (one row per bucket and line), matrices one row per cell, so any
spreadsheet or dataframe can pivot them back. Each kind names its columns once, so an empty result is
still a table with its header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import pyarrow as pa

from nexus.analyses import (events, funnel_persons, funnels, lifecycle, live, overview, retention, sessions, stickiness,
                            trends)
from nexus.analyses import person_list, person_profile, retention_persons
from nexus.analyses import paths, paths_persons
from nexus.analyses import cohort_size
from nexus.analyses import goals
from nexus.analyses import experiment
from nexus.analyses import predictions
from nexus.analyses import attribution, conversion_paths

Rows = Iterable[tuple]


def _trends(result: trends.TrendsResult) -> Rows:
    for period, lines, buckets in (("current", result.lines, result.buckets),
                                   ("previous", result.previous or [], result.previous_buckets or [])):
        for line in lines:
            for bucket, value in zip(buckets, line.values):
                yield period, bucket, line.series, line.label, line.breakdown, value


def _funnel(result: funnels.FunnelResult) -> Rows:
    return ((group.breakdown, *msgspec.structs.astuple(step)) for group in result.groups for step in group.steps)


def _funnel_persons(result: funnel_persons.FunnelPersonsResult) -> Rows:
    return (msgspec.structs.astuple(person) for person in result.persons)


def _retention(result: retention.RetentionResult) -> Rows:
    groups = [(None, result.cohorts), *((b.breakdown, b.cohorts) for b in result.breakdowns)]
    return ((label, cohort.period, cohort.persons, k, count, percentage)
            for label, cohorts in groups for cohort in cohorts
            for k, (count, percentage) in enumerate(zip(cohort.counts, cohort.percentages)))


def _sessions(result: sessions.SessionsResult) -> Rows:
    return ((bucket, line.breakdown, line.sessions[i], line.avg_duration[i], line.median_duration[i],
             line.pages_per_session[i], line.bounce_rate[i])
            for line in result.lines for i, bucket in enumerate(result.buckets))


def _stickiness(result: stickiness.StickinessResult) -> Rows:
    return ((group.breakdown if group is not result else None, k, persons, at_least)
            for group in (result, *result.breakdowns)
            for k, (persons, at_least) in enumerate(zip(group.persons, group.cumulative), start=1))


def _lifecycle(result: lifecycle.LifecycleResult) -> Rows:
    return ((group.breakdown if group is not result else None, *values)
            for group in (result, *result.breakdowns)
            for values in zip(result.periods, group.new, group.returning, group.resurrecting, group.dormant))


def _overview(result: overview.OverviewResult) -> Rows:
    """Each KPI's totals (bucket None), then its sparkline's points, then each top list's rows (the list's
    name as section, the row's value as name)."""
    for kpi in result.kpis:
        yield "kpi", kpi.name, None, kpi.value, kpi.previous, None, None
    for kpi in result.kpis:
        for point in kpi.series:
            yield "series", kpi.name, point.t, point.value, None, None, None
    for top in result.top:
        for row in top.rows:
            yield top.dimension, row.value, None, None, None, row.events, row.persons


def _live(result: live.LiveResult) -> Rows:
    return ((point.t, point.events) for point in result.series)


def _events(result: events.EventsResult) -> Rows:
    return (msgspec.structs.astuple(row) for row in result.rows)


def _persons(result: person_list.PersonListResult) -> Rows:
    return ((row.person, ", ".join(row.distinct_ids), row.first_seen, row.last_seen, row.events, row.revenue,
             row.traits) for row in result.persons)


def _person(result: person_profile.PersonResult) -> Rows:
    """The timeline: the profile's page of events, each with its person."""
    return ((result.person, *msgspec.structs.astuple(event)) for event in result.timeline)


def _retention_persons(result: retention_persons.RetentionPersonsResult) -> Rows:
    return (msgspec.structs.astuple(person) for person in result.persons)


def _paths(result: paths.PathsResult) -> Rows:
    """One row per edge, its ends as (step, name): what a Sankey or a spreadsheet pivot needs."""
    node = {n.id: n for n in result.nodes}
    return ((node[e.source].step, node[e.source].name, node[e.target].step, node[e.target].name, e.value, e.persons)
            for e in result.edges)


def _paths_persons(result: paths_persons.PathsPersonsResult) -> Rows:
    return (msgspec.structs.astuple(person) for person in result.persons)


def _goals(result: goals.GoalsResult) -> Rows:
    """One row per goal, breakdown value and bucket, then the line's totals (bucket None: the whole range)."""
    measures = goals.GoalTotals.__struct_fields__
    for line in result.lines:
        for i, bucket in enumerate(result.buckets):
            yield (line.goal, line.name, line.breakdown, bucket, *(getattr(line, m)[i] for m in measures))
        yield (line.goal, line.name, line.breakdown, None, *msgspec.structs.astuple(line.total))


def _attribution(result: attribution.AttributionResult) -> Rows:
    """One row per model and label."""
    return (msgspec.structs.astuple(row) for row in result.rows)


def _conversion_paths(result: conversion_paths.ConversionPathsResult) -> Rows:
    """One row per path, its labels joined by ' > '."""
    return ((" > ".join(p.path), *msgspec.structs.astuple(p)[1:]) for p in result.paths)


def _experiment(result: experiment.ExperimentResult) -> Rows:
    """One row per metric and variant: its sufficient statistics, and for a treatment its comparison with
    the control (CUPED-adjusted where the result relied on it)."""
    for metric in result.metrics:
        compared = {c.variant: c for c in metric.comparisons}
        for stats in metric.variants:
            found = compared.get(stats.variant)
            used = found and (found.cuped or found.comparison)
            numbers = (used.absolute_lift, used.absolute_interval.low, used.absolute_interval.high, used.relative_lift,
                       used.relative_interval.low if used.relative_interval else None,
                       used.relative_interval.high if used.relative_interval else None, used.p_value,
                       found.adjusted_p_value, used.sequential_p_value, used.probability_to_beat,
                       used.variance_reduction) if used else (None,) * 11
            yield (metric.metric, metric.name, *msgspec.structs.astuple(stats), *numbers,
                   found.verdict if found else None)


def _fields(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(struct))


def _predictions(result: predictions.PredictionsResult) -> Rows:
    """The three distributions, a row per bin, then the at-risk persons, a row each."""
    for section in ("churn", "ltv", "engagement"):
        for b in getattr(result, section):
            yield (section, None, b.low, b.high, b.persons, None, None, None, None)
    for p in result.at_risk:
        yield ("at_risk", p.person, None, None, None, p.churn_probability, p.ltv, p.expected_loss, p.engagement)


def _cohort_size(result: cohort_size.CohortSizeResult) -> Rows:
    return ((bucket, size) for bucket, size in zip(result.buckets, result.sizes))


TABLES: dict[str, tuple[tuple[str, ...], Callable[[Any], Rows]]] = {
    "trends": (("period", "bucket", "series", "label", "breakdown", "value"), _trends),
    "funnel": (("breakdown", *_fields(funnels.StepResult)), _funnel),
    "funnel_persons": (_fields(funnel_persons.FunnelPerson), _funnel_persons),
    "retention": (("breakdown", "cohort", "cohort_persons", "period_offset", "persons", "percentage"), _retention),
    "sessions": (("bucket", "breakdown", "sessions", "avg_duration", "median_duration", "pages_per_session",
                  "bounce_rate"), _sessions),
    "stickiness": (("breakdown", "periods_active", "persons", "at_least"), _stickiness),
    "lifecycle": (("breakdown", "period", "new", "returning", "resurrecting", "dormant"), _lifecycle),
    "overview": (("section", "name", "bucket", "value", "previous", "events", "persons"), _overview),
    "live": (("minute", "events"), _live),
    "events": (_fields(events.EventRow), _events),
    "goals": (("goal", "name", "breakdown", "bucket", *_fields(goals.GoalTotals)), _goals),
    "persons": (_fields(person_list.PersonRow), _persons),
    "person": (("person", *_fields(person_profile.TimelineEvent)), _person),
    "retention_persons": (_fields(retention_persons.RetentionPerson), _retention_persons),
    "paths": (("source_step", "source", "target_step", "target", "value", "persons"), _paths),
    "paths_persons": (_fields(paths_persons.PathPerson), _paths_persons),
    "cohort_size": (("bucket", "persons"), _cohort_size),
    "experiment": (("metric", "name", *_fields(experiment.VariantStats), "absolute_lift", "absolute_low",
                    "absolute_high", "relative_lift", "relative_low", "relative_high", "p_value", "adjusted_p_value",
                    "sequential_p_value", "probability_to_beat", "variance_reduction", "verdict"), _experiment),
    "attribution": (_fields(attribution.AttributionRow), _attribution),
    "conversion_paths": (_fields(conversion_paths.ConversionPath), _conversion_paths),
    "predictions": (("section", "person", "low", "high", "persons", "churn_probability", "ltv", "expected_loss",
                     "engagement"), _predictions),
}


def table(kind: str, result: msgspec.Struct) -> pa.Table:
    columns, rows = TABLES[kind]
    values = list(zip(*rows(result))) or [()] * len(columns)  # no rows: empty columns, the header stays
    return pa.table({name: pa.array(column) for name, column in zip(columns, values)})
