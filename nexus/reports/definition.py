"""What a PDF report is made of, as a client sends it: a template (the fixed overview, or custom sections
of analyses), a title and a date range; and the checks that refuse a definition that could not run, each
error naming the JSON path of the value at fault (`sections[2].request.series[0].metric`).

A section is one analysis (`kind` and its request body, as the API takes it) drawn as a chart, optionally
followed by the first rows of its table. The report's date range is laid over every request that has
none of its own, so a definition names its period once.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec

from nexus.analyses import dates, overview, registry
from nexus.errors import InvalidRequest, reason_and_field
from nexus.json_input import UnreadableJson, decode_json
from nexus.meta.dashboards import Chart

MAX_SECTIONS = 50
DEFAULT_RANGE = {"date_from": "-7d"}
# The parts of a result a section can show alone, where the chart does not say (sessions' charts name
# theirs): one of the overview's key numbers (drawn over time) or one of its top lists ("top_pages").
TOP = "top_"
PARTS: dict[str, tuple[str, ...]] = {"overview": (*overview.KPIS, *(TOP + d.name for d in overview.DIMENSIONS))}

_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")
_Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One analysis of a report. `chart` None draws the kind's natural chart (nexus.reports.views);
    `table` adds the first rows of the result's table; `part` picks one part of an overview (PARTS)."""

    title: _Title
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    kind: str
    request: dict[str, Any] = {}
    chart: Chart | None = None
    table: bool = True
    part: str | None = None


class ReportDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`title` '' prints "<project name> — overview". `date_range` is the analyses' vocabulary
    ({"date_from": "-7d"}, {"date_from": "2026-10-01", "date_to": "2026-10-31"}, ...). The custom template
    takes `sections` (1..50); the overview template has fixed ones, plus a funnel when `funnel` (a funnel
    request) is given: its conversion is then one of the key numbers."""

    template: Literal["overview", "custom"] = "overview"
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    date_range: dict[str, Any] = msgspec.field(default_factory=lambda: dict(DEFAULT_RANGE))
    sections: Annotated[list[Section], msgspec.Meta(max_length=MAX_SECTIONS)] = []
    funnel: dict[str, Any] | None = None


def decode(body: bytes | str | dict[str, Any]) -> ReportDefinition:
    """A checked definition from a JSON body (or a parsed one); InvalidRequest names the field at fault."""
    try:
        definition = msgspec.convert(body, ReportDefinition) if isinstance(body, dict) else \
            decode_json(body, ReportDefinition)
    except msgspec.ValidationError as e:
        raise _invalid(*reason_and_field(e)) from None
    except UnreadableJson as e:
        raise _invalid(e.reason, e.path) from None
    return check(definition)


def check(definition: ReportDefinition) -> ReportDefinition:
    """`definition` once every rule holds: its bounds (also when built in Python, where a Struct checks
    none), its date range, the template's sections, and every request as its analysis reads it."""
    definition = _bounded(definition)
    _check_range(definition.date_range, "date_range")
    if definition.template == "custom":
        if not definition.sections:
            raise InvalidRequest("sections: a custom report needs 1 to 50 sections", field="sections")
        if definition.funnel is not None:
            raise InvalidRequest("funnel: only the overview template takes a funnel; add a funnel section instead",
                                 field="funnel")
    elif definition.sections:
        raise InvalidRequest("sections: the overview template has fixed sections; use the custom template to "
                             "choose them", field="sections")
    if definition.funnel is not None:
        _check_request("funnel", with_range("funnel", definition.funnel, definition.date_range), "funnel")
    for i, section in enumerate(definition.sections):
        check_section(section, definition.date_range, f"sections[{i}]")
    return definition


def check_section(section: Section, date_range: dict[str, Any], at: str) -> None:
    if not section.title.strip():
        raise InvalidRequest(f"{at}.title: a section's title cannot be blank", field=f"{at}.title")
    if section.kind not in registry.ANALYSES:
        raise InvalidRequest(f"{at}.kind: no analysis {section.kind!r}: use one of {', '.join(registry.ANALYSES)}",
                             field=f"{at}.kind")
    parts = PARTS.get(section.kind, ())
    if section.part is not None and section.part not in parts:
        choice = f"use one of {', '.join(parts)}" if parts else f"a {section.kind} section has no parts"
        raise InvalidRequest(f"{at}.part: {section.part!r} is no part of {section.kind}: {choice}", field=f"{at}.part")
    _check_request(section.kind, with_range(section.kind, section.request, date_range), f"{at}.request")


def with_range(kind: str, request: dict[str, Any], date_range: dict[str, Any]) -> dict[str, Any]:
    """`request` with the report's `date_range` when it has none of its own and its analysis takes one."""
    if "date_range" in request or not _takes_range(kind):
        return request
    return {**request, "date_range": date_range}


def _takes_range(kind: str) -> bool:
    return any(f.name == "date_range" for f in msgspec.structs.fields(registry.module(kind).Request))


def _bounded(definition: ReportDefinition) -> ReportDefinition:
    """The definition read back from its JSON, which checks the bounds (lengths, counts) that a Struct
    built in Python skips."""
    try:
        return decode_json(msgspec.json.encode(definition), ReportDefinition)
    except UnreadableJson as e:
        raise _invalid(e.reason, e.path) from None


def _invalid(reason: str, path: str, at: str = "") -> InvalidRequest:
    """msgspec's complaint as an InvalidRequest naming the value at fault: msgspec gives the path of the
    object holding a missing or unknown field, and names the field in its reason."""
    named = _NAMED_FIELD.search(reason)
    field = ".".join(p for p in (at, path, named[1] if named else "") if p)
    return InvalidRequest(f"{field}: {reason}" if field else f"invalid report definition: {reason}",
                          field=field or None)


def _check_request(kind: str, request: dict[str, Any], at: str) -> None:
    """The request as its analysis decodes it, and its dates readable; errors put under `at`."""
    try:
        decoded = registry.decode(kind, request)
        if (date_range := getattr(decoded, "date_range", None)) is not None:
            # Only whether the dates can be read: the zone and the clock of the run change the span, not that.
            dates.resolve(date_range, "UTC", datetime.now(timezone.utc))
    except InvalidRequest as e:
        field = at + (f".{e.field}" if e.field else "")
        raise InvalidRequest(f"{field}: {e}", field=field) from None


def _check_range(date_range: dict[str, Any], at: str) -> None:
    try:
        dates.resolve(msgspec.convert(date_range, dates.DateRange), "UTC", datetime.now(timezone.utc))
    except msgspec.ValidationError as e:
        raise _invalid(*reason_and_field(e), at=at) from None
    except InvalidRequest as e:
        field = e.field if e.field and e.field.startswith(at) else at
        raise InvalidRequest(f"{field}: {e}", field=field) from None
