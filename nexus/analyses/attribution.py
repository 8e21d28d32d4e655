"""Attribution: which channels, sources or campaigns earn a goal's conversions, by seven models side by side.

Definition. Journeys as `nexus.analyses.touchpoints` builds them: each conversion of the goal in the range
with its path (the touches in its lookback, default 30 days, after the "last non-direct" rule of the
project's channel rules), and each person's lost journey (touches in the range after their last conversion).
Every attributed conversion (non-empty path) gives out one credit over the touches of its path, each touch
crediting its label (`by`: channel, source or campaign):
- `first_touch`: all to the first touch; `last_touch`: all to the last;
- `linear`: 1/n to each of the n touches;
- `time_decay`: touch i weighs 2^(−(conversion − tᵢ) / half_life) (`half_life_days`, default 7), credits
  are the weights over their sum;
- `position_based`: `position_first` (0.4) to the first touch, `position_last` (0.4) to the last, the rest
  shared evenly by those between; two touches split the credit in the ratio first : last; one takes all;
- `markov`: first-order Markov chain removal effect over the paths, lost journeys included, scaled to the
  attributed conversions and their value (`attribution_models.markov_credits`);
- `shapley`: Shapley values of the labels in the game "conversions (value) of the paths whose labels are
  within a set" (`attribution_models.shapley_credits`).
The rule-based credits of one conversion sum to 1 (to floating-point rounding) and are computed in
ClickHouse with array functions; the data-driven models solve in numpy over the path counts ClickHouse builds.
Per label and model: `conversions` (credits summed), `value` (each conversion's value times its credit;
None when the goal has no value property), `share` (of the attributed conversions). A label repeated on a
path is credited for each of its touches. Labels past the top `limit` (by credits of all models) merge into
`breakdown.OTHER`, before the data-driven models run. With ad spend imported (POST /v1/import?table=ad_spend),
`cost` is the spend of the range's local days (by channel, or by campaign name with `by="campaign"`; none by
source), `cost_per_conversion` = cost / conversions, `roas` = value / cost.
Unattributed conversions (no touch in their lookback) are counted apart and credit nobody.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import touchpoints
from nexus.analyses.attribution_models import MAX_SHAPLEY_CHANNELS, PathCount, markov_credits, shapley_credits
from nexus.analyses.breakdown import OTHER
from nexus.analyses.dates import DateRange
from nexus.analyses.goals import GoalSummary, InlineGoal
from nexus.analyses.scope import AnalysisScope, scope_of
from nexus.analyses.sql import PROJECT, UTC_TIME, Params, Query, fetch
from nexus.analyses.touchpoints import TouchLabel
from nexus.errors import InvalidRequest
from nexus.meta import channels
from nexus.meta import goals as saved
from nexus.meta.channels import ChannelSettings
from nexus.meta.goals import GoalDefinition

Model = Literal["first_touch", "last_touch", "linear", "time_decay", "position_based", "markov", "shapley"]
RULE_BASED: tuple[Model, ...] = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
MODELS: tuple[Model, ...] = (*RULE_BASED, "markov", "shapley")
MAX_LIMIT = MAX_SHAPLEY_CHANNELS - 1  # the labels kept, and OTHER: Shapley's players


class AttributionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    conversion: str | InlineGoal  # a saved goal's id, or an inline goal (an event with its value property)
    date_range: DateRange = DateRange()
    timezone: str | None = None
    by: TouchLabel = "channel"
    models: list[Model] = msgspec.field(default_factory=lambda: list(MODELS))
    lookback_days: int = 30
    half_life_days: float = 7.0
    position_first: float = 0.4
    position_last: float = 0.4
    gap_minutes: int = 30
    limit: int = 10

    def __post_init__(self) -> None:
        check_journeys(self.lookback_days, self.gap_minutes)
        if not self.models or len(set(self.models)) != len(self.models):
            raise InvalidRequest("models: name one or more models, each once", field="models")
        if not 0 < self.half_life_days <= 365:
            raise InvalidRequest("half_life_days must be above 0 and at most 365", field="half_life_days")
        for name in ("position_first", "position_last"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidRequest(f"{name} must be 0..1", field=name)
        if self.position_first + self.position_last > 1:
            raise InvalidRequest("position_first + position_last must be at most 1", field="position_last")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be 1..{MAX_LIMIT}", field="limit")


def check_journeys(lookback_days: int, gap_minutes: int) -> None:
    """The bounds attribution and conversion paths share."""
    if not 1 <= lookback_days <= 365:
        raise InvalidRequest("lookback_days must be 1..365", field="lookback_days")
    if not 1 <= gap_minutes <= 24 * 60:
        raise InvalidRequest("gap_minutes must be 1..1440", field="gap_minutes")


class AttributionRow(msgspec.Struct, frozen=True):
    model: Model
    label: str
    conversions: float
    value: float | None
    share: float | None
    cost: float | None
    cost_per_conversion: float | None
    roas: float | None


class AttributionResult(msgspec.Struct, frozen=True):
    timezone: str
    date_from: datetime
    date_to: datetime
    date_range: DateRange
    by: TouchLabel
    lookback_days: int
    goal: GoalSummary
    models: list[Model]
    conversions: int  # in the range
    attributed: int  # with a touch in their lookback
    unattributed: int
    value: float | None  # of all conversions (None without a value property)
    lost_journeys: int  # persons' touches after their last conversion (or without one): the data-driven models' losses
    cost: float | None  # ad spend of the range (None when none was imported)
    labels: list[str]  # by credits of every model, OTHER last
    rows: list[AttributionRow]  # per model (in request order) and label (in `labels` order)


# What the registry hands the API: the body decodes into Request, run() returns Result.
Request = AttributionRequest
Result = AttributionResult


class Resolved(msgspec.Struct, frozen=True):
    """What a request names by id, as stored now: its goal and the project's channel rules."""

    goal: GoalSummary
    settings: ChannelSettings


def resolve(client: Client, project_id: int, conversion: str | InlineGoal) -> Resolved:
    if isinstance(conversion, str):
        goal = saved.resolve(client, project_id, [conversion], ["conversion"])[0]
        summary = GoalSummary(goal.goal_id, goal.name, goal.definition)
    else:
        definition = GoalDefinition(event=conversion.event, path=conversion.path, where=conversion.where,
                                    value_property=conversion.value_property, currency=conversion.currency)
        summary = GoalSummary(None, conversion.name or definition.summary(), definition)
    return Resolved(summary, channels.settings_of(client, project_id))


def saved_definitions(client: Client, project_id: int, request: AttributionRequest) -> bytes:
    """The goal and channel rules as stored now, and the spend's latest import: part of the read service's
    cache key, so an answer is not served after any of them changed."""
    latest = client.query("SELECT max(version) FROM ad_spend WHERE project_id = {p:UInt32}",
                          parameters={"p": project_id}).result_rows[0][0]
    return msgspec.json.encode([resolve(client, project_id, request.conversion), latest])


def run(client: Client, project_id: int, request: AttributionRequest, *, now: datetime | None = None) -> AttributionResult:
    scope = scope_of(client, project_id, request, now)
    resolved = resolve(client, project_id, request.conversion)
    valued = resolved.goal.definition.value_property is not None
    credits: dict[str, list[float]] = {}  # label → per rule-based model: credited conversions, then value
    paths: list[tuple[tuple[str, ...], int, int, float]] = []
    conversions = attributed = lost = 0
    total_value = 0.0
    name = touchpoints.naming(resolved.settings, request.by)
    for is_touch, label, path, converted, journeys, amount, sums in fetch(client, _query(scope, request, resolved)):
        if is_touch:
            credits[name(label)] = [float(s) for s in sums]
            continue
        amount = float(amount)
        if converted:
            conversions += journeys
            total_value += amount
            attributed += journeys if path else 0
        else:
            lost += journeys
        if path:
            paths.append((tuple(map(name, path)), journeys if converted else 0, 0 if converted else journeys, amount))
    spend = _spend(client, scope, request.by)
    labels = _ranked(credits, paths, spend or {}, request.limit)
    costs = None if spend is None else _costs(spend, labels)
    rows = []
    for model in request.models:
        found = _credits(model, credits, paths, labels)
        for label in labels:
            count, value = found.get(label, (0.0, 0.0))
            cost = None if costs is None else costs[label]
            rows.append(AttributionRow(model, label, count, value if valued else None,
                                       count / attributed if attributed else None, cost,
                                       cost / count if cost is not None and count else None,
                                       value / cost if valued and cost else None))
    return AttributionResult(scope.timezone, scope.span.start, scope.span.end, request.date_range, request.by,
                             request.lookback_days, resolved.goal, list(request.models), conversions, attributed,
                             conversions - attributed, total_value if valued else None, lost,
                             None if spend is None else sum(spend.values()), labels, rows)


def explain(client: Client, project_id: int, request: AttributionRequest, *, now: datetime | None = None) -> Query:
    scope = scope_of(client, project_id, request, now)
    return _query(scope, request, resolve(client, project_id, request.conversion))


def _ranked(credits: dict[str, list[float]], paths: list[tuple[tuple[str, ...], int, int, float]],
            spend: dict[str, float], limit: int) -> list[str]:
    """The labels by credits of every rule-based model (then by paths through them, then by spend: a label with
    spend and no touch is listed, at cost without conversions), the top `limit`, OTHER last when others were
    merged into it."""
    touches: dict[str, int] = dict.fromkeys(spend, 0)
    for path, *_ in paths:
        for label in path:
            touches[label] = touches.get(label, 0) + 1
    rule_based = len(RULE_BASED)
    order = sorted(touches, key=lambda label: (-sum(credits.get(label, [])[:rule_based]), -touches[label],
                                               -spend.get(label, 0.0), label))
    return order if len(order) <= limit else [*order[:limit], OTHER]


def _costs(spend: dict[str, float], labels: list[str]) -> dict[str, float]:
    """Each label's spend, OTHER's being the spend of every label merged into it."""
    costs = {label: spend.get(label, 0.0) for label in labels}
    if OTHER in costs:
        costs[OTHER] = sum(cost for label, cost in spend.items() if label not in costs)
    return costs


def _credits(model: Model, credits: dict[str, list[float]], paths: list[tuple[tuple[str, ...], int, int, float]],
             labels: list[str]) -> dict[str, tuple[float, float]]:
    """{label: (credited conversions, credited value)} of one model, labels past the top merged into OTHER."""
    kept = set(labels)
    found: dict[str, list[float]] = {}
    if model in RULE_BASED:
        k = RULE_BASED.index(model)
        for label, sums in credits.items():
            into = found.setdefault(label if label in kept else OTHER, [0.0, 0.0])
            into[0] += sums[k]
            into[1] += sums[len(RULE_BASED) + k]
        return {label: (count, value) for label, (count, value) in found.items()}
    counts: dict[tuple[str, ...], list[float]] = {}
    for path, converting, lost, value in paths:
        merged = tuple(label if label in kept else OTHER for label in path)
        into = counts.setdefault(merged, [0, 0, 0.0])
        into[0] += converting
        into[1] += lost
        into[2] += value
    path_counts = [PathCount(path, int(c), int(n), v) for path, (c, n, v) in counts.items()]
    solved = (markov_credits if model == "markov" else shapley_credits)(path_counts)
    return {label: (credit.conversions, credit.value) for label, credit in solved.items()}


def _query(scope: AnalysisScope, request: AttributionRequest, resolved: Resolved) -> Query:
    """One statement over the journeys: a row per label with its rule-based credits (`is_touch` 1: sums of each
    model's credits, then of credit × value), and a row per distinct path and outcome (`is_touch` 0: journeys
    and value), for the data-driven models and the totals."""
    params = Params(scope.project_id, scope.cohorts)
    journeys = touchpoints.journeys(scope, params, resolved.settings, resolved.goal.definition, by=request.by,
                                    lookback_days=request.lookback_days, gap_minutes=request.gap_minutes)
    half_life = params.add(request.half_life_days * touchpoints.DAY_MS, "Float64")
    first, last = request.position_first, request.position_last
    pair = first / (first + last) if first + last else 0.5
    # Position-based: one touch takes all; two split first : last; more give the middle ones an even share.
    position = (f"multiIf(n = 1, 1., n = 2, if(i = 1, {params.add(pair, 'Float64')}, {params.add(1 - pair, 'Float64')}),"
                f" i = 1, {params.add(first, 'Float64')}, i = n, {params.add(last, 'Float64')},"
                f" {params.add(1 - first - last, 'Float64')} / (n - 2))")
    # Arrays are passed to the lambdas as arguments, not captured: a captured array is copied for each element.
    credit = (f"arrayMap((i, x, w) -> (x.3, [toFloat64(i = 1), toFloat64(i = n), 1 / n, w / decay_sum, {position}]),"
              f" arrayEnumerate(path), path, decay)")
    per_journey = (
        f"SELECT converted, value, path, length(path) AS n, arrayMap(x -> x.3, path) AS labels,\n"
        f"  if(converted, arrayMap(x -> exp2((x.1 - at) / {half_life}), path), arrayWithConstant(n, 0.)) AS decay,"
        f" arraySum(decay) AS decay_sum\n"
        f"FROM ({journeys})"
    )
    return params.query(
        f"SELECT is_touch, label, route, converted, count() AS journeys, {touchpoints.exact_sum('value')} AS amount,\n"
        f"  arrayConcat(sumForEach(arrayMap(c -> toDecimal128(c, {touchpoints.EXACT_SCALE}), credits)),"
        f" sumForEach(arrayMap(c -> toDecimal128(c * value, {touchpoints.EXACT_SCALE}), credits))) AS sums\n"
        f"FROM (\n"
        f"  SELECT converted, value, arrayJoin(arrayPushFront(arrayMap(t -> (toUInt8(1), t.1, t.2),"
        f" if(converted, {credit}, [])), (toUInt8(0), {touchpoints.blank(request.by)}, arrayWithConstant(5, 0.)))) AS touch,\n"
        f"    touch.1 = 1 AS is_touch, touch.2 AS label, if(is_touch, [], labels) AS route, touch.3 AS credits\n"
        f"  FROM ({per_journey}))\n"
        f"GROUP BY is_touch, label, route, converted\n"
        f"ORDER BY is_touch, label, route, converted"  # a steady order for the sums run() makes of these rows
    )


def _spend(client: Client, scope: AnalysisScope, by: TouchLabel) -> dict[str, float] | None:
    """Ad spend of the range's local days per channel or campaign (spend on a channel as a whole, campaign '',
    goes to no campaign); None when the project imported none (by source: always None, spend files have no
    source)."""
    if by == "source":
        return None
    column = "channel" if by == "channel" else "campaign"
    whole = "" if by == "channel" else " AND campaign != ''"
    params = Params(scope.project_id)
    tz = params.add(scope.timezone, "String")
    rows = fetch(client, params.query(
        f"SELECT {column}, toFloat64(sum(cost)) FROM ad_spend FINAL\n"
        f"WHERE project_id = {PROJECT}{whole}"
        f" AND day >= toDate({params.add(scope.span.start, UTC_TIME)}, {tz})"
        f" AND day < toDate({params.add(scope.span.end, UTC_TIME)}, {tz})\n"
        f"GROUP BY {column}"))
    has_any = client.query("SELECT count() FROM ad_spend WHERE project_id = {p:UInt32}",
                           parameters={"p": scope.project_id}).result_rows[0][0]
    return {name: cost for name, cost in rows} if has_any else None
