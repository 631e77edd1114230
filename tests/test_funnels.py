"""Exact funnels (docs/metrics/funnels.md): known answers worked out by hand, a brute-force
pure-Python reference that must agree with the engine on random small logs, option errors, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from journeymap.cli.main import app as cli_app
from journeymap.engine.funnel_options import FunnelOptionError, funnel_options
from journeymap.engine.funnels import funnel
from journeymap.workspace import Workspace

T0 = dt.datetime(2024, 3, 1)
MIN = 60


def make_ws(base: Path, rows: list[tuple]) -> Workspace:
    """rows: (person, seconds from T0, event[, account[, properties]]); file order is input order.
    A message_id per row keeps identical rows apart (ingest drops duplicates)."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "account_id", "message_id", "properties"])
        for i, r in enumerate(rows):
            who, sec, event = r[:3]
            account = r[3] if len(r) > 3 else ""
            props = json.dumps(r[4]) if len(r) > 4 and r[4] else ""
            w.writerow([who, event, (T0 + dt.timedelta(seconds=sec)).isoformat() + "Z", account, f"m{i}", props])
    ws = Workspace(base / "ws")
    ws.path.mkdir()
    (report,) = ws.ingest([str(path)])
    assert report.accepted == len(rows), report
    return ws


def counts(ws: Workspace, steps: str, level: str = "person", **kw) -> list[int]:
    return [s["count"] for s in funnel(ws.engine, funnel_options(steps, **kw), level)["steps"]]


@pytest.fixture
def ws_of(tmp_path):
    made = []

    def build(rows):
        ws = make_ws(tmp_path / f"w{len(made)}", rows)
        made.append(ws)
        return ws

    yield build
    for ws in made:
        ws.close()


# -- known answers ------------------------------------------------------------------------------

def test_window_boundary_is_inclusive(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 300, "B"), ("u2", 0, "A"), ("u2", 301, "B")])
    assert counts(ws, "A,B", window="5m") == [2, 1]
    assert counts(ws, "A,B", window="301s") == [2, 2]


def test_events_before_step_one_never_count(ws_of):
    ws = ws_of([("u1", 0, "B"), ("u1", 60, "A"), ("u1", 120, "C")])
    assert counts(ws, "A,B") == [1, 0]
    assert counts(ws, "B,A,C") == [1, 1, 1]


def test_same_event_steps_consume_distinct_later_events(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 60, "A"), ("u2", 0, "A"), ("u2", 60, "B"), ("u2", 120, "A")])
    assert counts(ws, "A,A,A") == [2, 2, 0]
    assert counts(ws, "A,B,A") == [2, 1, 1]


def test_uniques_take_the_furthest_attempt_and_its_times(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 60, "B"),
                ("u1", 100 * MIN, "A"), ("u1", 100 * MIN + 30, "B"), ("u1", 100 * MIN + 90, "C")])
    r = funnel(ws.engine, funnel_options("A,B,C", window="1h"))
    assert [s["count"] for s in r["steps"]] == [1, 1, 1]
    assert [s["avg_seconds_from_previous"] for s in r["steps"]] == [None, 30.0, 60.0]
    assert counts(ws, "A,B,C", window="1h", count="totals") == [2, 2, 1]


def test_counts_never_rise_and_ties_go_to_the_earliest_attempt(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 10, "B"), ("u1", 1000, "A"), ("u1", 1100, "B")])
    r = funnel(ws.engine, funnel_options("A,B,C"))
    assert [s["count"] for s in r["steps"]] == [1, 1, 0]
    assert r["steps"][1]["median_seconds_from_previous"] == 10.0


def test_strict_any_event_in_between_breaks(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 10, "X"), ("u1", 20, "B"), ("u2", 0, "A"), ("u2", 20, "B")])
    assert counts(ws, "A,B") == [2, 2]
    assert counts(ws, "A,B", order="strict") == [2, 1]


def test_exclusion_edge_cases(ws_of):
    ws = ws_of([
        ("u1", 0, "A"), ("u1", 60, "X"), ("u1", 120, "B"),  # X between 0 and 1: removed from every step
        ("u2", 0, "A"), ("u2", 60, "B"), ("u2", 600, "X"),  # X after the 5m window: no effect
        ("u3", 0, "A"), ("u3", 60, "B"), ("u3", 120, "X"),  # X after B, C never came, inside window: removed
        ("u4", 0, "A"), ("u4", 60, "X"), ("u4", 90, "A"), ("u4", 120, "B"),  # 2nd attempt is clean
    ])
    assert counts(ws, "A,B,C", window="5m") == [4, 4, 0]
    assert counts(ws, "A,B,C", window="5m", exclude=["X:0:1"]) == [3, 3, 0]
    assert counts(ws, "A,B,C", window="5m", exclude=["X:1:2"]) == [3, 3, 0]  # only u3 removed
    assert counts(ws, "A,B,C", window="5m", exclude=["X:0:2"], count="totals") == [2, 2, 0]


def test_exclusion_of_a_later_step_event(ws_of):
    # C is both step 2 and excluded between steps 0 and 1: the C between A and B removes the attempt,
    # while the C used as step 2 of u2 is never an exclusion event.
    ws = ws_of([("u1", 0, "A"), ("u1", 60, "C"), ("u1", 120, "B"),
                ("u2", 0, "A"), ("u2", 60, "B"), ("u2", 120, "C")])
    assert counts(ws, "A,B,C") == [2, 2, 1]
    assert counts(ws, "A,B,C", exclude=["C:0:1"]) == [1, 1, 1]
    assert counts(ws, "A,B,C", exclude=["C:1:2"]) == [2, 2, 1]


def test_same_timestamp_is_in_order_and_tolerance_widens_it(ws_of):
    ws = ws_of([("u1", 0, "B"), ("u1", 0, "A"),  # same instant, B listed first: in order
                ("u2", 0, "B"), ("u2", 1, "A")])  # B one second before A
    assert counts(ws, "A,B") == [2, 1]
    assert counts(ws, "A,B", tolerance="1s") == [2, 2]


def test_date_range_filters_entry_only(ws_of):
    day = 86400
    ws = ws_of([("u1", day - 60, "A"), ("u1", day + 60, "B"), ("u2", day + 10, "A"), ("u2", day + 20, "B")])
    assert counts(ws, "A,B", date_to="2024-03-01") == [1, 1]
    assert counts(ws, "A,B", date_from="2024-03-02") == [1, 1]
    assert counts(ws, "A,B", date_from="2024-03-03") == [0, 0]


def test_window_from_previous(ws_of):
    ws = ws_of([("u1", 0, "A"), ("u1", 240, "B"), ("u1", 480, "C")])
    assert counts(ws, "A,B,C", window="5m") == [1, 1, 0]
    assert counts(ws, "A,B,C", window="5m", window_from="previous") == [1, 1, 1]


def test_account_level_converts_when_any_person_does(ws_of):
    ws = ws_of([("u1", 0, "A", "acme"), ("u2", 60, "B", "acme"), ("u3", 0, "A", "beta")])
    assert counts(ws, "A,B", "person") == [2, 0]
    assert counts(ws, "A,B", "account") == [2, 1]


# The worked example of docs/metrics/funnels.md; change one, change the other.
WORKED = [
    ("ann", 0, "signup", "", {"plan": "pro"}), ("ann", 10 * MIN, "invite"), ("ann", 40 * MIN, "pay"),
    ("bob", 0, "signup", "", {"plan": "free"}), ("bob", 30 * MIN, "invite"), ("bob", 2 * 3600, "pay"),
    ("cat", 0, "signup", "", {"plan": "pro"}), ("cat", 5 * MIN, "logout"), ("cat", 20 * MIN, "invite"),
    ("dan", 0, "invite"), ("dan", 5 * MIN, "signup", "", {"plan": "free"}),
]


def test_worked_example(ws_of):
    ws = ws_of(WORKED)
    r = funnel(ws.engine, funnel_options("signup,invite,pay", window="1h", breakdown="plan"))
    assert [(s["count"], s["conversion_from_previous"], s["conversion_from_first"], s["avg_seconds_from_previous"],
             s["median_seconds_from_previous"]) for s in r["steps"]] == [
        (4, 1.0, 1.0, None, None), (3, 0.75, 0.75, 1200.0, 1200.0), (1, 1 / 3, 0.25, 1800.0, 1800.0)]
    groups = {g["value"]: [s["count"] for s in g["steps"]] for g in r["groups"]}
    assert groups == {"pro": [2, 2, 1], "free": [2, 1, 0]}
    assert counts(ws, "signup,invite,pay", window="1h", exclude=["logout:0:1"]) == [3, 2, 1]
    assert counts(ws, "signup,invite,pay", window="1h", order="strict") == [4, 2, 1]
    hist = r["histograms"][0]["bins"]
    assert [b["count"] for b in hist] == [0, 0, 3, 0, 0, 0, 0, 0, 0, 0] and hist[2]["from_seconds"] == 300


def test_optional_step_may_be_skipped_but_not_done_after_the_next_step(ws_of):
    ws = ws_of([
        ("p1", 0, "A"), ("p1", 60, "C"),                   # skips B
        ("p2", 0, "A"), ("p2", 30, "B"), ("p2", 60, "C"),  # does all three
        ("p3", 0, "A"), ("p3", 30, "C"), ("p3", 60, "B"),  # B after C is not B of this funnel
        ("p4", 0, "A"), ("p4", 30, "B"),                   # B, never C
    ])
    r = funnel(ws.engine, funnel_options("A,B,C", window="1h", optional=[1]))
    assert [(s["count"], s["conversion_from_previous"], s["avg_seconds_from_previous"], s["median_seconds_from_previous"],
             s.get("optional", False)) for s in r["steps"]] == [
        (4, 1.0, None, None, False), (2, 0.5, 30.0, 30.0, True), (3, 0.75, 50.0, 60.0, False)]
    # Without --optional the same log converts only p2 (p3's B after C counts at step 1 then).
    assert counts(ws, "A,B,C", window="1h") == [4, 3, 1]
    # A skipped optional TO ends the exclusion interval at the next required step.
    ws2 = ws_of([("p1", 0, "A"), ("p1", 30, "X"), ("p1", 60, "C"), ("p2", 0, "A"), ("p2", 90, "C"), ("p2", 120, "X")])
    assert counts(ws2, "A,B,C", window="1h", optional=[1], exclude=["X:0:1"]) == [1, 0, 1]


def test_strict_optional_step_is_taken_only_when_it_is_the_next_event(ws_of):
    ws = ws_of([
        ("p1", 0, "A"), ("p1", 10, "C"),
        ("p2", 0, "A"), ("p2", 10, "B"), ("p2", 20, "C"),
        ("p3", 0, "A"), ("p3", 10, "B"), ("p3", 20, "B"), ("p3", 30, "C"),  # the second B breaks it
        ("p4", 0, "A"), ("p4", 10, "X"), ("p4", 20, "C"),
    ])
    assert counts(ws, "A,B,C", window="1h", order="strict", optional=[1]) == [4, 2, 2]


def test_unordered_counts_any_k_steps_in_the_window(ws_of):
    ws = ws_of([
        ("p1", 0, "C"), ("p1", 60, "A"), ("p1", 120, "B"),  # all three, in another order
        ("p2", 0, "B"), ("p2", 30, "B"),                    # one step twice is still one step
        ("p3", 0, "A"), ("p3", 900, "C"),                   # 15 minutes apart: never together in a 10m window
        ("p4", 0, "A"), ("p4", 0, "B"),                     # same timestamp
    ])
    r = funnel(ws.engine, funnel_options("A,B,C", window="10m", order="unordered"))
    assert [s["count"] for s in r["steps"]] == [4, 2, 1]
    assert r["steps"][1]["avg_seconds_from_previous"] == 30.0  # p1: 60 s, p4: 0 s
    # A name listed twice needs two events of it; the entry is one of them.
    ws2 = ws_of([("p5", 0, "A"), ("p5", 10, "B"), ("p5", 20, "A"), ("p6", 0, "B"), ("p6", 10, "A")])
    assert counts(ws2, "A,A,B", window="10m", order="unordered") == [2, 2, 1]
    # Totals: every step event starts an attempt; events before it never count, ties at its timestamp do.
    assert counts(ws, "A,B,C", window="10m", order="unordered", count="totals") == [9, 4, 1]


@pytest.mark.parametrize("kw, message", [
    ({"exclude": ["X:1:1"]}, "FROM (1) must be lower than TO (1)"),
    ({"exclude": ["X:2:1"]}, "must be lower"),
    ({"exclude": ["X:0:3"]}, "beyond the last step (2)"),
    ({"exclude": ["X:0"]}, "EVENT:FROM:TO"),
    ({"window": "fortnight"}, "not a duration"),
    ({"order": "sideways"}, "--order must be one of"),
    ({"order": "unordered", "optional": [1]}, "no meaning with --order unordered"),
    ({"order": "unordered", "window_from": "previous"}, "use --window-from entry"),
    ({"optional": [0]}, "cannot be optional"),
    ({"optional": [3]}, "there is no step 3"),
    ({"optional": ["x"]}, "give a step number"),
    ({"window": "99999999d"}, "at most 36500d"),
    ({"date_to": "9999-12-31"}, "out of range"),
    ({"count": "all"}, "--count must be one of"),
    ({"window_from": "start"}, "--window-from"),
    ({"attribution": "step:3"}, "--attribution"),
    ({"date_from": "2024-02-30"}, "not a date"),
    ({"date_from": "2024-03-02", "date_to": "2024-03-01"}, "after --to"),
])
def test_invalid_options_are_rejected(kw, message):
    with pytest.raises(FunnelOptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        funnel_options("A,B,C", **kw)


def test_cli(tmp_path):
    ws = make_ws(tmp_path / "w", WORKED)
    ws.close()
    app = cli_app
    runner = CliRunner()
    args = ["funnel", "-w", str(ws.path), "--steps", "signup,invite,pay", "--window", "1h"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [s["count"] for s in data["steps"]] == [4, 3, 1] and "histograms" not in data
    res = runner.invoke(app, [*args, "--breakdown", "plan", "--json"])
    assert [g["value"] for g in json.loads(res.stdout)["groups"]] == ["free", "pro"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "invite" in res.stdout
    res = runner.invoke(app, [*args, "--exclude", "logout:1:1"])
    assert res.exit_code == 2 and "must be lower" in res.stderr
    res = runner.invoke(app, [*args, "--by", "team"])
    assert res.exit_code == 2 and "--by" in res.stderr


# -- brute-force reference ----------------------------------------------------------------------

def _ordered_path(evs: list, start: int, o) -> dict[int, int]:
    """Step -> position in evs. Required steps first, as if optional ones were not there; then each
    optional step: its earliest event after the latest step done, before the next required step."""
    W, tol, n = o.window_seconds, o.tolerance_seconds, len(o.steps)
    req = [k for k in range(n) if k not in o.optional]
    t0 = evs[start][0]
    path = {0: start}

    def earliest(k, after, bound):
        anchor = t0 if o.window_from == "entry" else evs[path[max(j for j in req if j < k)]][0]
        found = [j for j, c in enumerate(evs) if c[2] == o.steps[k] and j not in path.values()
                 and c[0] >= after[0] - tol and c[0] >= t0 - tol and c[0] - anchor <= W
                 and (bound is None or c[:2] < evs[bound][:2])]
        return min(found, key=lambda j: evs[j][:2]) if found else None

    for k in req[1:]:
        j = earliest(k, evs[path[max(i for i in req if i < k)]], None)
        if j is None:
            break
        path[k] = j
    for k in sorted(o.optional):
        p = max(i for i in req if i < k)
        if p not in path:
            continue
        latest = path[max(i for i in path if p <= i < k)]
        nxt = next((i for i in req if i > k), None)
        j = earliest(k, evs[latest], path.get(nxt))
        if j is not None:
            path[k] = j
    return path


def _strict_path(evs: list, start: int, o) -> dict[int, int]:
    """The very next event must be the next step; an optional step is taken when it is that event."""
    req = [k for k in range(len(o.steps)) if k not in o.optional]
    path, last = {0: start}, start
    for k in range(1, len(o.steps)):
        anchor = evs[start][0] if o.window_from == "entry" else evs[path[max(i for i in req if i < k)]][0]
        j = last + 1
        if j < len(evs) and evs[j][2] == o.steps[k] and evs[j][0] - anchor <= o.window_seconds:
            path[k], last = j, j
        elif k in req:
            break
    return path


def _unordered_path(evs: list, start: int, o) -> dict[int, int]:
    """Step k -> the k-th step event done: the entry, then per name the earliest others in the window."""
    t0, tol = evs[start][0], o.tolerance_seconds
    taken = [start]
    for name in set(o.steps):
        m = o.steps.count(name) - (evs[start][2] == name)
        inside = sorted((j for j, c in enumerate(evs) if c[2] == name and j != start
                         and c[0] >= t0 - tol and c[0] - t0 <= o.window_seconds), key=lambda j: evs[j][:2])
        taken += inside[:m]
    order = [start] + sorted(taken[1:], key=lambda j: evs[j][:2])
    return dict(enumerate(order))


def reference(rows: list[tuple], o, level: str) -> dict:
    """Pure Python, one event at a time: the rules of docs/metrics/funnels.md applied literally."""
    units: dict[str, list] = {}
    for i, r in enumerate(rows):
        who = r[0] if level == "person" else r[3]
        units.setdefault(who, []).append((r[1], i, r[2], r[4] if len(r) > 4 else None))
    W, n = o.window_seconds, len(o.steps)
    req = [k for k in range(n) if k not in o.optional]
    prev_req = {k: max(i for i in req if i < k) for k in range(1, n)}
    lo = (o.date_from - T0.date()).days * 86400 if o.date_from else None
    hi = ((o.date_to - T0.date()).days + 1) * 86400 if o.date_to else None
    entry_names = set(o.steps) if o.order == "unordered" else {o.steps[0]}
    walk = {"ordered": _ordered_path, "strict": _strict_path, "unordered": _unordered_path}[o.order]
    chosen = []  # (unit's events, {step: position}) of counted attempts
    for evs in units.values():
        evs.sort()
        attempts = []
        for start, e in enumerate(evs):
            if e[2] not in entry_names or (lo is not None and e[0] < lo) or (hi is not None and e[0] >= hi):
                continue
            path = walk(evs, start, o)
            removed = False
            for x in o.exclusions:
                f, t = x.from_step, x.to_step
                p = f if o.order == "unordered" or f in req else prev_req[f]
                done_from = [i for i in path if p <= i <= f]
                if not done_from:
                    continue
                a = evs[path[max(done_from)]][:2]
                nxt_t = next((i for i in req if i >= t), None) if o.order != "unordered" else t
                to = path.get(t, path.get(nxt_t))
                for j, c in enumerate(evs):
                    used = j in path.values() if o.order == "unordered" else any(
                        path[i] == j for i in path if o.steps[i] == x.event)
                    if c[2] != x.event or used or c[:2] <= a:
                        continue
                    if to is not None:
                        inside = c[:2] < evs[to][:2]
                    else:
                        last_req = max(i for i in path if p <= i < t and (o.order == "unordered" or i in req))
                        anchor = evs[start][0] if o.window_from == "entry" else evs[path[last_req]][0]
                        inside = c[0] - anchor <= W
                    removed = removed or inside
            if not removed:
                attempts.append(path)
        if o.count == "uniques" and attempts:
            attempts = [min(attempts, key=lambda p: (-sum(k in p for k in req), -len(p), evs[p[0]][:2]))]
        chosen += [(evs, p) for p in attempts]

    def steps_of(group):
        out = []
        for k in range(n):
            reach = [(evs, p) for evs, p in group if k in p]
            times = [evs[p[k]][0] - evs[p[prev_req[k]]][0] for evs, p in reach] if k else []
            out.append((len(reach), statistics.mean(times) if times else None,
                        statistics.median(times) if times else None))
        return out

    result = {"steps": steps_of(chosen)}
    if o.breakdown:
        groups: dict = {}
        for evs, p in chosen:
            k = o.attribution_step
            at = p[max(p)] if k is None else p.get(k)
            props = evs[at][3] if at is not None else None
            groups.setdefault((props or {}).get(o.breakdown), []).append((evs, p))
        result["groups"] = {v: steps_of(g) for v, g in groups.items()}
    return result


def engine_view(r: dict) -> dict:
    def steps(ss):
        return [(s["count"], s["avg_seconds_from_previous"], s["median_seconds_from_previous"]) for s in ss]
    out = {"steps": steps(r["steps"])}
    if "groups" in r:
        out["groups"] = {g["value"]: steps(g["steps"]) for g in r["groups"]}
    return out


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 1e-6
    return a == b


NAMES = ["A", "B", "C", "X"]
ACCOUNTS = {"p0": "a0", "p1": "a0", "p2": "a1", "p3": "a2"}


@st.composite
def logs_and_options(draw):
    n = draw(st.integers(1, 14))
    rows = []
    for _ in range(n):
        who = draw(st.sampled_from(sorted(ACCOUNTS)))
        sec = draw(st.sampled_from([0, 86400])) + draw(st.integers(0, 12)) * MIN + draw(st.sampled_from([0, 0, 1]))
        props = draw(st.sampled_from([None, {"plan": "pro"}, {"plan": "free"}]))
        rows.append((who, sec, draw(st.sampled_from(NAMES)), ACCOUNTS[who], props))
    steps = draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=2, max_size=4))
    excl = []
    if draw(st.booleans()):
        f = draw(st.integers(0, len(steps) - 2))
        excl = [f"{draw(st.sampled_from(['X', 'C']))}:{f}:{draw(st.integers(f + 1, len(steps) - 1))}"]
    order = draw(st.sampled_from(["ordered", "ordered", "strict", "unordered"]))
    optional = []
    if order != "unordered" and len(steps) > 2 and draw(st.booleans()):
        optional = draw(st.lists(st.integers(1, len(steps) - 1), min_size=1, max_size=2, unique=True))
    kw = dict(
        window=draw(st.sampled_from(["3m", "5m", "10m"])),
        window_from="entry" if order == "unordered" else draw(st.sampled_from(["entry", "previous"])),
        order=order,
        optional=optional,
        count=draw(st.sampled_from(["uniques", "totals"])),
        exclude=excl,
        tolerance=draw(st.sampled_from(["0s", "0s", "1s", "2m"])),
        breakdown=draw(st.sampled_from([None, "plan"])),
        attribution=draw(st.sampled_from(["first", "last", "step:1"])),
    )
    kw["date_from"], kw["date_to"] = draw(st.sampled_from(
        [(None, None), (None, None), (None, "2024-03-01"), ("2024-03-02", None), ("2024-03-01", "2024-03-01")]))
    return rows, steps, kw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=logs_and_options())
def test_engine_agrees_with_reference(tmp_path_factory, case):
    """Every option at random, at person and account level, on one small ingested log."""
    rows, steps, kw = case
    o = funnel_options(steps, **kw)
    ws = make_ws(tmp_path_factory.mktemp("ref"), rows)
    try:
        for level in ("person", "account"):
            got = engine_view(funnel(ws.engine, o, level))
            want = reference(rows, o, level)
            assert same(got, want), (level, got, want)
            c = [s[0] for s in got["steps"]]
            req = o.required  # a required step may exceed the optional step before it (rule 12)
            assert all(c[i] >= c[j] for i, j in zip(req, req[1:])), c
    finally:
        ws.close()


# -- the same funnel on PySpark -----------------------------------------------------------------

@pytest.mark.spark
def test_identical_on_duckdb_and_spark(spark_session, tmp_path):
    from journeymap.engine.backends import spark_engine
    from journeymap.engine.spark_backend import export_journey_tables

    rows = WORKED + [("eve", 0, "signup", "acme"), ("fay", 20, "invite", "acme"), ("fay", 30, "pay", "acme"),
                     ("eve", 40, "invite", "acme"), ("eve", 50, "pay", "acme")]
    ws = make_ws(tmp_path / "w", rows)
    tables = export_journey_tables(ws.con, tmp_path)
    # Few funnels, each taking many code paths: Spark spends seconds per funnel on one machine.
    cases = [
        (funnel_options("signup,invite,pay,pay", window="1h", window_from="previous", tolerance="1m",
                        exclude=["logout:0:2"], count="totals", attribution="last", breakdown="plan"), "account"),
        (funnel_options("signup,invite,pay", window="1h", order="strict", optional=[1]), "person"),
        (funnel_options("signup,invite,logout,pay", window="1h", optional=[1, 2], exclude=["logout:0:1"]), "person"),
        (funnel_options("pay,signup,invite", window="1h", order="unordered", tolerance="1s",
                        breakdown="plan", attribution="step:1"), "account"),
    ]
    try:
        on_duck = [funnel(ws.engine, o, level) for o, level in cases]
    finally:
        ws.close()
    spark = spark_engine(spark_session, tables)
    on_spark = [funnel(spark, o, level) for o, level in cases]
    assert same(on_duck, on_spark), (on_duck, on_spark)
