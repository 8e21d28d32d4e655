"""The dashboard's pages: URL path → the function that builds the page for the session opening it."""

from __future__ import annotations

from nexus.dashboard.pages import trends

ROUTES = {
    "trends": trends.view,
}
