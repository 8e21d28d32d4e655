"""Paths against a plain-Python walk of the definition on demo data, and exact flows on hand-written journeys."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
import pandas as pd
import pytest

from nexus.analyses import paths, paths_persons, registry
from nexus.analyses.breakdown import OTHER
from nexus.errors import InvalidRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.conftest import DEMO_END

DAY = {"date_from": "2026-10-01", "date_to": "2026-10-01"}


def run(client, project_id, **body):
    return paths.run(client, project_id, registry.decode("paths", body), now=DEMO_END)


def flows(result) -> tuple[dict[str, tuple[int, int]], dict[tuple[str, str], int]]:
    """Nodes as {id: (value, dropped)} and edges as {(source, target): value}."""
    return ({n.id: (n.value, n.dropped) for n in result.nodes},
            {(e.source, e.target): e.value for e in result.edges})


# --- the reference: the definition walked person by person in Python ---------------------------------------

def reference_paths(frame: pd.DataFrame, request: paths.PathsRequest, start: pd.Timestamp,
                    end: pd.Timestamp) -> list[tuple[str, list[str]]]:
    """(person, names from the anchor: up to steps + 1) for every path, by the documented definition."""
    window = pd.Timedelta(milliseconds=request.window_ms)
    scan_from, scan_to = start, end
    if request.within == "window":
        scan_from, scan_to = (start - window, end) if request.backward else (start, end + window)
    rows = frame[(frame["ts"] >= scan_from) & (frame["ts"] < scan_to)]
    rows = rows[rows["type"] == "page"] if request.step_type == "pages" else rows[
        rows["type"].isin(["track", "page", "screen"])]
    cleaned = rows["path"]
    for rule in request.cleaning:
        cleaned = cleaned.map(lambda p, r=rule: re.sub(r.pattern, r.replacement, p))
    name = {"events": rows["event"], "pages": cleaned,
            "both": cleaned.where(rows["type"] == "page", rows["event"])}[request.step_type]
    rows = rows.assign(name=name)
    rows = rows[~rows["name"].isin(request.exclude)].sort_values(["person", "ts", "name"])
    anchor = request.end if request.backward else request.start
    found = []
    for person, group in rows.groupby("person", sort=False):
        steps = list(zip(group["ts"], group["name"]))
        sequences = [steps]
        if request.within == "session":
            sequences, gap = [[steps[0]]], pd.Timedelta(minutes=request.gap_minutes)
            for previous, step in zip(steps, steps[1:]):
                if step[0] - previous[0] > gap:
                    sequences.append([step])
                else:
                    sequences[-1].append(step)
        for sequence in sequences:
            if request.collapse_repeats:
                sequence = [s for i, s in enumerate(sequence) if i == 0 or s[1] != sequence[i - 1][1]]
            anchors = [i for i, (t, n) in enumerate(sequence) if start <= t < end and (anchor is None or n == anchor)]
            if not anchors:
                continue
            a = anchors[0]
            taken = sequence[a::-1] if request.backward else sequence[a:]
            taken = taken[:request.steps + 1]
            if request.within == "window":
                taken = [s for s in taken if abs(s[0] - sequence[a][0]) <= window]
            found.append((person, [n for _, n in taken]))
    return found


def reference_flows(found: list[tuple[str, list[str]]], steps: int, kept: int):
    """Nodes as {id: (value, dropped)} and edges as {(source, target): value}, OTHER merged per step."""
    counts = Counter((k, names[k]) for _, names in found for k in range(min(len(names), steps)))
    top = {k: {n for n, _ in sorted(((n, c) for (j, n), c in counts.items() if j == k),
                                     key=lambda item: (-item[1], item[0]))[:kept]} for k in range(steps)}

    def label(k: int, name: str) -> str:
        return paths.node_id(k, name if name in top[k] else OTHER)

    nodes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    edges: Counter = Counter()
    for _, names in found:
        for k in range(min(len(names), steps)):
            nodes[label(k, names[k])][0] += 1
            nodes[label(k, names[k])][1] += len(names) == k + 1
            if k + 1 < min(len(names), steps):
                edges[(label(k, names[k]), label(k + 1, names[k + 1]))] += 1
    return {i: tuple(v) for i, v in nodes.items()}, dict(edges)


@pytest.mark.parametrize("body", [
    {"date_range": {"date_from": "-14d"}, "steps": 5, "nodes_per_step": 6},
    {"date_range": {"date_from": "-14d"}, "start": "signup", "within": "window", "window": 3, "window_unit": "day",
     "step_type": "events", "collapse_repeats": False, "steps": 4, "nodes_per_step": 3},
    {"date_range": {"date_from": "-14d"}, "end": "purchase", "within": "window", "window": 2, "window_unit": "hour",
     "steps": 4, "nodes_per_step": 4, "exclude": ["add_to_cart"]},
    {"date_range": {"date_from": "-21d"}, "start": "/", "step_type": "pages", "gap_minutes": 10, "steps": 6,
     "nodes_per_step": 2, "cleaning": [{"pattern": "^/(blog|docs).*", "replacement": "/\\1/*"}]},
    {"date_range": {"date_from": "-14d"}, "end": "/pricing", "steps": 3, "nodes_per_step": 5, "gap_minutes": 20},
], ids=["sessions-from-first", "window-from-signup", "back-from-purchase", "pages-cleaned", "sessions-back-to-page"])
def test_paths_match_the_python_walk_on_demo_data(client, demo, frame, body):
    request = registry.decode("paths", body)
    result = paths.run(client, demo, request, now=DEMO_END)
    found = reference_paths(frame, request, pd.Timestamp(result.date_from), pd.Timestamp(result.date_to))
    nodes, edges = reference_flows(found, request.steps, request.nodes_per_step)
    if request.backward:  # edges point in time order: from step k+1 to step k
        edges = {(target, source): value for (source, target), value in edges.items()}
    assert len(found) > 100 and result.paths == len(found)
    assert flows(result) == (nodes, edges)
    assert result.unit == ("sessions" if request.within == "session" else "persons")
    for node in result.nodes:  # distinct persons, which sessions may repeat
        at = [p for p, names in found if len(names) > node.step
              and paths.node_id(node.step, names[node.step]) == node.id]
        if node.name != OTHER:
            assert node.persons == len(set(at))


def test_a_person_identified_mid_path_is_one_path(client):
    project = new_project(client)
    insert_events(client, project, {
        "anon": [("page_view", "2026-10-01T10:00", {}, {"path": "/"}),
                 ("page_view", "2026-10-01T10:01", {}, {"path": "/pricing"})],
        "user": [("signup", "2026-10-01T10:02"), ("identify", "2026-10-01T10:02:00.001", {}, {"type": "identify"}),
                 ("purchase", "2026-10-01T10:03")],
    })
    link(client, project, {"anon": "00000000-0000-4000-8000-0000000000a1", "user": "00000000-0000-4000-8000-0000000000a1"})
    result = run(client, project, start="/", date_range=DAY)
    assert flows(result) == (
        {"0:/": (1, 0), "1:/pricing": (1, 0), "2:signup": (1, 0), "3:purchase": (1, 1)},  # identify is no step
        {("0:/", "1:/pricing"): 1, ("1:/pricing", "2:signup"): 1, ("2:signup", "3:purchase"): 1})
    assert result.paths == 1 and result.nodes[0].persons == 1


def pages(*paths: str) -> list[tuple]:
    """Page views a minute apart from 10:00, one per path."""
    return [("page_view", f"2026-10-01T10:0{i}", {}, {"path": p}) for i, p in enumerate(paths)]


def test_repeats_collapse_or_not_and_cleaning_merges_ids(client):
    project = new_project(client)
    insert_events(client, project, {"a": pages("/", "/item/123", "/item/123", "/cart"),
                                    "b": pages("/", "/item/456", "/cart", "/cart")})
    rules = [{"pattern": "^/item/\\d+$", "replacement": "/item/:id"}]
    collapsed = run(client, project, start="/", step_type="pages", cleaning=rules, date_range=DAY)
    assert flows(collapsed) == ({"0:/": (2, 0), "1:/item/:id": (2, 0), "2:/cart": (2, 2)},
                                {("0:/", "1:/item/:id"): 2, ("1:/item/:id", "2:/cart"): 2})
    kept = run(client, project, start="/", step_type="pages", cleaning=rules, collapse_repeats=False, date_range=DAY)
    assert flows(kept) == (
        {"0:/": (2, 0), "1:/item/:id": (2, 0), "2:/item/:id": (1, 0), "2:/cart": (1, 0), "3:/cart": (2, 2)},
        {("0:/", "1:/item/:id"): 2, ("1:/item/:id", "2:/item/:id"): 1, ("1:/item/:id", "2:/cart"): 1,
         ("2:/item/:id", "3:/cart"): 1, ("2:/cart", "3:/cart"): 1})
    raw = run(client, project, start="/", step_type="pages", steps=2, date_range=DAY)
    assert flows(raw)[0] == {"0:/": (2, 0), "1:/item/123": (1, 0), "1:/item/456": (1, 0)}


def test_the_window_edge_is_inclusive_and_may_pass_the_range_end(client):
    project = new_project(client)
    insert_events(client, project, {
        "edge": [("open", "2026-10-01T23:55"), ("read", "2026-10-02T00:05"), ("late", "2026-10-02T00:05:00.001")],
        "early": [("read", "2026-10-01T09:00"), ("open", "2026-10-01T10:00"), ("open", "2026-10-01T10:01")],
    })
    result = run(client, project, start="open", within="window", window=10, window_unit="minute", date_range=DAY)
    # `late` is 1 ms past the window; `read` exactly at its edge, after the range end; repeats collapse.
    assert flows(result) == ({"0:open": (2, 1), "1:read": (1, 1)}, {("0:open", "1:read"): 1})
    backward = run(client, project, end="open", within="window", window=1, window_unit="hour", date_range=DAY)
    assert flows(backward) == ({"0:open": (2, 1), "1:read": (1, 1)}, {("1:read", "0:open"): 1})


def test_sessions_split_after_the_gap_and_each_gives_a_path(client):
    project = new_project(client)
    insert_events(client, project, {"u": [
        ("home", "2026-10-01T10:00"), ("search", "2026-10-01T10:30"),  # exactly 30 minutes: same session
        ("home", "2026-10-01T11:00:00.001"), ("buy", "2026-10-01T11:01"),  # 30 min + 1 ms: a new session
        ("search", "2026-10-01T12:00"),
    ]})
    result = run(client, project, start="home", date_range=DAY)
    assert result.unit == "sessions" and result.paths == 2
    assert flows(result) == ({"0:home": (2, 0), "1:search": (1, 1), "1:buy": (1, 1)},
                             {("0:home", "1:search"): 1, ("0:home", "1:buy"): 1})
    assert {n.id: n.persons for n in result.nodes} == {"0:home": 1, "1:search": 1, "1:buy": 1}
    by_person = run(client, project, start="home", within="window", window=3, window_unit="hour", date_range=DAY)
    assert by_person.paths == 1 and flows(by_person)[1] == {
        ("0:home", "1:search"): 1, ("1:search", "2:home"): 1, ("2:home", "3:buy"): 1, ("3:buy", "4:search"): 1}


def test_names_beyond_the_limit_merge_into_other_and_its_persons_are_listed(client):
    project = new_project(client)
    nexts = {"p1": "a", "p2": "a", "p3": "b", "p4": "c", "p5": "d"}
    insert_events(client, project, {p: [("start", "2026-10-01T10:00"), (n, "2026-10-01T10:01")]
                                    for p, n in nexts.items()})
    result = run(client, project, start="start", nodes_per_step=2, date_range=DAY)
    # b, c and d tie at one path each: ties go by name, so b stays and c, d merge.
    assert flows(result) == ({"0:start": (5, 0), "1:a": (2, 2), "1:b": (1, 1), f"1:{OTHER}": (2, 2)},
                             {("0:start", "1:a"): 2, ("0:start", "1:b"): 1, ("0:start", f"1:{OTHER}"): 2})
    listing = registry.decode("paths_persons", {"paths": {"start": "start", "nodes_per_step": 2, "date_range": DAY},
                                                "step": 1, "node": OTHER, "status": "dropped"})
    people = paths_persons.run(client, project, listing, now=DEMO_END)
    assert [(p.person, p.paths) for p in people.persons] == [("p4", 1), ("p5", 1)] and not people.has_more
    first = registry.decode("paths_persons", {"paths": {"start": "start", "date_range": DAY}, "step": 1, "node": "a",
                                              "limit": 1})
    page = paths_persons.run(client, project, first, now=DEMO_END)
    assert [p.person for p in page.persons] == ["p1"] and page.has_more
    assert page.persons[0].anchored_at.isoformat() == "2026-10-01T10:00:00+00:00"


def test_node_persons_match_the_result_on_demo_data(client, demo):
    body = {"date_range": {"date_from": "-14d"}, "steps": 3, "nodes_per_step": 3}
    result = run(client, demo, **body)
    for node in [n for n in result.nodes if n.step == 1]:
        for status, expected in (("reached", node.persons), ("dropped", None)):
            request = registry.decode("paths_persons", {"paths": body, "step": 1, "node": node.name, "status": status,
                                                        "limit": 10_000})
            listed = paths_persons.run(client, demo, request, now=DEMO_END).persons
            assert sum(p.paths for p in listed) == (node.value if status == "reached" else node.dropped)
            if expected is not None:
                assert len(listed) == expected


@pytest.mark.parametrize(("body", "field"), [
    ({"start": "a", "end": "b"}, "end"),
    ({"steps": 1}, "steps"),
    ({"steps": 11}, "steps"),
    ({"nodes_per_step": 0}, "nodes_per_step"),
    ({"step_type": "clicks"}, "step_type"),
    ({"within": "window", "window": 0}, "window"),
    ({"gap_minutes": 0}, "gap_minutes"),
    ({"cleaning": [{"pattern": "/item/(\\d+"}]}, "cleaning[0].pattern"),
    ({"cleaning": [{"pattern": "/item/\\d+", "replacement": "\\1"}]}, "cleaning[0].replacement"),
    ({"cleaning": [{"replacement": "x"}]}, "cleaning[0].pattern"),
    ({"date_range": {"date_from": "yesterday-ish"}}, "date_range.date_from"),
])
def test_bad_requests_name_their_field(client, body, field):
    with pytest.raises(InvalidRequest) as refused:
        paths.run(client, 1, registry.decode("paths", {"timezone": "UTC", **body}), now=DEMO_END)
    assert refused.value.field == field


@pytest.mark.parametrize(("body", "field"), [
    ({"paths": {}, "step": 5, "node": "a"}, "step"),
    ({"paths": {"steps": 3}, "step": -1, "node": "a"}, "step"),
    ({"paths": {"steps": 30}, "step": 0, "node": "a"}, "paths.steps"),
    ({"paths": {}, "step": 0}, "node"),
    ({"paths": {}, "step": 0, "node": "a", "limit": 0}, "limit"),
])
def test_bad_persons_requests_name_their_field(body, field):
    with pytest.raises(InvalidRequest) as refused:
        registry.decode("paths_persons", body)
    assert refused.value.field == field


def test_window_after_range_end_is_scanned_only_in_window_mode(client):
    project = new_project(client)
    insert_events(client, project, {"u": [("open", "2026-10-01T23:59"), ("read", "2026-10-02T00:01")]})
    sessions = run(client, project, start="open", date_range=DAY)
    window = run(client, project, start="open", within="window", window=60, window_unit="minute", date_range=DAY)
    assert flows(sessions)[1] == {} and flows(window)[1] == {("0:open", "1:read"): 1}


def test_a_project_without_events_has_no_paths(client):
    empty = run(client, new_project(client), start="/", date_range=DAY)
    assert (empty.paths, empty.nodes, empty.edges) == (0, [], [])
