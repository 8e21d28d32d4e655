"""Pin a chart to a saved dashboard (an admin key's action): the chart's request and type become a tile."""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn

from nexus.dashboard import theme, tiles
from nexus.dashboard.shell import Context
from nexus.errors import NexusError
from nexus.meta.dashboards import DashboardInput, Tile

NEW = "+ New dashboard"


def pin_control(ctx: Context, title: str, kind: str, request: dict[str, Any], chart: str) -> pn.viewable.Viewable:
    """A "Pin to dashboard" button that opens a small form: which dashboard (or a new one), the tile's title."""
    toggle = pn.widgets.Toggle(label="Pin to dashboard", button_type="light", width=150, css_classes=["nx-pin"])
    target = pn.widgets.Select(label="Dashboard", options=[NEW], width=200)
    new_name = pn.widgets.TextInput(label="New dashboard's name", placeholder="My dashboard", width=180)
    tile_title = pn.widgets.TextInput(label="Tile title", value=title, width=200)
    confirm = pn.widgets.Button(label="Pin", button_type="primary", width=70, margin=(23, 5, 5, 5))
    status = theme.html("", width=320, sizing_mode="fixed")
    form = pn.Row(target, new_name, tile_title, confirm, status, visible=False)
    choices: dict[str, str] = {}

    def open_form(event: Any) -> None:
        form.visible = event.new
        if event.new:
            choices.clear()
            choices.update({d.name: d.dashboard_id for d in ctx.reader.dashboards()})
            target.options = [*choices, NEW]
            target.value = next(iter(choices), NEW)

    def pin(_: Any) -> None:
        tile = Tile(title=tile_title.value.strip() or title, kind=kind, request=tiles.pinned(request),
                    chart=chart, width=12 if chart in ("heatmap", "funnel", "sankey") else 6)  # type: ignore[arg-type]
        try:
            if target.value == NEW:
                saved = ctx.reader.save_dashboard(None, DashboardInput(name=new_name.value.strip(), tiles=[tile]))
            else:
                current = ctx.reader.saved_dashboard(choices[target.value])
                saved = ctx.reader.save_dashboard(current.dashboard_id, DashboardInput(
                    name=current.name, description=current.description, tiles=[*current.tiles, tile]))
        except NexusError as e:
            status.object = f"<span class='nx-down'>{escape(str(e))}</span>"
            return
        link = ctx.link("dashboards", dashboard=saved.dashboard_id)
        status.object = (f"Pinned to <a href='{escape(link, quote=True)}'>{escape(saved.name)}</a>")

    toggle.param.watch(open_form, "value")
    target.param.watch(lambda e: setattr(new_name, "visible", e.new == NEW), "value")
    confirm.on_click(pin)
    return pn.Column(toggle, form)

