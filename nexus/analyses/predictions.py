"""Predictions: how the project's persons are scored, and who is most worth keeping.

Definition. Everything reads the project's latest scoring run in `person_predictions` (the run with the
latest `scored_at`, ties by run id; nexus.predict.scoring writes one row per person per run). `persons`:
the run's rows. `churn`, `engagement`: histograms over `bins` equal-width bins of [0, 1] and [0, 100]
(a value on a bin's upper edge counts in the next bin; the maximum in the last one); `ltv`: the same over
[0, the run's highest LTV] (one bin [0, 0] when every LTV is 0); a model that did not score gives an empty
histogram. `at_risk`: the `top` persons with the largest expected revenue lost, `churn_probability × ltv`,
ties by person id; persons without either score are left out. Without any run, `run_id` is '' and every
list is empty.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses.sql import PROJECT, Params, Query, fetch
from nexus.errors import InvalidRequest

# The project's latest scoring run: its rows are the persons' current scores (also read by cohorts and
# person profiles).
LATEST_RUN = (f"(SELECT argMax(run_id, (scored_at, run_id)) FROM person_predictions "
              f"WHERE project_id = {PROJECT})")
MAX_BINS = 100
MAX_TOP = 1000


class PredictionsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    bins: int = 10
    top: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.bins <= MAX_BINS:
            raise InvalidRequest(f"bins must be 1..{MAX_BINS}", field="bins")
        if not 1 <= self.top <= MAX_TOP:
            raise InvalidRequest(f"top must be 1..{MAX_TOP}", field="top")


class Bin(msgspec.Struct, frozen=True):
    low: float
    high: float
    persons: int


class AtRisk(msgspec.Struct, frozen=True):
    person: str
    churn_probability: float
    ltv: float
    expected_loss: float
    engagement: float


class PredictionsResult(msgspec.Struct, frozen=True):
    run_id: str
    scored_at: datetime | None
    persons: int
    churn_version: str
    ltv_version: str
    churn: list[Bin]
    ltv: list[Bin]
    engagement: list[Bin]
    at_risk: list[AtRisk]


Request = PredictionsRequest
Result = PredictionsResult


def _histogram(column: str, low: str, high: str, bins: int) -> str:
    """[(bin, persons)] of `column` over [low, high] in `bins` equal bins; the maximum in the last."""
    width = f"((({high}) - ({low})) / {bins})"
    index = f"if({width} = 0, 0, least(toUInt32(floor(({column} - ({low})) / {width})), {bins - 1}))"
    return f"arraySort(groupArray((b, n))) FROM (SELECT {index} AS b, count() AS n FROM latest WHERE {column} IS NOT NULL GROUP BY b)"


def _query(project_id: int, request: PredictionsRequest) -> Query:
    p = Params(project_id)
    bins, top = request.bins, p.add(request.top, "UInt32")
    latest = f"SELECT * FROM person_predictions WHERE project_id = {PROJECT} AND run_id = {LATEST_RUN}"
    sql = (
        f"WITH latest AS ({latest})\n"
        f"SELECT (SELECT any(run_id) FROM latest), (SELECT any(scored_at) FROM latest), (SELECT count() FROM latest),\n"
        f"  (SELECT any(churn_version) FROM latest), (SELECT any(ltv_version) FROM latest),\n"
        f"  (SELECT max(ltv) FROM latest),\n"
        f"  (SELECT {_histogram('churn_probability', '0', '1', bins)}),\n"
        f"  (SELECT {_histogram('ltv', '0', '(SELECT max(ltv) FROM latest)', bins)}),\n"
        f"  (SELECT {_histogram('engagement', '0', '100', bins)}),\n"
        f"  (SELECT groupArray((person_id, churn_probability, ltv, loss, engagement)) FROM (\n"
        f"     SELECT person_id, assumeNotNull(churn_probability) AS churn_probability, assumeNotNull(ltv) AS ltv,\n"
        f"            churn_probability * ltv AS loss, engagement FROM latest\n"
        f"     WHERE churn_probability IS NOT NULL AND ltv IS NOT NULL\n"
        f"     ORDER BY loss DESC, person_id LIMIT {top}))"
    )
    return p.query(sql)


def _bins(found: list[tuple[int, int]], low: float, high: float, bins: int, scored: bool) -> list[Bin]:
    if not scored:
        return []
    counts = dict(found)
    if high == low:
        return [Bin(low, high, sum(counts.values()))]
    width = (high - low) / bins
    return [Bin(low + i * width, low + (i + 1) * width, counts.get(i, 0)) for i in range(bins)]


def run(client: Client, project_id: int, request: PredictionsRequest, *, now: datetime | None = None) -> PredictionsResult:
    (run_id, scored_at, persons, churn_version, ltv_version, max_ltv, churn, ltv, engagement,
     at_risk) = fetch(client, _query(project_id, request))[0]
    if not persons:
        return PredictionsResult("", None, 0, "", "", [], [], [], [])
    bins = request.bins
    return PredictionsResult(
        run_id, scored_at, persons, churn_version, ltv_version,
        _bins(churn, 0.0, 1.0, bins, bool(churn_version)),
        _bins(ltv, 0.0, float(max_ltv or 0.0), bins, bool(ltv_version)),
        _bins(engagement, 0.0, 100.0, bins, True),
        [AtRisk(person, float(c), float(v), float(loss), float(e)) for person, c, v, loss, e in at_risk])


def explain(client: Client, project_id: int, request: PredictionsRequest, *, now: datetime | None = None) -> Query:
    return _query(project_id, request)
