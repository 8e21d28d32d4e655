"""Saved dashboards: a project's named, ordered grids of tiles, each a pinned analysis or saved query with
the chart that draws it, checked when saved so that every stored tile can run.

A tile holds the request body of its analysis as the user sent it (not re-encoded, so defaults added to
an analysis later apply to it); the Panel dashboard runs each through the read service, with the
dashboard's global date range and filters laid over it. User strings (names, titles, descriptions) are
stored as given: whoever shows them escapes them. Records follow the metadata pattern (nexus.meta.records):
every change writes a whole new version, read back with FINAL, so a write is visible to the next read.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.adhoc import saved
from nexus.analyses import registry
from nexus.errors import InvalidRequest, NotFound, reason_and_field
from nexus.json_input import decode_json
from nexus.meta import records

TABLE = "dashboards"
MAX_TILES = 50
SQL_KIND = "sql"  # a tile that runs a saved query (nexus.adhoc.saved) instead of an analysis
DEFAULT_NAME = "Default"
# The default dashboard's id is the same in every project: two processes ensuring it at once write two
# versions of one record, never two dashboards.
DEFAULT_ID = "d_defaultboard"
_ID = re.compile(r"^d_[A-Za-z0-9_-]{12}$")
_TILE_ID = re.compile(r"^t_[A-Za-z0-9_-]{8}$")

# How a tile draws its answer: a chart type, or the part of an analysis drawn several ways on its page
# (the overview whole; retention's average curve; one of the sessions measures, their totals or top pages).
Chart = Literal["line", "bar", "stacked_bar", "area", "number", "funnel", "heatmap", "pie", "table", "sankey",
                "overview", "curve", "totals", "sessions", "duration", "pages", "bounce_rate", "entry_pages",
                "exit_pages"]
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Tile(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One chart of a dashboard. `kind` is an analysis (nexus.analyses.registry.ANALYSES) whose body is
    `request`, or "sql" with `request` = {"query_id": "q_...", "params": {...}}. `width` is in columns of a
    12-column grid, `height` in pixels. `tile_id` is given on creation when missing ("t_" + 8 characters)
    and kept by every later save that sends it back."""

    tile_id: str = ""
    title: _Text
    kind: str
    request: dict[str, Any]
    chart: Chart
    width: Annotated[int, msgspec.Meta(ge=3, le=12)] = 6
    height: Annotated[int, msgspec.Meta(ge=200, le=1200)] = 320


class DashboardInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a client sends to create or replace a dashboard: the tiles in grid order (left to right, top
    to bottom), so reordering, resizing and removing tiles is a PUT of the new list."""

    name: _Text
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    tiles: Annotated[list[Tile], msgspec.Meta(max_length=MAX_TILES)] = []


class Dashboard(msgspec.Struct, frozen=True):
    """A dashboard as the API and the Panel dashboard show it."""

    dashboard_id: str
    name: str
    description: str
    tiles: list[Tile]
    is_default: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class _Record(msgspec.Struct, frozen=True):
    """The stored row: tiles as JSON text."""

    project_id: int
    dashboard_id: str
    name: str
    description: str
    tiles: str
    is_default: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class _SqlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    query_id: str
    params: dict[str, Any] = {}


_LAST_30_DAYS = {"date_from": "-30d"}
_LAST_8_WEEKS = {"date_from": "-8w"}
DEFAULT_TILES: tuple[Tile, ...] = (
    Tile(tile_id="t_default0", title="Events per day", kind="trends", chart="line",
         request={"series": [{"metric": "events"}], "interval": "day", "date_range": _LAST_30_DAYS}),
    Tile(tile_id="t_default1", title="Unique persons per day", kind="trends", chart="line",
         request={"series": [{"metric": "persons"}], "interval": "day", "date_range": _LAST_30_DAYS}),
    Tile(tile_id="t_default2", title="Top events", kind="trends", chart="bar",
         request={"series": [{"metric": "events"}], "interval": "day", "date_range": _LAST_30_DAYS,
                  "breakdown": {"key": "event", "source": "column", "limit": 10}}),
    Tile(tile_id="t_default3", title="Sessions per day", kind="sessions", chart="area",
         request={"interval": "day", "date_range": _LAST_30_DAYS}),
    Tile(tile_id="t_default4", title="Lifecycle of active persons", kind="lifecycle", chart="stacked_bar",
         request={"period": "week", "date_range": _LAST_8_WEEKS}),
    Tile(tile_id="t_default5", title="Days active in the last 30", kind="stickiness", chart="bar",
         request={"period": "day", "date_range": _LAST_30_DAYS}),
    Tile(tile_id="t_default6", title="Weekly retention (any event)", kind="retention", chart="heatmap",
         request={"start": {}, "returning": {}, "period": "week", "periods": 8, "date_range": _LAST_8_WEEKS},
         width=12, height=400),
)


def create(client: Client, project_id: int, data: DashboardInput, created_by: str) -> Dashboard:
    """Check every tile, then store the dashboard under a new id."""
    checked = _checked(client, project_id, data, None)
    now = records.now()
    record = _Record(project_id, "d_" + secrets.token_urlsafe(9), checked.name, checked.description,
                     _encode_tiles(checked.tiles), False, created_by, now, now)
    records.save(client, TABLE, record)
    return _view(record)


def list_all(client: Client, project_id: int) -> list[Dashboard]:
    """The project's dashboards: the default first, then by name."""
    found = [_view(r) for r in records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id})]
    return sorted(found, key=lambda d: (not d.is_default, d.name, d.dashboard_id))


def get(client: Client, project_id: int, dashboard_id: str) -> Dashboard:
    return _view(_get(client, project_id, dashboard_id))


def replace(client: Client, project_id: int, dashboard_id: str, data: DashboardInput) -> Dashboard:
    """Replace the name, description and tiles (rename, reorder, resize, add or remove tiles); the id,
    author, creation time and whether it is the default stay. Tiles sent with their ids keep them."""
    current = _get(client, project_id, dashboard_id)
    checked = _checked(client, project_id, data, dashboard_id)
    record = msgspec.structs.replace(current, name=checked.name, description=checked.description,
                                     tiles=_encode_tiles(checked.tiles), updated_at=records.now())
    records.save(client, TABLE, record)
    return _view(record)


def delete(client: Client, project_id: int, dashboard_id: str) -> None:
    records.save(client, TABLE, _get(client, project_id, dashboard_id), deleted=True)


def ensure_default(client: Client, project_id: int) -> Dashboard:
    """The project's default dashboard, created when it has none: tiles that answer on any project's data,
    naming no event (every count is over all events). Calling it again changes nothing."""
    existing = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND is_default", {"p": project_id})
    if existing:
        return _view(existing[0])
    now = records.now()
    record = _Record(project_id, DEFAULT_ID, DEFAULT_NAME, "The project's activity at a glance",
                     _encode_tiles(list(DEFAULT_TILES)), True, "", now, now)
    records.save(client, TABLE, record)
    return _view(record)


def _get(client: Client, project_id: int, dashboard_id: str) -> _Record:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND dashboard_id = {d:String}",
                           {"p": project_id, "d": dashboard_id}) if _ID.match(dashboard_id) else []
    if not found:
        # The same answer for another project's dashboard as for a missing one.
        raise NotFound(f"no dashboard {dashboard_id!r} in this project")
    return found[0]


def _view(record: _Record) -> Dashboard:
    return Dashboard(record.dashboard_id, record.name, record.description,
                     msgspec.json.decode(record.tiles, type=list[Tile]), bool(record.is_default), record.created_by,
                     record.created_at, record.updated_at)


def _encode_tiles(tiles: list[Tile]) -> str:
    return msgspec.json.encode(tiles).decode()


def _checked(client: Client, project_id: int, data: DashboardInput, dashboard_id: str | None) -> DashboardInput:
    """`data` with every bound checked (also when built in Python, where a Struct checks none), each tile's
    request checked as its analysis or saved query reads it, and missing tile ids given."""
    data = decode_json(msgspec.json.encode(data), DashboardInput)
    if not data.name.strip():
        raise InvalidRequest("name: a dashboard's name cannot be blank", field="name")
    given: set[str] = set()
    for i, tile in enumerate(data.tiles):
        at = f"tiles[{i}]"
        if not tile.title.strip():
            raise InvalidRequest(f"{at}.title: a tile's title cannot be blank", field=f"{at}.title")
        if tile.tile_id and not _TILE_ID.match(tile.tile_id):
            raise InvalidRequest(f"{at}.tile_id: {tile.tile_id!r} is not a tile id (t_ + 8 letters, digits, '_' "
                                 f"or '-'); leave it out to get a new one", field=f"{at}.tile_id")
        if tile.tile_id in given:
            raise InvalidRequest(f"{at}.tile_id: {tile.tile_id!r} is the id of an earlier tile too",
                                 field=f"{at}.tile_id")
        if tile.tile_id:
            given.add(tile.tile_id)
        _check_request(client, project_id, tile, at)
    same = records.select(client, TABLE, _Record, "project_id = {p:UInt32} AND name = {n:String}",
                          {"p": project_id, "n": data.name})
    if any(d.dashboard_id != dashboard_id for d in same):
        raise InvalidRequest(f"name: a dashboard named {data.name!r} already exists in this project", field="name")
    return msgspec.structs.replace(data, tiles=[
        t if t.tile_id else msgspec.structs.replace(t, tile_id=_new_tile_id(given)) for t in data.tiles])


def _check_request(client: Client, project_id: int, tile: Tile, at: str) -> None:
    """Refuse a tile that could not run: an unknown kind, a request its analysis refuses (read as the API
    reads it, then planned, which checks what decoding cannot: dates, bucket counts, the goals and cohorts
    it names), or a saved query the project does not have or a parameter it does not declare."""
    if tile.kind == SQL_KIND:
        _check_sql(client, project_id, tile.request, at)
        return
    if tile.kind not in registry.ANALYSES:
        raise InvalidRequest(f"{at}.kind: no analysis {tile.kind!r}: use one of "
                             f"{', '.join([*registry.ANALYSES, SQL_KIND])}", field=f"{at}.kind")
    try:
        registry.explain(client, project_id, tile.kind, registry.decode(tile.kind, tile.request))
    except InvalidRequest as e:
        field = f"{at}.request" + (f".{e.field}" if e.field else "")
        raise InvalidRequest(f"{field}: {e}", field=field) from None
    except NotFound as e:  # a goal or cohort the request names: the body is at fault, not the dashboard's id
        raise InvalidRequest(f"{at}.request: {e}", field=f"{at}.request") from None


def _check_sql(client: Client, project_id: int, request: dict[str, Any], at: str) -> None:
    try:
        body = msgspec.convert(request, _SqlRequest)
    except msgspec.ValidationError as e:
        reason, path = reason_and_field(e)
        field = f"{at}.request" + (f".{path}" if path else "")
        raise InvalidRequest(f"{field}: {reason}", field=field) from None
    try:
        query = saved.get(client, project_id, body.query_id)
    except NotFound as e:
        raise InvalidRequest(f"{at}.request.query_id: {e}", field=f"{at}.request.query_id") from None
    declared = {p.name for p in saved.view(query).parameters}
    unknown = sorted(set(body.params) - declared)
    if unknown:
        raise InvalidRequest(f"{at}.request.params: saved query {body.query_id!r} declares no parameter "
                             f"{unknown[0]!r}", field=f"{at}.request.params")


def _new_tile_id(taken: set[str]) -> str:
    while (tile_id := "t_" + secrets.token_urlsafe(6)) in taken:
        pass
    taken.add(tile_id)
    return tile_id
