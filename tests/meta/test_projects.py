"""Projects: numbered, uniquely named, found by name or number."""

from __future__ import annotations

import pytest

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import projects


def test_projects_are_numbered_in_order_and_found_by_name_or_number(client):
    first = projects.create(client, "web shop")
    second = projects.create(client, "mobile-app", "Europe/Berlin")
    assert second.project_id == first.project_id + 1
    assert projects.get(client, "mobile-app") == second
    assert projects.get(client, str(second.project_id)) == second
    assert projects.get(client, second.project_id).timezone == "Europe/Berlin"
    assert [p.name for p in projects.list_all(client)][-2:] == ["web shop", "mobile-app"]


@pytest.mark.parametrize(
    ("name", "timezone", "reason"),
    [("", "UTC", "must be 1-64"), ("-x", "UTC", "must be 1-64"), ("a" * 65, "UTC", "must be 1-64"),
     ("ok", "Mars/Olympus", "unknown time zone"), ("ok", "Europe", "unknown time zone")],
)
def test_bad_names_and_time_zones_are_refused(client, name, timezone, reason):
    with pytest.raises(InvalidRequest, match=reason):
        projects.create(client, name, timezone)


def test_names_are_unique(client):
    projects.create(client, "unique-one")
    with pytest.raises(InvalidRequest, match="already exists"):
        projects.create(client, "unique-one")


def test_an_unknown_project_is_not_found(client):
    with pytest.raises(NotFound, match="no project 'nope'"):
        projects.get(client, "nope")
    with pytest.raises(NotFound):
        projects.get(client, 987654)
    with pytest.raises(NotFound, match="no project '99999999999'"):  # past UInt32: not found, not a driver error
        projects.get(client, 99_999_999_999)


@pytest.mark.parametrize(("name", "timezone", "field"), [("-x", "UTC", "name"), ("fine", "Nowhere/City", "timezone")])
def test_a_refused_value_names_its_field(client, name, timezone, field):
    with pytest.raises(InvalidRequest) as refused:
        projects.create(client, name, timezone)
    assert refused.value.field == field
