"""Runs a report's sections through the read service and keeps what the PDF prints: each section's
answer, its decoded result and its table. Rendering then needs no database, so a job can gather, check
for cancellation between sections, and render once everything is in.

Equal requests within one report are asked once (the overview template's sections share one answer),
so every number of a report comes from the same computation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa

from nexus.analyses import dates
from nexus.errors import InvalidRequest
from nexus.meta.dashboards import SQL_KIND
from nexus.reports import templates
from nexus.reports.definition import ReportDefinition, Section, with_range
from nexus.services.analyses import Answer

AnswerFn = Callable[[str, dict[str, Any]], Answer]
Progress = Callable[[int, int], None]


class Conversion(msgspec.Struct, frozen=True):
    """The share of a funnel's entrants who reached its last step, in the range and in the period before
    it (None when nobody entered). `steps` names the first and last step."""

    value: float | None
    previous: float | None
    steps: tuple[str, str]


class Period(msgspec.Struct, frozen=True):
    """A resolved range: UTC instants, `date_to` exclusive, shown in `timezone`."""

    date_from: datetime
    date_to: datetime
    timezone: str


class GatheredSection(msgspec.Struct, frozen=True):
    """A section with what it prints: its answer (kept for its explain and time), the decoded result and
    its table. `answer` and `result` are None for a saved query's section, whose `table` is its rows (None
    when no `sql` runner gave them). `shows_conversion` marks the overview template's key numbers, which
    print the funnel's `conversion` (a dash when the definition has no funnel) for the average session."""

    section: Section
    answer: Answer | None
    result: Any
    table: pa.Table | None
    period: Period | None = None
    conversion: Conversion | None = None
    shows_conversion: bool = False

    @classmethod
    def of_rows(cls, section: Section, table: pa.Table | None) -> GatheredSection:
        """A section printed from rows computed elsewhere (a saved query's)."""
        return cls(section, None, None, table)


class GatheredReport(msgspec.Struct, frozen=True):
    """`period` is the report's own range as resolved by its first section that used it (None when
    every section had a range of its own)."""

    definition: ReportDefinition
    sections: list[GatheredSection]
    period: Period | None


def gather(answer: AnswerFn, definition: ReportDefinition, sections: Sequence[Section],
           on_section: Progress | None = None, *,
           sql: Callable[[dict[str, Any]], pa.Table] | None = None) -> GatheredReport:
    """Answer every section with `answer(kind, request)` (the report's date range laid over requests
    without one). `on_section(done, total)` is called before the first section (done = 0) and after each;
    an exception it raises (a cancelled job) stops the gathering. `sql(request)` gives a saved query's rows
    for sections of kind "sql"; without it they print a notice. An InvalidRequest of a custom definition's
    own section names its path (`sections[2].request.interval`)."""
    ask = _asker(answer)
    progress = on_section or (lambda done, total: None)
    own = definition.template == "custom" and list(sections) == list(definition.sections)
    gathered: list[GatheredSection] = []
    progress(0, len(sections))
    for index, section in enumerate(sections):
        try:
            gathered.append(_gather_one(ask, definition, section, sql))
        except InvalidRequest as e:
            if not own:
                raise
            field = f"sections[{index}].request" + (f".{e.field}" if e.field else "")
            raise InvalidRequest(f"{field}: {e}", field=field) from None
        progress(index + 1, len(sections))
    shared = [g.period for g, s in zip(gathered, sections) if g.period and "date_range" not in s.request]
    return GatheredReport(definition, gathered, shared[0] if shared else None)


def _gather_one(ask: AnswerFn, definition: ReportDefinition, section: Section,
                sql: Callable[[dict[str, Any]], pa.Table] | None) -> GatheredSection:
    if section.kind == SQL_KIND:
        return GatheredSection.of_rows(section, sql(section.request) if sql else None)
    found = ask(section.kind, with_range(section.kind, section.request, definition.date_range))
    result = found.decoded()
    dated = hasattr(result, "date_from") and hasattr(result, "timezone")  # all but live
    period = Period(result.date_from, result.date_to, result.timezone) if dated else None
    key_numbers = definition.template == "overview" and section == templates.KEY_NUMBERS
    conversion = _conversion(ask, definition) if key_numbers and definition.funnel is not None else None
    return GatheredSection(section, found, result, found.table(), period, conversion, key_numbers)


def _conversion(ask: AnswerFn, definition: ReportDefinition) -> Conversion:
    """The definition's funnel, in its range and in the period just before (dates.previous: as long,
    in whole local days when the range is), through its last step."""
    request = with_range("funnel", definition.funnel or {}, definition.date_range)
    current = ask("funnel", request).decoded()
    span = dates.previous(dates.Span(current.date_from, current.date_to), current.timezone)
    before = {**request, "date_range": {"date_from": span.start.isoformat(), "date_to": span.end.isoformat()}}
    previous = ask("funnel", before).decoded()
    steps = current.groups[0].steps
    return Conversion(_reached(current), _reached(previous), (steps[0].label, steps[-1].label))


def _reached(result: Any) -> float | None:
    steps = result.groups[0].steps
    return steps[-1].persons / steps[0].persons if steps[0].persons else None


def _asker(answer: AnswerFn) -> AnswerFn:
    """`answer`, asking each distinct (kind, request) once."""
    answers: dict[str, Answer] = {}

    def ask(kind: str, request: dict[str, Any]) -> Answer:
        key = kind + " " + json.dumps(request, sort_keys=True, default=str)
        if key not in answers:
            answers[key] = answer(kind, request)
        return answers[key]

    return ask
