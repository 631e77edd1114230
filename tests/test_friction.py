"""Friction and delight ranked by impact: a hand-worked MRR at stake, and the demo's planted pains."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import invoke_cli, invoke_json
from journeymap.insights.friction import friction
from journeymap.workspace import Workspace

T0 = dt.datetime(2025, 1, 1)
DEFINITION = {
    "analysis": {"level": "account"},
    "stages": [{"id": "customer", "name": "Customer", "entry": ["subscription_started", "invoice_paid"]},
               {"id": "churned", "name": "Churned", "entry": "subscription_cancelled", "terminal": True, "kind": "churn"}],
    "touchpoints": [{"id": "failed_payment", "name": "Failed payment", "match": "payment_failed", "stage": "customer"},
                    {"id": "support", "name": "Support ticket", "match": "ticket_solved"}],
    "revenue": {"match": {"source": "billing", "where": {"mrr": {"exists": True}}}, "mrr": "mrr",
                "churn": "subscription_cancelled"},
}
# account, person, day, event, MRR stated (None: not a revenue event), other properties
ROWS = [
    ("A", "a1", 0, "subscription_started", 100, {}), ("A", "a1", 10, "payment_failed", 100, {}),
    ("A", "a1", 20, "payment_failed", 100, {}), ("A", "a1", 40, "invoice_paid", 100, {}),          # a loop; still pays
    ("B", "b1", 0, "subscription_started", 50, {}), ("B", "b1", 5, "payment_failed", 50, {}),
    ("B", "b1", 15, "payment_failed", 50, {}), ("B", "b1", 30, "subscription_cancelled", None, {}),  # a loop; churns
    ("C", "c1", 0, "subscription_started", 200, {}), ("C", "c1", 50, "seats_added", 300, {}),
    ("C", "c1", 55, "ticket_solved", None, {"Effort score": 6}),                                     # high effort
    ("C", "c2", 56, "ticket_solved", None, {"Effort score": 2}),
    ("C", "c1", 60, "payment_failed", 300, {}),                                                     # one failure: no loop
]


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path / "ws")
    w.path.mkdir()
    (w.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    with open(tmp_path / "e.jsonl", "w") as fh:
        for acct, person, day, event, mrr, props in ROWS:
            source = "support" if event.startswith("ticket") else "billing"
            fh.write(json.dumps({"user_id": person, "account_id": acct, "event": event, "source": source,
                                 "ts": (T0 + dt.timedelta(days=day)).isoformat(),
                                 "properties": {**props, **({"mrr": mrr} if mrr is not None else {})}}) + "\n")
    w.ingest([str(tmp_path / "e.jsonl")])
    yield w
    w.close()


def _by_kind(result: dict, side: str = "friction") -> dict:
    return {i["kind"]: i for i in result[side]}


def test_mrr_at_stake_known_answer(ws):
    result = friction(ws.engine, ws.definition, "account")
    items = _by_kind(result)
    loop = items["failed_payment_loop"]
    # A and B failed twice within 30 days; C once. MRR at the first failure: A 100, B 50. Now: A 100, B 0 (churned
    # 25 days after its first failure, losing its 50).
    assert (loop["units"], loop["accounts"], loop["stage"], loop["touchpoint"]) == (2, 2, "customer", "failed_payment")
    assert (loop["mrr_at_stake"], loop["mrr_now"], loop["paying_accounts"]) == (150.0, 100.0, 1)
    assert (loop["churned_after"], loop["mrr_lost"]) == (1, 50.0)
    # Base revenue churn over 90 days: 50 lost / MRR-days (A 100 x 60 + B 50 x 30 + C 200 x 50 + 300 x 10) x 90.
    base = 50 / (6000 + 1500 + 10000 + 3000) * 90
    assert result["base_loss"] == pytest.approx(base, abs=1e-4)
    assert loop["excess_mrr_lost"] == pytest.approx(50 - base * 150, abs=0.01)
    ticket = items["high_effort_ticket"]
    # C's effort-6 ticket on day 55, after seats went to 300; the effort-2 ticket does not count.
    assert (ticket["units"], ticket["mrr_at_stake"], ticket["mrr_now"], ticket["churned_after"]) == (1, 300.0, 300.0, 0)
    assert ticket["evidence"]["tickets"] == 1 and ticket["evidence"]["rated_tickets"] == 2
    assert [i["rank"] for i in result["friction"]] == list(range(1, len(result["friction"]) + 1))
    assert [i["impact"] for i in result["friction"]] == sorted((i["impact"] for i in result["friction"]), reverse=True)


def test_person_level_counts_each_account_once(ws):
    items = _by_kind(friction(ws.engine, ws.definition, "person"))
    assert (items["failed_payment_loop"]["units"], items["failed_payment_loop"]["mrr_at_stake"]) == (2, 150.0)
    assert (items["high_effort_ticket"]["units"], items["high_effort_ticket"]["accounts"]) == (1, 1)


def test_cli(ws):
    path = str(ws.path)
    ws.close()
    result = invoke_json("friction", "--workspace", path)
    assert {i["kind"] for i in result["friction"]} >= {"failed_payment_loop", "high_effort_ticket"}


@pytest.fixture(scope="module")
def demo(ingested_demo):
    ws = Workspace(ingested_demo(1500, 7).workspace)
    yield ws, friction(ws.engine, ws.definition)
    ws.close()


def test_demo_planted_pains_rank_near_the_top_with_revenue_at_stake(demo):
    ws, result = demo
    items = _by_kind(result)
    ticket, loop = items["high_effort_ticket"], items["failed_payment_loop"]
    for item in (ticket, loop):
        assert item["mrr_at_stake"] > 0 and item["rank"] <= 6, item
    assert ticket["touchpoint"] == "support_ticket" and loop["touchpoint"] == "failed_payment"
    # The planted effects: churn follows a high-effort ticket (x2.8 hazard for 60 days) and nearly every loop
    # ends in an involuntary cancellation.
    assert ticket["evidence"]["churn_rate_after"] > ticket["evidence"]["churn_rate_other"]
    assert loop["churned_after"] >= 0.8 * loop["accounts"]
    # Revenue lost beyond the base churn rate is where the planted pains stand out.
    by_excess = sorted(result["friction"], key=lambda i: -i["excess_mrr_lost"])
    assert {"high_effort_ticket", "failed_payment_loop"} <= {i["kind"] for i in by_excess[:5]}
    # Every item says where it sits and what backs it.
    stages = {s.id for s in ws.definition.stages}
    for item in result["friction"] + result["delight"]:
        assert item["stage"] in stages and item["units"] >= item["accounts"] > 0 and item["evidence"]["sentence"]
    negative = [i for i in result["friction"] if i["kind"] == "negative_theme"]
    assert negative and all(i["evidence"]["quotes"] and i["evidence"]["mean_compound"] < 0 for i in negative)


def test_demo_delight(demo):
    _, result = demo
    kinds = {i["kind"] for i in result["delight"]}
    assert {"high_rated_touchpoint", "fast_progression"} <= kinds
    promoters = next(i for i in result["delight"] if i["touchpoint"] == "nps_survey")
    assert promoters["mrr_at_stake"] > 0 and promoters["evidence"]["share"] > 0.3
    # Delight never ranks on lost revenue: impact is units and MRR at stake only.
    assert all("excess_mrr_lost" not in i for i in result["delight"])


def test_friction_and_moments_take_a_period_as_the_map_does(ingested_demo):
    """`friction`/`moments --from --to` read only the period's events: the same ranking the map of that period
    places (friction(period=...), moments_of_truth(period=...)), and not the whole history's."""
    from journeymap.insights.moments import moments_of_truth

    path = str(ingested_demo(300, 7).workspace)
    period = ("--from", "2025-10-01", "--to", "2026-03-31")
    ws = Workspace(path)
    try:
        lo, hi = dt.date(2025, 10, 1), dt.date(2026, 3, 31)
        direct = friction(ws.engine, ws.definition, period=(lo, hi))
        whole = friction(ws.engine, ws.definition)
        mot = moments_of_truth(ws.engine, ws.definition, period=(lo, hi))
    finally:
        ws.close()
    got = invoke_json("friction", "--workspace", path, *period)
    assert got["period"] == {"from": "2025-10-01", "to": "2026-03-31"}
    assert [(i["title"], i["units"]) for i in got["friction"]] == [(i["title"], i["units"]) for i in direct["friction"]]
    assert [(i["title"], i["units"]) for i in direct["friction"]] != [(i["title"], i["units"]) for i in whole["friction"]]
    moments = invoke_json("moments", "--workspace", path, *period)
    assert moments["units"] == mot["units"]
    assert [m["behaviour"] for m in moments["moments"]] == [m["behaviour"] for m in mot["moments"]]
    bad = invoke_cli("moments", "--workspace", path, "--from", "2026-04-01", "--to", "2026-03-31", check=False)
    assert bad.returncode == 2 and "--from must not be after --to" in bad.stderr
