"""Training rows for a model: the features of nexus.predict.features at cutoffs a week apart, each row with
what the person did in the horizon after its cutoff (the label), split by time.

The split. The validation cutoff is the latest whose horizon the data covers: the UTC midnight after the
last event, minus the horizon. Training cutoffs step back a week at a time from the validation cutoff minus
the horizon, so that no training label reads an event after the validation cutoff (a training row never
sees the period it is judged on), and never earlier than `MIN_HISTORY_DAYS` after the first event (a
cutoff needs some history to describe). The population at each cutoff: persons with an event in the
`active_days` before it — those a team could still keep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import msgspec
import pandas as pd
from clickhouse_connect.driver.client import Client

from nexus.analyses.persons import IDENTITIES_JOIN, PERSON_KEY
from nexus.analyses.sql import ENGINE_SETTINGS, PROJECT
from nexus.errors import InvalidRequest
from nexus.predict import features

MIN_HISTORY_DAYS = 14
CUTOFF_STEP = timedelta(days=7)

Progress = Callable[[float], None]

_LABELS = f"""
SELECT {PERSON_KEY} AS person_key, count() AS events_after,
       sum(ifNull(toFloat64OrNull(toString(e.properties.revenue)), 0)) AS revenue_after
FROM events AS e
{IDENTITIES_JOIN}
WHERE e.project_id = {PROJECT}
  AND e.ts >= fromUnixTimestamp64Milli({{cutoff_ms:Int64}}, 'UTC')
  AND e.ts < fromUnixTimestamp64Milli({{until_ms:Int64}}, 'UTC')
GROUP BY person_key
"""


class TrainingRange(msgspec.Struct, frozen=True):
    """The cutoffs a model learned from and was validated on, and the horizon of its labels."""

    train_cutoffs: list[datetime]
    validation_cutoff: datetime
    horizon_days: int
    active_days: int


def data_span(client: Client, project_id: int) -> tuple[datetime, datetime] | None:
    """The first and last event's times of the project; None without events."""
    first, last, count = client.query(
        "SELECT min(ts), max(ts), count() FROM events WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows[0]
    if not count:
        return None
    return first.replace(tzinfo=timezone.utc), last.replace(tzinfo=timezone.utc)


def plan(client: Client, project_id: int, horizon_days: int, train_cutoffs: int, active_days: int) -> TrainingRange:
    """The cutoffs for a model over the project's events, or a refusal saying how much data is missing."""
    span = data_span(client, project_id)
    if span is None:
        raise InvalidRequest("training refused: the project has no events")
    first, last = span
    end = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    validation = end - timedelta(days=horizon_days)
    earliest = first + timedelta(days=MIN_HISTORY_DAYS)
    cutoffs = []
    cutoff = validation - timedelta(days=horizon_days)
    while cutoff >= earliest and len(cutoffs) < train_cutoffs:
        cutoffs.append(cutoff)
        cutoff -= CUTOFF_STEP
    if not cutoffs:
        needed = MIN_HISTORY_DAYS + 2 * horizon_days
        raise InvalidRequest(
            f"training refused: the events span {(end - first).days} days, and a {horizon_days}-day horizon needs "
            f"at least {needed} ({MIN_HISTORY_DAYS} of history before a training cutoff, its horizon, then the "
            "validation horizon)", field="horizon_days")
    return TrainingRange(sorted(cutoffs), validation, horizon_days, active_days)


def labelled(client: Client, project_id: int, cutoff: datetime, horizon_days: int, active_days: int) -> pd.DataFrame:
    """The features at `cutoff` of persons active in the `active_days` before it, with `events_after` and
    `revenue_after`: their events and revenue in the `horizon_days` from the cutoff (0 when none)."""
    rows = features.extract(client, project_id, cutoff)
    rows = rows[rows["days_since_last"] <= active_days].reset_index(drop=True)
    start = features.cutoff_ms(cutoff)
    after = client.query_arrow(_LABELS, parameters={"project_id": project_id, "cutoff_ms": start,
                                                    "until_ms": start + horizon_days * features.DAY_MS},
                               settings=ENGINE_SETTINGS).to_pandas()
    rows = rows.merge(after, on="person_key", how="left")
    rows[["events_after", "revenue_after"]] = rows[["events_after", "revenue_after"]].fillna(0).astype("float64")
    rows["cutoff"] = cutoff
    return rows


def split(client: Client, project_id: int, training: TrainingRange,
          progress: Progress = lambda fraction: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows (all training cutoffs) and the validation rows (the validation cutoff)."""
    cutoffs = [*training.train_cutoffs, training.validation_cutoff]
    frames = []
    for i, cutoff in enumerate(cutoffs, 1):
        frames.append(labelled(client, project_id, cutoff, training.horizon_days, training.active_days))
        progress(i / len(cutoffs))
    return pd.concat(frames[:-1], ignore_index=True), frames[-1]
