"""The pandas reference of the rule-based attribution models on hand-built touches with exact credits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.analyses.attribution_reference import MODELS, attribute, touch_credits

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-31T12:00:00Z")


def touches(*rows: tuple[str, pd.Timedelta, str]) -> pd.DataFrame:
    """(person, offset from T0, channel) rows; the source and campaign are named after the channel."""
    return pd.DataFrame({"person": [r[0] for r in rows], "ts": [T0 + r[1] for r in rows],
                         "channel": [r[2] for r in rows], "source": [r[2].lower() for r in rows],
                         "campaign": [f"{r[2]} campaign" for r in rows]})


def conversions(*rows: tuple[str, pd.Timedelta, float]) -> pd.DataFrame:
    return pd.DataFrame({"person": [r[0] for r in rows], "ts": [T0 + r[1] for r in rows],
                         "value": [r[2] for r in rows]})


def credit(frame: pd.DataFrame, model: str) -> dict[str, float]:
    return frame.groupby("channel")[model].sum().to_dict()


def test_a_single_touch_takes_every_model_s_whole_credit() -> None:
    frame = touch_credits(touches(("u1", -2 * DAY, "Email")), conversions(("u1", 0 * DAY, 30.0)))
    assert frame[list(MODELS)].to_numpy().tolist() == [[1.0] * len(MODELS)]
    assert attribute(touches(("u1", -2 * DAY, "Email")), conversions(("u1", 0 * DAY, 30.0))).loc[
        ("linear", "Email")].tolist() == [1.0, 30.0]


def test_three_touches_under_each_model() -> None:
    # Given Referral 14 days, Email 7 days and Paid search 0 days before a conversion worth 70
    three = touches(("u1", -14 * DAY, "Referral"), ("u1", -7 * DAY, "Email"), ("u1", 0 * DAY, "Paid search"))
    frame = touch_credits(three, conversions(("u1", 0 * DAY, 70.0)))
    assert credit(frame, "first_touch") == {"Email": 0.0, "Paid search": 0.0, "Referral": 1.0}
    assert credit(frame, "last_touch") == {"Email": 0.0, "Paid search": 1.0, "Referral": 0.0}
    assert credit(frame, "linear") == pytest.approx({"Email": 1 / 3, "Paid search": 1 / 3, "Referral": 1 / 3})
    # Half-life 7 days: weights 1/4, 1/2, 1 → 1/7, 2/7, 4/7.
    assert credit(frame, "time_decay") == pytest.approx({"Email": 2 / 7, "Paid search": 4 / 7, "Referral": 1 / 7})
    assert credit(frame, "position_based") == pytest.approx({"Email": 0.2, "Paid search": 0.4, "Referral": 0.4})
    by_channel = attribute(three, conversions(("u1", 0 * DAY, 70.0)))
    assert by_channel.loc[("time_decay", "Paid search"), "value"] == pytest.approx(40.0)


def test_position_based_with_four_and_with_two_touches() -> None:
    four = touches(("u1", -4 * DAY, "A"), ("u1", -3 * DAY, "B"), ("u1", -2 * DAY, "C"), ("u1", -1 * DAY, "D"))
    assert touch_credits(four, conversions(("u1", 0 * DAY, 1.0)))["position_based"].tolist() == pytest.approx(
        [0.4, 0.1, 0.1, 0.4])
    two = touches(("u1", -2 * DAY, "A"), ("u1", -1 * DAY, "B"))
    assert touch_credits(two, conversions(("u1", 0 * DAY, 1.0)))["position_based"].tolist() == [0.5, 0.5]
    # 30/50: two touches share 30 : 50.
    uneven = touch_credits(two, conversions(("u1", 0 * DAY, 1.0)), first_weight=0.3, last_weight=0.5)
    assert uneven["position_based"].tolist() == pytest.approx([0.375, 0.625])
    # 0/0: the ends get nothing from three touches, and two share evenly.
    assert touch_credits(two, conversions(("u1", 0 * DAY, 1.0)), first_weight=0, last_weight=0)[
        "position_based"].tolist() == [0.5, 0.5]
    assert touch_credits(four, conversions(("u1", 0 * DAY, 1.0)), first_weight=0, last_weight=0)[
        "position_based"].tolist() == pytest.approx([0, 0.5, 0.5, 0])


def test_the_lookback_holds_its_ends_and_each_conversion_has_its_own() -> None:
    # A touch exactly 30 days before counts, 30 days and a millisecond before does not; the second conversion
    # (10 days later) no longer sees the first touch, and the conversion without touches is nobody's.
    frame = touch_credits(
        touches(("u1", -30 * DAY - pd.Timedelta(milliseconds=1), "Old"), ("u1", -30 * DAY, "Edge"),
                ("u1", -1 * DAY, "Email"), ("u2", -1 * DAY, "Email")),
        conversions(("u1", 0 * DAY, 10.0), ("u1", 10 * DAY, 20.0), ("u3", 0 * DAY, 5.0), ("u1", -31 * DAY, 1.0)))
    assert frame[["conversion", "channel", "first_touch"]].to_numpy().tolist() == [
        [0, "Edge", 1.0], [0, "Email", 0.0], [1, "Email", 1.0]]
    assert frame["value"].tolist() == [10.0, 10.0, 20.0]


def test_direct_gives_way_to_another_touch_unless_it_is_alone_or_the_option_is_off() -> None:
    paid_then_direct = touches(("u1", -2 * DAY, "Paid search"), ("u1", -1 * DAY, "Direct"), ("u2", -1 * DAY, "Direct"))
    converted = conversions(("u1", 0 * DAY, 1.0), ("u2", 0 * DAY, 1.0))
    frame = touch_credits(paid_then_direct, converted)
    assert frame[["conversion", "channel", "last_touch"]].to_numpy().tolist() == [
        [0, "Paid search", 1.0], [1, "Direct", 1.0]]
    everything = touch_credits(paid_then_direct, converted, last_non_direct=False)
    assert credit(everything, "last_touch") == {"Direct": 2.0, "Paid search": 0.0}
    renamed = touch_credits(paid_then_direct.replace({"Direct": "None"}), converted, direct_channel="None")
    assert credit(renamed, "last_touch") == {"None": 1.0, "Paid search": 1.0}


def test_touches_at_the_same_time_are_ordered_by_the_rules_then_by_name() -> None:
    tied = touches(("u1", -1 * DAY, "Paid search"), ("u1", -1 * DAY, "Email"), ("u1", -1 * DAY, "Affiliates"))
    converted = conversions(("u1", 0 * DAY, 1.0))
    by_name = touch_credits(tied, converted)
    assert by_name[["channel", "first_touch", "last_touch"]].to_numpy().tolist() == [
        ["Affiliates", 1.0, 0.0], ["Email", 0.0, 0.0], ["Paid search", 0.0, 1.0]]
    assert by_name["time_decay"].tolist() == pytest.approx([1 / 3] * 3)
    by_rules = touch_credits(tied, converted, channel_order=["Paid search", "Email"])
    assert by_rules["channel"].tolist() == ["Paid search", "Email", "Affiliates"]


def test_every_model_s_credits_of_each_conversion_sum_to_one_on_random_journeys() -> None:
    rng = np.random.default_rng(5)
    channels = np.array(["Direct", "Email", "Paid search", "Organic search", "Referral"])
    touch_count, conversion_count = 5000, 800
    random_touches = pd.DataFrame({
        "person": rng.integers(0, 300, touch_count),
        "ts": T0 + pd.to_timedelta(rng.integers(0, 90 * 24 * 3600, touch_count), unit="s"),
        "channel": rng.choice(channels, touch_count), "source": "s", "campaign": "c"})
    random_conversions = pd.DataFrame({
        "person": rng.integers(0, 400, conversion_count),  # persons 300-399 have no touches
        "ts": T0 + pd.to_timedelta(rng.integers(0, 90 * 24 * 3600, conversion_count), unit="s"),
        "value": rng.uniform(0, 50, conversion_count)})
    frame = touch_credits(random_touches, random_conversions)
    sums = frame.groupby("conversion")[list(MODELS)].sum()
    assert np.allclose(sums.to_numpy(), 1.0)
    # Against a plain merge of each conversion with its person's touches in the lookback.
    merged = random_conversions.reset_index(names="conversion").merge(random_touches, on="person",
                                                                      suffixes=("", "_touch"))
    window = merged[(merged["ts_touch"] <= merged["ts"]) & (merged["ts_touch"] >= merged["ts"] - 30 * DAY)]
    assert set(sums.index) == set(window["conversion"])
    direct_only = window.groupby("conversion")["channel"].agg(lambda c: (c == "Direct").all())
    non_direct = window[(window["channel"] != "Direct") | window["conversion"].map(direct_only)]
    assert frame.groupby("conversion").size().to_dict() == non_direct.groupby("conversion").size().to_dict()
    assert len(sums) > 500
    attributed_value = random_conversions["value"].iloc[sums.index].sum()
    assert attribute(random_touches, random_conversions).groupby("model")["value"].sum().to_numpy() == pytest.approx(
        [attributed_value] * len(MODELS))
