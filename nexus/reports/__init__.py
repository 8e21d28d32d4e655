"""PDF reports for the export jobs: a definition (nexus.reports.definition) names the sections, `gather`
answers them through the read service, `render_pdf` prints them. A job calls, in order:

    definition = decode(body)                       # InvalidRequest names the field at fault
    report = gather(lambda kind, request: runtime.analyses.answer(project_id, kind, request),
                    definition, sections_for(definition), on_section=progress)
    pages = render_pdf(report, sink, project_name=..., generated_at=...)

and for a saved dashboard, `dashboard_sections(dashboard)` in place of `sections_for(definition)` (the
definition then gives the title and date range), with `gather(..., sql=run_saved_query)` for its SQL tiles.
"""

from nexus.reports.definition import ReportDefinition, Section, check, decode
from nexus.reports.gather import GatheredReport, GatheredSection, gather
from nexus.reports.pdf import render_pdf
from nexus.reports.templates import dashboard_sections, sections_for

__all__ = ["GatheredReport", "GatheredSection", "ReportDefinition", "Section", "check", "dashboard_sections", "decode",
           "gather", "render_pdf", "sections_for"]
