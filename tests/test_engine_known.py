"""Known answers: a seven-person journey whose every number is worked out by hand below.

The same journey is the worked example of docs/metrics/ (stages.md, funnel.md, time-to-value.md,
adoption.md, churn.md, surveys.md, personas.md, time-in-stage.md); change one, change the other.
Days are counted from 2024-03-01 00:00 UTC; all events happen at midnight. Within a day, rows are
listed in file order, which is input order (`seq`) and breaks ties in ts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from journeymap.engine.annotate import annotated_events
from journeymap.engine.stages import visits
from journeymap.workspace import Workspace

DAY = 86400.0


def plain(scores: dict) -> dict:
    """Survey scores without their confidence intervals (checked on their own below)."""
    if "score" in scores:
        return {k: v for k, v in scores.items() if k not in ("ci_low", "ci_high")}
    return {k: plain(v) for k, v in scores.items()}
T0 = dt.datetime(2024, 3, 1)
DEFINITION = {
    "name": "Known journey",
    "stages": [
        {"id": "discovery", "name": "Discovery", "entry": {"source": "marketing"}},
        {"id": "evaluation", "name": "Evaluation", "entry": "pricing_viewed"},
        {"id": "onboarding", "name": "Onboarding", "entry": "signup_completed"},
        {"id": "adoption", "name": "Adoption", "entry": {"event": "report_created", "where": {"shared": True}}},
        {"id": "won", "name": "Won", "entry": "contract_signed", "terminal": True, "kind": "won"},
        {"id": "churned", "name": "Churned", "entry": "subscription_cancelled", "terminal": True, "kind": "churn"},
    ],
    "touchpoints": [
        {"id": "support_chat", "name": "Support chat", "match": {"event": ["chat_started", "csat_answered"]},
         "channel": "chat", "owner": "Support"},
    ],
    "personas": [
        {"id": "smb", "name": "Small business", "traits": {"employees": {"lt": 50}}},
        {"id": "enterprise", "name": "Enterprise", "traits": {"employees": {"gte": 50}}},
    ],
    "milestones": {
        "start": "signup_completed",
        "value_moment": "report_created",
        "customer_stage": "onboarding",
        "key_features": [
            {"id": "reports", "name": "Reports", "match": "report_created"},
            {"id": "invites", "name": "Invites", "match": "user_invited"},
        ],
    },
    "surveys": [
        {"id": "nps", "kind": "nps", "match": "nps_answered"},
        {"id": "csat", "kind": "csat", "match": "csat_answered", "score": "rating"},
        {"id": "ces", "kind": "ces", "match": "ces_answered"},
    ],
    "targets": [
        {"metric": "ttv_p50", "op": "<=", "value": "3d"},
        {"metric": "nps", "op": ">=", "value": 30},
        {"metric": "conversion", "stage": "evaluation", "op": ">=", "value": "50%"},
        {"metric": "churn_rate", "op": "<=", "value": "20%"},
        {"metric": "time_in_stage_p50", "stage": "onboarding", "op": "<=", "value": "2d"},
        {"metric": "adoption", "feature": "invites", "op": ">=", "value": "50%", "persona": "smb"},
    ],
}

# (person, day, event, properties or traits); who is in which account is in ACCOUNT.
ACCOUNT = {"u1": "beta", "u2": "acme", "u3": "acme"}
EVENTS = [
    # Traits: u1, u2, u4, u6, u7 say their size themselves; u3 has none and falls back to its account
    # acme (500, from a group call); u2's own 20 wins over acme's 500; u5 has none at all.
    ("u1", 0, "identify", {"employees": 10}),
    ("u2", 0, "identify", {"employees": 20}),
    (None, 0, "group", {"employees": 500}),  # account acme
    ("u4", 0, "identify", {"employees": 80}),
    ("u6", 0, "identify", {"employees": 5}),
    ("u7", 0, "identify", {"employees": 50}),
    # u1: straight through, ends won.
    ("u1", 0, "ad_clicked", {}),
    ("u1", 1, "pricing_viewed", {}),
    ("u1", 2, "signup_completed", {}),
    ("u1", 3, "report_created", {"shared": True}),
    ("u1", 3, "nps_answered", {"score": 10}),  # after the report in input order: stage adoption
    ("u1", 4, "user_invited", {}),
    ("u1", 10, "contract_signed", {}),
    # u2: value without the adoption stage (an unshared report), churns.
    ("u2", 0, "ad_clicked", {}),
    ("u2", 2, "pricing_viewed", {}),
    ("u2", 4, "signup_completed", {}),
    ("u2", 5, "chat_started", {}),
    ("u2", 5, "csat_answered", {"rating": 5}),
    ("u2", 7, "report_created", {"shared": False}),
    ("u2", 8, "nps_answered", {"score": 7}),
    ("u2", 12, "subscription_cancelled", {}),
    # u3: evaluation first, back to discovery, then on to adoption; churns on the last day of data.
    ("u3", 1, "pricing_viewed", {}),
    ("u3", 3, "ad_clicked", {}),
    ("u3", 6, "signup_completed", {}),
    ("u3", 11, "report_created", {"shared": True}),
    ("u3", 12, "nps_answered", {"score": 3}),
    ("u3", 12, "ces_answered", {"score": 2}),
    ("u3", 14, "subscription_cancelled", {}),
    # u4: still evaluating when the data ends; a CES of 11 is off the 1-7 scale.
    ("u4", 0, "ad_clicked", {}),
    ("u4", 1, "pricing_viewed", {}),
    ("u4", 2, "nps_answered", {"score": 9}),
    ("u4", 2, "ces_answered", {"score": 11}),
    # u5: skips evaluation, never reaches value, still onboarding.
    ("u5", 0, "ad_clicked", {}),
    ("u5", 5, "signup_completed", {}),
    ("u5", 6, "chat_started", {}),
    ("u5", 6, "csat_answered", {"rating": 2}),
    ("u5", 8, "csat_answered", {"rating": 4}),
    # u6: still in discovery; a CSAT of 0 is off the 1-5 scale.
    ("u6", 2, "ad_clicked", {}),
    ("u6", 3, "csat_answered", {"rating": 0}),
    # u7: signs up and views pricing at the same instant, in that input order.
    ("u7", 9, "signup_completed", {}),
    ("u7", 9, "pricing_viewed", {}),
]
SOURCE = {"ad_clicked": "marketing", "contract_signed": "crm", "subscription_cancelled": "billing",
          "nps_answered": "survey", "ces_answered": "survey", "chat_started": "support", "csat_answered": "support",
          "group": "crm"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    base = tmp_path_factory.mktemp("known")
    path = base / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "account_id", "source", "channel", "message_id", "properties",
                    "type", "traits"])
        for i, (who, day, event, data) in enumerate(EVENTS):
            kind = event if event in ("identify", "group") else "track"
            w.writerow([
                who or "", event, (T0 + dt.timedelta(days=day)).isoformat() + "Z",
                ACCOUNT.get(who, "acme" if kind == "group" else ""), SOURCE.get(event, "product"),
                "chat" if SOURCE.get(event) == "support" else "", f"m{i}",
                json.dumps(data) if kind == "track" and data else "", kind,
                json.dumps(data) if kind != "track" else "",
            ])
    workspace = Workspace(base / "ws")
    workspace.path.mkdir()
    (workspace.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    (report,) = workspace.ingest([str(path)])
    assert report.accepted == len(EVENTS)
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def journey_map(ws):
    return ws.journey_map()


def test_stage_visits(ws):
    # First matching stage wins; consecutive hits are one visit; a return is a new visit.
    # u7's signup and pricing share a timestamp: input order puts onboarding first.
    a = annotated_events(ws.engine, ws.definition, "person")
    rows = ws.engine.execute(visits(a)).to_pylist()
    paths = {}
    for r in sorted(rows, key=lambda r: (r["unit_id"], r["visit_no"])):
        paths.setdefault(r["unit_id"], []).append((r["stage"], (r["entered_at"] - T0).days))
    assert paths == {
        "u:u1": [("discovery", 0), ("evaluation", 1), ("onboarding", 2), ("adoption", 3), ("won", 10)],
        "u:u2": [("discovery", 0), ("evaluation", 2), ("onboarding", 4), ("churned", 12)],
        "u:u3": [("evaluation", 1), ("discovery", 3), ("onboarding", 6), ("adoption", 11), ("churned", 14)],
        "u:u4": [("discovery", 0), ("evaluation", 1)],
        "u:u5": [("discovery", 0), ("onboarding", 5)],
        "u:u6": [("discovery", 2)],
        "u:u7": [("onboarding", 9), ("evaluation", 9)],
    }


def test_header_and_personas(journey_map):
    assert journey_map["level"] == "person"
    assert journey_map["data_window"] == {"from": "2024-03-01T00:00:00", "to": "2024-03-15T00:00:00"}
    assert journey_map["events"] == 35  # 41 rows less 5 identify calls and 1 group call
    assert [p["id"] for p in journey_map["personas"]] == ["all", "smb", "enterprise", "unassigned"]
    assert {p: v["units"] for p, v in journey_map["views"].items()} == {"all": 7, "smb": 3, "enterprise": 3, "unassigned": 1}


FUNNEL = {  # reached, converted, dropped, in_stage
    "discovery": (6, 5, 1, 1),   # u6 never moved on
    "evaluation": (5, 3, 2, 2),  # u4 stays; u7's onboarding came before its evaluation: not a conversion
    "onboarding": (5, 2, 3, 1),  # u1, u3 adopt; churning is not progress; u5 still there
    "adoption": (2, 1, 1, 0),    # u1 won; u3 churned
    "won": (1, 0, 1, 1),
    "churned": (2, 0, 2, 2),
}


def test_funnel(journey_map):
    stages = journey_map["views"]["all"]["stages"]
    got = {s: (x["reached"], x["converted"], x["dropped"], x["in_stage"]) for s, x in stages.items()}
    assert got == FUNNEL
    assert stages["evaluation"]["conversion_rate"] == 0.6 and stages["evaluation"]["drop_rate"] == 0.4
    assert stages["discovery"]["share_of_units"] == 6 / 7
    assert stages["won"]["conversion_rate"] is None  # outcomes do not convert


def test_time_in_stage(journey_map):
    # Censored at the end of the data, day 14 (+ = still in the stage):
    #   discovery  1, 2, 3, 1, 5, 12+   S: 4/6 at 1d, 1/2 at 2d -> p50 2d; never <= 0.1 -> p90 null
    #   evaluation 1, 2, 2, 13+, 5+     S: 4/5 at 1d, 2/5 at 2d -> p50 2d; p90 null
    #   onboarding 1, 8, 5, 9+, 0       S: 4/5 at 0, 3/5 at 1d, 2/5 at 5d -> p50 5d; naive median of 0, 1, 5, 8 is 1d
    #   adoption   7, 3                 S: 1/2 at 3d, 0 at 7d -> p50 3d, p90 7d
    tis = {s: x["time_in_stage"] for s, x in journey_map["views"]["all"]["stages"].items()}
    summary = lambda p50, p90, n, c, naive: {  # noqa: E731
        "p50_seconds": p50 and p50 * DAY, "p90_seconds": p90 and p90 * DAY, "n": n, "censored": c,
        "observed_p50_seconds": naive and naive * DAY}
    assert tis == {
        "discovery": summary(2, None, 6, 1, 2),
        "evaluation": summary(2, None, 5, 2, 2),
        "onboarding": summary(5, None, 5, 1, 1),
        "adoption": summary(3, 7, 2, 0, 3),
        "won": summary(None, None, 0, 0, None),  # outcomes have no time in stage, but the same keys
        "churned": summary(None, None, 0, 0, None),
    }


def test_time_to_value(journey_map):
    # Started (signed up): u1 d2, u2 d4, u3 d6, u5 d5, u7 d9 -> n 5.
    # First report at or after it: u1 d3 (1d), u2 d7 (3d), u3 d11 (5d); u5, u7 none -> reached 3.
    # p50 of 1, 3, 5 = 3d; p90 at position 0.9 * 2 = 1.8: 3 + 0.8 * (5 - 3) = 4.6d.
    assert journey_map["views"]["all"]["ttv"] == {
        "p50_seconds": 3 * DAY, "p90_seconds": pytest.approx(4.6 * DAY, rel=1e-12), "reached": 3, "n": 5, "share": 0.6,
    }
    # smb: u1 1d, u2 3d -> p50 2d, p90 1 + 0.9 * 2 = 2.8d. enterprise: u3 5d of u3, u7 started.
    assert journey_map["views"]["smb"]["ttv"] == {
        "p50_seconds": 2 * DAY, "p90_seconds": pytest.approx(2.8 * DAY, rel=1e-12), "reached": 2, "n": 2, "share": 1.0}
    assert journey_map["views"]["enterprise"]["ttv"] == {
        "p50_seconds": 5 * DAY, "p90_seconds": 5 * DAY, "reached": 1, "n": 2, "share": 0.5}


def test_adoption_and_churn(journey_map):
    # Customers reached onboarding: u1, u2, u3, u5, u7. Reports: u1, u2, u3. Invites: u1. Churned: u2, u3.
    view = journey_map["views"]["all"]
    assert [(f["feature"], f["adopters"], f["customers"], f["rate"]) for f in view["adoption"]] == [
        ("reports", 3, 5, 0.6), ("invites", 1, 5, 0.2)]
    assert view["churn"] == {"churned": 2, "customers": 5, "rate": 0.4, "note": None}
    smb = journey_map["views"]["smb"]  # customers u1, u2
    assert [(f["adopters"], f["rate"]) for f in smb["adoption"]] == [(2, 1.0), (1, 0.5)]
    assert smb["churn"] == {"churned": 1, "customers": 2, "rate": 0.5, "note": None}


def test_surveys(journey_map):
    view = journey_map["views"]["all"]
    # NPS 10, 7, 3, 9: promoters 2, detractors 1 of 4 -> 25. CSAT 5, 2, 4 (0 is off scale) -> 2/3.
    # CES 2 (11 is off scale) -> 2.0.
    assert plain(view["surveys"]) == {"nps": {"score": 25.0, "n": 4}, "csat": {"score": 2 / 3, "n": 3},
                               "ces": {"score": 2.0, "n": 1}}
    # NPS answers 10, 7, 3, 9 score +1, 0, -1, +1: mean 0.25, population sd 0.8292, se 0.4146;
    # 25 -/+ 1.96 x 41.46 = -56.3 .. 106.3, clamped to 100. One CES answer has no interval.
    assert view["surveys"]["nps"]["ci_low"] == pytest.approx(-56.26, abs=0.01)
    assert view["surveys"]["nps"]["ci_high"] == 100.0
    assert view["surveys"]["ces"]["ci_low"] is None
    # CSAT 2 of 3 (Wilson): centre (0.6667 + 0.6402) / 2.2805 = 0.5731, half 0.3654 -> 0.2077 .. 0.9385.
    assert view["surveys"]["csat"]["ci_low"] == pytest.approx(0.2077, abs=1e-4)
    assert view["surveys"]["csat"]["ci_high"] == pytest.approx(0.9385, abs=1e-4)
    stages = view["stages"]
    assert plain(stages["adoption"]["surveys"]) == {"nps": {"score": 0.0, "n": 2}, "ces": {"score": 2.0, "n": 1}}
    assert plain(stages["onboarding"]["surveys"]) == {"nps": {"score": 0.0, "n": 1}, "csat": {"score": 2 / 3, "n": 3}}
    assert plain(stages["evaluation"]["surveys"]) == {"nps": {"score": 100.0, "n": 1}}
    assert stages["discovery"]["surveys"] == {}
    # A handful of answers is who answered, not the stage: below --min-answers (30) no emotion, and a note.
    assert stages["adoption"]["emotion"] is None and "3 survey answers" in stages["adoption"]["emotion_note"]
    assert "at least 30" in stages["adoption"]["emotion_note"]
    assert plain(view["touchpoint_surveys"]) == {"support_chat": {"csat": {"score": 2 / 3, "n": 3}}}
    assert plain(journey_map["views"]["smb"]["surveys"]) == {"nps": {"score": 50.0, "n": 2}, "csat": {"score": 1.0, "n": 1}}


def test_emotion_weights_survey_kinds_by_answers(ws):
    """docs/metrics/surveys.md's worked example, with --min-answers 1 so the handful of answers counts."""
    stages = ws.journey_map(min_answers=1, insights=False)["views"]["all"]["stages"]
    # Emotion, weighted by answers: adoption (0 * 2 + (4 - 2) / 3) / 3; onboarding (0 + 3 * (2 * 2/3 - 1)) / 4.
    assert stages["adoption"]["emotion"] == pytest.approx(2 / 9)
    assert stages["onboarding"]["emotion"] == pytest.approx(0.25)
    assert stages["adoption"]["emotion_note"] is None
    assert stages["discovery"]["emotion"] is None and "0 survey answers" in stages["discovery"]["emotion_note"]


def test_touchpoints_in_stages(journey_map):
    # Support chat has no stage of its own: it shows where each unit was. Onboarding: u2 (chat, csat)
    # and u5 (chat, two csat); discovery: u6's off-scale csat is still a use of the touchpoint.
    stages = journey_map["views"]["all"]["stages"]
    assert [(t["id"], t["units"], t["events"]) for t in stages["onboarding"]["touchpoints"]] == [("support_chat", 2, 5)]
    assert [(t["id"], t["units"], t["events"]) for t in stages["discovery"]["touchpoints"]] == [("support_chat", 1, 1)]


def test_targets(journey_map):
    def met(view: str) -> dict:
        return {(t["metric"], t["stage"] or t["feature"]): (t["actual"], t["met"]) for t in journey_map["views"][view]["targets"]}

    assert met("all") == {
        ("ttv_p50", None): (3 * DAY, True),          # 3d <= 3d
        ("nps", None): (25.0, False),                # 25 < 30
        ("conversion", "evaluation"): (60.0, True),  # 3 of 5
        ("churn_rate", None): (40.0, False),         # 2 of 5 customers
        ("time_in_stage_p50", "onboarding"): (5 * DAY, False),
    }  # the adoption target is for smb only
    smb = met("smb")
    assert smb[("adoption", "invites")] == (50.0, True)
    assert smb[("conversion", "evaluation")] == (100.0, True)  # u1, u2
    assert met("enterprise")[("conversion", "evaluation")] == (pytest.approx(100 / 3), False)  # u3 of u3, u4, u7


def test_an_answer_that_enters_a_stage_rates_the_stage_it_came_from(tmp_path):
    """A promoter's NPS answer is advocacy's entry rule; the score belongs to onboarding, where they were."""
    from journeymap.insights.map.journey_map import build_map

    ws = Workspace(tmp_path / "ws")
    ws.path.mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps({
        "stages": [
            {"id": "onboarding", "name": "Onboarding", "entry": "signup_completed"},
            {"id": "advocacy", "name": "Advocacy", "entry": {"event": "nps_answered", "where": {"score": {"gte": 9}}}},
        ],
        "surveys": [{"id": "nps", "kind": "nps", "match": "nps_answered"}],
    }))
    rows = [("p", "signup_completed", 0, None), ("p", "nps_answered", 1, 10),
            ("d", "signup_completed", 0, None), ("d", "nps_answered", 1, 3)]
    with open(tmp_path / "e.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "properties"])
        for who, event, day, score in rows:
            w.writerow([who, event, (T0 + dt.timedelta(days=day)).isoformat(),
                        json.dumps({"score": score}) if score is not None else ""])
    ws.ingest([str(tmp_path / "e.csv")])
    stages = build_map(ws.engine, ws.definition)["views"]["all"]["stages"]
    ws.close()
    # Both answers were given from onboarding: one promoter, one detractor -> NPS 0 over 2 answers.
    assert plain(stages["onboarding"]["surveys"])["nps"] == {"score": 0.0, "n": 2}
    assert stages["advocacy"]["reached"] == 1 and stages["advocacy"]["surveys"] == {}
