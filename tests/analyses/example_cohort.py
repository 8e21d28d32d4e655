"""A cohort with a fixed id, for tests that send the same body to every analysis kind (the registry's and the
SQL snapshots'): a cohort's id is random when created through `nexus.meta.cohorts`, so it is written here."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from nexus.meta import records

EXAMPLE_COHORT = "c_examplecohor"
DEFINITION = '{"conditions":[{"type":"performed","event":"purchase","operator":"at_least","count":1,"days":30}]}'


def save_example_cohort(client: Client, project_id: int) -> None:
    """Purchasers of the last 30 days, as `EXAMPLE_COHORT` in the project."""
    now = records.now()
    columns = ["project_id", "cohort_id", "name", "description", "kind", "definition", "source", "members_generation",
               "created_by", "created_at", "updated_at", "version", "is_deleted"]
    client.insert("cohorts", [[project_id, EXAMPLE_COHORT, "purchasers", "", "dynamic", DEFINITION, "", 0, "test", now,
                               now, records.next_version(), 0]], column_names=columns)
