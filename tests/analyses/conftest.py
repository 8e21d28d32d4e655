"""Demo data for the analyses' tests: ~50k generated events in a project of one database that every analyses
module shares, and the same rows as a pandas frame for the references. Generating and loading them takes
seconds, and every module only reads them, so they are made once per session; a module's own journeys go
to projects of their own (tests/analyses/journeys.py), so sharing the database changes no answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from nexus.demo.load import load
from nexus.meta import projects
from nexus.store.database import open_database
from tests.analyses.reference import events_frame
from tests.conftest import DEMO_END

DEMO_EVENTS = 50_000


@pytest.fixture(scope="session")
def analyses_url(engine_dir: Path) -> str:
    return f"chdb://{engine_dir}?database=t_analyses"


@pytest.fixture(scope="module")
def database_url(analyses_url: str) -> str:
    """The analyses modules' database (migrating one for each module would cost seconds each)."""
    return analyses_url


@pytest.fixture(scope="session")
def demo_store(analyses_url: str) -> Iterator[tuple[int, pd.DataFrame]]:
    """The demo project's id and its events as read back, for the whole session."""
    database: Client = open_database(analyses_url)
    try:
        project = projects.create(database, f"analyses-demo-{uuid.uuid4().hex[:8]}")
        load(database, project.project_id, DEMO_EVENTS, seed=11, end=DEMO_END)
        yield project.project_id, events_frame(database, project.project_id)
    finally:
        database.close()


@pytest.fixture(scope="module")
def demo(demo_store: tuple[int, pd.DataFrame]) -> int:
    return demo_store[0]


@pytest.fixture(scope="module")
def frame(demo_store: tuple[int, pd.DataFrame]) -> pd.DataFrame:
    """A copy for each module: a module's changes to it stay its own."""
    return demo_store[1].copy()
