"""Differential smoke test: the whole journey map on DuckDB and on PySpark must be the same.

A workspace of a few hundred simulated persons (personas from identify and group traits, surveys in
and out of scale, won/lost/churn outcomes, two years of data so the year-over-year targets have
numbers) is mapped on DuckDB; its identity tables are exported to Parquet and mapped again by a Spark
engine reading them. Counts must match exactly, percentiles exactly, means to 1e-9 relative.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random

import pytest

from journeymap.engine.backends import spark_engine
from journeymap.engine.spark_backend import export_journey_tables
from journeymap.insights.map.journey_map import build_map
from journeymap.workspace import Workspace

T0 = dt.datetime(2023, 1, 2, 9, 0)
DEFINITION = {
    "name": "Smoke journey",
    "analysis": {"level": "person"},
    "stages": [
        {"id": "discovery", "name": "Discovery", "entry": {"source": "marketing"}},
        {"id": "evaluation", "name": "Evaluation", "entry": {"event": ["pricing_viewed", "demo_requested"]}},
        {"id": "onboarding", "name": "Onboarding", "entry": "signup_completed"},
        {"id": "adoption", "name": "Adoption", "entry": {"event": "report_created", "where": {"shared": True}}},
        {"id": "won", "name": "Won", "entry": "contract_signed", "terminal": True, "kind": "won"},
        {"id": "churned", "name": "Churned", "entry": "subscription_cancelled", "terminal": True, "kind": "churn"},
        {"id": "lost", "name": "Lost", "entry": "deal_lost", "terminal": True, "kind": "lost"},
    ],
    "touchpoints": [
        {"id": "pricing_page", "name": "Pricing page", "match": {"event": "page_viewed", "where": {"path": "/pricing"}},
         "channel": "web", "stage": "evaluation", "owner": "Marketing"},
        {"id": "support_chat", "name": "Support chat", "match": {"event": ["chat_started", "csat_answered"]},
         "channel": "chat", "owner": "Support"},
        {"id": "survey_email", "name": "Survey email", "match": {"source": "survey", "channel": "email"}},
        # A property key that is not an identifier: each engine quotes it in its own JSON path syntax.
        {"id": "newsletter", "name": "Newsletter", "match": {"event": "ad_clicked", "where": {"utm source": "newsletter"}}},
    ],
    "personas": [
        {"id": "enterprise", "name": "Enterprise", "traits": {"employees": {"gte": 100}}},
        {"id": "smb", "name": "Small business", "traits": {"employees": {"lt": 100}}},
    ],
    "milestones": {
        "start": "signup_completed",
        "value_moment": "report_created",
        "customer_stage": "onboarding",
        "key_features": [
            {"id": "reports", "name": "Reports", "match": "report_created"},
            {"id": "invites", "name": "Invites", "match": {"event": "user_invited", "where": {"seats": {"gte": 2}}}},
        ],
    },
    "surveys": [
        {"id": "nps", "kind": "nps", "match": "nps_answered"},
        {"id": "csat", "kind": "csat", "match": "csat_answered", "score": "rating"},
        {"id": "ces", "kind": "ces", "match": "ces_answered", "score": "answer.value"},
    ],
    "targets": [
        {"metric": "ttv_p50", "op": "<=", "value": "3d"},
        {"metric": "nps", "op": ">=", "value": 20},
        {"metric": "conversion", "stage": "evaluation", "op": ">=", "value": "50%"},
        {"metric": "time_in_stage_p50", "stage": "onboarding", "op": "<=", "value": "7d"},
        {"metric": "adoption", "feature": "invites", "op": ">=", "value": "30%", "persona": "enterprise"},
        {"metric": "csat", "change": "+5%", "baseline": "yoy"},
    ],
}
COLUMNS = ["customer_id", "event", "ts", "account_id", "source", "channel", "message_id", "properties", "type", "traits"]


def simulate(rng: random.Random, persons: int = 300, accounts: int = 60) -> list[dict]:
    """A few hundred journeys: each person walks the stages with drop-offs, loops back sometimes,
    answers surveys (some out of scale) and may end won, lost or churned."""
    rows: list[dict] = []

    def emit(at: dt.datetime, event: str, source: str, customer: str | None = None, account: str | None = None,
             channel: str | None = None, props: dict | None = None, kind: str = "track", traits: dict | None = None):
        rows.append({"customer_id": customer or "", "event": event, "ts": at.isoformat() + "Z",
                     "account_id": account or "", "source": source, "channel": channel or "",
                     "message_id": f"m{len(rows)}", "properties": json.dumps(props) if props else "",
                     "type": kind, "traits": json.dumps(traits) if traits else ""})

    for i in range(accounts):
        if rng.random() < 0.9:
            emit(T0, "group", "crm", account=f"a{i:03}", kind="group",
                 traits={"employees": rng.choice([5, 20, 99, 100, 400, 2000])})
    for i in range(persons):
        who, acct = f"p{i:03}", (f"a{rng.randrange(accounts):03}" if rng.random() < 0.9 else None)
        t = T0 + dt.timedelta(days=rng.uniform(0, 700))
        t = t.replace(microsecond=0)

        def step(hours: float) -> dt.datetime:
            nonlocal t
            t += dt.timedelta(hours=hours)
            return t

        if rng.random() < 0.3:  # own traits override the account's
            emit(t, "identify", "product", who, acct, kind="identify", traits={"employees": rng.choice([3, 150])})
        emit(step(0), "ad_clicked", "marketing", who, acct, rng.choice(["paid_search", "email", "social"]),
             {"utm source": rng.choice(["newsletter", "google"])})
        stage = 0
        while True:
            roll = rng.random()
            if stage == 0:
                if roll < 0.15:
                    break
                emit(step(rng.choice([0, 1, 30])), "page_viewed", "product", who, acct, "web",
                     {"path": rng.choice(["/pricing", "/docs"])})
                emit(step(rng.choice([0, 2, 48])), rng.choice(["pricing_viewed", "demo_requested"]),
                     rng.choice(["product", "crm"]), who, acct, "web")
                stage = 1
            elif stage == 1:
                if roll < 0.2:
                    emit(step(rng.uniform(1, 200)), "deal_lost", "crm", who, acct)
                    break
                if roll < 0.3:
                    emit(step(rng.uniform(1, 50)), "ad_clicked", "marketing", who, acct, "email")  # back to discovery
                    stage = 0
                    continue
                emit(step(rng.uniform(0, 300)), "signup_completed", "product", who, acct, "web")
                stage = 2
            elif stage == 2:
                if rng.random() < 0.4:
                    emit(step(rng.uniform(0, 20)), "chat_started", "support", who, acct, "chat")
                    emit(step(0.5), "csat_answered", "support", who, acct, "chat", {"rating": rng.choice([1, 2, 3, 4, 4, 5, 5, 6])})
                if roll < 0.25:
                    break
                emit(step(rng.expovariate(1 / 72)), "report_created", "product", who, acct, "app",
                     {"shared": rng.random() < 0.7})
                if rng.random() < 0.5:
                    emit(step(rng.uniform(0, 100)), "user_invited", "product", who, acct, "app", {"seats": rng.choice([1, 2, 5, "many"])})
                stage = 3
            else:
                if rng.random() < 0.6:
                    emit(step(rng.uniform(1, 500)), "nps_answered", "survey", who, acct, "email",
                         {"score": rng.choice([0, 3, 6, 7, 8, 9, 10, 10, 11, "n/a"])})
                if rng.random() < 0.4:
                    emit(step(rng.uniform(0, 50)), "ces_answered", "survey", who, acct, rng.choice(["email", "app"]),
                         {"answer": {"value": rng.choice([1, 2, 3, 5, 7, 9])}})
                if roll < 0.3:
                    emit(step(rng.uniform(24, 2000)), "subscription_cancelled", "billing", who, acct)
                elif roll < 0.6:
                    emit(step(rng.uniform(24, 600)), "contract_signed", "crm", who, acct)
                break
    return rows


def compare(duck, spark, path: str = "map") -> None:
    """Identical structure; counts and percentiles exact, other floats within 1e-9 relative."""
    assert type(duck) is type(spark) or (duck is None) == (spark is None), (path, duck, spark)
    if isinstance(duck, dict):
        assert duck.keys() == spark.keys(), path
        for k in duck:
            compare(duck[k], spark[k], f"{path}.{k}")
    elif isinstance(duck, list):
        assert len(duck) == len(spark), path
        for i, (x, y) in enumerate(zip(duck, spark, strict=True)):
            compare(x, y, f"{path}[{i}]")
    elif isinstance(duck, float) and not path.endswith("_seconds"):
        assert spark == pytest.approx(duck, rel=1e-9, abs=1e-12), path
    else:
        assert duck == spark, path  # ints, strings, None, and every p50/p90 in seconds


@pytest.mark.spark
def test_journey_map_is_identical_on_duckdb_and_spark(spark_session, tmp_path):
    rows = simulate(random.Random(11))
    events = tmp_path / "events.csv"
    with events.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
        (report,) = ws.ingest([str(events)])
        assert report.accepted == len(rows)
        on_duck = ws.journey_map()
        tables = export_journey_tables(ws.con, tmp_path)
        definition = ws.definition
    # Few rows: 200 shuffle partitions would spend the test on scheduling.
    previous = spark_session.conf.get("spark.sql.shuffle.partitions")
    spark_session.conf.set("spark.sql.shuffle.partitions", "2")
    try:
        on_spark = build_map(spark_engine(spark_session, tables), definition)
    finally:
        spark_session.conf.set("spark.sql.shuffle.partitions", previous)
    for m in (on_duck, on_spark):
        m.pop("generated_at")
    # The workspace's map also checks journeymap.yml against the data (on the store); the rule set here
    # matches events everywhere, so there is nothing to say.
    assert on_duck.pop("warnings") == []
    # ... and lists the improvements the store holds (none here): store rows, not a computation on the engine.
    assert on_duck.pop("improvements") == []
    assert on_duck.pop("playbooks") == {}  # the actions lane: store rows too, and this definition has no playbooks
    # The data is rich enough to mean something: every view, stage, survey kind and outcome has numbers.
    view = on_duck["views"]["all"]
    assert [p["id"] for p in on_duck["personas"]] == ["all", "enterprise", "smb", "unassigned"]
    assert view["units"] == 300 and all(view["stages"][s]["reached"] for s in view["stages"])
    assert set(view["surveys"]) == {"nps", "csat", "ces"} and view["churn"]["churned"] and view["ttv"]["reached"]
    assert {t["id"] for t in view["stages"]["discovery"]["touchpoints"]} == {"newsletter"}
    assert any(t["actual"] is not None for t in view["targets"] if t["metric"] == "csat")  # yoy had two years
    compare(on_duck, on_spark)
