"""Health score: configured and learned weights, bands, the backtest on held-out dates, expansion
signals, and the `risk` / `health` commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from conftest import cli_json
from journeymap.insights.risk.churn_model import time_split
from journeymap.insights.risk.health import backtest, band, configured_components, expansion_signals, learned_components, score
from journeymap.journey.definition import Health
from test_churn_model import HORIZON, demo, demo_snapshots  # noqa: F401  (session fixtures, built once)
from test_features import small_demo  # noqa: F401

# One xdist worker runs this module and test_churn_model.py, whose session fixtures it imports (the demo's snapshots).
pytestmark = pytest.mark.xdist_group("churn-demo")

BANDS = {"red": 40.0, "yellow": 70.0, "green": 100.0}


def test_score_ranks_each_component_toward_healthy():
    f = pd.DataFrame({"recency_days": [1.0, 10.0, 30.0, 5.0], "last_nps": [9.0, np.nan, 2.0, 7.0]})
    comps = configured_components(Health(components={"recency": {"weight": 3}, "nps": {"weight": 1}}))
    assert [(c["name"], c["direction"], c["weight"]) for c in comps] == [
        ("recency", "lower_is_better", 0.75), ("nps", "higher_is_better", 0.25)]
    s = score(f, comps)
    assert list(s.score_recency) == [1.0, 0.5, 0.25, 0.75]       # fewest days since last use is healthiest
    assert s.score_nps[1] == 0.5                                    # no answer: neutral
    assert list(s.score_nps[[0, 2, 3]]) == [1.0, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    # weighted means 1.0, 0.5, 0.271, 0.729 -> health is their percentile rank
    assert list(s.health) == [100.0, 50.0, 25.0, 75.0]


def test_bands_and_their_edges():
    assert list(band(pd.Series([0.0, 39.9, 40.0, 69.99, 70.0, 100.0]), BANDS)) == [
        "red", "red", "yellow", "yellow", "green", "green"]


def test_health_config_is_validated():
    with pytest.raises(ValidationError, match="not a known component"):
        Health(components={"vibes": {"weight": 1}})
    with pytest.raises(ValidationError, match="ascend"):
        Health(bands={"green": 100, "red": 40})
    custom = Health(components={"logins": {"weight": 1, "feature": "active_days_90d", "direction": "higher_is_better"}})
    assert custom.component_list() == [("logins", "active_days_90d", "higher_is_better", 1.0)]


def test_expansion_signals():
    f = pd.DataFrame({"seat_utilisation": [0.9, 0.5, np.nan, 0.8, np.nan],
                      "activity_trend": [1.0, 1.5, 2.0, 1.19, 2.0], "active_days_30d": [20, 12, 8, 30, 2]})
    assert list(expansion_signals(f, Health())) == [["high_utilisation"], ["growing_usage"], ["growing_usage"],
                                                     ["high_utilisation"], []]  # 2 active days: too little to grow


def test_learned_weights_follow_churn_and_backtest_on_held_out_dates(demo_snapshots):  # noqa: F811
    s = demo_snapshots
    split = time_split(s["at"].unique(), HORIZON)
    comps = learned_components(s[s["at"].isin(split.train + split.calibration)])
    names = {c["name"]: c for c in comps}
    assert sum(c["weight"] for c in comps) == pytest.approx(1.0)
    assert all(0 < c["weight"] <= 0.35 + 1e-9 for c in comps)
    assert {"recency", "failed_payments"} <= set(names)              # the demo's strongest signals get weight
    bt = backtest(s, comps, BANDS, split.test)
    assert bt["dates"] == [d.date().isoformat() for d in split.test] and bt["rows"] > 1500
    assert bt["roc_auc"] > 0.6
    red, yellow, green = (b["churn_rate"] for b in bt["bands"])
    assert red > yellow > green and red > 1.8 * green
    assert sum(b["rows"] for b in bt["bands"]) == bt["rows"]


def test_configured_weights_from_the_demo_definition(demo, demo_snapshots):  # noqa: F811
    ws, _ = demo
    comps = configured_components(ws.definition.health)
    split = time_split(demo_snapshots["at"].unique(), HORIZON)
    bt = backtest(demo_snapshots, comps, ws.definition.health.bands, split.test)
    assert bt["roc_auc"] > 0.6
    assert bt["bands"][0]["churn_rate"] > bt["bands"][-1]["churn_rate"]


def test_workspace_health(demo, demo_snapshots, monkeypatch):  # noqa: F811
    import journeymap.insights.risk.features as features

    ws, truth = demo
    monkeypatch.setattr(features, "snapshots", lambda *a, **k: demo_snapshots)
    out = ws.health(weights="learned")
    assert out["weights"]["source"] == "learned"
    accounts = out["accounts"]
    assert len(accounts) > 500 and all(0 < a["health"] <= 100 for a in accounts)
    assert [a["health"] for a in accounts] == sorted(a["health"] for a in accounts)
    assert sum(b["accounts"] for b in out["bands"]) == len(accounts)
    assert {a["band"] for a in accounts} == {"red", "yellow", "green"}
    assert all(a["band_churn_rate"] is not None for a in accounts)
    # seats come from the billing events (revenue.seats: quantity): utilisation flags are possible
    assert out["expansion"]["high_utilisation"] > 0 and out["expansion"]["growing_usage"] > 0
    flagged = [a for a in accounts if "high_utilisation" in a["expansion"]]
    assert all(truth.loc[a["unit_id"], "became_customer"] for a in flagged)


def test_cli_health_and_risk(small_demo, monkeypatch, capsys):  # noqa: F811
    from typer.testing import CliRunner

    from journeymap.cli.main import app

    risk = cli_json("risk", "--workspace", str(small_demo), "--top", "5", "--horizon", "60d")  # the real command
    assert risk["horizon_days"] == 60 and len(risk["accounts"]) == 5
    assert risk["evaluation"]["estimator"] == "gbm" and risk["evaluation"]["model"]["roc_auc"] is not None
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    done = runner.invoke(app, ["health", "--workspace", str(small_demo), "--at", "2026-09-01", "--json"])
    assert done.exit_code == 0, done.output
    health = json.loads(done.stdout)
    assert health["at"] == "2026-09-01T00:00:00" and health["weights"]["source"] == "config"
    assert {"accounts", "bands", "backtest", "expansion"} <= set(health)
    bad = runner.invoke(app, ["health", "--workspace", str(small_demo), "--at", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    # the tables print what the JSON holds (the commands' renderers, on the results above)
    from journeymap.analyses import get
    from journeymap.cli import render

    render.risk(risk, get("risk").validate({}), None)
    render.health(health, get("health").validate({}), get("health").view())
    table = capsys.readouterr().out
    assert "recency_only" in table and "ROC-AUC" in table and risk["accounts"][0]["unit_id"] in table
    assert "expansion signals" in table and "red" in table
