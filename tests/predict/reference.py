"""The features of nexus.predict.features computed another way: the stored rows read into pandas, persons
resolved in pandas (latest identity version per distinct id, deleted links dropped), each feature a pandas
group-by of the documented definition."""

from __future__ import annotations

import zlib
from datetime import datetime

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from tests.analyses.reference import _number

DAY_MS = 86_400_000
GAP_MS = 30 * 60_000


def rows(client: Client, project_id: int) -> pd.DataFrame:
    """Every stored event of the project with its person, time in ms, revenue and plan."""
    events = client.query_df(
        "SELECT toUnixTimestamp64Milli(ts) AS ms, event, distinct_id, utm_source, referrer_class, device_type, "
        "country, properties FROM events WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    identities = client.query_df(
        "SELECT distinct_id, toString(person_id) AS person_id, version, is_deleted FROM identities "
        "WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    latest = identities.sort_values("version").groupby("distinct_id").tail(1)
    latest = latest[latest["is_deleted"] == 0].set_index("distinct_id")["person_id"]
    events["person_id"] = events["distinct_id"].map(latest).fillna(events["distinct_id"])
    events["revenue"] = events["properties"].map(lambda p: _number(p.get("revenue"))).fillna(0.0)
    events["plan"] = events["properties"].map(lambda p: "" if p.get("plan") is None else str(p.get("plan")))
    return events


def features(events: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """One row per person with an event before `cutoff`, indexed by person id."""
    cutoff_ms = int(cutoff.timestamp() * 1000)
    e = events[events["ms"] < cutoff_ms].sort_values(["person_id", "ms"], kind="stable").copy()
    e["day"] = (cutoff_ms - e["ms"] - 1) // DAY_MS
    e["channel"] = np.where(e["utm_source"] != "", e["utm_source"], e["referrer_class"])
    by = e.groupby("person_id")
    out = pd.DataFrame(index=by.size().index)
    out["days_since_last"] = (cutoff_ms - by["ms"].max()) / DAY_MS
    out["tenure_days"] = (cutoff_ms - by["ms"].min()) / DAY_MS
    for n in (7, 30, 90):
        window = e[e["day"] < n].groupby("person_id")
        out[f"events_{n}d"] = window.size()
        out[f"active_days_{n}d"] = window["day"].nunique()
    out["active_days_total"] = by["day"].nunique()
    for n in (30, 90):
        out[f"events_per_active_day_{n}d"] = (out[f"events_{n}d"] / out[f"active_days_{n}d"])
    out["sessions_30d"] = _sessions(e[e["day"] < 30])["sessions"]
    sessions_90 = _sessions(e[e["day"] < 90])
    out["sessions_90d"] = sessions_90["sessions"]
    out["session_minutes_90d"] = sessions_90["length_ms"] / sessions_90["sessions"] / 60_000
    out["distinct_events_90d"] = e[e["day"] < 90].groupby("person_id")["event"].nunique()
    recent = e[e["day"] < 14].groupby("person_id").size().reindex(out.index, fill_value=0)
    before = e[(e["day"] >= 14) & (e["day"] < 28)].groupby("person_id").size().reindex(out.index, fill_value=0)
    out["trend_14d"] = ((recent - before) / (recent + before)).where(recent + before > 0, 0.0)
    out["revenue_90d"] = e[e["day"] < 90].groupby("person_id")["revenue"].sum()
    out["revenue_total"] = by["revenue"].sum()
    out["purchases_90d"] = e[(e["day"] < 90) & (e["revenue"] > 0)].groupby("person_id").size()
    out["purchases_total"] = e[e["revenue"] > 0].groupby("person_id").size()
    out = out.fillna(0.0).astype("float64")
    out["channel"] = _pick(e, "channel", first=True)
    out["device"] = _pick(e, "device_type", first=False)
    out["country"] = _pick(e, "country", first=False)
    out["plan"] = _pick(e[e["plan"] != ""], "plan", first=False).reindex(out.index).fillna("")
    return out


def _sessions(e: pd.DataFrame) -> pd.DataFrame:
    """Per person: sessions (gaps over 30 minutes split them) and their summed length in ms."""
    gaps = e.groupby("person_id")["ms"].diff()
    split = gaps > GAP_MS
    inside = gaps.where(~split & gaps.notna(), 0.0)
    return pd.DataFrame({"sessions": split.groupby(e["person_id"]).sum() + 1,
                         "length_ms": inside.groupby(e["person_id"]).sum()})


def _pick(e: pd.DataFrame, column: str, first: bool) -> pd.Series:
    """The value at the person's first (or last) event, ties in time broken by the smaller (larger) CRC-32
    of the value."""
    crc = e[column].map({value: zlib.crc32(value.encode()) for value in e[column].unique()})
    ordered = e.assign(crc=crc).sort_values(["person_id", "ms", "crc"], kind="stable")
    return (ordered.groupby("person_id")[column].first() if first else ordered.groupby("person_id")[column].last())
