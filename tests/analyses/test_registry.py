"""Every analysis kind decodes from JSON, runs, and explains itself with every placeholder bound."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from nexus.analyses import funnel_chain, registry
from nexus.errors import InvalidRequest, NotFound
from tests.conftest import DEMO_END

BODIES = {
    "trends": {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}], "interval": "week",
               "date_range": {"date_from": "-14d"}, "breakdown": {"key": "plan"}, "compare": True},
    "funnel": {"steps": [{"event": "page_view"}, {"event": "signup", "where": {"filters": [
        {"key": "plan", "op": "in", "value": ["pro", "team"]}]}}], "window": 3, "mode": "ordered",
        "breakdown": {"key": "country", "source": "column", "limit": 3}},
    "funnel_persons": {"funnel": {"steps": [{"event": "page_view"}, {"event": "signup"}]}, "step": 1, "limit": 5},
    "retention": {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3,
                  "date_range": {"date_from": "-4w"}, "breakdown": {"key": "plan", "source": "person", "limit": 2}},
    "sessions": {"breakdown": {"key": "utm_source", "source": "column"}, "gap_minutes": 20,
                 "where": {"match": "any", "filters": [{"key": "country", "source": "column", "value": "US"},
                                                       {"key": "plan", "source": "person", "op": "is_set"}]}},
    "stickiness": {"event": "page_view", "period": "week", "date_range": {"date_from": "this_month"}},
    "lifecycle": {"event": "page_view", "date_range": {"date_from": "-7d"}, "timezone": "Asia/Tokyo",
                  "breakdown": {"key": "device_type", "source": "column", "limit": 1}},
}


def test_every_kind_has_a_body_here():
    assert set(BODIES) == set(registry.ANALYSES)


@pytest.mark.parametrize("kind", BODIES)
def test_each_kind_decodes_runs_encodes_and_explains(client, demo, kind):
    request = registry.decode(kind, json.dumps(BODIES[kind]).encode())
    assert isinstance(request, registry.module(kind).Request)
    result = registry.run(client, demo, kind, request, now=DEMO_END)
    assert isinstance(result, registry.module(kind).Result)
    assert json.loads(msgspec.json.encode(result))  # the API can encode it as is
    sql, params = registry.explain(client, demo, kind, request, now=DEMO_END)
    assert set(re.findall(r"\{(\w+):", sql)) == set(params)
    # No request value is spliced into the SQL text.
    assert set(re.findall(r"'[^']*'", sql)) <= {"'UTC'", "''", "'page'", "'screen'", "'new'", "'returning'",
                                                 "'resurrecting'", "'dormant'", "'day'", "'month'",
                                                 f"'{funnel_chain.TOO_MANY_EVENTS}'"}


def test_unknown_kinds_and_malformed_bodies_are_refused():
    with pytest.raises(NotFound):
        registry.module("paths")
    with pytest.raises(InvalidRequest, match="invalid trends request"):
        registry.decode("trends", b'{"series": [], "extra": 1}')
    with pytest.raises(InvalidRequest):
        registry.decode("funnel", {"steps": [{"event": "a"}, {"event": "b"}], "mode": "sideways"})
    with pytest.raises(InvalidRequest):
        registry.decode("trends", {"series": [{"event": "a", "where": {"filters": [{"key": "a b", "value": 1}]}}]})


@pytest.mark.parametrize("kind", BODIES)
def test_every_kind_has_a_table(client, demo, kind):
    from nexus.analyses import tables

    result = registry.run(client, demo, kind, registry.decode(kind, BODIES[kind]), now=DEMO_END)
    table = tables.table(kind, result)
    assert table.num_rows or kind in ("funnel_persons",)
    assert table.column_names == list(tables.TABLES[kind][0]) and len(set(table.column_names)) == table.num_columns
