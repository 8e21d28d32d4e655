"""Demo data for the predictions' tests: one database every predictions module shares, with a demo project
loaded once per session (the modules only read it; their journeys go to projects of their own). Twelve
weeks of it, so that a model has four weekly training cutoffs with their 14-day horizons before the
validation cutoff (nexus.predict.dataset)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from nexus.demo.generator import generate
from nexus.meta import projects
from nexus.store.database import open_database
from tests.conftest import DEMO_END

DEMO_EVENTS = 70_000
DEMO_WEEKS = 12


@pytest.fixture(scope="session")
def predict_url(engine_dir: Path) -> str:
    return f"chdb://{engine_dir}?database=t_predict"


@pytest.fixture(scope="module")
def database_url(predict_url: str) -> str:
    return predict_url


@pytest.fixture(scope="session")
def demo_project(predict_url: str) -> Iterator[int]:
    database: Client = open_database(predict_url)
    try:
        project = projects.create(database, f"predict-demo-{uuid.uuid4().hex[:8]}")
        for chunk in generate(project.project_id, DEMO_EVENTS, seed=11, end=DEMO_END, weeks=DEMO_WEEKS):
            database.insert_arrow("events", chunk.events)
            database.insert_arrow("persons", chunk.persons)
            database.insert_arrow("identities", chunk.identities)
        yield project.project_id
    finally:
        database.close()
