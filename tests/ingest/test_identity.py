"""Identity links written by two processes sharing one store (the API and a `nexus import` on a ClickHouse
server): two resolvers, each with its own cache, on the real engine and a real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from nexus.ingest.identity import IdentityResolver, Link
from tests.analyses.journeys import new_project

TS = datetime(2026, 10, 1, tzinfo=UTC)


def test_a_merge_by_one_process_is_seen_by_the_other(client, redis):
    project = new_project(client)
    api, importer = IdentityResolver(redis.client), IdentityResolver(redis.client)
    api.apply(client, [Link(project, "user-1", "anon-1", None, TS)])  # the API now remembers user-1's person
    importer.apply(client, [Link(project, "user-2", "anon-2", None, TS)])
    importer.apply(client, [Link(project, "user-2", "user-1", None, TS)])  # alias: user-1's person merges into user-2's
    # Given the API's memory of user-1 predates the merge, when user-1 identifies on a new device
    api.apply(client, [Link(project, "user-1", "anon-3", {"plan": "pro"}, TS)])
    # Then the new id joins the surviving person, and the merged one stays deleted
    people = dict(client.query("SELECT distinct_id, toString(person_id) FROM identities FINAL "
                               "WHERE project_id = {p:UInt32}", parameters={"p": project}).result_rows)
    assert set(people) == {"user-1", "anon-1", "user-2", "anon-2", "anon-3"}
    assert len(set(people.values())) == 1
    live = client.query("SELECT toString(person_id), toJSONString(properties) FROM persons FINAL "
                        "WHERE project_id = {p:UInt32}", parameters={"p": project}).result_rows
    assert [(person, json.loads(traits)) for person, traits in live] == [(people["anon-3"], {"plan": "pro"})]
