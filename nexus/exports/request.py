"""What an export is asked to write: a source of rows and a file format, as POST /v1/exports and a
schedule take it. `checked` refuses at once (a 4xx naming the field) what could never run, so a job only
fails later for reasons of its time: the data, the engine, a destination."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from nexus.adhoc import saved
from nexus.adhoc.sandbox import QueryService
from nexus.analyses import registry
from nexus.analyses.event_rows import EventRowsRequest
from nexus.errors import InvalidRequest
from nexus.meta import dashboards
from nexus.reports import definition as report_definition
from nexus.reports.definition import ReportDefinition

Format = Literal["csv", "ndjson", "parquet", "xlsx", "pdf"]
# Without a charset: the HTTP frameworks add their own (CSV and NDJSON are UTF-8).
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "zip": "application/zip",
}


class AnalysisSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="analysis", tag_field="type"):
    """An analysis's result table (`kind` as in POST /v1/analyses/{kind}, `request` its body)."""

    kind: str
    request: dict[str, Any] = {}


class SavedQuerySource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="saved_query", tag_field="type"):
    query_id: str
    params: dict[str, Any] = {}


class SqlSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="sql", tag_field="type"):
    """Ad-hoc SQL, run in the same read-only sandbox and limits as POST /v1/query."""

    query: str
    params: dict[str, Any] = {}


class EventsSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="events", tag_field="type"):
    """Raw events: a date range, filters and columns (nexus.analyses.event_rows)."""

    request: EventRowsRequest = EventRowsRequest()


class DashboardSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="dashboard", tag_field="type"):
    """Every tile of a saved dashboard: a sheet each in Excel, a section each in PDF, a file each (zipped)
    in CSV, NDJSON and Parquet. `date_range` (the analyses' vocabulary) replaces every tile's own."""

    dashboard_id: str
    date_range: dict[str, Any] | None = None


class ReportSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="report", tag_field="type"):
    """A template report (nexus.reports): PDF, or Excel with a sheet per section."""

    report: ReportDefinition = ReportDefinition()


Source = AnalysisSource | SavedQuerySource | SqlSource | EventsSource | DashboardSource | ReportSource


class ExportRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    source: Source
    format: Format
    # Rows per table at most; None: NEXUS_EXPORT_MAX_ROWS. A larger value is refused.
    max_rows: Annotated[int, msgspec.Meta(ge=1)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""  # the file's name, without extension


def checked(queries: QueryService, project_id: int, request: ExportRequest, max_rows: int) -> ExportRequest:
    """`request` if it can run in this project (its analysis decodes, its saved query, SQL and dashboard
    exist and check), with `max_rows` filled in; else InvalidRequest/NotFound naming the field."""
    source = request.source
    if request.max_rows is not None and request.max_rows > max_rows:
        raise InvalidRequest(f"max_rows: at most {max_rows:,} rows per export (NEXUS_EXPORT_MAX_ROWS)",
                             field="max_rows")
    if isinstance(source, ReportSource) and request.format not in ("pdf", "xlsx"):
        raise InvalidRequest(f"format: a report is written as pdf or xlsx, not {request.format}", field="format")
    if any(c in request.name for c in '/\\\0"') or request.name.startswith("."):
        raise InvalidRequest("name: a file name without slashes, quotes or a leading dot", field="name")
    try:
        if isinstance(source, AnalysisSource):
            if source.kind not in registry.ANALYSES:
                raise InvalidRequest(f"no analysis {source.kind!r}: use one of {', '.join(registry.ANALYSES)}",
                                     field="kind")
            try:
                registry.decode(source.kind, source.request)
            except InvalidRequest as e:
                raise InvalidRequest(str(e), field="request" + (f".{e.field}" if e.field else "")) from None
        elif isinstance(source, SavedQuerySource):
            saved.get(queries.client, project_id, source.query_id)
        elif isinstance(source, SqlSource):
            queries.validate(project_id, source.query)
        elif isinstance(source, DashboardSource):
            dashboards.get(queries.client, project_id, source.dashboard_id)
        elif isinstance(source, ReportSource):
            report_definition.check(source.report)
    except InvalidRequest as e:
        inner = f".{e.field}" if e.field else ""
        raise InvalidRequest(f"source{inner}: {e}", field=f"source{inner}") from None
    return msgspec.structs.replace(request, max_rows=request.max_rows or max_rows)
