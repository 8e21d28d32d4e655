"""Saved dashboards over real HTTP: read keys read, admin keys change; another project's key finds
nothing and reads none of its names; bad bodies get a 400 naming the field, never a traceback, and
leave what is stored as it was."""

from __future__ import annotations

import pytest

from nexus.meta import dashboards

THEIR_NAME = "beta's secret board ZZB"  # exists only in beta: finding it in an answer to alpha is a leak
TILE = {"title": "Signups <script>alert(1)</script>", "kind": "trends", "chart": "line",
        "request": {"series": [{"event": "signup"}], "date_range": {"date_from": "-14d"}}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keys(server) -> dict[str, dict[str, str]]:
    alpha_keys = server.project_with_keys("alpha")[1]
    beta_keys = server.project_with_keys("beta")[1]
    return {"alpha": alpha_keys, "beta": beta_keys}


@pytest.fixture(scope="module")
def victim(http, keys) -> dict:
    """A dashboard of alpha's that refused PUTs must leave as it is."""
    created = http.post("/v1/dashboards", json={"name": "Victim", "tiles": [TILE]},
                        headers=bearer(keys["alpha"]["admin"]))
    assert created.status_code == 201, created.text
    return created.json()


@pytest.fixture(scope="module")
def beta_board(http, keys) -> dict:
    created = http.post("/v1/dashboards", json={"name": THEIR_NAME, "description": "ZZB", "tiles": [TILE]},
                        headers=bearer(keys["beta"]["admin"]))
    assert created.status_code == 201, created.text
    return created.json()


def test_a_new_project_has_its_default_dashboard(http, keys) -> None:
    answer = http.get("/v1/dashboards", headers=bearer(keys["alpha"]["read"]))
    assert answer.status_code == 200
    (default,) = [d for d in answer.json()["dashboards"] if d["is_default"]]
    assert (default["name"], default["is_default"], default["dashboard_id"]) == ("Default", True,
                                                                                  dashboards.DEFAULT_ID)
    assert [t["tile_id"] for t in default["tiles"]] == [t.tile_id for t in dashboards.DEFAULT_TILES]


def test_create_read_replace_and_delete(http, keys) -> None:
    admin, read = bearer(keys["alpha"]["admin"]), bearer(keys["alpha"]["read"])
    body = {"name": "Growth & <i>retention</i>", "tiles": [TILE, {**TILE, "title": "Second", "chart": "bar",
                                                                   "width": 12}]}
    created = http.post("/v1/dashboards", json=body, headers=admin)
    assert created.status_code == 201, created.text
    board = created.json()
    assert board["name"] == body["name"] and board["tiles"][0]["title"] == TILE["title"]  # as given
    assert board["created_by"].startswith("nx_") and board["is_default"] is False
    first, second = (t["tile_id"] for t in board["tiles"])
    assert http.get(f"/v1/dashboards/{board['dashboard_id']}", headers=read).json() == board

    # PUT: renamed, tiles swapped and resized, one added; ids stay
    tiles = [{**board["tiles"][1], "width": 6, "height": 800}, board["tiles"][0], {**TILE, "title": "Third"}]
    replaced = http.put(f"/v1/dashboards/{board['dashboard_id']}", json={"name": "Growth", "tiles": tiles},
                        headers=admin)
    assert replaced.status_code == 200, replaced.text
    shown = http.get(f"/v1/dashboards/{board['dashboard_id']}", headers=read).json()
    assert shown == replaced.json() and shown["name"] == "Growth"
    assert [t["tile_id"] for t in shown["tiles"]][:2] == [second, first] and shown["tiles"][2]["tile_id"]
    assert (shown["tiles"][0]["width"], shown["tiles"][0]["height"]) == (6, 800)
    assert shown["created_at"] == board["created_at"]

    deleted = http.delete(f"/v1/dashboards/{board['dashboard_id']}", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert http.get(f"/v1/dashboards/{board['dashboard_id']}", headers=read).status_code == 404
    listing = http.get("/v1/dashboards", headers=read).json()["dashboards"]
    assert board["dashboard_id"] not in {d["dashboard_id"] for d in listing} and listing[0]["name"] == "Default"


def test_read_keys_read_and_admin_keys_change(http, keys) -> None:
    read, write = bearer(keys["alpha"]["read"]), bearer(keys["alpha"]["write"])
    path = f"/v1/dashboards/{dashboards.DEFAULT_ID}"
    assert http.post("/v1/dashboards", json={"name": "mine"}, headers=read).status_code == 403
    assert http.put(path, json={"name": "mine"}, headers=read).status_code == 403
    assert http.delete(path, headers=read).status_code == 403
    # A key that may not change dashboards learns nothing from its body
    assert http.post("/v1/dashboards", content=b"{not json", headers=read).status_code == 403
    assert http.get("/v1/dashboards", headers=write).status_code == 403
    assert http.get(path, headers=write).status_code == 403
    assert http.get("/v1/dashboards").status_code == 401
    assert http.get(path, headers=read).json()["name"] == "Default"  # nothing changed


def test_another_project_s_key_finds_nothing_and_reads_none_of_it(http, keys, beta_board) -> None:
    their_id = beta_board["dashboard_id"]
    for headers in (bearer(keys["alpha"]["read"]), bearer(keys["alpha"]["admin"])):
        answers = [http.get(f"/v1/dashboards/{their_id}", headers=headers),
                   http.put(f"/v1/dashboards/{their_id}", json={"name": "taken"}, headers=headers),
                   http.put(f"/v1/dashboards/{their_id}", json={"name": "x", "tiles": [TILE]}, headers=headers),
                   http.delete(f"/v1/dashboards/{their_id}", headers=headers)]
        if headers["Authorization"].endswith(keys["alpha"]["admin"]):
            assert [a.status_code for a in answers] == [404, 404, 404, 404]
            # the same answer as for an id that never existed
            missing = http.get("/v1/dashboards/d_AAAAAAAAAAAA", headers=headers).json()["error"]
            assert answers[0].json()["error"] == missing.replace("d_AAAAAAAAAAAA", their_id)
        listing = http.get("/v1/dashboards", headers=headers)
        for answer in (*answers, listing):
            assert "ZZB" not in answer.text and "beta" not in answer.text, answer.text
    # Beta's board is untouched
    assert http.get(f"/v1/dashboards/{their_id}", headers=bearer(keys["beta"]["read"])).json() == beta_board


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "b", "tiles": [{**TILE, "chart": "donut"}]}, "tiles[0].chart", "Invalid enum value 'donut'"),
    ({"name": "b", "tiles": [TILE, {**TILE, "kind": "cohorts"}]}, "tiles[1].kind", "no analysis 'cohorts'"),
    ({"name": "b", "tiles": [{**TILE, "request": {"series": [{"event": "signup", "metric": "sum"}]}}]},
     "tiles[0].request.series[0].property", "needs property"),
    ({"name": "b", "tiles": [{**TILE, "request": {"series": [{}], "interval": "fortnight"}}]},
     "tiles[0].request.interval", "Invalid enum value 'fortnight'"),
    ({"name": "b", "tiles": [{**TILE, "kind": "goals", "request": {"goals": ["g_AAAAAAAAAAAA"]}}]},
     "tiles[0].request", "goals[0]: no goal 'g_AAAAAAAAAAAA'"),
    ({"name": "b", "tiles": [{**TILE, "request": {"series": [{}], "where": {"filters": [
        {"source": "cohort", "key": "c_AAAAAAAAAAAA", "op": "in"}]}}}]},
     "tiles[0].request", "no cohort 'c_AAAAAAAAAAAA'"),
    ({"name": "n" * 201}, "name", "length <= 200"),
    ({"name": "b", "tiles": [TILE] * 51}, "tiles", "length <= 50"),
    ({"name": "b", "tiles": [{**TILE, "width": 2}]}, "tiles[0].width", ">= 3"),
    ({"name": "b", "tiles": [{**TILE, "colour": "red"}]}, "tiles[0]", "unknown field `colour`"),
    ({"tiles": []}, None, "missing required field `name`"),
    ({"name": "Default"}, "name", "already exists"),
])
def test_bad_bodies_get_a_400_naming_the_field(http, keys, victim, body, field, words) -> None:
    admin = bearer(keys["alpha"]["admin"])
    before = http.get("/v1/dashboards", headers=admin).json()
    for answer in (http.post("/v1/dashboards", json=body, headers=admin),
                   http.put(f"/v1/dashboards/{victim['dashboard_id']}", json=body, headers=admin)):
        assert answer.status_code == 400, answer.text
        assert answer.json().get("field") == field and words in answer.json()["error"], answer.text
        assert "Traceback" not in answer.text
    assert http.get("/v1/dashboards", headers=admin).json() == before  # nothing stored, nothing changed


def test_malformed_json_and_oversized_bodies(http, keys) -> None:
    admin = bearer(keys["alpha"]["admin"])
    answer = http.post("/v1/dashboards", content=b'{"name": "x", "tiles": [', headers=admin)
    assert answer.status_code == 400 and answer.json()["error"].startswith("malformed JSON")
    answer = http.put(f"/v1/dashboards/{dashboards.DEFAULT_ID}", content=b"[]", headers=admin)
    assert answer.status_code == 400 and "Expected `object`" in answer.json()["error"]
    huge = {"name": "big", "description": "x" * 2_000_000}
    assert http.post("/v1/dashboards", json=huge, headers=admin).status_code == 413


def test_the_openapi_document_lists_the_routes(http) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert set(paths["/v1/dashboards"]) == {"get", "post"}
    assert set(paths["/v1/dashboards/{dashboard_id}"]) == {"get", "put", "delete"}


def test_unknown_ids_of_every_shape_are_404(http, keys) -> None:
    admin = bearer(keys["alpha"]["admin"])
    for dashboard_id in ("d_AAAAAAAAAAAA", "nope", "d_%27%20OR%201%3D1", "x" * 300):
        answer = http.get(f"/v1/dashboards/{dashboard_id}", headers=admin)
        assert answer.status_code == 404 and isinstance(answer.json()["error"], str), dashboard_id
