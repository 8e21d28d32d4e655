"""The admin API while the server runs: projects with the instance admin key, keys with a project's admin
key (its own project only), revocation reaching every app instance through Redis within a second."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from nexus.adhoc import limits
from nexus.api.app import create_app
from nexus.meta import keys, projects

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def instance(server) -> str:
    return keys.create_instance_key(server.runtime.clickhouse)[1]


@pytest.fixture(scope="module")
def victim(server) -> tuple[int, dict[str, str]]:
    """Project A, whose data no other project's key may reach."""
    return server.project_with_keys("victim-project-a")


@pytest.fixture(scope="module")
def attacker(server) -> tuple[int, dict[str, str]]:
    return server.project_with_keys("attacker-project-b")


def state_of(server, project_id: int) -> tuple:
    """Everything stored about a project's keys: to compare before and after an attack."""
    client = server.runtime.clickhouse
    key_list = keys.list_keys(client, project_id)
    return (projects.get(client, project_id), key_list,
            [limits.for_key(client, k.key_id, limits.QueryLimits()) for k in key_list])


def refused_soon(client: httpx.Client, secret: str, seconds: float = 1.0) -> float:
    """How long until the key's event is refused with 401 (fails after `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answer = client.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=bearer(secret))
        if answer.status_code == 401:
            return time.monotonic() - started
        assert answer.status_code == 200, answer.text
        time.sleep(0.02)
    raise AssertionError(f"the revoked key still worked after {seconds} s")


def test_an_instance_admin_sets_up_a_project_whose_admin_key_manages_its_keys(server, http, instance):
    # Given the instance admin key, a new project and its first admin key
    created = http.post("/v1/projects", json={"name": "journey", "timezone": "Europe/Berlin"}, headers=bearer(instance))
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["name"] == "journey" and project["timezone"] == "Europe/Berlin"
    listed = http.get("/v1/projects", headers=bearer(instance)).json()
    assert project in listed
    first = http.post("/v1/keys", json={"project_id": project["project_id"], "scope": "admin", "name": "ops"},
                      headers=bearer(instance))
    assert first.status_code == 201, first.text
    admin = first.json()
    assert admin["secret"].startswith(admin["key_id"]) and admin["revoked_at"] is None
    # When that admin key creates a write key for its own project (no project named), the key sends events
    write = http.post("/v1/keys", json={"scope": "write", "name": "site"}, headers=bearer(admin["secret"])).json()
    assert write["project_id"] == project["project_id"] and write["scope"] == "write"
    sent = http.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=bearer(write["secret"]))
    assert sent.status_code == 200
    # Then its listing holds exactly its project's keys, never a secret or a hash
    own = http.get("/v1/keys", headers=bearer(admin["secret"]))
    assert own.status_code == 200
    assert {k["key_id"] for k in own.json()} == {admin["key_id"], write["key_id"]}
    assert "secret" not in own.text and "key_hash" not in own.text and admin["secret"] not in own.text
    assert http.get("/v1/projects", headers=bearer(admin["secret"])).json() == [project]
    # And revoking the write key stops it within a second
    revoked = http.delete(f"/v1/keys/{write['key_id']}", headers=bearer(admin["secret"]))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused_soon(http, write["secret"])
    assert http.delete(f"/v1/keys/{write['key_id']}", headers=bearer(admin["secret"])).json() == revoked.json()


def test_another_projects_admin_key_finds_nothing_of_it(server, http, victim, attacker):
    victim_id, victim_keys = victim
    _, attacker_keys = attacker
    before = state_of(server, victim_id)
    target = victim_keys["read"][:11]
    # What the attacker did not send: the victim's other key ids, its secrets, its name (the target's id
    # comes back in the error as any id sent does)
    hidden = [k.key_id for k in before[1] if k.key_id != target] + list(victim_keys.values()) + ["victim-project-a"]
    as_attacker = bearer(attacker_keys["admin"])
    attempts = [
        http.delete(f"/v1/keys/{target}", headers=as_attacker),
        http.put(f"/v1/keys/{target}/limits", json={"max_seconds": 1}, headers=as_attacker),
        http.get(f"/v1/keys/{target}/limits", headers=as_attacker),
        http.get("/v1/keys", params={"project_id": victim_id}, headers=as_attacker),
        http.post("/v1/keys", json={"project_id": victim_id, "scope": "admin"}, headers=as_attacker),
    ]
    # The same answers as for a key and a project that do not exist: nothing tells them apart
    missing = [
        http.delete("/v1/keys/nx_AAAAAAAA", headers=as_attacker),
        http.put("/v1/keys/nx_AAAAAAAA/limits", json={"max_seconds": 1}, headers=as_attacker),
        http.get("/v1/keys/nx_AAAAAAAA/limits", headers=as_attacker),
        http.get("/v1/keys", params={"project_id": 99_999}, headers=as_attacker),
        http.post("/v1/keys", json={"project_id": 99_999, "scope": "admin"}, headers=as_attacker),
    ]
    for attempt, absent in zip(attempts, missing):
        assert attempt.status_code == absent.status_code == 404, attempt.text
        assert attempt.json()["error"].replace(target, "X").replace(str(victim_id), "N") == \
            absent.json()["error"].replace("nx_AAAAAAAA", "X").replace("99999", "N")
    assert http.post("/v1/projects", json={"name": "mine-now"}, headers=as_attacker).status_code == 403
    answers = attempts + [http.get(path, headers=as_attacker) for path in ("/v1/keys", "/v1/projects")]
    for answer in answers:
        assert not any(secret in answer.text for secret in hidden), answer.text
    assert state_of(server, victim_id) == before
    assert http.post("/v1/track", json={"event": "x", "anonymousId": "a"},
                     headers=bearer(victim_keys["write"])).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/projects", {"name": "nope"}),
    ("GET", "/v1/projects", None),
    ("POST", "/v1/keys", {"scope": "read"}),
    ("GET", "/v1/keys", None),
    ("DELETE", "/v1/keys/{key}", None),
    ("PUT", "/v1/keys/{key}/limits", {"max_seconds": 1}),
    ("GET", "/v1/keys/{key}/limits", None),
])
def test_write_and_read_keys_administer_nothing(server, http, victim, method, path, body):
    victim_id, victim_keys = victim
    before = state_of(server, victim_id)
    url = path.format(key=victim_keys["write"][:11])
    for scope in ("write", "read"):
        answer = http.request(method, url, json=body, headers=bearer(victim_keys[scope]))
        assert answer.status_code == 403 and "cannot" in answer.json()["error"], answer.text
    nobody = http.request(method, url, json=body)
    assert nobody.status_code == 401 and "API key is required" in nobody.json()["error"]
    wrong = http.request(method, url, json=body, headers=bearer("nx_" + "A" * 40))
    assert wrong.status_code == 401
    assert state_of(server, victim_id) == before


def test_the_instance_key_reads_and_writes_no_project_data(http, instance):
    assert http.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=bearer(instance)).status_code == 403
    assert http.post("/v1/query", json={"sql": "SELECT 1"}, headers=bearer(instance)).status_code == 403
    assert http.post("/v1/analyses/trends", json={}, headers=bearer(instance)).status_code == 403


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/v1/projects", {"name": "-bad"}, "name"),
    ("POST", "/v1/projects", {"name": "x" * 65}, "name"),
    ("POST", "/v1/projects", {"name": "victim-project-a"}, "name"),
    ("POST", "/v1/projects", {"name": "ok", "timezone": "Mars/Olympus"}, "timezone"),
    ("POST", "/v1/projects", {"name": 7}, "name"),
    ("POST", "/v1/projects", {"name": "ok", "owner": "me"}, None),
    ("POST", "/v1/projects", b"{not json", None),
    ("POST", "/v1/keys", {"scope": "root", "project_id": "{project}"}, "scope"),
    ("POST", "/v1/keys", {"scope": "read"}, "project_id"),
    ("POST", "/v1/keys", {"scope": "read", "project_id": 0}, "project_id"),
    ("POST", "/v1/keys", {"scope": "read", "project_id": 2**40}, "project_id"),
    ("POST", "/v1/keys", {"scope": "read", "project_id": "1"}, "project_id"),
    ("POST", "/v1/keys", {"scope": "read", "project_id": "{project}", "name": "n" * 201}, "name"),
    ("GET", "/v1/keys?project_id=abc", None, "project_id"),
    ("PUT", "/v1/keys/{key}/limits", {"max_seconds": -1}, "max_seconds"),
    ("PUT", "/v1/keys/{key}/limits", {"max_seconds": 2**33}, "max_seconds"),
    ("PUT", "/v1/keys/{key}/limits", {"max_memory_bytes": "lots"}, "max_memory_bytes"),
    ("PUT", "/v1/keys/{key}/limits", {"max_cpus": 2}, None),
    ("PUT", "/v1/keys/{key}/limits", [], None),
])
def test_bad_input_is_a_clear_400_naming_the_field(server, http, instance, victim, method, path, body, field):
    victim_id, victim_keys = victim
    before = state_of(server, victim_id)
    listed = projects.list_all(server.runtime.clickhouse)
    url = path.format(key=victim_keys["read"][:11])
    if isinstance(body, dict):
        body = {k: victim_id if v == "{project}" else v for k, v in body.items()}
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    headers = {**bearer(instance), "Content-Type": "application/json"}
    answer = http.request(method, url, content=content, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json().get("field") == field and "Traceback" not in answer.text, answer.text
    if field:
        assert field in answer.json()["error"]
    assert state_of(server, victim_id) == before and projects.list_all(server.runtime.clickhouse) == listed


def test_unknown_keys_and_projects_are_404(http, instance):
    assert http.delete("/v1/keys/nx_missing", headers=bearer(instance)).status_code == 404
    assert http.put("/v1/keys/nx_missing/limits", json={}, headers=bearer(instance)).status_code == 404
    assert http.get("/v1/keys/nx_missing/limits", headers=bearer(instance)).status_code == 404
    assert http.get("/v1/keys", params={"project_id": 987_654}, headers=bearer(instance)).status_code == 404
    absent = http.post("/v1/keys", json={"scope": "read", "project_id": 987_654}, headers=bearer(instance))
    assert absent.status_code == 404
    assert absent.json() == {"error": "no project '987654': list them with `nexus project list`"}


def test_limits_are_set_for_a_key_and_reset_to_the_defaults(server, http, victim):
    victim_id, victim_keys = victim
    key_id = victim_keys["read"][:11]
    url = f"/v1/keys/{key_id}/limits"
    defaults = server.app.state.api.query_defaults
    shown = http.get(url, headers=bearer(victim_keys["admin"]))
    assert shown.status_code == 200 and shown.json() == {
        "key_id": key_id, "project_id": victim_id, "overrides": {}, "limits": msgspec.to_builtins(defaults)}
    answer = http.put(url, json={"max_seconds": 5, "max_json_rows": 10}, headers=bearer(victim_keys["admin"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["overrides"] == {"max_seconds": 5, "max_json_rows": 10}
    assert body["limits"] == msgspec.to_builtins(msgspec.structs.replace(defaults, max_seconds=5, max_json_rows=10))
    assert http.get(url, headers=bearer(victim_keys["admin"])).json() == body  # what is set can be read back
    rows = http.post("/v1/query", json={"sql": "SELECT number FROM numbers(50)"}, headers=bearer(victim_keys["read"]))
    assert rows.status_code == 400, rows.text  # the key's 10-row JSON limit applies at once
    reset = http.put(url, json={}, headers=bearer(victim_keys["admin"])).json()
    assert reset["overrides"] == {} and reset["limits"] == msgspec.to_builtins(defaults)


def test_a_revoked_key_is_refused_by_another_app_instance_within_a_second(server, http, victim, redis):
    # Given a second app instance on the same store and the same real redis-server, with its own key cache
    _, victim_keys = victim
    secret = keys.create(server.runtime.clickhouse, victim[0], "write")[1]
    with TestClient(create_app(server.runtime)) as other:
        event = {"event": "x", "anonymousId": "a"}
        assert other.post("/v1/track", json=event, headers=bearer(secret)).status_code == 200  # now cached there
        # When the first instance revokes it through the admin API
        assert http.delete(f"/v1/keys/{secret[:11]}", headers=bearer(victim_keys["admin"])).status_code == 200
        # Then the second refuses it within a second
        assert refused_soon(other, secret) < 1.0


def test_the_notice_through_redis_is_what_reaches_other_instances(server, victim, redis):
    secret = keys.create(server.runtime.clickhouse, victim[0], "write")[1]
    with TestClient(create_app(server.runtime)) as other:
        event = {"event": "x", "anonymousId": "a"}
        assert other.post("/v1/track", json=event, headers=bearer(secret)).status_code == 200
        keys.revoke(server.runtime.clickhouse, secret[:11])  # stored, but nobody told
        time.sleep(0.5)
        assert other.post("/v1/track", json=event, headers=bearer(secret)).status_code == 200  # still cached
        keys.changed(redis.client)
        assert refused_soon(other, secret) < 1.0


def test_projects_created_at_once_all_keep_their_own_number(http, instance):
    names = [f"burst-{i}" for i in range(8)]
    barrier = threading.Barrier(len(names))

    def create(name: str) -> httpx.Response:
        barrier.wait()
        return http.post("/v1/projects", json={"name": name}, headers=bearer(instance))

    with ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(create, names))
    assert [a.status_code for a in answers] == [201] * len(names)
    numbers = {a.json()["project_id"] for a in answers}
    assert len(numbers) == len(names)
    listed = {p["project_id"]: p["name"] for p in http.get("/v1/projects", headers=bearer(instance)).json()}
    assert {listed[a.json()["project_id"]] for a in answers} == set(names)


def test_the_configured_admin_key_administers_and_a_revoked_instance_key_does_not(server, instance):
    configured = "c" * 40
    settings = msgspec.structs.replace(server.runtime.settings, admin_key=configured)
    runtime = msgspec.structs.replace(server.runtime, settings=settings)
    spare, spare_secret = keys.create_instance_key(server.runtime.clickhouse)
    with TestClient(create_app(runtime)) as app:
        assert app.get("/v1/projects", headers=bearer(configured)).status_code == 200
        assert app.get("/v1/projects", headers=bearer("c" * 39)).status_code == 401
        assert app.get("/v1/projects", headers=bearer(spare_secret)).status_code == 200  # stored ones too
        revoked = app.delete(f"/v1/keys/{spare.key_id}", headers=bearer(configured))
        assert revoked.status_code == 200 and revoked.json()["scope"] == "instance"
        deadline = time.monotonic() + 1
        while app.get("/v1/projects", headers=bearer(spare_secret)).status_code != 401:
            assert time.monotonic() < deadline, "the revoked instance key still works after 1 s"
            time.sleep(0.02)
        assert app.get("/v1/projects", headers=bearer(instance)).status_code == 200
