"""Churn model on the demo: time split without label leakage, held-out evaluation against baselines,
reason codes, and the demo's planted causes recovered (the truth table is read here, never by the model)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from journeymap.insights.risk.churn_model import ChurnModel, evaluate, time_split
from journeymap.insights.risk.features import snapshots
from journeymap.insights.risk.reasons import describe, reason_codes
from journeymap.workspace import Workspace

# One xdist worker runs this module and test_health.py, which imports its session fixtures: the demo's snapshots
# (`demo_snapshots`) are computed once, not on each worker that runs one of their tests.
pytestmark = pytest.mark.xdist_group("churn-demo")

HORIZON = 90


_BUILT: dict = {}  # shared with test_health.py, which imports these fixtures: the demo is built once per run


@pytest.fixture(scope="session")
def demo(ingested_demo):
    """The demo at its default size (5,000 accounts, seed 42): smaller runs hold too few churners in the
    held-out months for the planted effects to stand out of the noise (docs/metrics/health-and-risk.md)."""
    if "demo" not in _BUILT:
        sim = ingested_demo(5000, 42)
        _BUILT["demo"] = (Workspace(sim.workspace), pd.read_parquet(sim.truth).set_index("account_id"))
    return _BUILT["demo"]


@pytest.fixture(scope="session")
def demo_snapshots(demo):
    if "snapshots" not in _BUILT:
        ws, _ = demo
        _BUILT["snapshots"] = snapshots(ws.engine, ws.definition, HORIZON)
    return _BUILT["snapshots"]


@pytest.fixture(scope="session")
def fitted(demo_snapshots):
    return ChurnModel(horizon_days=HORIZON, model="gbm", seed=0).fit(demo_snapshots)


def test_labels_match_the_truth(demo, demo_snapshots):
    _, truth = demo
    s = demo_snapshots
    churn_time = s.unit_id.map(truth.churn_time)
    expected = churn_time.notna() & (churn_time >= s["at"]) & (churn_time < s["at"] + pd.Timedelta(days=HORIZON))
    assert len(s) > 4000 and s.churned.sum() > 400
    assert (s.churned.astype(bool) == expected).mean() > 0.995
    # only accounts paying at the scoring date are scored
    since = s.unit_id.map(truth.customer_since)
    assert (since < s["at"]).all()


def test_split_has_no_label_leakage(fitted):
    split = fitted.split_
    first_test = split.test[0]
    assert split.train and split.calibration and len(split.test) == 3
    assert max(split.train) < min(split.calibration) < first_test
    for d in split.train + split.calibration:
        assert d + pd.Timedelta(days=HORIZON) <= first_test


def test_split_refuses_data_too_short_for_the_horizon():
    with pytest.raises(ValueError, match="too short"):
        time_split(pd.date_range("2025-01-01", periods=4, freq="MS"), 90)


def test_gbm_beats_recency_only_on_held_out_dates(fitted):
    ev = fitted.evaluation_
    gbm, recency, logistic = ev["model"], ev["recency_only"], ev["logistic"]
    assert gbm["rows"] == recency["rows"] == logistic["rows"] > 1500
    assert gbm["roc_auc"] > recency["roc_auc"]
    assert gbm["roc_auc"] > 0.65
    assert gbm["pr_auc"] > gbm["base_rate"] * 1.5
    assert gbm["brier"] < gbm["base_rate"] * (1 - gbm["base_rate"])  # better than predicting the base rate
    table = gbm["calibration"]
    assert len(table) == 10 and sum(r["count"] for r in table) == gbm["rows"]
    assert table[-1]["observed"] > 2 * table[0]["observed"]  # the riskiest decile churns far more than the safest
    # calibrated: mean predicted within a few points of the observed churn rate
    assert abs(np.mean(fitted.heldout_.risk) - gbm["base_rate"]) < 0.04


def test_high_effort_tickets_raise_risk_and_are_the_reason(fitted):
    """Planted: a ticket solved with effort >= 5 multiplies the churn hazard by 2.8 for 60 days."""
    h = fitted.heldout_
    hit = h.high_effort_tickets_60d > 0
    assert hit.sum() > 50
    ratio = h.risk[hit].mean() / h.risk[~hit].mean()
    assert ratio > 1.5
    reasons = fitted.reasons(h[hit], estimator=fitted.evaluated_)
    top = [r[0]["group"] if r else None for r in reasons]
    assert np.mean([t == "support_effort" for t in top]) > 0.5
    first = next(r[0] for r in reasons if r and r[0]["group"] == "support_effort")
    assert first["risk_drop"] > 0 and "ticket" in first["text"]


def test_week_one_integration_lowers_risk(demo, fitted):
    """Planted: connecting a data source within 7 days of acquisition halves the churn hazard."""
    _, truth = demo
    h = fitted.heldout_
    week1 = h.unit_id.map(truth.integration_week1).astype(bool)
    assert 0.2 < week1.mean() < 0.6
    assert h.risk[week1].mean() / h.risk[~week1].mean() < 0.8


def test_reason_codes_are_model_agnostic():
    X = pd.DataFrame({"recency_days": [40.0, 2.0, 3.0], "tickets_90d": [0.0, 6.0, 1.0], "mrr": [100.0, 100.0, 100.0]})
    reference = pd.Series({"recency_days": 2.0, "tickets_90d": 1.0, "mrr": 100.0})

    def predict(df):  # any function of the features will do
        return 1 / (1 + np.exp(-(-3 + 0.05 * df.recency_days + 0.3 * df.tickets_90d)))

    r = reason_codes(predict, X, reference)
    assert [x["group"] for x in r[0]] == ["recency"]           # tickets at 0 lowers risk: not a reason
    assert r[0][0]["text"] == "no product activity for 40 days (typical 2)"
    assert r[0][0]["risk_drop"] == pytest.approx(predict(X.iloc[[0]])[0] - predict(X.iloc[[0]].assign(recency_days=2.0))[0])
    assert [x["group"] for x in r[1]] == ["support_load"]
    assert r[2][0]["group"] == "recency" and len(r[2]) == 1    # 3 days vs 2: a small push, still a reason


def test_describe_reads_like_a_sentence():
    assert describe("high_effort_tickets_60d", 1.0, 0.0) == "1 high-effort support ticket in 60 days (typical 0)"
    assert describe("failed_payments_60d", 2.0, 0.0) == "2 failed payments in 60 days (typical 0)"
    assert describe("recency_days", 19.2, 0.44) == "no product activity for 19 days (typical 0.4)"
    assert describe("stage_onboarding", 1.0, 0.0) == "in stage onboarding"


def test_evaluate_on_known_numbers():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    e = evaluate(y, p, bins=2)
    assert e["roc_auc"] == pytest.approx(0.75)
    assert e["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert e["calibration"] == [{"decile": 1, "predicted": pytest.approx(0.225), "observed": 0.5, "count": 2},
                                {"decile": 2, "predicted": pytest.approx(0.6), "observed": 0.5, "count": 2}]


def test_workspace_risk_lists_accounts_with_reasons(demo, monkeypatch, demo_snapshots):
    import journeymap.insights.risk.features as features

    ws, truth = demo
    monkeypatch.setattr(features, "snapshots", lambda *a, **k: demo_snapshots)  # computed once per session
    out = ws.risk(top=25)
    risks = [a["risk"] for a in out["accounts"]]
    assert len(risks) == 25 and risks == sorted(risks, reverse=True) and 0 < risks[-1] <= risks[0] < 1
    assert out["paying_accounts"] > 500 and out["at"] == "2026-11-01T00:00:00"
    assert all(1 <= len(a["reasons"]) <= 3 and a["reasons"][0]["text"] for a in out["accounts"])
    assert {"model", "logistic", "recency_only", "split", "calibration"} <= set(out["evaluation"])
    # everyone scored is a paying customer that has not churned by the scoring date
    for a in out["accounts"]:
        t = truth.loc[a["unit_id"]]
        assert t.became_customer and not (t.churned and t.churn_time < pd.Timestamp(out["at"]))


def test_fit_rows_are_capped_by_a_seeded_uniform_sample():
    from journeymap.insights.risk.churn_model import _cap

    rows = pd.DataFrame({"x": np.arange(1000), "churned": np.arange(1000) % 7 == 0})
    assert _cap(rows, seed=0, limit=2000) is rows
    a, b, c = _cap(rows, 0, 300), _cap(rows, 0, 300), _cap(rows, 1, 300)
    assert len(a) == 300 and a.equals(b) and not a.equals(c)
    assert a.index.is_monotonic_increasing and set(a.x) <= set(rows.x)
    assert abs(a.churned.mean() - rows.churned.mean()) < 0.05  # uniform: the base rate survives


def test_fit_on_a_capped_sample_still_beats_recency(demo_snapshots, monkeypatch):
    """With the cap far below the demo's training rows the model still learns: the cap trades a little
    accuracy for bounded time, never the ranking."""
    from journeymap.insights.risk import churn_model

    monkeypatch.setattr(churn_model, "MAX_FIT_ROWS", 800)
    m = ChurnModel(horizon_days=HORIZON, model="gbm", seed=0).fit(demo_snapshots)
    train_rows = demo_snapshots["at"].isin(m.split_.train).sum()
    assert train_rows > 800
    assert m.evaluation_["model"]["rows"] == demo_snapshots["at"].isin(m.split_.test).sum()  # held-out: every row
    assert m.evaluation_["model"]["roc_auc"] > 0.6


def test_reasons_for_the_listed_accounts_only():
    from journeymap.insights.risk.churn_model import _explained

    ranked = ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert _explained(ranked, None, None) == [0, 1, 2, 3, 4, 5]
    assert _explained(ranked, 2, None) == [0, 1]
    persona = {"a1": "smb", "a2": "smb", "a3": "smb", "a4": "ent", "a5": "ent", "a6": "ent"}
    assert _explained(ranked, 1, persona) == [0, 3]  # a1 overall and for smb, a4 for ent
    assert _explained(ranked, 2, persona) == [0, 1, 3, 4]


def test_the_calibration_reported_is_the_one_applied(demo_snapshots):
    """When the calibration dates hold no churn nothing can be calibrated: the evaluation says "none" (it
    said "sigmoid", the method it would have used) and the render says uncalibrated."""
    from rich.console import Console

    from journeymap.cli.render import print_evaluation

    m = ChurnModel(horizon_days=HORIZON, model="logistic", seed=0).fit(demo_snapshots)
    assert m.evaluation()["calibration"] in ("sigmoid", "isotonic")
    snaps = demo_snapshots.copy()
    snaps["churned"] = snaps["churned"].mask(snaps["at"].isin(m.split_.calibration), False).astype(snaps["churned"].dtype)
    ev = ChurnModel(horizon_days=HORIZON, model="logistic", seed=0).fit(snaps).evaluation()
    assert ev["calibration"] == "none"
    assert ev["scoring_calibration"] in ("sigmoid", "isotonic")  # calibrated on the held-out dates, which churn
    console = Console(width=300, record=True)
    print_evaluation(console, ev)
    shown = " ".join(console.export_text().split())  # the title wraps to the table's width
    assert "uncalibrated: no calibration date had both churned and retained accounts" in shown


def test_the_model_fits_and_scores_with_one_openmp_thread(monkeypatch):
    """Fitting, scoring and the reasons run with the OpenMP pool at one thread, whatever the process allows (here
    two): a pool of every core spin-waits for the cores a DuckDB query beside it holds (churn_model.one_thread)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    for method in ("fit", "predict_proba", "decision_function"):
        real = getattr(HistGradientBoostingClassifier, method)

        @functools.wraps(real)  # scikit-learn reads a method's name
        def recorded(self, *args, real=real, **kwargs):
            seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"})
            return real(self, *args, **kwargs)

        monkeypatch.setattr(HistGradientBoostingClassifier, method, recorded)
    rng = np.random.default_rng(0)
    at = np.repeat(pd.date_range("2025-01-01", periods=9, freq="MS"), 100)
    recency = rng.exponential(10, len(at))
    rows = pd.DataFrame({"unit_id": np.tile([f"a{i}" for i in range(100)], 9), "at": at, "recency_days": recency,
                         "churned": (rng.random(len(at)) < 1 / (1 + np.exp(3 - recency / 8))).astype(int)})
    with threadpool_limits(limits=2, user_api="openmp"):
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"} == {2}
        model = ChurnModel(horizon_days=60, model="gbm").fit(rows)
        fits = len(seen)
        model.predict_proba(pd.DataFrame({"recency_days": [1.0, 40.0]}))
        model.reasons(pd.DataFrame({"recency_days": [40.0]}))
    assert fits >= 2 and len(seen) > fits  # the fits, then the scoring and the reasons
    assert all(threads == {1} for threads in seen), seen
