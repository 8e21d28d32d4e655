"""Saved dashboards: a named, ordered grid of pinned charts, each loading on its own under the page's date
range, time zone and filters. An admin key creates, renames, reorders, resizes and deletes; a read key
looks."""

from __future__ import annotations

from html import escape
from typing import Any

import msgspec
import panel as pn
import param

from nexus.dashboard import theme, tiles
from nexus.dashboard.cards import card
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, error_notice, page
from nexus.errors import NexusError
from nexus.meta.dashboards import Dashboard as Saved
from nexus.meta.dashboards import DashboardInput, Tile

WIDTHS = {"quarter": 3, "third": 4, "half": 6, "two thirds": 8, "full": 12}
HEIGHTS = [240, 320, 400, 520, 640]


class Settings(param.Parameterized):
    dashboard = param.String(default="")  # its id; empty: the project's default


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "dashboards", lambda ctx: body(ctx, settings), settings=settings, uses_interval=False)


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.dashboards()
    chosen = next((d for d in saved if d.dashboard_id == settings.dashboard), None)
    if chosen is None and settings.dashboard:
        return empty(f"No dashboard {settings.dashboard!r} in this project.")
    chosen = chosen or next((d for d in saved if d.is_default), saved[0] if saved else None)
    parts: list[Any] = [_picker(ctx, settings, saved, chosen)]
    if chosen is None:
        parts.append(empty("This project has no dashboards yet: pin a chart from any page, or create one here."))
        return pn.Column(*parts, sizing_mode="stretch_width")
    if not chosen.tiles:
        parts.append(empty("This dashboard has no tiles yet: pin a chart from any page with “Pin to dashboard”."))
    grid = pn.FlexBox(*[_tile(ctx, settings, chosen, i) for i in range(len(chosen.tiles))], flex_wrap="wrap",
                      sizing_mode="stretch_width", css_classes=["nx-grid"])
    return pn.Column(*parts, grid, sizing_mode="stretch_width")


def _picker(ctx: Context, settings: Settings, saved: list[Saved], chosen: Saved | None) -> pn.viewable.Viewable:
    links = "".join(
        f"<a class='nx-nav{' nx-active' if chosen and d.dashboard_id == chosen.dashboard_id else ''}' "
        f"href='{escape(ctx.link('dashboards', dashboard=d.dashboard_id), quote=True)}'>{escape(d.name)}</a>"
        for d in saved)
    row: list[Any] = [theme.html(f"<nav class='nx-dashboards'>{links}</nav>")]
    if not ctx.reader.can_edit:
        return pn.Row(*row, sizing_mode="stretch_width")
    status = theme.html("", width=300, sizing_mode="fixed")
    name = pn.widgets.TextInput(label="Name", value=chosen.name if chosen else "", width=220)
    rename = pn.widgets.Button(label="Rename", width=80, margin=(23, 5, 5, 5), disabled=chosen is None)
    remove = pn.widgets.Button(label="Delete dashboard", button_type="danger", width=140, margin=(23, 5, 5, 5),
                               disabled=chosen is None)
    new_name = pn.widgets.TextInput(label="New dashboard", placeholder="Marketing", width=200)
    create = pn.widgets.Button(label="Create", button_type="primary", width=80, margin=(23, 5, 5, 5))

    def attempt(action: Any) -> None:
        try:
            action()
        except NexusError as e:
            status.object = f"<span class='nx-down'>{escape(str(e))}</span>"

    def do_rename() -> None:
        assert chosen is not None
        _save(ctx, settings, chosen, name=name.value)

    def do_remove() -> None:
        assert chosen is not None
        ctx.reader.delete_dashboard(chosen.dashboard_id)
        settings.dashboard = ""
        settings.param.trigger("dashboard")

    def do_create() -> None:
        made = ctx.reader.save_dashboard(None, DashboardInput(name=new_name.value))
        settings.dashboard = made.dashboard_id

    rename.on_click(lambda _: attempt(do_rename))
    remove.on_click(lambda _: attempt(do_remove))
    create.on_click(lambda _: attempt(do_create))
    return pn.Column(*row, pn.Row(name, rename, remove, new_name, create, status), sizing_mode="stretch_width")


def _tile(ctx: Context, settings: Settings, saved: Saved, index: int) -> pn.viewable.Viewable:
    tile = saved.tiles[index]
    drawer = tiles.drawers().get(tile.kind)
    if drawer is None:
        content: Any = empty(f"Tiles of kind {tile.kind!r} are not drawn here yet.")
    else:
        try:
            request = tiles.on_dashboard(ctx, tile.kind, tile.request)
            content = card(ctx, tile.title, tile.kind, request,
                           lambda result, _answer, d=drawer, c=tile.chart: d(ctx, result, c),
                           chart=tile.chart, height=tile.height)
        except NexusError as e:
            content = error_notice(e)
    parts: list[Any] = [content]
    if ctx.reader.can_edit:
        parts.append(_tile_controls(ctx, settings, saved, index))
    # The grid has 12 columns: a tile of width w takes w twelfths of the row (less the gaps).
    return pn.Column(*parts, styles={"flex": f"0 0 calc({tile.width / 12 * 100:.4f}% - 14px)"},
                     sizing_mode="stretch_width", css_classes=["nx-tile"])


def _tile_controls(ctx: Context, settings: Settings, saved: Saved, index: int) -> pn.viewable.Viewable:
    tile = saved.tiles[index]
    left = pn.widgets.Button(label="◀", width=36, description="Move earlier", disabled=index == 0)
    right = pn.widgets.Button(label="▶", width=36, description="Move later", disabled=index == len(saved.tiles) - 1)
    width = pn.widgets.Select(options=WIDTHS, value=min(WIDTHS.values(), key=lambda w: abs(w - tile.width)), width=110)
    height = pn.widgets.Select(options=sorted({*HEIGHTS, tile.height}), value=tile.height, width=80)
    remove = pn.widgets.Button(label="Remove", button_type="light", width=80)

    def change(items: list[Tile]) -> None:
        try:
            _save(ctx, settings, saved, tiles_=items)
        except NexusError as e:
            remove.label = str(e)[:40]

    left.on_click(lambda _: change(moved(saved.tiles, index, -1)))
    right.on_click(lambda _: change(moved(saved.tiles, index, 1)))
    width.param.watch(lambda e: change(_replaced(saved.tiles, index, width=e.new)), "value")
    height.param.watch(lambda e: change(_replaced(saved.tiles, index, height=e.new)), "value")
    remove.on_click(lambda _: change([t for i, t in enumerate(saved.tiles) if i != index]))
    return pn.Row(left, right, width, height, remove, css_classes=["nx-tile-controls"])


def _save(ctx: Context, settings: Settings, saved: Saved, *, name: str | None = None,
          tiles_: list[Tile] | None = None) -> None:
    ctx.reader.save_dashboard(saved.dashboard_id, DashboardInput(
        name=saved.name if name is None else name, description=saved.description,
        tiles=saved.tiles if tiles_ is None else tiles_))
    settings.dashboard = saved.dashboard_id
    settings.param.trigger("dashboard")  # draw the dashboard as stored now


def moved(items: list[Tile], index: int, step: int) -> list[Tile]:
    """The tiles with the one at `index` moved `step` places (clamped at the ends)."""
    target = min(max(index + step, 0), len(items) - 1)
    reordered = list(items)
    reordered.insert(target, reordered.pop(index))
    return reordered


def _replaced(items: list[Tile], index: int, **changes: Any) -> list[Tile]:
    return [msgspec.structs.replace(t, **changes) if i == index else t for i, t in enumerate(items)]
