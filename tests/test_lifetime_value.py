"""Lifetime value from a workspace (docs/metrics/clv.md, "From the workspace"): cohorts counted by hand,
sBG parameters recovered from subscriptions simulated with known churn, CAC from a spend file, the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np
import pytest

from conftest import invoke_cli, invoke_json
from journeymap.insights.value.clv import cohort_counts, observed_survival, read_spend
from journeymap.insights.value.sbg import ShiftedBetaGeometric
from journeymap.workspace import Workspace

DEFINITION = {
    "stages": [{"id": "paying", "name": "Paying", "entry": "invoice_paid"}],
    "revenue": {"match": {"event": "invoice_paid"}, "mrr": "mrr_cents", "scale": 0.01, "churn": "sub_cancelled"},
}


def month(i: int) -> dt.datetime:
    return dt.datetime(2024 + i // 12, i % 12 + 1, 3)


def build(path, accounts) -> Workspace:
    """accounts: (id, first month index, months paid or None for still paying, mrr cents, channel)."""
    last = max(a[1] + (a[2] or 0) for a in accounts) + 2
    ws = Workspace(path / "ws")
    ws.path.mkdir(parents=True)
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    with open(path / "e.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "account_id", "event", "ts", "source", "channel", "properties"])
        for acct, first, paid, cents, channel in accounts:
            out.writerow([f"{acct}-u", acct, "ad_clicked", (month(first) - dt.timedelta(days=1)).isoformat(), "marketing",
                          channel, ""])
            for m in range(first, first + paid if paid else last):
                out.writerow([f"{acct}-u", acct, "invoice_paid", month(m).isoformat(), "billing", "", json.dumps({"mrr_cents": cents})])
            if paid:
                out.writerow([f"{acct}-u", acct, "sub_cancelled", (month(first + paid) - dt.timedelta(days=1)).isoformat(),
                              "billing", "", ""])
    ws.ingest([str(path / "e.csv")])
    return ws


def test_cohorts_by_hand(tmp_path):
    # Still-paying accounts pay through month 5, the last month of data; it is partial, so months 0-4 are observed.
    accounts = [("a1", 0, 2, 10000, "ads"), ("a2", 0, None, 10000, "ads"), ("a3", 0, 4, 10000, "seo"),
                ("b1", 2, 1, 5000, "seo"), ("b2", 2, None, 5000, "seo"), ("z", 4, None, 100, "seo")]
    ws = build(tmp_path, accounts)
    try:
        from journeymap.insights.value.clv import account_lifetimes

        rows, last = account_lifetimes(ws.engine, ws.definition)
        by = {r["account"]: r for r in rows}
        assert (by["a1"]["first"], by["a1"]["ended"]) == (2024 * 12, 2024 * 12 + 2)  # cancelled before month 2's invoice
        assert by["a2"]["ended"] is None and by["a1"]["channel"] == "ads" and by["b1"]["first_mrr"] == 50.0
        cohorts = cohort_counts(rows, last)
        m0, m2, m4 = 2024 * 12, 2024 * 12 + 2, 2024 * 12 + 4
        assert last == 2024 * 12 + 5
        # cohort 0: a1 alive through tenure 1, a3 through 3, a2 always; observed to tenure 4
        assert cohorts[m0] == [3, 3, 2, 2, 1]
        assert cohorts[m2] == [2, 1, 1]
        assert cohorts[m4] == [1]  # acquired in month 4: seen at tenure 0 only
        # pooled survival: tenure 1 = (3 + 1) / (3 + 2); tenure 2 = (2 + 1) / (3 + 1); tenure 3 = 2 / 2
        s = observed_survival(cohorts)
        assert s[1:] == pytest.approx([4 / 5, 4 / 5 * 3 / 4, 4 / 5 * 3 / 4, 4 / 5 * 3 / 4 * 1 / 2])
        result = ws.clv(margin=0.5, discount=0.0)
        want = ShiftedBetaGeometric().fit_cohorts(list(cohorts.values()))
        assert result["model"]["alpha"] == pytest.approx(want.alpha_) and result["cohorts"] == 3
        # undiscounted: CLV = MRR x margin x (1 + DERL), DERL = (beta) / (alpha - 1) when alpha > 1, else unbounded
        assert result["first_month_mrr"] == pytest.approx((100 * 3 + 50 * 2 + 1) / 6, abs=0.01)
    finally:
        ws.close()


def test_recovers_known_churn_from_simulated_subscriptions(tmp_path):
    """theta ~ Beta(1.5, 8): each account churns each month with its own probability."""
    rng = np.random.default_rng(11)
    a, b, n = 1.5, 8.0, 2500
    theta = rng.beta(a, b, n)
    first = rng.integers(0, 18, n)
    lifetime = rng.geometric(theta)  # months paid, >= 1
    horizon = 20
    accounts = [(f"c{i}", int(first[i]), int(lifetime[i]) if first[i] + lifetime[i] < horizon else None, 9900,
                 "ads" if i % 2 else "seo") for i in range(n)]
    ws = build(tmp_path, accounts)
    try:
        r = ws.clv()
    finally:
        ws.close()
    assert r["model"]["alpha"] == pytest.approx(a, rel=0.25) and r["model"]["beta"] == pytest.approx(b, rel=0.25)
    assert r["month_1_retention"] == pytest.approx(b / (a + b), abs=0.015)
    # the fitted curve tracks the observed one over the observed tenure
    assert max(abs(f["observed"] - f["predicted"]) for f in r["fit"][:12]) < 0.03
    assert {s["value"] for s in r["segments"]["channel"]} == {"ads", "seo"}


def test_spend_file_gives_cac_and_ltv_to_cac(tmp_path):
    accounts = [(f"s{i}", i % 6, 1 + i % 4 if i % 3 == 0 else None, 10000, "ads" if i < 40 else "seo") for i in range(60)]
    ws = build(tmp_path, accounts)
    ws.close()
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,spend,month\nads,4000,2024-01\nads,4000,2024-02\nseo,1000,\n")
    out = invoke_json("clv", "-w", str(ws.path), "--spend", str(spend))
    cac = {r["channel"]: r for r in out["cac"]}
    ads_new = sum(1 for i in range(40) if i % 6 in (0, 1))  # acquired in the spend's months only
    assert cac["ads"]["new_accounts"] == ads_new and cac["ads"]["cac"] == pytest.approx(8000 / ads_new, abs=0.01)
    assert cac["seo"]["new_accounts"] == 20 and cac["seo"]["cac"] == pytest.approx(50.0)
    clv = {s["value"]: s["clv"] for s in out["segments"]["channel"]}
    assert cac["seo"]["ltv_cac"] == pytest.approx(clv["seo"] / 50.0, rel=1e-3)
    assert "LTV:CAC" in invoke_cli("clv", "-w", str(ws.path), "--spend", str(spend)).stdout


@pytest.mark.parametrize("text, message", [
    ("chan,spend\nads,1\n", "needs columns channel"),
    ("channel,spend\nads,lots\n", ":2: field spend"),
    ("channel,spend,month\nads,5,2024-13\n", ":2: field month"),
    ("channel,spend\n,5\n", ":2: field channel"),
])
def test_bad_spend_file_names_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "spend.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_spend(path)
    assert str(path) in str(err.value)


def test_no_churn_yet_is_a_clear_error(tmp_path):
    ws = build(tmp_path, [(f"n{i}", i % 3, None, 5000, "ads") for i in range(10)])
    ws.close()
    res = invoke_cli("clv", "-w", str(ws.path), check=False)
    assert res.returncode == 3 and "cannot be estimated from 10 paying accounts" in res.stderr and "no churn" in res.stderr
