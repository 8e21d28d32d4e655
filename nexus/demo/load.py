"""Stores generated demo data for a project, refusing a project that already has events, and saves the
definition of the experiment the data runs (`generator.EXPERIMENT`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from nexus.demo import generator
from nexus.errors import InvalidRequest
from nexus.meta import experiments


def event_count(client: Client, project_id: int) -> int:
    return client.query("SELECT count() FROM events WHERE project_id = {p:UInt32}", parameters={"p": project_id}).result_rows[0][0]


def load(
    client: Client, project_id: int, events: int, *, seed: int = 42, end: datetime | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Generate and store `events` demo events (and their persons and identities) ending before `end`
    (default: today 00:00 UTC), and save the demo experiment; returns the count."""
    if events < 1:
        raise InvalidRequest("the number of demo events must be at least 1")
    if existing := event_count(client, project_id):
        raise InvalidRequest(f"project {project_id} already has {existing} events: load demo data into a new project")
    end = end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    stored = 0
    for chunk in generator.generate(project_id, events, seed=seed, end=end):
        client.insert_arrow("events", chunk.events)
        client.insert_arrow("persons", chunk.persons)
        client.insert_arrow("identities", chunk.identities)
        stored += chunk.events.num_rows
        progress(chunk.events.num_rows)
    experiments.create(client, project_id, demo_experiment(end), "demo")
    return stored


def demo_experiment(end: datetime) -> experiments.ExperimentInput:
    """The experiment the demo data runs: a real effect on purchases, none on feature use."""
    return experiments.ExperimentInput(
        key=generator.EXPERIMENT, name="New checkout",
        hypothesis="The new checkout turns more new users into buyers, and changes nothing else they do",
        variants=generator.EXPERIMENT_VARIANTS, start=end - timedelta(days=generator.EXPERIMENT_DAYS),
        conversion_window=7, mde=0.1,
        primary_metric=experiments.Metric(name="purchase", event="purchase"),
        secondary_metrics=[
            experiments.Metric(name="revenue", event="purchase", measure="sum", value_property="revenue"),
            experiments.Metric(name="reports created", event="report_created", measure="count")],
    )
