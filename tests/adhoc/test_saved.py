"""Saved queries as a journey: an engineer saves a parameterised query, a dashboard runs it by id with
its defaults, someone edits it, and it is deleted; another project never sees it."""

from __future__ import annotations

import msgspec
import pytest

from nexus.adhoc import saved
from nexus.adhoc.check import Parameter
from nexus.adhoc.errors import QueryRefused
from nexus.errors import InvalidRequest, NotFound, QueryFailed
from tests.adhoc.conftest import World

TOP_EVENTS = ("SELECT event, count() AS n FROM events WHERE distinct_id = {who:String} GROUP BY event "
              "ORDER BY n DESC LIMIT {k:UInt32}")


def test_save_run_edit_and_delete(world: World, client) -> None:
    # Given an engineer saves a query with a default for one of its two parameters
    created = saved.create(world.service, world.alpha, saved.SavedQueryInput(
        "top events of a person", TOP_EVENTS, "Most frequent events of one person", {"k": 3}), "nx_tester1")
    shown = saved.view(created)
    assert shown.parameters == [Parameter("who", "String"), Parameter("k", "UInt32")]
    assert shown.default_params == {"k": 3} and shown.created_by == "nx_tester1"
    assert [q.query_id for q in saved.list_all(client, world.alpha)] == [created.query_id]

    # When a dashboard tile runs it by id, giving only the parameter without a default
    sql, params = saved.resolve(client, world.alpha, created.query_id, {"who": "alpha-user"})
    answer = world.service.answer_json(world.alpha, sql, params)
    assert msgspec.json.decode(bytes(answer.rows)) == [["alpha_event", 5]]
    # and a run can override the default
    assert saved.resolve(client, world.alpha, created.query_id, {"who": "x", "k": 1})[1] == {"who": "x", "k": 1}

    # When it is edited, its id and author stay and its parameters follow the new SQL
    edited = saved.update(world.service, world.alpha, created.query_id, saved.SavedQueryInput(
        "top events of a person", TOP_EVENTS.replace("{k:UInt32}", "10")))
    assert (edited.query_id, edited.created_by) == (created.query_id, "nx_tester1")
    assert saved.view(saved.get(client, world.alpha, created.query_id)).parameters == [Parameter("who", "String")]
    assert edited.updated_at >= created.updated_at

    # Then deleting it removes it from the project
    saved.delete(client, world.alpha, created.query_id)
    with pytest.raises(NotFound):
        saved.get(client, world.alpha, created.query_id)
    assert saved.list_all(client, world.alpha) == []


def test_only_sql_that_may_run_can_be_saved(world: World) -> None:
    with pytest.raises(QueryRefused, match="table 'api_keys'"):
        saved.create(world.service, world.alpha, saved.SavedQueryInput("keys", "SELECT * FROM api_keys"), "k")
    with pytest.raises(QueryFailed, match="Syntax error"):
        saved.create(world.service, world.alpha, saved.SavedQueryInput("broken", "SELEC 1"), "k")
    with pytest.raises(InvalidRequest, match="does not declare"):
        saved.create(world.service, world.alpha, saved.SavedQueryInput("d", "SELECT 1", default_params={"x": 1}), "k")
    with pytest.raises(InvalidRequest, match="name"):
        saved.create(world.service, world.alpha, saved.SavedQueryInput(" ", "SELECT 1"), "k")
    first = saved.create(world.service, world.alpha, saved.SavedQueryInput("unique", "SELECT 1"), "k")
    with pytest.raises(InvalidRequest, match="already exists"):
        saved.create(world.service, world.alpha, saved.SavedQueryInput("unique", "SELECT 2"), "k")
    saved.update(world.service, world.alpha, first.query_id, saved.SavedQueryInput("unique", "SELECT 3"))
    saved.delete(world.service.client, world.alpha, first.query_id)


def test_another_project_s_saved_query_does_not_exist_for_alpha(world: World, client) -> None:
    with pytest.raises(NotFound):
        saved.get(client, world.alpha, world.beta_query_id)
    with pytest.raises(NotFound):
        saved.resolve(client, world.alpha, world.beta_query_id)
    with pytest.raises(NotFound):
        saved.delete(client, world.alpha, world.beta_query_id)
    assert saved.get(client, world.beta, world.beta_query_id).name == "beta secret query"
