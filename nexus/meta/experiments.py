"""Saved A/B experiments: what is tested on whom, how it is measured and the design it was planned with,
checked when saved.

An experiment has a key (unique in its project: its id in URLs, and what assignment hashes with each
distinct id, `nexus.meta.experiment_assignment`), a hypothesis, and a definition:
- `variants`: 2 to MAX_VARIANTS, the control first, each with a positive weight (relative: 1/1 and 50/50
  are the same even split);
- `primary_metric` and up to MAX_SECONDARY `secondary_metrics`, each measured per exposed person:
  `conversion` (1 when the person has a matching event, else 0), `count` (matching events) or `sum` (the
  sum of a numeric event property over matching events, e.g. revenue). What matches is a saved goal
  (`goal`: its id) or an inline goal (`event` or `path`, with `where`), compiled by
  `nexus.meta.goals.condition` like every goal;
- the exposure event (default `$experiment_exposure`, whose `experiment` property holds the key and whose
  `variant` property the variant), an optional `targeting` filter in the shared filter vocabulary (event
  or person properties of the exposure, or a cohort), `start` and optional `end` (UTC when no offset is
  given), the conversion window after a person's first exposure;
- the design: minimum detectable effect (`mde`, relative to the baseline), `alpha`, `power`, and
  optionally the primary metric's `baseline` (a conversion rate, or a mean with its `baseline_sd`), from
  which `sample_size` — persons per variant — is computed (`experiment_stats.sample_size`); without a
  baseline there is none and the experiment analysis relies on its always-valid test alone.

Records follow the metadata pattern (nexus.meta.records): every change writes a whole new version, read
back with FINAL, so a write is visible to the next read.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.analyses import cohort_store
from nexus.analyses.experiment_stats import Kind, sample_size
from nexus.analyses.filters import FilterGroup
from nexus.analyses.properties import PROPERTY_NAME
from nexus.errors import InvalidRequest, NotFound
from nexus.json_input import decode_json
from nexus.meta import goals, records
from nexus.meta.goals import GoalDefinition

TABLE = "experiments"
EXPOSURE_EVENT = "$experiment_exposure"
MAX_VARIANTS = 10
MAX_SECONDARY = 10
MAX_WINDOW_HOURS = 90 * 24
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Measure = Literal["conversion", "count", "sum"]
_Text = Annotated[str, msgspec.Meta(max_length=2000)]


class Variant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    weight: float = 1.0


class Metric(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One per-person measure: `measure` of the events that match `goal` (a saved goal's id) or the inline
    goal (`event` or `path`, with `where`); `value_property` is what `sum` adds up (default: the goal's
    `value_property`)."""

    name: str = ""
    measure: Measure = "conversion"
    goal: str | None = None
    event: str | None = None
    path: str | None = None
    where: FilterGroup | None = None
    value_property: str | None = None

    @property
    def kind(self) -> Kind:
        """How the statistics treat it: a 0/1 conversion, or a mean of a per-person number."""
        return "conversion" if self.measure == "conversion" else "mean"

    def inline_goal(self) -> GoalDefinition | None:
        if self.goal is not None:
            return None
        return GoalDefinition(event=self.event, path=self.path, where=self.where)

    def label(self) -> str:
        if self.name:
            return self.name
        what = self.goal or (self.event if self.event is not None else f"page {self.path}")
        return what if self.measure == "conversion" else f"{self.measure} of {self.value_property or what}"


class ExperimentDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    variants: list[Variant]
    primary_metric: Metric
    start: datetime
    secondary_metrics: list[Metric] = []
    exposure_event: str = EXPOSURE_EVENT
    targeting: FilterGroup | None = None
    end: datetime | None = None
    conversion_window: int = 14
    window_unit: Literal["hour", "day"] = "day"
    mde: float = 0.05
    alpha: float = 0.05
    power: float = 0.8
    baseline: float | None = None
    baseline_sd: float | None = None

    @property
    def metrics(self) -> list[Metric]:
        return [self.primary_metric, *self.secondary_metrics]

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.conversion_window * (24 if self.window_unit == "day" else 1))

    @property
    def starts(self) -> datetime:
        return utc(self.start)

    @property
    def ends(self) -> datetime | None:
        return None if self.end is None else utc(self.end)


class ExperimentInput(ExperimentDefinition, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a client sends to create an experiment (PUT takes the same without changing the key)."""

    key: str
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    hypothesis: _Text = ""
    description: _Text = ""


class Experiment(msgspec.Struct, frozen=True, kw_only=True):
    """An experiment as the API and the dashboard show it. `sample_size`: persons per variant the design
    needs, None without a `baseline` (the experiment analysis then relies on its always-valid test alone)."""

    key: str
    name: str
    hypothesis: str
    description: str
    definition: ExperimentDefinition
    sample_size: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class _Record(msgspec.Struct, frozen=True):
    project_id: int
    key: str
    name: str
    hypothesis: str
    description: str
    definition: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def utc(moment: datetime) -> datetime:
    """A definition's time as an aware UTC instant: one without an offset is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check(definition: ExperimentDefinition) -> None:
    """Refuse a definition that cannot run: InvalidRequest naming the field at fault (`variants[1].key`)."""
    variants = definition.variants
    if not 2 <= len(variants) <= MAX_VARIANTS:
        raise InvalidRequest(f"an experiment has 2 to {MAX_VARIANTS} variants, the control first", field="variants")
    for i, variant in enumerate(variants):
        if not KEY.fullmatch(variant.key):
            raise InvalidRequest(f"variant key {variant.key!r} must match {KEY.pattern}", field=f"variants[{i}].key")
        if not 0 < variant.weight < float("inf"):
            raise InvalidRequest("a variant's weight is a positive number", field=f"variants[{i}].weight")
    if len({v.key for v in variants}) < len(variants):
        raise InvalidRequest("variant keys must differ", field="variants")
    if len(definition.secondary_metrics) > MAX_SECONDARY:
        raise InvalidRequest(f"at most {MAX_SECONDARY} secondary metrics", field="secondary_metrics")
    fields = ["primary_metric", *(f"secondary_metrics[{i}]" for i in range(len(definition.secondary_metrics)))]
    for field, metric in zip(fields, definition.metrics):
        _check_metric(metric, field)
    if not 1 <= len(definition.exposure_event) <= 200:
        raise InvalidRequest("an event name has 1 to 200 characters", field="exposure_event")
    if definition.ends is not None and definition.ends <= definition.starts:
        raise InvalidRequest("an experiment ends after it starts", field="end")
    if not 1 <= definition.window.total_seconds() / 3600 <= MAX_WINDOW_HOURS:
        raise InvalidRequest("the conversion window is 1 hour to 90 days", field="conversion_window")
    for name in ("mde", "alpha", "power"):
        if not 0 < getattr(definition, name) < 1:
            raise InvalidRequest(f"{name} lies strictly between 0 and 1", field=name)
    design_n(definition)


def _check_metric(metric: Metric, field: str) -> None:
    if metric.goal is not None and (metric.event, metric.path, metric.where) != (None, None, None):
        raise InvalidRequest("a metric names a saved goal or an inline event or path, not both", field=f"{field}.goal")
    inline = metric.inline_goal()
    if inline is not None:
        try:
            goals.check(inline)
        except InvalidRequest as e:
            raise InvalidRequest(str(e), field=f"{field}.{e.field}") from None
    if metric.value_property is not None:
        if metric.measure != "sum":
            raise InvalidRequest("only a sum metric reads a property", field=f"{field}.value_property")
        if not PROPERTY_NAME.fullmatch(metric.value_property):
            raise InvalidRequest(f"{metric.value_property!r} is not a property name", field=f"{field}.value_property")
    elif metric.measure == "sum" and inline is not None:
        raise InvalidRequest("a sum metric names the numeric property it adds up", field=f"{field}.value_property")


def design_n(definition: ExperimentDefinition) -> int | None:
    """Persons per variant the design needs, from the definition's baseline; None without one."""
    if definition.baseline is None:
        if definition.baseline_sd is not None:
            raise InvalidRequest("baseline_sd comes with a baseline mean", field="baseline")
        return None
    kind = definition.primary_metric.kind
    if kind == "mean" and not 0 < (definition.baseline_sd or 0) < float("inf"):
        raise InvalidRequest("a count or sum metric's baseline needs its standard deviation, a positive number",
                             field="baseline_sd")
    try:
        return sample_size(definition.baseline, definition.mde, definition.alpha, definition.power, kind=kind,
                           sd=definition.baseline_sd)
    except ValueError as e:
        raise InvalidRequest(f"no sample size for this design: {e}", field="baseline") from None


def resolved_metric(client: Client, project_id: int, metric: Metric, field: str) -> tuple[GoalDefinition, str | None]:
    """What a metric's events match and the property a sum reads: a saved goal is read from the store
    (NotFound naming `field` when the project has no such goal)."""
    if metric.goal is None:
        inline = metric.inline_goal()
        assert inline is not None
        return inline, metric.value_property
    goal = goals.resolve(client, project_id, [metric.goal], [f"{field}.goal"])[0]
    amount = metric.value_property or goal.definition.value_property
    if metric.measure == "sum" and amount is None:
        raise InvalidRequest(f"goal {goal.name!r} has no value property: name the property to sum",
                             field=f"{field}.value_property")
    return goal.definition, amount


def check_references(client: Client, project_id: int, definition: ExperimentDefinition) -> None:
    """The saved goals and cohorts the definition names are the project's (NotFound naming the field)."""
    fields = ["primary_metric", *(f"secondary_metrics[{i}]" for i in range(len(definition.secondary_metrics)))]
    for field, metric in zip(fields, definition.metrics):
        resolved_metric(client, project_id, metric, field)
    try:
        cohort_store.load(client, project_id, cohort_store.referenced(definition))
    except NotFound as e:
        raise NotFound(f"targeting or metric filters: {e}") from None


def create(client: Client, project_id: int, data: ExperimentInput, created_by: str) -> Experiment:
    checked = _checked(client, project_id, data)
    if _find(client, project_id, checked.key):
        raise InvalidRequest(f"an experiment with key {checked.key!r} already exists in this project", field="key")
    now = records.now()
    records.save(client, TABLE, _Record(project_id, checked.key, checked.name, checked.hypothesis,
                                        checked.description, _encode(checked), created_by, now, now))
    return get(client, project_id, checked.key)


def replace(client: Client, project_id: int, key: str, data: ExperimentInput) -> Experiment:
    """A new name, texts and definition under the same key (the body's key must be it). Once the experiment
    has started its variants and weights stay: assignment hashes with them, so a change would move people
    to other variants mid-test (and out of the analysis, as exposed to two)."""
    current = _get(client, project_id, key)
    checked = _checked(client, project_id, data)
    if checked.key != key:
        raise InvalidRequest(f"an experiment's key cannot change ({key!r} in the URL, {checked.key!r} in the body)",
                             field="key")
    running = msgspec.json.decode(current.definition, type=ExperimentDefinition)
    if checked.variants != running.variants and running.starts <= records.now():
        raise InvalidRequest("a started experiment's variants and weights cannot change (people would move to "
                             "other variants): create a new experiment instead", field="variants")
    records.save(client, TABLE, msgspec.structs.replace(
        current, name=checked.name, hypothesis=checked.hypothesis, description=checked.description,
        definition=_encode(checked), updated_at=records.now()))
    return get(client, project_id, key)


def delete(client: Client, project_id: int, key: str) -> None:
    records.save(client, TABLE, _get(client, project_id, key), deleted=True)


def get(client: Client, project_id: int, key: str) -> Experiment:
    return _view(_get(client, project_id, key))


def list_all(client: Client, project_id: int) -> list[Experiment]:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id})
    return [_view(r) for r in sorted(found, key=lambda r: r.key)]


def _find(client: Client, project_id: int, key: str) -> list[_Record]:
    if not KEY.fullmatch(key):
        return []
    return records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND key = {k:String}",
                          {"p": project_id, "k": key})


def _get(client: Client, project_id: int, key: str) -> _Record:
    found = _find(client, project_id, key)
    if not found:
        # The same answer for another project's experiment as for a missing one.
        raise NotFound(f"no experiment {key!r} in this project")
    return found[0]


def _view(record: _Record) -> Experiment:
    definition = msgspec.json.decode(record.definition, type=ExperimentDefinition)
    return Experiment(key=record.key, name=record.name or record.key, hypothesis=record.hypothesis,
                      description=record.description, definition=definition, sample_size=design_n(definition),
                      created_by=record.created_by, created_at=record.created_at, updated_at=record.updated_at)


def definition_of(data: ExperimentDefinition) -> ExperimentDefinition:
    """Only the definition's fields of `data` (an input or an inline experiment carries more)."""
    return ExperimentDefinition(**{name: getattr(data, name) for name in ExperimentDefinition.__struct_fields__})


def _encode(data: ExperimentInput) -> str:
    return msgspec.json.encode(definition_of(data)).decode()


def _checked(client: Client, project_id: int, data: ExperimentInput) -> ExperimentInput:
    """`data` with every bound checked (also when built in Python, where a Struct checks none) and the
    goals and cohorts it names found in the project."""
    data = decode_json(msgspec.json.encode(data), ExperimentInput)
    if not KEY.fullmatch(data.key):
        raise InvalidRequest(f"an experiment's key must match {KEY.pattern}", field="key")
    check(data)
    check_references(client, project_id, data)
    return data
