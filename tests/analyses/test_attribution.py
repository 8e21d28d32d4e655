"""Attribution and conversion paths on hand-built journeys with exact credits for every model: a single touch,
a repeated channel, touches at the lookback's edge, a conversion without any touch, two touches at one instant,
direct after paid (with and without "last non-direct"), a person converting twice, and the data-driven models
on paths worked out by hand; a model's credits of one conversion sum to 1; bad requests name their field."""

from __future__ import annotations

import uuid

import msgspec
import pandas as pd
import pytest

from nexus.analyses import attribution, conversion_paths, registry, touchpoints
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import channels
from tests.analyses.attribution_reference import attribute
from tests.analyses.channel_reference import python_channel
from tests.analyses.journeys import at, link, new_project
from tests.conftest import DEMO_END

OCTOBER = {"date_from": "2026-10-01", "date_to": "2026-10-31"}
PURCHASE = {"event": "purchase", "value_property": "revenue"}
# Entry sources by the channel the default rules give them.
SOURCES = {
    "paid": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand", "referrer_class": "search",
             "referrer_domain": "google.com"},
    "email": {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly"},
    "social": {"referrer_class": "social", "referrer_domain": "t.co"},
    "direct": {"referrer_class": "direct"},
}
CHANNEL = {"paid": "Paid search", "email": "Email", "social": "Organic social", "direct": "Direct"}
_COLUMNS = ["project_id", "ts", "event", "type", "message_id", "distinct_id", "utm_source", "utm_medium",
            "utm_campaign", "referrer_class", "referrer_domain", "properties"]


def insert(client, project_id: int, journeys: dict[str, list[tuple]]) -> None:
    """{"u1": [("paid", "2026-10-03T10:00"), ("purchase", "2026-10-03T10:05", 30)]}: a page view from a source
    of SOURCES, or a purchase worth a revenue."""
    rows = []
    for distinct_id, items in journeys.items():
        for what, when, *revenue in items:
            columns = {"utm_source": "", "utm_medium": "", "utm_campaign": "", "referrer_class": "direct",
                       "referrer_domain": "", **SOURCES.get(what, {})}
            event, kind = ("page_view", "page") if what in SOURCES else (what, "track")
            values = {"project_id": project_id, "ts": at(when), "event": event, "type": kind,
                      "message_id": uuid.uuid4().hex, "distinct_id": distinct_id,
                      "properties": {"revenue": revenue[0]} if revenue else {}, **columns}
            rows.append([values[c] for c in _COLUMNS])
    client.insert("events", rows, column_names=_COLUMNS)


def run(client, project_id: int, **body) -> attribution.AttributionResult:
    body = {"conversion": PURCHASE, "date_range": OCTOBER, **body}
    return attribution.run(client, project_id, registry.decode("attribution", body), now=DEMO_END)


def credits(result: attribution.AttributionResult, field: str = "conversions") -> dict[str, dict[str, float]]:
    """{model: {label: credited conversions (or value)}}, labels without credit left out."""
    found: dict[str, dict[str, float]] = {}
    for row in result.rows:
        if getattr(row, field):
            found.setdefault(row.model, {})[row.label] = getattr(row, field)
    return found


def every_model(labels: dict[str, float]) -> dict[str, dict[str, float]]:
    return {model: labels for model in attribution.MODELS}


def test_a_single_touch_takes_every_model_s_credit(client):
    project = new_project(client)
    insert(client, project, {"u1": [("paid", "2026-10-10T10:00"), ("purchase", "2026-10-10T10:05", 100)]})
    result = run(client, project)
    assert (result.conversions, result.attributed, result.unattributed, result.value) == (1, 1, 0, 100.0)
    assert credits(result) == every_model({"Paid search": 1.0})
    assert credits(result, "value") == every_model({"Paid search": 100.0})
    assert {row.share for row in result.rows} == {1.0} and result.labels == ["Paid search"]
    assert result.lost_journeys == 0 and result.cost is None


def test_a_repeated_channel_under_each_rule_based_model(client):
    project = new_project(client)
    # Given Email 14 and 7 days before, then a paid visit at the very instant of a purchase worth 70
    insert(client, project, {"u1": [("email", "2026-10-01T10:00"), ("email", "2026-10-08T10:00"),
                                    ("paid", "2026-10-15T10:00"), ("purchase", "2026-10-15T10:00", 70)]})
    found = credits(run(client, project))
    assert found["first_touch"] == {"Email": 1.0}
    assert found["last_touch"] == {"Paid search": 1.0}
    assert found["linear"] == pytest.approx({"Email": 2 / 3, "Paid search": 1 / 3}, abs=1e-12)
    # Half-life 7 days: weights 1/4, 1/2 and 1.
    assert found["time_decay"] == pytest.approx({"Email": 3 / 7, "Paid search": 4 / 7}, abs=1e-12)
    assert found["position_based"] == pytest.approx({"Email": 0.6, "Paid search": 0.4}, abs=1e-12)
    values = credits(run(client, project, half_life_days=14, position_first=0.3, position_last=0.5), "value")
    # Weights 1/2, 2^(-1/2), 1; positions 0.3, 0.2, 0.5.
    weights = [0.5, 2 ** -0.5, 1.0]
    assert values["time_decay"] == pytest.approx({"Email": 70 * sum(weights[:2]) / sum(weights),
                                                  "Paid search": 70 / sum(weights)}, abs=1e-9)
    assert values["position_based"] == pytest.approx({"Email": 35.0, "Paid search": 35.0}, abs=1e-9)
    paths = conversion_paths.run(client, project, registry.decode("conversion_paths", {
        "conversion": PURCHASE, "date_range": OCTOBER}), now=DEMO_END)
    assert [(p.path, p.conversions, p.value, p.lost, p.conversion_rate, p.avg_seconds_to_convert, p.touches)
            for p in paths.paths] == [(["Email", "Email", "Paid search"], 1, 70.0, 0, 1.0, 14 * 86400.0, 3)]
    assert (paths.avg_touches, paths.avg_seconds_to_convert, paths.distinct_paths) == (3.0, 14 * 86400.0, 1)


def test_the_lookback_holds_a_touch_at_its_edge_and_not_one_a_millisecond_before(client):
    project = new_project(client)
    # Given two persons buying 5 days after a social visit — exactly, and 5 days and 1 ms
    insert(client, project, {"u1": [("social", "2026-10-05T12:00:00.000"), ("purchase", "2026-10-10T12:00")],
                             "u2": [("social", "2026-10-05T11:59:59.999"), ("purchase", "2026-10-10T12:00")]})
    result = run(client, project, lookback_days=5)
    # Then u1's social visit takes the credit from the direct session of the purchase (last non-direct), while
    # u2's purchase session, the only touch in its lookback, is credited.
    assert credits(result) == every_model({"Organic social": 1.0, "Direct": 1.0})
    assert (result.attributed, result.unattributed) == (2, 0)


def test_a_conversion_without_any_touch_is_unattributed(client):
    project = new_project(client)
    # Given one session (gaps under a day) that began 40 hours before its purchase, and a one-day lookback
    insert(client, project, {"u1": [("paid", "2026-10-10T00:00"), ("direct", "2026-10-10T20:00"),
                                    ("direct", "2026-10-11T15:00"), ("purchase", "2026-10-11T16:00", 5)]})
    result = run(client, project, lookback_days=1, gap_minutes=1440)
    assert (result.conversions, result.attributed, result.unattributed, result.value) == (1, 0, 1, 5.0)
    assert credits(result) == {} and result.labels == []
    paths = conversion_paths.run(client, project, registry.decode("conversion_paths", {
        "conversion": PURCHASE, "date_range": OCTOBER, "lookback_days": 1, "gap_minutes": 1440}), now=DEMO_END)
    assert (paths.conversions, paths.unattributed, paths.paths, paths.avg_touches) == (1, 1, [], None)


def test_two_touches_at_one_instant_are_one_session_of_the_channel_listed_first(client):
    project = new_project(client)
    # Given one person's two devices landing at the same millisecond, from an email and from a paid ad
    insert(client, project, {"anon-1": [("email", "2026-10-12T09:00")],
                             "user-1": [("paid", "2026-10-12T09:00"), ("purchase", "2026-10-12T09:10", 20)]})
    person = str(uuid.uuid4())
    link(client, project, {"anon-1": person, "user-1": person})
    # Then one session, whose entry is Paid search: listed before Email in the rules
    assert credits(run(client, project)) == every_model({"Paid search": 1.0})
    assert credits(run(client, project, by="source")) == every_model({"google": 1.0})
    assert credits(run(client, project, by="campaign")) == every_model({"brand": 1.0})


def test_direct_after_paid_with_and_without_last_non_direct(client):
    project = new_project(client)
    insert(client, project, {"u1": [("paid", "2026-10-03T12:00"), ("direct", "2026-10-06T12:00"),
                                    ("purchase", "2026-10-06T12:05", 10)],
                             "u2": [("direct", "2026-10-04T00:00"), ("purchase", "2026-10-04T00:05", 10)]})
    # Last non-direct: u1's direct visit gets nothing; u2 had only direct visits, which keep the credit.
    assert credits(run(client, project)) == every_model({"Paid search": 1.0, "Direct": 1.0})
    rules = channels.ChannelSettings(rules=channels.DEFAULT_SETTINGS.rules, last_non_direct=False)
    channels.replace(client, project, rules, "test")
    found = credits(run(client, project))
    assert found["first_touch"] == {"Paid search": 1.0, "Direct": 1.0}
    assert found["last_touch"] == {"Direct": 2.0}
    assert found["linear"] == {"Paid search": 0.5, "Direct": 1.5}
    # Ages 3 days and 5 minutes
    paid, direct = 2 ** (-(3 * 1440 + 5) / (7 * 1440)), 2 ** (-5 / (7 * 1440))
    assert found["time_decay"] == pytest.approx({"Paid search": paid / (paid + direct),
                                                 "Direct": 1 + direct / (paid + direct)}, abs=1e-12)
    assert found["position_based"] == pytest.approx({"Paid search": 0.5, "Direct": 1.5}, abs=1e-12)
    channels.reset(client, project)
    assert credits(run(client, project))["linear"] == {"Paid search": 1.0, "Direct": 1.0}


def test_each_conversion_has_its_own_lookback(client):
    project = new_project(client)
    insert(client, project, {"u1": [("email", "2026-10-01T00:00"), ("purchase", "2026-10-01T00:05", 10),
                                    ("paid", "2026-10-20T00:00"), ("purchase", "2026-10-20T00:05", 30)]})
    result = run(client, project)
    found = credits(result)
    assert result.conversions == 2 and result.value == 40.0
    assert found["first_touch"] == {"Email": 2.0}
    assert found["last_touch"] == {"Email": 1.0, "Paid search": 1.0}
    assert found["linear"] == {"Email": 1.5, "Paid search": 0.5}
    assert credits(result, "value")["linear"] == {"Email": 25.0, "Paid search": 15.0}
    # With a 10-day lookback the second purchase no longer reaches the email
    assert credits(run(client, project, lookback_days=10))["first_touch"] == {"Email": 1.0, "Paid search": 1.0}


def test_the_data_driven_models_on_paths_worked_out_by_hand(client):
    project = new_project(client)
    # Given paths (Email, Paid search) → conversion, (Email) → lost, (Paid search) → conversion
    insert(client, project, {"u1": [("email", "2026-10-02T00:00"), ("paid", "2026-10-03T00:00"),
                                    ("purchase", "2026-10-03T00:05", 10)],
                             "u2": [("email", "2026-10-04T00:00")],
                             "u3": [("paid", "2026-10-05T00:00"), ("purchase", "2026-10-05T00:05", 20)]})
    result = run(client, project)
    found = credits(result)
    assert result.lost_journeys == 1
    # Shapley over sets: u1's conversion split equally by Email and Paid search, u3's to Paid search.
    assert found["shapley"] == pytest.approx({"Email": 0.5, "Paid search": 1.5}, abs=1e-12)
    # Markov: P(conversion) = 2/3 · 1/2 + 1/3 = 2/3; without Email 1/3 (effect 1/2), without Paid search 0
    # (effect 1): the two conversions shared 1 : 2.
    assert found["markov"] == pytest.approx({"Email": 2 / 3, "Paid search": 4 / 3}, abs=1e-12)
    assert sum(credits(result, "value")["markov"].values()) == pytest.approx(30.0)


def test_every_rule_based_model_gives_out_one_credit_per_conversion(client):
    project = new_project(client)
    # Given one conversion after five touches of five channels, 1 to 5 days before it
    touches = [("social", "2026-10-05T00:00"), ("email", "2026-10-06T00:00"), ("paid", "2026-10-07T00:00"),
               ("social", "2026-10-08T00:00"), ("email", "2026-10-09T00:00")]
    insert(client, project, {"u1": [*touches, ("purchase", "2026-10-10T00:00", 1)]})
    result = run(client, project, half_life_days=1.5, position_first=0.35, position_last=0.25)
    for model in attribution.RULE_BASED:
        assert sum(credits(result)[model].values()) == pytest.approx(1.0, abs=1e-12), model


def test_bad_requests_name_their_field(client):
    project = new_project(client)
    for body, field in (({"lookback_days": 0}, "lookback_days"), ({"half_life_days": 0}, "half_life_days"),
                        ({"position_first": 0.7, "position_last": 0.4}, "position_last"),
                        ({"models": []}, "models"), ({"models": ["markov", "markov"]}, "models"),
                        ({"models": ["u_shaped"]}, "models[0]"), ({"by": "medium"}, "by"), ({"limit": 15}, "limit"),
                        ({"conversion": {"event": "purchase", "path": "/x"}}, "conversion.path"),
                        ({"gap_minutes": 0}, "gap_minutes")):
        with pytest.raises(InvalidRequest) as refused:
            registry.decode("attribution", {"conversion": PURCHASE, **body})
        assert refused.value.field == field, body
    with pytest.raises(NotFound, match="conversion"):
        run(client, project, conversion="g_AAAAAAAAAAAA")


def test_channel_rules_are_checked_and_edited(client):
    project = new_project(client)
    insert(client, project, {"u1": [("paid", "2026-10-10T10:00"), ("purchase", "2026-10-10T10:05", 1)]})
    shown = channels.get(client, project)
    assert shown.default and shown.channels == ["Paid search", "Paid social", "Email", "Organic search",
                                                "Organic social", "Referral", "Direct", "Other"]
    # A rule on the campaign, case-insensitively, first in the list: the brand campaign has a channel of its own
    brand = channels.ChannelRule(channel="Brand <b>", when=[
        channels.Condition(field="utm_campaign", op="in", values=["BRAND"])])
    edited = channels.replace(client, project, channels.ChannelSettings(
        rules=[brand, *channels.DEFAULT_SETTINGS.rules]), "test")
    assert not edited.default and edited.channels[0] == "Brand <b>" and edited.updated_by == "test"
    assert credits(run(client, project))["last_touch"] == {"Brand <b>": 1.0}
    for body, field in (({"rules": []}, "rules"), ({"rules": [{"channel": " "}]}, "rules[0].channel"),
                        ({"rules": [{"channel": "A", "when": [{"field": "utm_source", "op": "regex",
                                                               "values": ["("]}]}]}, "rules[0].when[0].values"),
                        ({"rules": [{"channel": "A", "when": [{"field": "country", "values": ["x"]}]}]},
                         "rules[0].when[0].field"),
                        ({"rules": [{"channel": "A"}], "direct_channel": "Direct"}, "direct_channel")):
        with pytest.raises(InvalidRequest) as refused:
            channels.decode(msgspec.json.encode(body))
        assert refused.value.field == field, body


# --- on demo data, against the pandas reference of the rule-based models ----------------------------------------

def demo_touches(client, project_id: int, start: pd.Timestamp, end: pd.Timestamp, by: str) -> tuple[pd.DataFrame,
                                                                                                      pd.DataFrame]:
    """Touchpoints (sessions' first events, split in pandas) and purchases of the demo, persons resolved in pandas."""
    events = client.query_df(
        "SELECT ts, event, distinct_id, utm_source, utm_medium, utm_campaign, referrer_class, referrer_domain,"
        " toFloat64OrZero(toString(properties.revenue)) AS revenue FROM events WHERE project_id = {p:UInt32}",
        parameters={"p": project_id})
    identities = client.query_df("SELECT distinct_id, toString(person_id) AS person_id, version, is_deleted "
                                 "FROM identities WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    latest = identities.sort_values("version").groupby("distinct_id").tail(1)
    latest = latest[latest["is_deleted"] == 0].set_index("distinct_id")["person_id"]
    events["person"] = events["distinct_id"].map(latest).fillna(events["distinct_id"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events = events[(events["ts"] >= start - pd.Timedelta(days=30)) & (events["ts"] < end)]
    settings = channels.DEFAULT_SETTINGS
    order = {name: i for i, name in enumerate(channels.channels(settings))}
    sources = events[["utm_source", "utm_medium", "utm_campaign", "referrer_class", "referrer_domain"]].drop_duplicates()
    named = {tuple(r.values()): python_channel(r, settings) for r in sources.to_dict("records")}
    events["channel"] = [named[key] for key in zip(events["utm_source"], events["utm_medium"], events["utm_campaign"],
                                                   events["referrer_class"], events["referrer_domain"])]
    events["source"] = events["utm_source"].where(events["utm_source"] != "", events["referrer_domain"])
    events["source"] = events["source"].where(events["source"] != "", touchpoints.NO_SOURCE)
    events["campaign"] = events["utm_campaign"].where(events["utm_campaign"] != "", touchpoints.NO_CAMPAIGN)
    events["rank"] = events["channel"].map(order)
    tie = ["rank"] if by == "channel" else ["rank", by]
    events = events.sort_values(["person", "ts", *tie], kind="stable")
    first = events["person"].ne(events["person"].shift()) | events["ts"].diff().gt(pd.Timedelta(minutes=30))
    touches = events[first][["person", "ts", "channel", "source", "campaign"]]
    bought = events[(events["event"] == "purchase") & (events["ts"] >= start)]
    return touches, bought[["person", "ts", "revenue"]].rename(columns={"revenue": "value"})


@pytest.mark.parametrize("by", ["channel", "source", "campaign"])
def test_rule_based_models_match_the_pandas_reference_on_demo_data(client, demo, by):
    start, end = pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-11-01", tz="UTC")
    touches, bought = demo_touches(client, demo, start, end, by)
    expected = attribute(touches, bought, by=by)
    result = run(client, demo, by=by, limit=attribution.MAX_LIMIT, models=list(attribution.RULE_BASED))
    assert len(result.labels) < attribution.MAX_LIMIT and result.conversions == len(bought)
    found = {(row.model, row.label): (row.conversions, row.value) for row in result.rows if row.conversions}
    wanted = {key: (row.conversions, row.value) for key, row in expected.iterrows() if row.conversions}
    assert found.keys() == wanted.keys()
    for key, (conversions, value) in wanted.items():
        assert found[key] == pytest.approx((conversions, value), rel=1e-9, abs=1e-9), key
    # Every model gives out exactly the attributed conversions, and the demo's paths have several touches.
    for model in attribution.RULE_BASED:
        assert sum(r.conversions for r in result.rows if r.model == model) == pytest.approx(result.attributed)
    assert {r.label for r in result.rows if r.model == "linear" and r.conversions % 1}
