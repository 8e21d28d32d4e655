"""The admin rules, called directly: a project's admin key manages its own keys only, and sees other
projects' as missing; the instance (or a person at the store) manages every project."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from nexus.adhoc.limits import QueryLimits
from nexus.errors import Forbidden, InvalidRequest, NotFound
from nexus.meta import keys, projects
from nexus.meta.admin import LOCAL, Administration, Caller, KeyInput, ProjectInput, limits_input


@pytest.fixture(scope="module")
def two(client):
    local = Administration(client, LOCAL, QueryLimits())
    return local.create_project(ProjectInput("own")), local.create_project(ProjectInput("foreign"))


def as_project(client, project_id: int) -> Administration:
    return Administration(client, Caller("nx_test0000", project_id), QueryLimits())


def test_a_project_admin_manages_its_own_keys(client, two):
    own, _ = two
    admin = as_project(client, own.project_id)
    created = admin.create_key(KeyInput("read", "dashboards"))
    assert created.project_id == own.project_id and keys.authenticate(client, created.secret).scope == "read"
    assert [p.name for p in admin.list_projects()] == ["own"]
    assert {k.key_id for k in admin.list_keys()} == {created.key_id}
    assert admin.set_limits(created.key_id, limits_input(max_seconds=3)).limits.max_seconds == 3
    assert admin.revoke_key(created.key_id).revoked_at is not None


def test_other_projects_and_their_keys_are_missing_to_it(client, two):
    own, foreign = two
    theirs = keys.create(client, foreign.project_id, "read")[0]
    admin = as_project(client, own.project_id)
    for attempt in (lambda: admin.revoke_key(theirs.key_id), lambda: admin.set_limits(theirs.key_id, limits_input()),
                    lambda: admin.list_keys(foreign.project_id), lambda: admin.find_project("foreign"),
                    lambda: admin.create_key(KeyInput("admin", project_id=foreign.project_id))):
        with pytest.raises(NotFound) as refused:
            attempt()
        assert str(refused.value).startswith(("no project '", "no API key '"))  # as if it did not exist
    with pytest.raises(Forbidden, match="instance admin key"):
        admin.create_project(ProjectInput("grab"))
    assert keys.get(client, theirs.key_id).revoked_at is None


def test_the_instance_names_the_project_of_a_key(client, two):
    local = Administration(client, LOCAL, QueryLimits())
    with pytest.raises(InvalidRequest, match="project_id is required") as refused:
        local.create_key(KeyInput("read"))
    assert refused.value.field == "project_id"
    assert local.create_key(KeyInput("read", project_id=two[1].project_id)).project_id == two[1].project_id


def test_limits_out_of_range_are_refused_with_their_field():
    with pytest.raises(InvalidRequest) as refused:
        limits_input(max_seconds=2**32)
    assert refused.value.field == "max_seconds"


def test_projects_created_at_once_in_one_process_keep_their_own_numbers(client):
    local = Administration(client, LOCAL, QueryLimits())
    barrier = threading.Barrier(6)

    def create(i: int) -> int:
        barrier.wait()
        return local.create_project(ProjectInput(f"parallel-{i}")).project_id

    with ThreadPoolExecutor(6) as pool:
        numbers = list(pool.map(create, range(6)))
    assert len(set(numbers)) == 6
    assert {projects.get(client, n).name for n in numbers} == {f"parallel-{i}" for i in range(6)}
