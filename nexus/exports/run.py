"""Writes one export to a file: the source's tables, read through the read services (analyses, the
ad-hoc sandbox), into the format's one writer. Rows stream from the engine in Arrow batches and are
written as they arrive, so an export of any size passes in bounded memory.

A source gives one table (an analysis, a query, an events slice) or several (a dashboard's tiles, a
report's sections): several tables are a sheet each in Excel, a section each in PDF, and a file each in a
zip for CSV, NDJSON and Parquet. `progress` is called after every batch; it may raise to stop the export
(a cancelled job, a stopping worker), and the file is then removed.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec
import pyarrow as pa

from nexus.adhoc import saved
from nexus.adhoc.formats import Cut, cut_batches
from nexus.analyses import event_rows
from nexus.exports import request as export_request
from nexus.exports.excel import write_workbook
from nexus.exports.request import (AnalysisSource, DashboardSource, EventsSource, ExportRequest, ReportSource,
                                   SavedQuerySource, SqlSource)
from nexus.exports.stream import write_batches
from nexus import reports
from nexus.meta import dashboards, projects

if TYPE_CHECKING:
    from nexus.runtime import Runtime

PDF_ROWS = 10_000  # rows of a query read into a PDF table (a report prints its first rows)
Progress = Callable[[int, float], None]  # rows written so far, the fraction done (0-1)


class Written(NamedTuple):
    rows: int
    bytes: int
    file_name: str  # the name to download it under
    media_type: str


class _Table(NamedTuple):
    title: str
    batches: Iterator[pa.RecordBatch]  # opened when first read, closed when read to the end
    rows: int | None  # how many it will have, when known before it is read


def write(runtime: Runtime, project_id: int, request: ExportRequest, path: Path, *, key_id: str = "",
          progress: Progress = lambda rows, done: None, now: datetime | None = None) -> Written:
    """Write the export to `path` (its parent must exist). `key_id` is the key whose query limits apply
    to its SQL; `now` is the instant relative date ranges resolve against (a scheduled run's due time)."""
    now = now or datetime.now(timezone.utc)
    fmt = request.format
    try:
        if fmt == "pdf" or isinstance(request.source, ReportSource):
            rows = _report(runtime, project_id, request, path, progress, now, key_id)
            media = fmt
        else:
            tables = _tables(runtime, project_id, request, key_id, now)
            counter = _Counter(progress, tables)
            with path.open("wb") as sink:
                if fmt == "xlsx":
                    rows = write_workbook(((t.title, counter.through(t)) for t in tables), sink)
                    media = "xlsx"
                elif len(tables) == 1:
                    rows = write_batches(counter.through(tables[0]), fmt, sink)  # type: ignore[arg-type]
                    media = fmt
                else:
                    rows = _zipped(tables, counter, fmt, sink)
                    media = "zip"
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stem = request.name or _default_name(request, now)
    return Written(rows, path.stat().st_size, f"{stem}.{media}", export_request.MEDIA_TYPES[media])


def _tables(runtime: Runtime, project_id: int, request: ExportRequest, key_id: str, now: datetime) -> list[_Table]:
    source, max_rows = request.source, request.max_rows or runtime.settings.export_max_rows
    queries = runtime.queries
    if isinstance(source, AnalysisSource):
        return [_analysis(runtime, project_id, source.kind, source.request, max_rows)]
    if isinstance(source, SavedQuerySource):
        name = saved.get(queries.client, project_id, source.query_id).name
        return [_Table(name, _saved_query(runtime, project_id, source.query_id, source.params, key_id, max_rows), None)]
    if isinstance(source, SqlSource):
        return [_Table("Query", _sandboxed(runtime, project_id, source.query, source.params, key_id, max_rows), None)]
    if isinstance(source, EventsSource):
        parts = event_rows.windows(runtime.clickhouse, project_id, source.request, now=now)
        # Nexus's own SQL, run in the sandbox too: the project's row filter on every table it reads. The
        # job's time limit bounds it, not an ad-hoc query's.
        limits = msgspec.structs.replace(queries.defaults, max_seconds=0)
        queries_in_order = [part.query for part in parts] or [  # no rows: the columns still make a header
            event_rows.empty(runtime.clickhouse, project_id, source.request, now=now)]
        batches = (batch for sql, params in queries_in_order
                   for batch in _sandboxed(runtime, project_id, sql, params, key_id, max_rows, limits))
        return [_Table("Events", cut_batches(batches, Cut(max_rows)), min(sum(p.rows for p in parts), max_rows))]
    if isinstance(source, DashboardSource):
        board = dashboards.get(runtime.clickhouse, project_id, source.dashboard_id)
        tables = []
        for tile in board.tiles:
            if tile.kind == dashboards.SQL_KIND:
                batches = _saved_query(runtime, project_id, tile.request["query_id"], tile.request.get("params", {}),
                                       key_id, max_rows)
                tables.append(_Table(tile.title, batches, None))
            else:
                body = _over(tile.request, source.date_range)
                tables.append(_analysis(runtime, project_id, tile.kind, body, max_rows, tile.title))
        return tables
    raise AssertionError(f"no tables for {type(source).__name__}")


def _analysis(runtime: Runtime, project_id: int, kind: str, body: dict[str, Any], max_rows: int,
              title: str = "") -> _Table:
    table = runtime.analyses.answer(project_id, kind, body).table().slice(0, max_rows)
    return _Table(title or kind.replace("_", " ").capitalize(), iter(_batches(table)), table.num_rows)


def _over(request: dict[str, Any], date_range: dict[str, Any] | None) -> dict[str, Any]:
    """A dashboard tile's request under the export's own date range, when it has one."""
    return {**request, "date_range": date_range} if date_range else request


def _saved_query(runtime: Runtime, project_id: int, query_id: str, params: dict[str, Any], key_id: str,
                 max_rows: int) -> Iterator[pa.RecordBatch]:
    """A saved query's batches with the run's parameters over its defaults (found now: a missing one fails
    before any file is written)."""
    sql, values = saved.resolve(runtime.queries.client, project_id, query_id, params)
    return _sandboxed(runtime, project_id, sql, values, key_id, max_rows)


def _whole(batches: Iterator[pa.RecordBatch]) -> pa.Table | None:
    found = list(batches)
    return pa.Table.from_batches(found) if found else None


def _batches(table: pa.Table) -> list[pa.RecordBatch]:
    """The table's batches; an empty table still has its columns, in one empty batch."""
    return table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]


def _sandboxed(runtime: Runtime, project_id: int, sql: str, params: dict[str, Any], key_id: str, max_rows: int,
               limits: Any = None) -> Iterator[pa.RecordBatch]:
    """The query's batches in the ad-hoc sandbox, as `key_id` (its limits, its slot), cut at max_rows."""
    queries = runtime.queries
    with queries.batches(project_id, sql, params, limits or queries.limits_for(key_id), max_rows) as batches:
        yield from batches


class _Counter:
    """Counts the rows written across every table and reports them with the fraction done: by rows where a
    table's size is known, else by tables finished."""

    def __init__(self, progress: Progress, tables: list[_Table]):
        self.progress = progress
        self.tables = len(tables)
        self.finished_tables = 0
        self.rows = 0

    def through(self, table: _Table) -> Iterator[pa.RecordBatch]:
        own = 0
        for batch in table.batches:
            yield batch
            own += batch.num_rows
            self.rows += batch.num_rows
            within = min(own / table.rows, 1.0) if table.rows else 0.0
            self.progress(self.rows, (self.finished_tables + within) / self.tables)
        self.finished_tables += 1
        self.progress(self.rows, self.finished_tables / self.tables)


def _zipped(tables: list[_Table], counter: _Counter, fmt: str, sink: Any) -> int:
    rows = 0
    names: set[str] = set()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, table in enumerate(tables, 1):
            name = _unique(f"{i:02d} {_safe(table.title)}.{fmt}", names)
            with archive.open(name, "w", force_zip64=True) as member:
                rows += write_batches(counter.through(table), fmt, member)  # type: ignore[arg-type]
    return rows


def _report(runtime: Runtime, project_id: int, request: ExportRequest, path: Path, progress: Progress,
            now: datetime, key_id: str) -> int:
    """A report (PDF, or Excel with a sheet per section): a report source's sections, a dashboard's tiles,
    an analysis as one section; the rows of a query or an events slice as a table (its first PDF_ROWS)."""
    source, max_rows = request.source, request.max_rows or runtime.settings.export_max_rows
    project = projects.get(runtime.clickhouse, project_id)
    rows: pa.Table | None = None  # the rows of a query or events slice, printed as the report's one table
    if isinstance(source, ReportSource):
        definition, sections = source.report, reports.sections_for(source.report)
    elif isinstance(source, DashboardSource):
        board = dashboards.get(runtime.clickhouse, project_id, source.dashboard_id)
        definition = reports.ReportDefinition(title=board.name, date_range=source.date_range or {"date_from": "-30d"})
        sections = [s if s.kind == dashboards.SQL_KIND else
                    msgspec.structs.replace(s, request=_over(s.request, source.date_range))
                    for s in reports.dashboard_sections(board)]
    elif isinstance(source, AnalysisSource):
        title = source.kind.replace("_", " ").capitalize()
        definition = reports.ReportDefinition(title=f"{project.name} — {title}", date_range={})
        sections = [reports.Section(title=title, kind=source.kind, request=source.request)]
    else:
        (table,) = _tables(runtime, project_id, request, key_id, now)
        rows = _whole(cut_batches(table.batches, Cut(min(PDF_ROWS, max_rows))))
        definition = reports.ReportDefinition(title=f"{project.name} — {table.title}", date_range={})
        sections = [reports.Section(title=table.title, kind=dashboards.SQL_KIND)]

    def saved_query(tile: dict[str, Any]) -> pa.Table | None:
        return _whole(_saved_query(runtime, project_id, tile["query_id"], tile.get("params", {}), key_id,
                                   min(PDF_ROWS, max_rows)))

    gathered = reports.gather(lambda kind, body: runtime.analyses.answer(project_id, kind, body), definition,
                              sections, lambda done, total: progress(done, done / max(total, 1) * 0.9),
                              sql=lambda tile: rows if rows is not None else saved_query(tile))
    found = [g for g in gathered.sections if g.table is not None]
    with path.open("wb") as sink:
        if request.format == "pdf":
            reports.render_pdf(gathered, sink, project_name=project.name, generated_at=now, time_zone=project.timezone)
        else:
            write_workbook(((g.section.title, _batches(g.table.slice(0, max_rows))) for g in found), sink)
    progress(sum(g.table.num_rows for g in found), 1.0)
    return sum(min(g.table.num_rows, max_rows) for g in found)


def _default_name(request: ExportRequest, now: datetime) -> str:
    source = request.source
    what = {AnalysisSource: lambda s: s.kind, SavedQuerySource: lambda s: s.query_id, SqlSource: lambda s: "query",
            EventsSource: lambda s: "events", DashboardSource: lambda s: s.dashboard_id,
            ReportSource: lambda s: f"report-{s.report.template}"}[type(source)](source)
    return f"nexus-{_safe(what)}-{now:%Y%m%d-%H%M%S}"


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text, flags=re.UNICODE).strip("-.")[:80] or "table"


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"_{name}"
    taken.add(name)
    return name
