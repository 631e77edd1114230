"""Point-in-time features: a hand-worked account, and no leakage from events at or after the scoring date."""

from __future__ import annotations

import csv
import datetime as dt
import json
from importlib.resources import files

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from journeymap.engine.backends import duckdb_engine
from journeymap.insights.risk.features import FeatureBuilder, early_touchpoints, features_at, monthly_dates, snapshots
from journeymap.journey.load import load_definition
from journeymap.workspace import Workspace

DEFINITION = {
    "analysis": {"level": "account"},
    "stages": [
        {"id": "onboarding", "name": "Onboarding", "entry": ["signed_up", "integration_connected"]},
        {"id": "adoption", "name": "Adoption", "entry": ["report_created", "query_run"]},
        {"id": "retention", "name": "Retention", "entry": "sub_changed"},
        {"id": "churned", "name": "Churned", "entry": "sub_cancelled", "terminal": True, "kind": "churn"},
    ],
    "touchpoints": [{"id": "integration", "name": "Integration", "match": "integration_connected", "stage": "onboarding"}],
    "milestones": {"start": "signed_up", "key_features": [
        {"id": "reports", "name": "Reports", "match": "report_created"},
        {"id": "sql", "name": "SQL", "match": "query_run"},
        {"id": "alerts", "name": "Alerts", "match": "alert_created"}]},
    "surveys": [{"id": "nps", "kind": "nps", "match": "nps_submitted"}],
    "revenue": {"match": {"event": "sub_changed"}, "mrr": "mrr_cents", "scale": 0.01, "churn": "sub_cancelled",
                "seats": "quantity"},
    "health": {"signals": {"early_touchpoints": ["integration"]}},
}
AT = dt.datetime(2024, 4, 1)
# (person, account, day, event, source, properties); every event at 12:00 UTC
ROWS = [
    ("a1", "a", "2024-01-05", "signed_up", "product", {}),
    ("a1", "a", "2024-01-06", "integration_connected", "product", {}),
    ("a1", "a", "2024-01-05", "sub_changed", "billing", {"mrr_cents": 10000, "quantity": 4}),
    ("a1", "a", "2024-02-01", "nps_submitted", "survey", {"score": 4}),
    ("a1", "a", "2024-02-15", "report_created", "product", {}),
    ("a1", "a", "2024-03-01", "sub_changed", "billing", {"mrr_cents": 8000, "quantity": 4}),
    ("a1", "a", "2024-03-01", "ticket_created", "support", {"Effort score": 6}),
    ("a1", "a", "2024-03-02", "ticket_solved", "support", {"Effort score": 6}),
    ("a1", "a", "2024-03-10", "report_created", "product", {}),
    ("a1", "a", "2024-03-10", "report_created", "product", {}),
    ("a1", "a", "2024-03-15", "payment_failed", "billing", {}),
    ("a2", "a", "2024-03-20", "query_run", "product", {}),
    ("a1", "a", "2024-03-25", "nps_submitted", "survey", {"score": 9}),
    ("a1", "a", "2024-04-05", "alert_created", "product", {}),      # after the scoring date: ignored
    ("b1", "b", "2024-01-01", "signed_up", "product", {}),
    ("b1", "b", "2024-01-02", "sub_changed", "billing", {"mrr_cents": 5000, "quantity": 2}),
    ("b1", "b", "2024-02-01", "sub_cancelled", "billing", {}),
    ("b1", "b", "2024-05-01", "sub_cancelled", "billing", {}),      # a later churn: a label, never a feature
]


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("known")
    ws = Workspace(root / "ws")
    ws.path.mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    with open(root / "e.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["user_id", "account_id", "event", "ts", "source", "properties"])
        for i, (person, acct, day, event, source, props) in enumerate(ROWS):
            out.writerow([person, acct, event, f"{day}T12:00:00", source, json.dumps({**props, "n": i})])
    ws.ingest([str(root / "e.csv")])
    yield ws
    ws.close()


def test_known_account(known):
    f = features_at(known.engine, known.definition, AT).set_index("unit_id")
    a, b = f.loc["a"], f.loc["b"]
    assert a.recency_days == pytest.approx(11.5)            # last usage 2024-03-20 12:00
    assert a.active_days_30d == 2                           # 03-10, 03-20
    assert a.active_days_90d == 5                           # 01-05, 01-06, 02-15, 03-10, 03-20
    assert a.activity_trend == pytest.approx((3 + 1) / (1 + 1))  # 3 usage events vs 1 the 30 days before
    assert a.key_features_90d == 2 and a.key_feature_adoption == pytest.approx(2 / 3)
    assert (a.adopted_reports, a.adopted_sql, a.adopted_alerts) == (1, 1, 0)  # alerts only after AT
    assert a.active_users_30d == 2 and a.seats == 4 and a.seat_utilisation == pytest.approx(0.5)
    assert a.tickets_90d == 1 and a.max_effort_90d == 6 and a.mean_effort_90d == 6
    assert a.high_effort_tickets_60d == 1 and a.high_effort_days_ago == pytest.approx(29.5)
    assert a.last_nps == 9 and pd.isna(a.last_csat)
    assert a.failed_payments_60d == 1 and a.downgrades_90d == 1
    assert a.mrr == pytest.approx(80.0) and a.paying
    assert a.tenure_days == pytest.approx(86.5)             # customer since 2024-01-05 12:00
    assert a.stage == "adoption" and a.stage_adoption == 1 and a.stage_retention == 0
    assert a.early_integration == 1
    assert pd.isna(a.sentiment)                             # the hook is empty until a sentiment feature plugs in
    assert b.mrr == 0 and not b.paying and b.stage == "churned"


def test_snapshot_labels_use_the_window_after_the_date(known):
    s = snapshots(known.engine, known.definition, horizon_days=30, dates=[dt.datetime(2024, 1, 15), AT])
    assert list(s.unit_id) == ["a", "b", "a"]               # b is not paying at AT: not scored
    assert list(s.churned) == [0, 1, 0]
    assert s.loc[1, "churn_at"] == pd.Timestamp("2024-02-01 12:00")


def test_monthly_dates_close_their_window():
    dates = monthly_dates(dt.datetime(2025, 5, 1, 0, 45), dt.datetime(2026, 10, 31, 23, 40), 90)
    assert dates[0] == dt.datetime(2025, 7, 1) and dates[-1] == dt.datetime(2026, 8, 1)
    assert all(d + dt.timedelta(days=90) <= dt.datetime(2026, 10, 31, 23, 40) for d in dates)


def test_early_touchpoints_default_to_the_stages_between_start_and_value():
    definition = load_definition(files("journeymap.demo").joinpath("journeymap.yml"))
    assert early_touchpoints(definition) == ["setup_checklist", "integration_setup", "team_invite"]


# -- no leakage, on the demo ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def small_demo(ingested_demo):
    """A 1,500-account demo workspace (closed), for the tests that only need a real store: the run's map demo
    (seed 7), which the run builds anyway (each demo built is a simulation, a load and a refresh)."""
    return ingested_demo(1500, 7).workspace


@pytest.fixture(scope="module")
def store_tables(small_demo) -> dict:
    """The demo store's tables as Arrow, read once."""
    src = duckdb.connect(str(small_demo / "journeymap.duckdb"), read_only=True)
    try:
        return {t: src.sql(f"SELECT * FROM {t}").to_arrow_table() for t in ("journey_events", "accounts", "persons")}
    finally:
        src.close()


def _truncated_engine(tables: dict, cut: dt.datetime):
    """An in-memory DuckDB store holding only the events before `cut`."""
    events = tables["journey_events"]
    kept = events.filter(pc.less(events["ts"], pa.scalar(cut, type=events.schema.field("ts").type)))
    mem = duckdb.connect()
    for name, table in {**tables, "journey_events": kept}.items():
        mem.register("_src", table)
        mem.execute(f"CREATE TABLE {name} AS SELECT * FROM _src")
        mem.unregister("_src")
    return duckdb_engine(mem), mem


@settings(max_examples=4, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.integers(min_value=60, max_value=540), seconds=st.integers(min_value=0, max_value=86399))
def test_features_do_not_leak_from_the_future(small_demo, store_tables, day, seconds):
    at = dt.datetime(2025, 5, 1) + dt.timedelta(days=day, seconds=seconds)
    definition = load_definition(small_demo / "journeymap.yml")
    full = duckdb.connect(str(small_demo / "journeymap.duckdb"), read_only=True)
    try:
        with_future = features_at(duckdb_engine(full), definition, at)
    finally:
        full.close()
    engine, mem = _truncated_engine(store_tables, at)
    try:
        without = features_at(engine, definition, at)
    finally:
        mem.close()
    assert len(with_future) > 0
    pd.testing.assert_frame_equal(with_future, without)


def test_features_change_when_history_changes(small_demo, store_tables):
    """The leakage test has teeth: cutting the store one week earlier does change the features."""
    definition = load_definition(small_demo / "journeymap.yml")
    at = dt.datetime(2026, 3, 1)
    engine, mem = _truncated_engine(store_tables, at - dt.timedelta(days=7))
    try:
        earlier = features_at(engine, definition, at)
        with engine.scope():
            full_store = FeatureBuilder(engine, definition).span()[1]
    finally:
        mem.close()
    full = duckdb.connect(str(small_demo / "journeymap.duckdb"), read_only=True)
    try:
        now = features_at(duckdb_engine(full), definition, at)
    finally:
        full.close()
    assert full_store < at - dt.timedelta(days=6)
    merged = now.merge(earlier, on="unit_id", suffixes=("", "_cut"))
    assert (merged.recency_days > merged.recency_days_cut).sum() == 0
    assert (merged.recency_days < merged.recency_days_cut).sum() > 50

