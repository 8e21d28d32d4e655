"""Tiles: a chart pinned with its request, and drawn again on a saved dashboard under the dashboard's own
date range, time zone and filters.

A pinned request keeps what makes the chart (series, steps, breakdown, period) and leaves out the
page's global settings; on a dashboard those come from the dashboard's settings, and a filter the tile
was saved with (through the API) applies together with the dashboard's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from nexus.analyses import registry
from nexus.dashboard.shell import Context

GLOBAL_FIELDS = ("date_range", "timezone", "where")

Drawer = Callable[[Context, Any, str], Any]  # (ctx, decoded result, chart type) → a viewable


def pinned(request: dict[str, Any]) -> dict[str, Any]:
    """The request a tile keeps: without the page's date range, time zone and global filters."""
    return {k: v for k, v in request.items() if k not in GLOBAL_FIELDS}


def on_dashboard(ctx: Context, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """The tile's request under the dashboard's settings (only the fields its analysis has)."""
    fields = {f.name for f in msgspec.structs.fields(registry.module(kind).Request)}
    shared = {k: v for k, v in ctx.common(interval=False).items() if k in fields}
    merged = {**request, **{k: v for k, v in shared.items() if k != "where"}}
    own, common = request.get("where"), shared.get("where")
    if own and common:
        merged["where"] = {"groups": [own, common], "match": "all"}
    elif common:
        merged["where"] = common
    return merged


def drawers() -> dict[str, Drawer]:
    """How each analysis kind is drawn: by the page that shows it (imported here, when first needed,
    since the pages import the shell too)."""
    from nexus.dashboard.pages import DRAWERS
    return DRAWERS
