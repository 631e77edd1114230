"""`journeymap init --from-data`: a draft journeymap.yml proposed from the events (journey/draft.py).

The independent business below is written here, not by the demo: its event names, sources and traits are
its own, with a planted persona effect (company size changes who becomes a customer) and a trait that is
an outcome (plan, set only on paying accounts) which must not be chosen."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest

from conftest import invoke_cli, invoke_json
from journeymap.journey.draft import EventStats, phase_of, propose
from journeymap.journey.load import parse_text

FLOW = [  # (event, source, channel, probability of reaching it given the previous step)
    ("landing_visit", "marketing", "organic", 1.0),
    ("pricing_viewed", "marketing", "organic", 0.8),
    ("sign_up", "product", "web", 0.7),
    ("setup_completed", "product", "web", 0.8),
    ("project_created", "product", "web", 0.8),
]


def _business(path: Path, accounts: int = 400, seed: int = 5) -> dict:
    """A canonical JSON Lines export; returns the planted truth."""
    rng = random.Random(seed)
    rows, paid_by_size = [], {"small": [0, 0], "large": [0, 0]}
    for a in range(accounts):
        acct, user = f"acct-{a}", f"user-{a}"
        size = "large" if a % 2 else "small"
        t = 1_700_000_000 + a * 3600
        rows.append({"type": "group", "event": "group", "user_id": user, "account_id": acct, "ts": t, "source": "crm",
                     "traits": {"company_size": size, "region": rng.choice(["eu", "us"])}})
        reached = 0
        for event, source, channel, p in FLOW:
            if rng.random() > p:
                break
            t += rng.randint(3600, 3 * 86400)
            for _ in range(1 if event != "project_created" else rng.randint(1, 4)):
                rows.append({"event": event, "user_id": user, "account_id": acct, "ts": t, "source": source,
                             "channel": channel})
            reached += 1
        paid = reached == len(FLOW) and rng.random() < (0.7 if size == "large" else 0.25)
        paid_by_size[size][0] += paid
        paid_by_size[size][1] += 1
        if paid:
            t += 86400
            rows.append({"type": "group", "event": "group", "user_id": user, "account_id": acct, "ts": t,
                         "source": "crm", "traits": {"plan": "pro"}})
            for month in range(rng.randint(1, 6)):
                rows.append({"event": "invoice_paid", "account_id": acct, "ts": t + month * 30 * 86400, "source": "billing",
                             "channel": "stripe", "properties": {"mrr": 99}})
            rows.append({"event": "nps_response", "user_id": user, "account_id": acct, "ts": t + 40 * 86400,
                         "source": "survey", "channel": "email", "properties": {"score": rng.randint(0, 10)}})
            if rng.random() < 0.3:
                rows.append({"event": "subscription_canceled", "account_id": acct, "ts": t + 200 * 86400,
                             "source": "billing", "channel": "stripe"})
    with path.open("w") as f:
        for r in rows:
            r["ts"] = __import__("datetime").datetime.fromtimestamp(r["ts"], __import__("datetime").UTC).isoformat()
            f.write(json.dumps(r) + "\n")
    return {"paid": paid_by_size}


@pytest.fixture(scope="module")
def drafted(tmp_path_factory):
    root = tmp_path_factory.mktemp("draft")
    export = root / "export.jsonl"
    truth = _business(export)
    result = invoke_json("init", str(root / "ws"), "--from-data", str(export))
    return root / "ws", result, truth


def test_the_draft_recovers_the_stages_in_lifecycle_order_and_loads(drafted):
    ws, result, _ = drafted
    text = (ws / "journeymap.yml").read_text()
    assert text.startswith("# DRAFT proposed by `journeymap init --from-data`")
    definition = parse_text(text)
    assert definition.analysis.level == "account"
    assert [s.id for s in definition.stages] == ["discovery", "evaluation", "acquisition", "onboarding", "adoption",
                                                 "retention", "churned"]
    entries = {s["id"]: list(s["evidence"]) for s in result["draft"]["stages"]}
    assert entries["acquisition"] == ["sign_up"] and entries["onboarding"] == ["setup_completed"]
    assert entries["churned"] == ["subscription_canceled"] and definition.stage("churned").kind == "churn"
    assert definition.milestones.customer_stage == "retention"
    assert [f.id for f in definition.milestones.key_features] == ["project_created"]
    assert [(s.id, s.kind) for s in definition.surveys] == [("nps", "nps")]
    assert definition.revenue is not None and definition.revenue.mrr == "mrr"
    assert {t.id for t in definition.touchpoints} >= {"marketing_organic", "product_web", "billing_stripe"}


def test_personas_come_from_the_planted_trait_not_from_the_outcome(drafted):
    ws, result, truth = drafted
    personas = result["draft"]["personas"]
    assert personas["trait"] == "company_size"  # region is noise; plan is set by paying (an outcome)
    small, large = (truth["paid"][k] for k in ("small", "large"))
    assert personas["customer_rate"] == {"large": round(large[0] / large[1], 3), "small": round(small[0] / small[1], 3)}
    assert personas["p_value"] < 0.01
    definition = parse_text((ws / "journeymap.yml").read_text())
    assert [(p.id, p.traits["company_size"].eq) for p in definition.personas] == [
        ("company_size_large", "large"), ("company_size_small", "small")]


def test_the_drafted_workspace_validates_against_its_data_and_maps(drafted):
    ws, _, _ = drafted
    checked = invoke_json("validate", "--workspace", str(ws))
    assert checked["ok"] is True, checked
    assert not [p for p in checked.get("problems", []) if p.get("severity") == "error"]
    journey = invoke_json("map", "--workspace", str(ws), "--json")
    assert [s["id"] for s in journey["stages"]][:2] == ["discovery", "evaluation"]


def test_counts_and_evidence_match_a_direct_count(drafted, tmp_path):
    ws, result, _ = drafted
    con = duckdb.connect(str(ws / "journeymap.duckdb"), read_only=True)
    try:
        units = con.execute("SELECT count(DISTINCT account_id) FROM journey_events").fetchone()[0]
        signed = con.execute("SELECT count(DISTINCT account_id) FROM journey_events WHERE event = 'sign_up'").fetchone()[0]
    finally:
        con.close()
    assert result["draft"]["units"] == units
    acquisition = next(s for s in result["draft"]["stages"] if s["id"] == "acquisition")
    assert acquisition["evidence"]["sign_up"]["reach"] == round(signed / units, 3)


def test_nothing_loaded_keeps_the_template_and_says_why(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,event,ts\n,x,not-a-time\n")
    r = invoke_cli("init", str(tmp_path / "ws"), "--from-data", str(bad), check=False)
    assert r.returncode != 0 and "nothing to propose" in r.stderr and "template is kept" in r.stderr
    assert "# DRAFT" not in (tmp_path / "ws" / "journeymap.yml").read_text()


@pytest.mark.parametrize(("event", "source", "phase"), [
    ("Subscription Cancelled", "billing", "churned"), ("trial_expired", "billing", "lost"),
    ("payment_failed", "billing", None), ("ticket_created", "support", None), ("identify", "product", None),
    ("dashboard_viewed", "product", None), ("widget_built", "product", "adoption"),
    ("webinar_attended", "marketing", "discovery"), ("stage_changed", "crm", "evaluation"),
    ("seats_added", "billing", "expansion"), ("renewal_succeeded", "billing", "retention"),
])
def test_each_event_goes_to_its_phase_by_name_then_by_source(event, source, phase):
    assert phase_of(EventStats(event, source, 0.5, 1.0, 3.0, 10)) == phase


def test_the_demos_product_and_web_files_give_its_adoption_and_onboarding(simulated_demo, tmp_path):
    out, _ = simulated_demo(300, 7)
    files = [str(p) for p, mapping in out.files if mapping is None]  # the canonical files: product and web
    result = invoke_json("init", str(tmp_path / "ws"), "--from-data", *[x for f in files for x in ("--from-data", f)][1:])
    stages = {s["id"]: set(s["evidence"]) for s in result["draft"]["stages"]}
    assert {"report_created", "query_run", "dashboard_shared"} <= stages["adoption"]
    assert {"onboarding_step_completed", "integration_connected"} <= stages["onboarding"]
    assert "dashboard_viewed" not in set().union(*stages.values())  # viewing is not adopting
    assert result["draft"]["level"] == "account"


def test_draft_text_is_deterministic(drafted):
    ws, _, _ = drafted
    con = duckdb.connect(str(ws / "journeymap.duckdb"), read_only=True)
    try:
        import datetime

        day = datetime.date(2026, 1, 1)
        assert propose(con, ["x"], today=day).text == propose(con, ["x"], today=day).text
    finally:
        con.close()
