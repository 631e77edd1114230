"""MRR bridge, revenue retention and churn breakdown against a plain-Python reference."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import invoke_json
from journeymap.engine.revenue import churn_breakdown, mrr_bridge
from journeymap.workspace import Workspace

DEFINITION = {
    "stages": [{"id": "paying", "name": "Paying", "entry": "sub_changed"}],
    "revenue": {"match": {"event": "sub_changed"}, "mrr": "mrr_cents", "scale": 0.01, "churn": "sub_cancelled",
                "reason": "reason", "involuntary": {"where": {"reason": "payment_failed"}}, "plan": "plan"},
}
T0 = dt.datetime(2024, 1, 1)


def build(tmp_path, rows) -> Workspace:
    """rows: (account, day, event, mrr_cents or None, reason or None, plan)."""
    ws = Workspace(tmp_path / "ws")
    ws.path.mkdir(exist_ok=True)
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    with open(tmp_path / "e.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "account_id", "event", "ts", "source", "properties"])
        for i, (acct, day, event, cents, reason, plan) in enumerate(rows):
            props = {"mrr_cents": cents, "reason": reason, "plan": plan, "n": i}  # n keeps identical rows distinct
            out.writerow([f"{acct}-admin", acct, event, (T0 + dt.timedelta(days=day)).isoformat(), "billing",
                          json.dumps({k: v for k, v in props.items() if v is not None})])
    ws.ingest([str(tmp_path / "e.csv")])
    return ws


def reference(rows) -> list[dict]:
    """Month-end MRR per account by replaying events in file order, then the bridge by definition."""
    ordered = sorted(enumerate(rows), key=lambda x: (x[1][1], x[0]))
    months = sorted({(T0 + dt.timedelta(days=r[1])).date().replace(day=1) for r in rows})
    first, last = months[0], months[-1]
    grid, m = [], first
    while m <= last:
        grid.append(m)
        m = (m + dt.timedelta(days=32)).replace(day=1)
    state: dict[str, dict] = {}
    for month in grid:
        end = (month + dt.timedelta(days=32)).replace(day=1)
        for acct in sorted({r[0] for r in rows}):
            mrr = None
            for _, (a, day, event, cents, _, _) in ordered:
                if a == acct and (T0 + dt.timedelta(days=day)).date() < end:
                    if event == "sub_cancelled":
                        mrr = 0.0
                    elif cents is not None:
                        mrr = cents / 100
            if mrr is not None:
                state.setdefault(acct, {})[month] = mrr
    out = []
    for i, month in enumerate(grid):
        row = dict.fromkeys(("start", "new", "reactivation", "expansion", "contraction", "churned", "end"), 0.0)
        paying = churned_logos = 0
        for history in state.values():
            if month not in history:
                continue
            cur = history[month]
            before = [history[m] for m in grid[:i] if m in history]
            prev = before[-1] if before else 0.0
            row["start"] += prev
            row["end"] += cur
            paying += prev > 0
            if prev == 0 and cur > 0:
                row["reactivation" if any(x > 0 for x in before) else "new"] += cur
            elif prev > 0 and cur == 0:
                row["churned"] += prev
                churned_logos += 1
            elif prev > 0 and cur > prev:
                row["expansion"] += cur - prev
            elif 0 < cur < prev:
                row["contraction"] += prev - cur
        row.update(month=month.isoformat(), paying_start=paying, logos_churned=churned_logos)
        out.append(row)
    return out


def check(got: list[dict], want: list[dict]) -> None:
    assert [g["month"] for g in got] == [w["month"] for w in want]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g["end"] == pytest.approx(w["end"])
        if i == 0:
            assert g["start"] is None and g["new"] == pytest.approx(w["end"])
            continue
        for k in ("start", "new", "reactivation", "expansion", "contraction", "churned"):
            assert g[k] == pytest.approx(w[k]), (g["month"], k)
        assert (g["paying_start"], g["logos_churned"]) == (w["paying_start"], w["logos_churned"])
        # The bridge closes exactly.
        assert g["start"] + g["new"] + g["reactivation"] + g["expansion"] - g["contraction"] - g["churned"] \
            == pytest.approx(g["end"])
        if g["start"]:
            assert g["grr"] == pytest.approx((g["start"] - g["contraction"] - g["churned"]) / g["start"])
            assert g["nrr"] == pytest.approx((g["start"] + g["expansion"] - g["contraction"] - g["churned"]) / g["start"])


def test_known_bridge(tmp_path):
    rows = [
        ("a", 0, "sub_changed", 10000, None, "team"),     # Jan: a new 100
        ("b", 10, "sub_changed", 5000, None, "starter"),  # Jan: b new 50
        ("a", 35, "sub_changed", 15000, None, "team"),    # Feb: a expands +50
        ("b", 40, "sub_cancelled", None, "too_expensive", "starter"),  # Feb: b churns -50
        ("c", 45, "sub_changed", 2000, None, "starter"),  # Feb: c new 20
        ("a", 70, "sub_changed", 12000, None, "team"),    # Mar: a contracts -30
        ("b", 75, "sub_changed", 5000, None, "starter"),  # Mar: b reactivates 50
        ("c", 80, "sub_cancelled", None, "payment_failed", "starter"),  # Mar: c churns -20, involuntary
    ]
    ws = build(tmp_path, rows)
    months = mrr_bridge(ws.engine, ws.definition)["months"]
    assert [(m["month"], m["start"], m["new"], m["reactivation"], m["expansion"], m["contraction"], m["churned"], m["end"])
            for m in months] == [
        ("2024-01-01", None, 150.0, None, None, None, None, 150.0),
        ("2024-02-01", 150.0, 20.0, 0.0, 50.0, 0.0, 50.0, 170.0),
        ("2024-03-01", 170.0, 0.0, 50.0, 0.0, 30.0, 20.0, 170.0),
    ]
    feb, mar = months[1], months[2]
    assert (feb["paying_start"], feb["logos_churned"], feb["logo_churn"]) == (2, 1, 0.5)
    assert feb["grr"] == pytest.approx(100 / 150) and feb["nrr"] == pytest.approx(150 / 150)
    assert mar["nrr"] == pytest.approx((170 - 30 - 20) / 170)
    churn = churn_breakdown(ws.engine, ws.definition)
    assert churn["by_kind"] == [{"value": "involuntary", "churns": 1, "accounts": 1, "mrr_lost": 20.0},
                                {"value": "voluntary", "churns": 1, "accounts": 1, "mrr_lost": 50.0}]
    assert [r["value"] for r in churn["by_reason"]] == ["payment_failed", "too_expensive"]
    assert churn["by_stage"] == [{"value": "paying", "churns": 2, "accounts": 2, "mrr_lost": 70.0}]
    assert churn["by_persona"] == [{"value": "unassigned", "churns": 2, "accounts": 2, "mrr_lost": 70.0}]
    ws.close()
    assert invoke_json("revenue", "--workspace", str(ws.path))["months"][2]["end"] == 170.0


events = st.lists(
    st.tuples(st.sampled_from("abcd"), st.integers(0, 120),
              st.sampled_from(["sub_changed", "sub_changed", "sub_cancelled"]),
              st.sampled_from([0, 1000, 2500, 9900]), st.sampled_from(["team", "starter"])),
    min_size=1, max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=events)
def test_bridge_agrees_with_the_reference(tmp_path_factory, raw):
    rows = [(a, day, ev, None if ev == "sub_cancelled" else cents, "why" if ev == "sub_cancelled" else None, plan)
            for a, day, ev, cents, plan in raw]
    ws = build(tmp_path_factory.mktemp("rev"), rows)
    try:
        check(mrr_bridge(ws.engine, ws.definition)["months"], reference(rows))
        churns = sum(1 for r in rows if r[2] == "sub_cancelled")
        assert sum(r["churns"] for r in churn_breakdown(ws.engine, ws.definition)["by_kind"]) == churns
    finally:
        ws.close()


def test_without_a_revenue_section_the_error_says_what_to_add(tmp_path):
    ws = build(tmp_path, [("a", 0, "sub_changed", 100, None, "team")])
    ws.close()
    (ws.path / "journeymap.yml").write_text(json.dumps({k: v for k, v in DEFINITION.items() if k != "revenue"}))
    ws = Workspace(ws.path)
    with pytest.raises(ValueError, match="no `revenue:` section"):
        mrr_bridge(ws.engine, ws.definition)
    ws.close()
