"""The events explorer without a browser: every request its settings build is one the events analysis
takes, paging Older to the end and Newer back on the real engine visits each event once in the order a
direct query gives (and returns to the very same pages), and its cells are text in the chosen zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from nexus.analyses import catalog, events, registry
from nexus.analyses.catalog import PropertyName
from nexus.dashboard.pages import events as page
from nexus.dashboard.shell import Context, View
from nexus.meta import projects

NOW = datetime(2026, 10, 21, tzinfo=timezone.utc)
XSS = "<img src=x onerror=alert(1)>"


def common(**view: Any) -> dict[str, Any]:
    """What the shell adds to every request (`ctx.common`), from global settings as the URL sets them."""
    shell = View(tz=view.pop("tz", "UTC"), **view)
    return Context(None, shell, "events").common(interval=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def project(client) -> int:
    project_id = projects.create(client, "events page").project_id
    # Given 23 events of three names, two of them at the same millisecond (the cursor's message id breaks the tie)
    start = datetime(2026, 10, 20, 8, 0, tzinfo=timezone.utc)
    times = [start + timedelta(minutes=7 * i) for i in range(22)] + [start + timedelta(minutes=7 * 21)]
    names = ["page_view", "signup", XSS] * 7 + ["page_view", "page_view"]
    rows = [[project_id, t, name, "track", f"m{i:02d}", f"user-{i % 4}", '{"plan": "pro", "n": %d}' % i]
            for i, (t, name) in enumerate(zip(times, names))]
    client.insert("events", rows, column_names=["project_id", "ts", "event", "type", "message_id", "distinct_id",
                                                 "properties"])
    return project_id


@pytest.mark.parametrize("view", [{}, {"range": "custom", "date_from": "2026-10-01", "date_to": "2026-10-31",
                                       "tz": "Europe/Berlin", "filters": '[{"key":"plan","op":"eq","value":"pro"}]'}])
def test_every_request_the_page_builds_decodes(view: dict[str, Any]) -> None:
    settings = page.Settings()
    assert registry.decode("events", page.request(common(**view), settings)) == registry.decode(
        "events", common(**view) | {"limit": 50})
    settings.param.update(event=XSS, limit=250, before=events.Cursor(1, "m1").encode())
    decoded = registry.decode("events", page.request(common(**view), settings))
    assert (decoded.event, decoded.limit, decoded.before) == (XSS, 250, settings.before)
    for size in page.PAGE_SIZES:
        settings.limit = size
        assert registry.decode("events", page.request(common(**view), settings)).limit == size


def test_newer_goes_back_one_page_and_a_link_without_its_trail_to_the_newest() -> None:
    place = ("", "")
    visited = [place]
    for cursor in ("c1", "c2", "c3"):
        place = page.older(*place, cursor)
        visited.append(place)
    assert place == ("c3", "..c1.c2")  # the newest page's cursor is the empty one first in the trail
    assert [page.newer(*p) for p in visited[1:]] == visited[:-1]
    assert page.newer("c9", "") == ("", "")


def run(client, project_id: int, settings: page.Settings) -> events.EventsResult:
    request = registry.decode("events", page.request(common(range="custom", date_from="2026-10-01",
                                                             date_to="2026-10-31"), settings))
    return events.run(client, project_id, request, now=NOW)


@pytest.mark.parametrize("event", ["", XSS])
def test_paging_visits_every_event_once_in_order_and_comes_back_to_the_same_pages(client, project, event) -> None:
    settings = page.Settings(limit=5, event=event)
    pages = [run(client, project, settings)]
    while pages[-1].next_cursor:
        settings.param.update(**dict(zip(("before", "trail"), page.older(settings.before, settings.trail,
                                                                           pages[-1].next_cursor))))
        pages.append(run(client, project, settings))
    shown = [row.message_id for p in pages for row in p.rows]
    expected = client.query_df(
        "SELECT message_id FROM events WHERE project_id = {p:UInt32} AND (event = {e:String} OR {e:String} = '') "
        "ORDER BY ts DESC, message_id DESC", parameters={"p": project, "e": event})["message_id"].tolist()
    assert shown == expected and len(set(shown)) == len(shown)
    # When the analyst goes back with Newer, each page is the one seen before
    for back in reversed(pages[:-1]):
        settings.param.update(**dict(zip(("before", "trail"), page.newer(settings.before, settings.trail))))
        assert run(client, project, settings).rows == back.rows
    assert (settings.before, settings.trail) == ("", "")


def test_cells_are_text_in_the_chosen_zone(client, project) -> None:
    asked = {"limit": 3, "timezone": "Asia/Kolkata", "date_range": {"date_from": "2026-10-01", "date_to": "2026-10-31"}}
    result = events.run(client, project, registry.decode("events", asked), now=NOW)
    cells = page.event_rows(result.rows, result.timezone)
    reference = client.query_df("SELECT ts, event FROM events WHERE project_id = {p:UInt32} ORDER BY ts DESC, "
                                "message_id DESC LIMIT 3", parameters={"p": project})
    local = pd.to_datetime(reference["ts"], utc=True).dt.tz_convert("Asia/Kolkata")
    assert cells["time"] == [t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for t in local]
    assert cells["event"] == reference["event"].tolist() and cells["person"] == ["", "", ""]
    assert {k: len(v) for k, v in cells.items()} == {field: 3 for field, _, _ in page.COLUMNS}


def test_the_catalogue_lists_names_with_counts_and_properties_with_types(client, project) -> None:
    names = page.name_rows(catalog.event_names(client, project))  # most frequent first, ties by name
    assert names == {"name": ["page_view", XSS, "signup"], "events": ["9", "7", "7"],
                     "last_seen": ["2026-10-20", "2026-10-20", "2026-10-20"]}
    found = page.property_rows(catalog.properties(client, project, XSS, now=NOW))
    assert found["key"][:2] == ["n", "plan"] and found["types"][:2] == ["Int64", "String"]
    assert page.property_rows([PropertyName("a", "person", ["Int64", "String"], 1234)]) == \
        {"key": ["a"], "source": ["person"], "types": ["Int64, String"], "seen": ["1,234"]}
