"""The dashboard's pages: URL path → the function that builds the page for the session opening it; and
how each analysis kind is drawn (a saved dashboard's tiles are drawn by the page of their kind)."""

from __future__ import annotations

from nexus.dashboard.pages import dashboards, overview, trends
from nexus.dashboard.pages import sql
from nexus.dashboard.pages import events, exports
from nexus.dashboard.pages import funnels, retention, sessions, stickiness
from nexus.dashboard.pages import persons
from nexus.dashboard.pages import goals
from nexus.dashboard.pages import paths
from nexus.dashboard.pages import cohorts
from nexus.dashboard.pages import attribution
from nexus.dashboard.pages import experiments
from nexus.dashboard.pages import predictions

ROUTES = {
    "overview": overview.view,
    "trends": trends.view,
    "dashboards": dashboards.view,
    "sql": sql.view,
    "events": events.view,
    "funnels": funnels.view,
    "retention": retention.view,
    "sessions": sessions.view,
    "stickiness": stickiness.view,
    "exports": exports.view,
    "persons": persons.view,
    "person": persons.profile_view,
    "goals": goals.view,
    "paths": paths.view,
    "cohorts": cohorts.view,
    "attribution": attribution.view,
    "experiments": experiments.view,
    "predictions": predictions.view,
}

DRAWERS = {
    "overview": overview.draw,
    "trends": trends.draw,
    "funnel": funnels.draw,
    "funnel_persons": funnels.draw_persons,
    "persons": persons.draw_persons,
    "person": persons.draw_person,
    "retention_persons": retention.draw_cell_persons,
    "retention": retention.draw,
    "sessions": sessions.draw,
    "stickiness": stickiness.draw_stickiness,
    "lifecycle": stickiness.draw_lifecycle,
    "goals": goals.draw,
    "paths": paths.draw,
    "paths_persons": paths.draw_persons,
    "cohort_size": cohorts.draw,
    "attribution": attribution.draw,
    "conversion_paths": attribution.draw_paths,
    "experiment": experiments.draw,
    "predictions": predictions.draw,
}
