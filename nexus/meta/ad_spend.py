"""Ad spend: a project's costs per day, channel and campaign, imported from spend files for attribution's cost
per conversion and return on ad spend.

A spend file is CSV with a header row naming `date`, `channel`, `cost` and optionally `campaign` (other columns
are ignored), or NDJSON with one object of those keys a line; `date` is an ISO day (the ad platform's
reporting day, read in the project's time zone by attribution), `channel` a channel name as the channel rules
name them, `campaign` a campaign as in `utm_campaign` (empty: spend on the channel as a whole), `cost` a
number ≥ 0 in the project's currency. Rows of one (date, channel, campaign) in a file add up; importing a key
again replaces its cost (the table is a ReplacingMergeTree on the import's version, read with FINAL), so a
corrected or repeated file never counts a cost twice. A file with any bad row stores nothing and the error
names the line and the field.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest
from nexus.meta import records

TABLE = "ad_spend"
MAX_ROWS = 100_000
MAX_COST = 1e12
REQUIRED = ("date", "channel", "cost")


class SpendSummary(msgspec.Struct, frozen=True):
    """What an import stored: its rows, the keys they came to, their days and total cost."""

    table: str
    rows: int
    stored: int
    first_day: date | None
    last_day: date | None
    cost: float


def import_spend(client: Client, project_id: int, body: bytes) -> SpendSummary:
    rows = parse(body)
    totals: dict[tuple[date, str, str], float] = {}
    for key, cost in rows:
        totals[key] = totals.get(key, 0.0) + cost
    version = records.next_version()
    if totals:
        client.insert(TABLE, [[project_id, day, channel, campaign, round(cost, 4), version]
                              for (day, channel, campaign), cost in totals.items()],
                      column_names=["project_id", "day", "channel", "campaign", "cost", "version"])
    days = [day for day, _, _ in totals]
    return SpendSummary(TABLE, len(rows), len(totals), min(days, default=None), max(days, default=None),
                        sum(totals.values()))


def parse(body: bytes) -> list[tuple[tuple[date, str, str], float]]:
    """((day, channel, campaign), cost) of every row; InvalidRequest naming the line (1-based) and field."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("a spend file is UTF-8 text (CSV or NDJSON)", field="body") from None
    if text.lstrip().startswith("{"):
        records_ = [(n, _json_line(n, line)) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
        if missing:
            raise InvalidRequest(f"the spend file's header lacks {', '.join(missing)} (it names date, channel, "
                                 f"campaign, cost)", field=missing[0])
        records_ = [(n, row) for n, row in enumerate(reader, start=2)]
    if len(records_) > MAX_ROWS:
        raise InvalidRequest(f"a spend file has at most {MAX_ROWS} rows", field="body")
    return [_row(n, row) for n, row in records_]


def _json_line(number: int, line: str) -> dict:
    try:
        found = msgspec.json.decode(line)
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"line {number}: malformed JSON ({e})", field="body") from None
    if not isinstance(found, dict):
        raise InvalidRequest(f"line {number}: a line is an object of date, channel, campaign, cost", field="body")
    return found


def _row(number: int, row: dict) -> tuple[tuple[date, str, str], float]:
    def refuse(field: str, reason: str) -> InvalidRequest:
        return InvalidRequest(f"line {number}: {field}: {reason}", field=field)

    try:
        day = date.fromisoformat(str(row.get("date") or "").strip())
    except ValueError:
        raise refuse("date", f"{row.get('date')!r} is not an ISO day (2026-10-01)") from None
    channel = str(row.get("channel") or "").strip()
    if not 1 <= len(channel) <= 100:
        raise refuse("channel", "a channel's name has 1 to 100 characters")
    campaign = str(row.get("campaign") or "").strip()
    if len(campaign) > 200:
        raise refuse("campaign", "a campaign has at most 200 characters")
    raw = row.get("cost")
    try:
        cost = float(raw.strip() if isinstance(raw, str) else raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise refuse("cost", f"{raw!r} is not a number") from None
    if isinstance(raw, bool) or not (math.isfinite(cost) and 0 <= cost <= MAX_COST):
        raise refuse("cost", f"a cost is a number from 0 to {MAX_COST:.0e}")
    return (day, channel, campaign), cost
