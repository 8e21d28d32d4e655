"""The tabular part of each analysis's result, as rows (one dict each), for CSV and Arrow answers.

Series over time become long tables (one row per bucket and line), matrices one row per cell, so any
spreadsheet or dataframe can pivot them back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from nexus.analyses import funnel_persons, funnels, lifecycle, retention, sessions, stickiness, trends

Rows = list[dict[str, Any]]


def _trends(result: trends.TrendsResult) -> Rows:
    rows = [{"period": "current", "bucket": bucket, "series": line.series, "label": line.label,
             "breakdown": line.breakdown, "value": value}
            for line in result.lines for bucket, value in zip(result.buckets, line.values)]
    rows += [{"period": "previous", "bucket": bucket, "series": line.series, "label": line.label,
              "breakdown": line.breakdown, "value": value}
             for line in result.previous or [] for bucket, value in zip(result.previous_buckets or [], line.values)]
    return rows


def _funnel(result: funnels.FunnelResult) -> Rows:
    return [{"breakdown": group.breakdown, **msgspec.structs.asdict(step)} for group in result.groups
            for step in group.steps]


def _funnel_persons(result: funnel_persons.FunnelPersonsResult) -> Rows:
    return [msgspec.structs.asdict(person) for person in result.persons]


def _retention(result: retention.RetentionResult) -> Rows:
    groups = [(None, result.cohorts), *((b.breakdown, b.cohorts) for b in result.breakdowns)]
    return [{"breakdown": label, "cohort": cohort.period, "cohort_persons": cohort.persons, "period_offset": k,
             "persons": count, "percentage": percentage}
            for label, cohorts in groups for cohort in cohorts
            for k, (count, percentage) in enumerate(zip(cohort.counts, cohort.percentages))]


def _sessions(result: sessions.SessionsResult) -> Rows:
    return [{"bucket": bucket, "breakdown": line.breakdown, "sessions": line.sessions[i],
             "avg_duration": line.avg_duration[i], "median_duration": line.median_duration[i],
             "pages_per_session": line.pages_per_session[i], "bounce_rate": line.bounce_rate[i]}
            for line in result.lines for i, bucket in enumerate(result.buckets)]


def _stickiness(result: stickiness.StickinessResult) -> Rows:
    return [{"breakdown": group.breakdown if group is not result else None, "periods_active": k, "persons": persons,
             "at_least": at_least}
            for group in (result, *result.breakdowns)
            for k, (persons, at_least) in enumerate(zip(group.persons, group.cumulative), start=1)]


def _lifecycle(result: lifecycle.LifecycleResult) -> Rows:
    return [{"breakdown": group.breakdown if group is not result else None, "period": period, "new": new,
             "returning": returning, "resurrecting": resurrecting, "dormant": dormant}
            for group in (result, *result.breakdowns)
            for period, new, returning, resurrecting, dormant in
            zip(result.periods, group.new, group.returning, group.resurrecting, group.dormant)]


TABLES: dict[str, Callable[[Any], Rows]] = {
    "trends": _trends, "funnel": _funnel, "funnel_persons": _funnel_persons, "retention": _retention,
    "sessions": _sessions, "stickiness": _stickiness, "lifecycle": _lifecycle,
}


def rows(kind: str, result: msgspec.Struct) -> Rows:
    return TABLES[kind](result)
