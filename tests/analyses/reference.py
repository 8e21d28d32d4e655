"""Independent reference data for the analyses' tests: the stored rows read into pandas, persons resolved
in pandas (latest identity version per distinct id, deleted links dropped) rather than with FINAL."""

from __future__ import annotations

import pandas as pd
from clickhouse_connect.driver.client import Client


def events_frame(client: Client, project_id: int) -> pd.DataFrame:
    events = client.query_df(
        "SELECT ts, event, type, distinct_id, session_id, path, country, browser, device_type, utm_source, properties "
        "FROM events WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    identities = client.query_df(
        "SELECT distinct_id, toString(person_id) AS person_id, version, is_deleted FROM identities "
        "WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    latest = identities.sort_values("version").groupby("distinct_id").tail(1)
    latest = latest[latest["is_deleted"] == 0].set_index("distinct_id")["person_id"]
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events["person"] = events["distinct_id"].map(latest).fillna(events["distinct_id"])
    events["revenue"] = events["properties"].map(lambda p: _number(p.get("revenue")))
    events["plan"] = events["properties"].map(lambda p: "" if p.get("plan") is None else str(p.get("plan")))
    return events.sort_values(["person", "ts"], kind="stable").reset_index(drop=True)


def persons_frame(client: Client, project_id: int) -> pd.DataFrame:
    persons = client.query_df(
        "SELECT toString(person_id) AS person, properties, version, is_deleted FROM persons "
        "WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    latest = persons.sort_values("version").groupby("person").tail(1)
    return latest[latest["is_deleted"] == 0].set_index("person")


def person_trait(client: Client, project_id: int, frame: pd.DataFrame, key: str) -> pd.Series:
    """The trait `key` of each row's person, as text: '' when unset or when the person has no traits."""
    traits = persons_frame(client, project_id)["properties"].map(lambda p: "" if p.get(key) is None else str(p[key]))
    return frame["person"].map(traits).fillna("")


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
