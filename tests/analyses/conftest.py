"""Demo data for the analyses' tests: ~50k generated events in a project of the module's database, and
the same rows as a pandas frame for the references."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from nexus.demo.load import load
from nexus.meta import projects
from tests.analyses.reference import events_frame
from tests.conftest import DEMO_END

DEMO_EVENTS = 50_000


@pytest.fixture(scope="module")
def demo(client) -> int:
    # Test databases are named after the test module, so a module elsewhere may share this one.
    project = projects.create(client, f"analyses-demo-{uuid.uuid4().hex[:8]}")
    load(client, project.project_id, DEMO_EVENTS, seed=11, end=DEMO_END)
    return project.project_id


@pytest.fixture(scope="module")
def frame(client, demo) -> pd.DataFrame:
    return events_frame(client, demo)
