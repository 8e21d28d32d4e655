"""Models over HTTP with real job workers: training is a job whose progress shows like any job's, versions
list with their metrics, activation and rollback choose what scores, scoring writes exactly one row per
person per run (after an activation, and daily from the scheduler), a training job left running by a dead
worker is retried, one that cannot train fails with its reason; another project's key finds nothing and
bad input is refused naming its field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from nexus.jobs import store
from nexus.jobs.scheduler import Scheduler
from nexus.meta import keys, records
from nexus.predict import jobs as predictions
from nexus.predict.jobs import TrainDefinition
from nexus.predict.churn import ChurnRequest
from tests.api.conftest import Server
from tests.api.conftest import server  # noqa: F401  (fixture)
from tests.jobs.conftest import server_env, wait_for_job, workers  # noqa: F401  (fixtures)

FAST = {"train_cutoffs": 1, "seed": 5}


@pytest.fixture(scope="module")
def demo_keys(workers: Server, demo_project: int) -> dict[str, str]:  # noqa: F811
    return {scope: keys.create(workers.runtime.clickhouse, demo_project, scope)[1] for scope in ("read", "admin")}


@pytest.fixture(scope="module")
def other(workers: Server) -> dict[str, str]:  # noqa: F811
    return workers.project_with_keys("predict-other")[1]


@pytest.fixture(scope="module")
def api(workers: Server) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=workers.url, timeout=60) as client:
        yield client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _done(api: httpx.Client, key: str, job: dict) -> dict:
    finished = wait_for_job(api, key, job["job_id"], timeout=240)
    assert finished["state"] == "done", finished
    assert finished["progress"] == 100
    return finished


def _scoring_jobs(api: httpx.Client, key: str) -> list[dict]:
    """Scoring runs queued by activations (the scheduler's daily runs are created by no key), newest first."""
    return [j for j in api.get("/v1/jobs", headers=_auth(key)).json()["jobs"]
            if j["kind"] == "score_predictions" and j["created_by"]]


def _rows_per_run(workers: Server, project_id: int) -> dict[str, tuple[int, int]]:  # noqa: F811
    found = workers.runtime.clickhouse.query(
        "SELECT run_id, count(), uniqExact(person_key) FROM person_predictions WHERE project_id = {p:UInt32} "
        "GROUP BY run_id", parameters={"p": project_id}).result_rows
    return {run: (rows, persons) for run, rows, persons in found}


def test_train_activate_score_and_roll_back(api: httpx.Client, workers: Server, demo_project: int,  # noqa: F811
                                            demo_keys: dict[str, str], other: dict[str, str]) -> None:
    admin, read = demo_keys["admin"], demo_keys["read"]
    # When a churn model is trained through the API
    queued = api.post("/v1/models/churn/train", json=FAST, headers=_auth(admin))
    assert queued.status_code == 202, queued.text
    assert queued.json()["kind"] == "train_model" and queued.json()["definition"]["churn"]["train_cutoffs"] == 1
    first_job = _done(api, read, queued.json())
    # Then its version is listed, active, with metrics
    listed = api.get("/v1/models", headers=_auth(read)).json()["versions"]
    assert len(listed) == 1 and listed[0]["active"]
    first = listed[0]["version"]
    assert first["job_id"] == first_job["job_id"] and first["kind"] == "churn"
    assert first["metrics"]["roc_auc"] > first["metrics"]["baseline"]["roc_auc"]
    assert first["rows"]["train"] + first["rows"]["validation"] == first_job["rows"]
    assert len(first["content_hash"]) == 64 and "days_since_last" in first["features"]
    # and the activation queued a scoring run that wrote one row per person with an event
    scoring = _scoring_jobs(api, read)
    assert len(scoring) == 1
    _done(api, read, scoring[0])
    persons = workers.runtime.clickhouse.query(
        "SELECT count() FROM person_predictions WHERE project_id = {p:UInt32} AND run_id = {r:String} "
        "AND churn_probability BETWEEN 0 AND 1 AND ltv IS NULL AND churn_version = {v:String}",
        parameters={"p": demo_project, "r": scoring[0]["job_id"], "v": first["version_id"]}).result_rows[0][0]
    assert _rows_per_run(workers, demo_project)[scoring[0]["job_id"]] == (persons, persons)
    assert persons > 5000

    # When an LTV model is trained without activating it, then activated by its route
    ltv_job = _done(api, read, api.post("/v1/models/ltv/train", json={**FAST, "horizon_days": 28, "activate": False},
                                        headers=_auth(admin)).json())
    ltv_version = api.get("/v1/models?kind=ltv", headers=_auth(read)).json()["versions"][0]
    assert not ltv_version["active"] and ltv_version["version"]["job_id"] == ltv_job["job_id"]
    assert len(_scoring_jobs(api, read)) == 1  # no activation, no scoring
    activated = api.post(f"/v1/models/ltv/{ltv_version['version']['version_id']}/activate", headers=_auth(admin))
    assert activated.status_code == 200 and activated.json()["active"]
    assert len(_scoring_jobs(api, read)) == 2
    second_run = _scoring_jobs(api, read)[0]
    _done(api, read, second_run)
    filled = workers.runtime.clickhouse.query(
        "SELECT countIf(ltv >= 0 AND ltv_decile BETWEEN 1 AND 10 AND churn_decile BETWEEN 1 AND 10), count() "
        "FROM person_predictions WHERE project_id = {p:UInt32} AND run_id = {r:String}",
        parameters={"p": demo_project, "r": second_run["job_id"]}).result_rows[0]
    assert filled == (persons, persons)
    # The profile of the person most at risk shows their latest scores and what drove them
    riskiest = workers.runtime.clickhouse.query(
        "SELECT person_id FROM person_predictions WHERE project_id = {p:UInt32} AND run_id = {r:String} "
        "ORDER BY churn_probability DESC, person_key LIMIT 1",
        parameters={"p": demo_project, "r": second_run["job_id"]}).result_rows[0][0]
    scores = api.get(f"/v1/persons/{riskiest}", headers=_auth(read)).json()["scores"]
    assert scores["churn_decile"] == 10 and scores["ltv_version"] == ltv_version["version"]["version_id"]
    churn_drivers = scores["drivers"]["churn"]
    assert len(churn_drivers["person"]) == 3 and {d["feature"] for d in churn_drivers["person"]} <= set(first["features"])
    assert churn_drivers["model"] == first["metrics"]["importance"][:5]
    # and the predictions analysis reads the same run
    analysis = api.post("/v1/analyses/predictions", json={"top": 5}, headers=_auth(read)).json()["result"]
    assert (analysis["run_id"], analysis["persons"]) == (second_run["job_id"], persons)
    assert sum(b["persons"] for b in analysis["churn"]) == persons and len(analysis["at_risk"]) == 5

    # When a second churn version is trained and activated, rolling back makes the first active again
    _done(api, read, api.post("/v1/models/churn/train", json={**FAST, "seed": 6}, headers=_auth(admin)).json())
    rolled = api.post("/v1/models/churn/rollback", headers=_auth(admin))
    assert rolled.status_code == 200 and rolled.json()["version"]["version_id"] == first["version_id"]
    refused = api.post("/v1/models/churn/rollback", headers=_auth(admin))
    assert refused.status_code == 400 and refused.json()["field"] == "kind"

    # Another project's key sees no version, and the first version is not found with it
    assert api.get("/v1/models", headers=_auth(other["read"])).json() == {"versions": []}
    for response in (api.get(f"/v1/models/churn/{first['version_id']}", headers=_auth(other["read"])),
                     api.post(f"/v1/models/churn/{first['version_id']}/activate", headers=_auth(other["admin"]))):
        assert response.status_code == 404, response.text
        assert first["version_id"] not in response.text or "no churn model version" in response.text
    assert api.get(f"/v1/models/churn/{first['version_id']}", headers=_auth(read)).status_code == 200
    # A read key may list but not train
    assert api.post("/v1/models/churn/train", json=FAST, headers=_auth(read)).status_code == 403

    # Every run wrote exactly one row per person
    for run, (rows, distinct) in _rows_per_run(workers, demo_project).items():
        assert rows == distinct == persons, run


@pytest.mark.parametrize("path, body, field", [
    ("/v1/models/churn/train", {"horizon_days": 0}, "horizon_days"),
    ("/v1/models/ltv/train", {"seed": -1}, "seed"),
    ("/v1/models/churn/train", {"horizon": 14}, "horizon"),
    ("/v1/models/growth/train", {}, "kind"),
    ("/v1/models?kind=growth", None, "kind"),
])
def test_bad_input_is_refused_naming_the_field(api: httpx.Client, other: dict[str, str], path: str,
                                               body: dict | None, field: str) -> None:
    response = (api.get(path, headers=_auth(other["admin"])) if body is None
                else api.post(path, json=body, headers=_auth(other["admin"])))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field, response.json()


def test_a_training_that_cannot_train_fails_with_its_reason(api: httpx.Client, other: dict[str, str]) -> None:
    job = api.post("/v1/models/ltv/train", json={}, headers=_auth(other["admin"])).json()
    failed = wait_for_job(api, other["read"], job["job_id"], timeout=240)
    assert failed["state"] == "failed" and failed["error"] == "training refused: the project has no events", failed
    assert failed["attempts"] == 1


def test_a_training_job_left_running_by_a_dead_worker_is_retried(api: httpx.Client, workers: Server,  # noqa: F811
                                                                 demo_project: int, demo_keys: dict[str, str]) -> None:
    # Given a training job recorded as running on attempt 1 whose worker died (no liveness left)
    runtime = workers.runtime
    job = store.create(runtime.clickhouse, demo_project, "train_model",
                       TrainDefinition("churn", churn=ChurnRequest(train_cutoffs=1, seed=9, activate=False)), "test")
    store.save(runtime.clickhouse, job, state="running", attempts=1, started_at=records.now())
    # When workers recover dead jobs
    assert job.job_id in runtime.jobs.recover()
    # Then it runs again, to the end, once, and saves the version its job id names
    finished = _done(api, demo_keys["read"], {"job_id": job.job_id})
    assert finished["attempts"] == 2
    found = api.get(f"/v1/models/churn/{predictions.version_id_of(job.job_id)}", headers=_auth(demo_keys["read"]))
    assert found.status_code == 200 and not found.json()["active"]


def test_the_scheduler_scores_each_project_with_an_active_model_once_a_day(workers: Server,  # noqa: F811
                                                                           demo_project: int) -> None:
    scheduler = Scheduler(workers.runtime)
    now = records.now() + timedelta(days=3)  # a day no other test's scheduler reached
    queued = [j for j in scheduler.tick(now) if j.kind == "score_predictions"]
    assert [j.project_id for j in queued] == [demo_project]
    assert not [j for j in scheduler.tick(now + timedelta(hours=1)) if j.kind == "score_predictions"]
    assert [j.project_id for j in scheduler.tick(now + timedelta(days=1)) if j.kind == "score_predictions"] == [demo_project]
