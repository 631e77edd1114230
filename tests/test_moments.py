"""Moments of truth: a hand-computed example, a brute-force reference on random logs, the statistics,
and the demo's planted effect (a week-one integration halves churn) checked against the truth table."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from conftest import invoke_cli, invoke_json
from journeymap.insights.moments import bh_qvalues, holm, katz_interval, moments_of_truth, newcombe_interval
from journeymap.workspace import Workspace

# One xdist worker runs the module: spread over two, each ran the 3,000-account demo's analyses (`demo_results`).
pytestmark = pytest.mark.xdist_group("moments")

DEFINITION = {
    "analysis": {"level": "account"},
    "stages": [
        {"id": "trial", "name": "Trial", "entry": "trial_started"},
        {"id": "paying", "name": "Paying", "entry": "invoice_paid"},
        {"id": "churned", "name": "Churned", "entry": "cancelled", "terminal": True, "kind": "churn"},
    ],
    "touchpoints": [{"id": "setup", "name": "Setup", "match": {"event": ["integrated", "invited"]}}],
    "milestones": {"start": "trial_started", "customer_stage": "paying"},
}
T0 = dt.datetime(2024, 1, 1, 9)


def build(folder: Path, rows: list[tuple[str, float, str]], definition: dict = DEFINITION) -> Workspace:
    """rows: (account, day offset, event); one person per account."""
    ws = Workspace(folder / "ws")
    ws.path.mkdir(parents=True, exist_ok=True)
    (ws.path / "journeymap.yml").write_text(json.dumps(definition))
    with open(folder / "e.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "account_id", "event", "ts", "source", "properties"])
        for i, (acct, day, event) in enumerate(rows):
            out.writerow([f"{acct}-p", acct, event, (T0 + dt.timedelta(days=day)).isoformat(), "product", json.dumps({"n": i})])
    ws.ingest([str(folder / "e.csv")])
    return ws


# -- the worked example of docs/metrics/moments-of-truth.md --------------------------------------------------------

EXAMPLE = [
    ("a1", 0, "trial_started"), ("a1", 2, "integrated"), ("a1", 14, "invoice_paid"), ("a1", 200, "report"),
    ("a2", 0, "trial_started"), ("a2", 5, "integrated"), ("a2", 14, "invoice_paid"), ("a2", 90, "cancelled"),
    ("a3", 1, "trial_started"), ("a3", 4, "integrated"), ("a3", 15, "invoice_paid"),
    ("a4", 1, "trial_started"), ("a4", 21, "integrated"), ("a4", 15, "invoice_paid"), ("a4", 51, "cancelled"),
    ("a5", 2, "trial_started"), ("a5", 16, "invoice_paid"), ("a5", 16, "integrated"), ("a5", 42, "cancelled"),
    ("a6", 2, "trial_started"), ("a6", 16, "invoice_paid"), ("a6", 122, "cancelled"),
    ("a7", 3, "trial_started"),                                          # never pays
    ("a8", 150, "trial_started"), ("a8", 152, "integrated"),             # started 50 days before the data ends
    ("a9", 0, "trial_started"), ("a9", 1, "invoice_paid"), ("a9", 7, "cancelled"),  # churned inside the window
]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ws = build(tmp_path_factory.mktemp("example"), EXAMPLE)
    yield ws
    ws.close()


def _row(result: dict, behaviour: str) -> dict:
    return next(m for m in result["moments"] if m["behaviour"] == behaviour)


def test_worked_example_by_hand(example):
    r = moments_of_truth(example.engine, example.definition, min_units=1)
    assert r["population"] == "customers" and r["level"] == "account"
    # 9 started; a8 is right-censored (50 < 90 days observed), a7 never paid, a9 churned on day 7 of 14.
    assert r["units"] == {"started": 9, "censored": 1, "not_customers": 1, "left_before_window_end": 1, "analysed": 6,
                          "retained": 3, "retention": 0.5, "by_persona": {"unassigned": {"units": 6, "retained": 3}}}
    m = _row(r, "event:integrated")
    # Doers a1, a2, a3 (a4 integrated 20 days after its start, a5 exactly 14: too late, the window is [0, 14));
    # a2 churned on day 90, inside [0, 90]. Non-doers a4 (day 50), a5 (day 40) churned; a6 churned on day 120,
    # after the horizon: retained.
    assert (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]) == (3, 2, 3, 1)
    assert m["reach"] == 0.5 and m["retention_with"] == pytest.approx(2 / 3) and m["retention_without"] == pytest.approx(1 / 3)
    assert m["lift"] == pytest.approx(2.0) and m["difference"] == pytest.approx(1 / 3)
    se = math.sqrt(1 / 2 - 1 / 3 + 1 / 1 - 1 / 3)
    assert m["lift_ci"] == pytest.approx([2 * math.exp(-1.959964 * se), 2 * math.exp(1.959964 * se)], rel=1e-6)
    assert m["lift_ci"] == pytest.approx([0.3342, 11.969], abs=1e-3)
    # Every expected cell is 1.5 < 5: Fisher's exact test, p = 1 for [[2, 1], [1, 2]].
    assert m["test"] == "fisher" and m["p_value"] == pytest.approx(1.0)
    assert m["impact"] == pytest.approx(1.0) and m["impact_crude"] == pytest.approx(1.0)
    # The touchpoint is integrated OR invited: the same units here; trial_started is done by all, so not ranked.
    assert _row(r, "touchpoint:setup")["units_with"] == 3
    assert not _row(r, "event:trial_started")["ranked"]
    # invoice_paid enters the customer stage and cancelled the churn stage: outcome-defining, never candidates.
    excluded = {e["behaviour"]: e["reason"] for e in r["excluded"]}
    assert set(excluded) >= {"event:invoice_paid", "event:cancelled"}
    assert "customer stage" in excluded["event:invoice_paid"] and "terminal" in excluded["event:cancelled"]
    assert not {m["behaviour"] for m in r["moments"]} & set(excluded)
    assert "correlation, not causation" in r["caveat"]


def test_the_journey_state_and_the_event_log_give_the_same_moments(example):
    """`prepare` reads the journey state's events when it is current, else copies them from the event log."""
    for options in ({"min_units": 1}, {"min_units": 1, "population": "started"},
                    {"min_units": 1, "horizon_days": 60, "period": (T0.date() + dt.timedelta(days=1), T0.date() + dt.timedelta(days=130))}):
        engine = example.engine
        assert engine.journey  # the refresh after the ingest folded the state
        from_state = moments_of_truth(engine, example.definition, **options)
        engine.journey = {}
        from_log = moments_of_truth(engine, example.definition, **options)
        assert from_state == from_log and from_state["moments"], options


def test_worked_example_options(example):
    # Every started unit: a7 (never paid, never churned) is a retained non-doer.
    m = _row(moments_of_truth(example.engine, example.definition, min_units=1, population="started"), "event:integrated")
    assert (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]) == (3, 2, 4, 2)
    assert m["lift"] == pytest.approx((2 / 3) / (2 / 4))
    # A 30-day window: a4's and a5's integrations count; a9 is still left out (churned on day 7 < 30).
    m = _row(moments_of_truth(example.engine, example.definition, within_days=30, min_units=1), "event:integrated")
    assert (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]) == (5, 2, 1, 1)
    # A 7-day window: a9 churned exactly 7 days after its start, not before the window's end, so it stays in
    # as a non-doer that was not retained.
    r = moments_of_truth(example.engine, example.definition, within_days=7, min_units=1)
    m = _row(r, "event:integrated")
    assert r["units"]["left_before_window_end"] == 0 and r["units"]["analysed"] == 7
    assert (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]) == (3, 2, 4, 1)
    # A 130-day horizon: a6 churned on day 120 and is now lost; only a1..a7 started 130+ days before the end.
    r = moments_of_truth(example.engine, example.definition, horizon_days=130, min_units=1)
    assert r["units"]["analysed"] == 6 and r["units"]["retained"] == 2
    # min_units: 3 doers and 3 non-doers are too few to rank at 4.
    assert not _row(moments_of_truth(example.engine, example.definition, min_units=4), "event:integrated")["ranked"]
    # --exclude takes a behaviour id or an event name; --include brings back an outcome-defining event.
    r = moments_of_truth(example.engine, example.definition, min_units=1, exclude=["integrated"], include=["invoice_paid"])
    ids = {m["behaviour"] for m in r["moments"]}
    assert "event:integrated" not in ids and "event:invoice_paid" in ids
    # Person level: one person per account, so the same numbers.
    m = _row(moments_of_truth(example.engine, example.definition, level="person", min_units=1), "event:integrated")
    assert (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]) == (3, 2, 3, 1)


def test_bad_options(example):
    with pytest.raises(ValueError, match="--by"):
        moments_of_truth(example.engine, example.definition, level="team")
    with pytest.raises(ValueError, match="--within"):
        moments_of_truth(example.engine, example.definition, within_days=120, horizon_days=90)
    with pytest.raises(ValueError, match="--population"):
        moments_of_truth(example.engine, example.definition, population="everyone")


# -- statistics ------------------------------------------------------------------------------------------------------

def test_statistics_by_hand():
    # Newcombe's own example (1998, Table II, 56/70 vs 48/80): -> 0.0524 to 0.3339.
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # Katz: log RR 0.2877 +- 1.96 * sqrt(1/80 - 1/100 + 1/60 - 1/100).
    se = math.sqrt(1 / 80 - 1 / 100 + 1 / 60 - 1 / 100)
    assert katz_interval(80, 100, 60, 100) == pytest.approx((4 / 3 * math.exp(-1.959964 * se), 4 / 3 * math.exp(1.959964 * se)))
    assert katz_interval(0, 10, 5, 10) == (None, None)
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert bh_qvalues(p) == pytest.approx(list(stats.false_discovery_control(p, method="bh")))
    adjusted = holm(p)
    assert adjusted[0] == pytest.approx(0.01) and adjusted[1] == pytest.approx(0.072)
    assert all(a >= b for a, b in zip(adjusted[1:], adjusted, strict=False))


# -- brute force: a plain-Python reference over random small logs ---------------------------------------------------

def reference(rows, within: float, horizon: float, population: str) -> tuple[dict, dict]:
    end = T0 + dt.timedelta(days=max(d for _, d, _ in rows))
    by_acct: dict[str, list] = {}
    for acct, day, event in rows:
        by_acct.setdefault(acct, []).append((T0 + dt.timedelta(days=day), event))
    pop = {}
    for acct, evs in by_acct.items():
        starts = [ts for ts, e in evs if e == "trial_started"]
        if not starts:
            continue
        start = min(starts)
        if (end - start) < dt.timedelta(days=horizon):
            continue
        paid = [ts for ts, e in evs if e == "invoice_paid"]
        if population == "customers" and not (paid and min(paid) - start <= dt.timedelta(days=horizon)):
            continue
        exits = [ts for ts, e in evs if e == "cancelled" and ts >= start]
        exit_at = min(exits) if exits else None
        if exit_at is not None and exit_at - start < dt.timedelta(days=within):
            continue
        retained = exit_at is None or exit_at - start > dt.timedelta(days=horizon)
        did = {e for ts, e in evs if dt.timedelta(0) <= ts - start < dt.timedelta(days=within)}
        pop[acct] = (retained, did)
    n, k = len(pop), sum(r for r, _ in pop.values())
    out = {}
    for name in sorted(set().union(*[d for _, d in pop.values()]) - {"invoice_paid", "cancelled"}):
        n1 = sum(1 for _, d in pop.values() if name in d)
        k1 = sum(1 for r, d in pop.values() if r and name in d)
        out[f"event:{name}"] = (n1, k1, n - n1, k - k1)
    return {"analysed": n, "retained": k}, out


@st.composite
def event_rows(draw) -> list[tuple[str, int, str]]:
    """Up to 5 accounts, most with a start day; their events at whole-day offsets from it, so that events
    often fall exactly on the window's or the horizon's edge."""
    rows = []
    for acct in ("a1", "a2", "a3", "a4", "a5")[: draw(st.integers(1, 5))]:
        start = draw(st.integers(0, 6))
        if draw(st.booleans()) or acct == "a1":
            rows.append((acct, start, "trial_started"))
        for offset, event in draw(st.lists(st.tuples(
                st.integers(-1, 10), st.sampled_from(["invoice_paid", "cancelled", "integrated", "report", "trial_started"])),
                max_size=6)):
            rows.append((acct, max(start + offset, 0), event))
    return rows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_rows(), within=st.sampled_from([1, 2, 3]), horizon=st.sampled_from([3, 5, 8]),
       population=st.sampled_from(["customers", "started"]))
def test_matches_reference(rows, within, horizon, population):
    with tempfile.TemporaryDirectory() as tmp:
        ws = build(Path(tmp), rows)
        try:
            got = moments_of_truth(ws.engine, ws.definition, within_days=within, horizon_days=horizon, min_units=1,
                                   population=population)
        finally:
            ws.close()
    units, want = reference(rows, within, horizon, population)
    assert {k: got["units"][k] for k in units} == units
    events = {m["behaviour"]: (m["units_with"], m["retained_with"], m["units_without"], m["retained_without"])
              for m in got["moments"] if m["kind"] == "event"}
    assert events == want
    for m in got["moments"]:
        n1, k1, n0, k0 = m["units_with"], m["retained_with"], m["units_without"], m["retained_without"]
        assert m["reach"] == (n1 / (n1 + n0) if n1 + n0 else None)
        assert m["lift"] == ((k1 / n1) / (k0 / n0) if n1 and n0 and k0 else None)


# -- the demo: the planted effect and the truth table ---------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(ingested_demo):
    """3,000 accounts: the churn effect needs customers with enough tenure; at 1,500 the interval straddles 1."""
    return ingested_demo(3000, 11)


@pytest.fixture(scope="module")
def demo_results(demo):
    with Workspace(demo.workspace) as ws:
        return {
            "default": ws.moments(),
            "h180": ws.moments(horizon="180d"),
            "week1": ws.moments(within="7d", horizon="180d"),
        }


def test_planted_integration_effect_is_recovered(demo_results):
    """Churn hazard x0.5 acts over the whole tenure: at 180 days there are enough churned customers."""
    r = demo_results["h180"]
    m = _row(r, "event:integration_connected")
    assert m["rank"] <= 3, [x["behaviour"] for x in r["moments"][:5]]
    assert m["lift_ci"][0] > 1 and m["difference_ci"][0] > 0
    # Integration is independent of persona by construction: no persona flag, adjustment changes little.
    assert not any("persona explains" in f or "other side" in f for f in m["flags"])
    assert m["lift_persona_adjusted"] == pytest.approx(m["lift"], rel=0.02)
    # At the default 90 days it is still near the top, with an interval above 1.
    d = _row(demo_results["default"], "event:integration_connected")
    assert d["rank"] <= 5 and d["lift_ci"][0] > 1


def test_integration_matches_the_truth_table(demo, demo_results):
    """The same quantity from truth/accounts.parquet: customers (paid within 180 days of signup) who signed up
    180+ days before the data ends, `integration_week1` against not churned by day 180. The engine sees the
    same accounts through the exports (identity stitched, start = first trial/subscription/signup event), so
    only accounts whose exported times differ from the truth's could disagree: we allow 2 accounts per group
    and 0.02 in the difference (the difference's own 95% interval is about +-0.07 wide)."""
    r = demo_results["week1"]
    with Workspace(demo.workspace) as ws:
        end = pd.Timestamp(ws.con.execute("SELECT max(ts) FROM journey_events WHERE account_id IS NOT NULL").fetchone()[0])
    t = pd.read_parquet(demo.truth)
    h = pd.Timedelta(days=180)
    t = t[t.acquired & t.became_customer & (t.signup_at <= end - h) & (t.customer_since <= t.signup_at + h)]
    retained = ~(t.churned & (t.churn_time <= t.signup_at + h))
    g = pd.DataFrame({"did": t.integration_week1.to_numpy(), "kept": retained.to_numpy()}).groupby("did").kept.agg(["size", "sum"])
    m = _row(r, "event:integration_connected")
    assert abs(m["units_with"] - g.loc[True, "size"]) <= 2 and abs(m["units_without"] - g.loc[False, "size"]) <= 2
    truth_diff = g.loc[True, "sum"] / g.loc[True, "size"] - g.loc[False, "sum"] / g.loc[False, "size"]
    assert m["difference"] == pytest.approx(truth_diff, abs=0.02)
    assert truth_diff > 0.05  # the planted effect is there to find


def test_leakage_and_confounding_on_the_demo(demo_results):
    r = demo_results["default"]
    excluded = {e["behaviour"] for e in r["excluded"]}
    assert {"event:invoice_paid", "event:subscription_cancelled", "event:trial_converted"} <= excluded
    assert not {m["behaviour"] for m in r["moments"]} & excluded
    assert r["units"]["censored"] > 0 and r["units"]["analysed"] > 300
    # Reach of the SQL editor rises with company size: flagged, with per-persona lifts reported.
    q = _row(r, "event:query_run")
    assert any(f.startswith("reach varies by persona") for f in q["flags"])
    assert set(q["by_persona"]) == {"enterprise", "mid_market", "smb"}
    ranked = [m for m in r["moments"] if m["ranked"]]
    assert all(m["q_value"] >= m["p_value"] for m in ranked) and [m["rank"] for m in ranked] == list(range(1, len(ranked) + 1))
    assert [m["impact"] for m in ranked] == sorted((m["impact"] for m in ranked), reverse=True)


def test_activation_suggestion_follows_its_rule(demo_results):
    """Four behaviours are significant on this demo and the top two cannot be told apart: no name, the reason."""
    r = demo_results["default"]
    a = r["activation"]
    assert a is not None and a["within_days"] == r["within_days"] == 14
    assert a["behaviour"] is None and a["definition"] is None and "cannot be told apart" in a["undecided"]
    top, runner = (_row(r, b) for b in a["candidates"])
    for m in (top, runner):
        assert m["q_value"] < 0.05 and m["difference"] > 0
    assert top["rank"] < runner["rank"]
    assert top["difference_ci"][0] <= runner["difference_ci"][1] and runner["difference_ci"][0] <= top["difference_ci"][1]
    # The planted effect's own setting: the same honesty (a noisy correlate overlaps it).
    week1 = demo_results["week1"]["activation"]
    assert week1["definition"] is None and "integration_connected" in week1["undecided"]


def test_cli(demo):
    ws = str(demo.workspace)
    got = invoke_json("moments", "--workspace", ws, "--horizon", "180d", "--within", "2w")
    assert got["within_days"] == 14 and got["horizon_days"] == 180
    assert _row(got, "event:integration_connected")["rank"] <= 3
    table = invoke_cli("moments", "--workspace", ws, "--rows", "5").stdout
    assert "Moments of truth" in table and "correlation, not causation" in table
    assert "No activation named:" in table and "cannot be told apart" in table and "right-censored" in table
    bad = invoke_cli("moments", "--workspace", ws, "--by", "team", check=False)
    assert bad.returncode == 2 and "--by" in bad.stderr
