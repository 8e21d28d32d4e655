"""Dashboard sign-ins on the real engine and Redis: which keys open the dashboard, several projects in one
sign-in, revocation and sign-out, signed cookies, and where a sign-in may send the browser next."""

from __future__ import annotations

import time

import pytest
from tornado.web import create_signed_value

from nexus.api.auth import GENERATION_CHECK_SECONDS
from nexus.dashboard.signin import COOKIE, SignIns, safe_next
from nexus.meta import keys, projects


@pytest.fixture(scope="module")
def signins(client, redis) -> SignIns:
    return SignIns(client, redis.client, hours=1)


@pytest.fixture(scope="module")
def two_projects(client) -> dict[str, dict[str, str]]:
    made = {}
    for name in ("signin-a", "signin-b"):
        project = projects.create(client, name, "Europe/Berlin")
        made[name] = {scope: keys.create(client, project.project_id, scope)[1] for scope in ("write", "read", "admin")}
        made[name]["id"] = str(project.project_id)
    return made


def test_read_and_admin_keys_sign_in_and_write_or_unknown_keys_do_not(signins, two_projects):
    a = two_projects["signin-a"]
    for scope in ("read", "admin"):
        viewer = signins.viewer(signins.sign_in(a[scope], None))
        assert viewer is not None and [g.project_id for g in viewer.grants] == [int(a["id"])]
        assert viewer.grants[0].scope == scope and viewer.grants[0].timezone == "Europe/Berlin"
    assert signins.sign_in(a["write"], None) is None
    assert signins.sign_in("nx_" + "x" * 40, None) is None
    assert signins.sign_in("", None) is None


def test_the_instance_admin_key_opens_no_project(client, signins):
    _, secret = keys.create_instance_key(client)
    assert signins.sign_in(secret, None) is None


def test_one_sign_in_holds_several_projects_and_a_newer_key_replaces_the_older(signins, two_projects):
    a, b = two_projects["signin-a"], two_projects["signin-b"]
    token = signins.sign_in(a["read"], None)
    assert signins.sign_in(b["read"], token) == token
    assert signins.sign_in(a["admin"], token) == token
    viewer = signins.viewer(token)
    assert [(g.project_id, g.scope) for g in viewer.grants] == [(int(b["id"]), "read"), (int(a["id"]), "admin")]
    assert viewer.grant(None).project_id == int(b["id"])
    assert viewer.grant(int(a["id"])).scope == "admin"
    assert viewer.grant(999_999) is None


def test_a_revoked_key_drops_its_project_and_the_last_one_ends_the_sign_in(client, redis, signins, two_projects):
    project_a = int(two_projects["signin-a"]["id"])
    key, secret = keys.create(client, project_a, "read")
    other, other_secret = keys.create(client, int(two_projects["signin-b"]["id"]), "read")
    token = signins.sign_in(secret, signins.sign_in(other_secret, None))
    assert len(signins.viewer(token).grants) == 2
    keys.revoke(client, key.key_id)
    keys.changed(redis.client)
    time.sleep(GENERATION_CHECK_SECONDS * 1.2)
    assert [g.project_id for g in signins.viewer(token).grants] == [other.project_id]
    keys.revoke(client, other.key_id)
    keys.changed(redis.client)
    time.sleep(GENERATION_CHECK_SECONDS * 1.2)  # each cache reads the counter at most this often
    assert signins.viewer(token) is None


def test_sign_out_ends_the_sign_in_itself(signins, two_projects):
    token = signins.sign_in(two_projects["signin-a"]["read"], None)
    signins.sign_out(token)
    assert signins.viewer(token) is None
    assert signins.viewer("made-up") is None and signins.viewer(None) is None


def test_cookies_are_checked_against_the_shared_secret(signins, two_projects):
    token = signins.sign_in(two_projects["signin-a"]["read"], None)
    signed = create_signed_value(signins.cookie_secret(), COOKIE, token)
    assert signins.token_from_cookie(signed) == token
    forged = create_signed_value("another secret" * 4, COOKIE, token)
    assert signins.token_from_cookie(forged) is None
    assert signins.token_from_cookie(token) is None  # the bare token is not a cookie
    assert signins.cookie_secret() == signins.cookie_secret()  # stable: every process signs alike


@pytest.mark.parametrize(("target", "expected"), [
    ("/trends?series=1", "/trends?series=1"),
    ("/dashboards", "/dashboards"),
    ("https://evil.example/", "/overview"),
    ("//evil.example/x", "/overview"),
    ("/\\evil.example", "/overview"),
    ("javascript:alert(1)", "/overview"),
    ("", "/overview"),
    (None, "/overview"),
])
def test_after_sign_in_the_browser_goes_only_to_a_page_of_this_site(target, expected):
    assert safe_next(target) == expected
