"""API keys: shown once, stored hashed, scoped to one project, revocable."""

from __future__ import annotations

import hashlib

import pytest

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import keys, projects


@pytest.fixture(scope="module")
def two_projects(client):
    return projects.create(client, "alpha"), projects.create(client, "beta")


def test_the_secret_is_never_stored_only_its_hash(client, two_projects):
    alpha, _ = two_projects
    key, secret = keys.create(client, alpha.project_id, "write", "website")
    dump = repr(client.query("SELECT * FROM api_keys").result_rows)
    assert secret not in dump and secret[len(key.key_id):] not in dump
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest() and key.key_hash in dump


def test_a_key_authenticates_for_its_own_project_and_scope(client, two_projects):
    alpha, beta = two_projects
    _, secret = keys.create(client, alpha.project_id, "read")
    found = keys.authenticate(client, secret)
    assert found is not None and found.project_id == alpha.project_id and found.project_id != beta.project_id
    assert found.allows("read") and not found.allows("write") and not found.allows("admin")


def test_admin_keys_allow_every_scope_and_write_keys_only_writing(client, two_projects):
    alpha, _ = two_projects
    admin = keys.authenticate(client, keys.create(client, alpha.project_id, "admin")[1])
    write = keys.authenticate(client, keys.create(client, alpha.project_id, "write")[1])
    assert all(admin.allows(s) for s in ("write", "read", "admin"))
    assert write.allows("write") and not write.allows("read")


@pytest.mark.parametrize("guess", ["", "nx_", "nx_short", "not-a-key", "nx_AAAAAAAA" + "B" * 40])
def test_wrong_secrets_authenticate_nobody(client, two_projects, guess):
    assert keys.authenticate(client, guess) is None


def test_a_tampered_secret_with_a_real_prefix_is_refused(client, two_projects):
    _, secret = keys.create(client, two_projects[0].project_id, "read")
    assert keys.authenticate(client, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None


def test_a_revoked_key_stops_working_and_stays_listed(client, two_projects):
    _, beta = two_projects
    key, secret = keys.create(client, beta.project_id, "write")
    revoked = keys.revoke(client, key.key_id)
    assert revoked.revoked_at is not None and not revoked.allows("write")
    assert keys.authenticate(client, secret) is None
    assert keys.revoke(client, key.key_id).revoked_at == revoked.revoked_at  # revoking twice is harmless
    listed = {k.key_id: k for k in keys.list_keys(client, beta.project_id)}
    assert listed[key.key_id].revoked_at == revoked.revoked_at
    assert all(k.project_id == beta.project_id for k in listed.values())


def test_bad_scopes_and_unknown_keys_are_refused(client, two_projects):
    with pytest.raises(InvalidRequest, match="scope must be one of"):
        keys.create(client, two_projects[0].project_id, "superuser")
    with pytest.raises(NotFound, match="no API key"):
        keys.revoke(client, "nx_missing")


def test_the_instance_key_is_stored_hashed_as_project_0_and_allows_no_project_scope(client):
    key, secret = keys.create_instance_key(client)
    assert key.project_id == keys.INSTANCE_PROJECT == 0 and key.scope == "instance"
    assert secret not in repr(client.query("SELECT * FROM api_keys").result_rows)
    found = keys.authenticate(client, secret)
    assert found == key and not any(found.allows(s) for s in ("write", "read", "admin"))
    assert key in keys.instance_keys(client)
    keys.revoke(client, key.key_id)
    assert key.key_id not in {k.key_id for k in keys.instance_keys(client)}


def test_a_change_of_keys_moves_the_generation_every_process_watches(redis):
    before = keys.generation(redis.client)
    assert keys.changed(redis.client) == before + 1 == keys.generation(redis.client)
