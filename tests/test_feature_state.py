"""The churn features folded per account at refresh time (insights.risk.feature_state) equal the features computed
from every account's whole history (FeatureBuilder.at, the day after the latest event).

Hypothesis draws logs over 140 days of every kind of event a feature reads (usage, key features, the start
milestone and an early touchpoint, tickets with effort, failed payments, MRR changes with seats, cancellations,
NPS/CSAT/CES answers, identify calls that move a person's anonymous events to her account), shuffles them (most
batches then bring late events), cuts them into batches and loads each into a real workspace; after each the
journey state is folded, then the features. The first batch may be unloaded at the end (accounts lose events or
disappear).
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_engine_reference import DEFINITION, Row
from test_state_fold import draw_arrival, write_batch

from journeymap.ingest.store import has_table
from journeymap.insights.risk.feature_state import FEATURES, refresh_features, stale_because, stored_features
from journeymap.insights.risk.features import FeatureBuilder
from journeymap.state import refresh
from journeymap.workspace import Workspace

PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])
PERSONS, ACCOUNTS = ["p1", "p2", "p3", "p4", "p5"], ["a1", "a2", "a3"]
SPAN_HOURS = 140 * 24
"""Longer than the 90-day window, shorter than the churn model's 60-day warm-up plus its 90-day horizon: the
features have history outside the window, and a refresh fits no model."""

FEATURE_DEFINITION = {
    **DEFINITION,
    "revenue": {"match": "plan_changed", "mrr": "mrr", "churn": "subscription_cancelled", "seats": "seats"},
    "health": {"signals": {"effort": "effort", "early_touchpoints": ["support_chat"]}},
}
EVENTS = [
    ("page_viewed", "product", lambda d: {}),
    ("report_created", "product", lambda d: {}),
    ("user_invited", "product", lambda d: {"seats": d(st.integers(1, 3))}),
    ("signup_completed", "product", lambda d: {}),
    ("chat_started", "support", lambda d: {}),
    ("ticket_created", "support", lambda d: {}),
    ("ticket_solved", "support", lambda d: {"effort": d(st.integers(1, 7))}),
    ("payment_failed", "billing", lambda d: {}),
    ("plan_changed", "billing", lambda d: {"mrr": d(st.sampled_from([50, 100, 200])), "seats": d(st.integers(1, 5))}),
    ("subscription_cancelled", "billing", lambda d: {}),
    ("nps_answered", "survey", lambda d: {"score": d(st.integers(0, 10))}),
    ("csat_answered", "survey", lambda d: {"rating": d(st.integers(1, 5))}),
    ("ces_answered", "survey", lambda d: {"score": d(st.integers(1, 7))}),
]


@st.composite
def feature_logs(draw) -> list[Row]:
    home = {p: draw(st.sampled_from(ACCOUNTS)) for p in PERSONS}
    raw = []
    for _ in range(draw(st.integers(1, 40))):
        person = draw(st.sampled_from(PERSONS))
        # days apart, and ties within an hour (the latest survey answer, stage and MRR are chosen by time, then seq)
        hour = draw(st.one_of(st.integers(0, SPAN_HOURS), st.sampled_from([0, 24 * 100, SPAN_HOURS])))
        if draw(st.integers(0, 9)) == 0:
            raw.append((person, home[person], "identify", "identify", "product", None, {}, {}, hour))
            continue
        name, source, props = draw(st.sampled_from(EVENTS))
        names = draw(st.booleans())  # the row names the account, or only the person does
        raw.append((person, home[person] if names else None, name, "track", source, None, props(draw), None, hour))
    return [Row(i, *r) for i, r in enumerate(raw)]


def from_history(ws) -> tuple[pd.DataFrame, dt.datetime] | None:
    """Every account's features at the day after the latest event, from all of its events (no folded state)."""
    engine = ws.engine
    with engine.scope():
        fb = FeatureBuilder(engine, ws.definition, materialize=False)
        last = fb.span()[1]
        if last is None:
            return None
        at = dt.datetime(last.year, last.month, last.day) + dt.timedelta(days=1)
        return fb.at(at), at


@settings(max_examples=15, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=feature_logs(), data=st.data())
def test_features_folded_batch_by_batch_equal_those_computed_from_every_event(tmp_path_factory, rows, data):
    batches, anonymous, unload = draw_arrival(rows, data)
    base = tmp_path_factory.mktemp("features")
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(FEATURE_DEFINITION))  # JSON is YAML

        def fold_and_compare() -> None:
            refresh(ws.con, ws.definition)  # identity and the journey state, as a refresh does before the scores
            engine = ws.engine
            kept = has_table(ws.con, FEATURES)  # until a fold has kept an account, each is a rebuild
            done = refresh_features(engine, ws.definition)
            event(f"features {done.mode}")
            if done.accounts_dropped:
                event("accounts dropped")
            assert done.mode in (("fold", "unchanged") if kept else ("rebuild",))
            full = from_history(ws)
            folded = stored_features(engine, ws.definition, [])
            if full is None:  # no account has an event: nothing is read
                assert folded is None
                return
            assert stale_because(ws.con, ws.definition) is None
            assert folded[1] == full[1]
            event(f"{int(full[0]['paying'].sum())} paying accounts")
            pd.testing.assert_frame_equal(folded[0], full[0], check_exact=False, rtol=1e-12)
            assert ws.con.execute(f"SELECT count(*) FROM {FEATURES}").fetchone()[0] == len(full[0])

        for n, batch in enumerate(batches):
            ws.ingest([str(write_batch([(rows[i], anonymous[i]) for i in batch], base / f"batch{n}.csv"))],
                      max_reject_rate=None, refresh=False)
            fold_and_compare()
        if unload and len(batches) > 1:
            ws.unload(ws.loads()[0]["load_id"])
            fold_and_compare()
        # nothing new: no account is read again (before any account was kept, a rebuild of none)
        kept = has_table(ws.con, FEATURES)
        again = refresh_features(ws.engine, ws.definition)
        assert (again.mode, again.accounts_read, again.accounts_dropped) == ("unchanged" if kept else "rebuild", 0, 0)


def test_a_changed_definition_rebuilds_and_stale_features_are_not_read(tmp_path):
    rows = [Row(0, "p1", "a1", "plan_changed", "track", "billing", None, {"mrr": 100, "seats": 3}, None, 0),
            Row(1, "p1", "a1", "page_viewed", "track", "product", None, {}, None, 24 * 120),
            Row(2, "p2", "a2", "plan_changed", "track", "billing", None, {"mrr": 50}, None, 24),
            Row(3, "p2", "a2", "ticket_solved", "track", "support", None, {"effort": 6}, None, 24 * 119)]
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(FEATURE_DEFINITION))
        ws.ingest([str(write_batch([(r, False) for r in rows[:2]], tmp_path / "a.csv"))], refresh=False)
        refresh(ws.con, ws.definition)
        assert stored_features(ws.engine, ws.definition, []) is None  # nothing folded yet: not read
        assert stale_because(ws.con, ws.definition) == "not written yet: each refresh folds them"
        assert refresh_features(ws.engine, ws.definition).mode == "rebuild"
        ws.ingest([str(write_batch([(r, False) for r in rows[2:]], tmp_path / "b.csv"))], refresh=False)
        refresh(ws.con, ws.definition)
        assert stale_because(ws.con, ws.definition) == "the journey state moved on since"
        assert stored_features(ws.engine, ws.definition, []) is None
        done = refresh_features(ws.engine, ws.definition)
        assert (done.mode, done.accounts_read, done.accounts) == ("fold", 1, 2)  # a1 is not read again
        folded, _ = stored_features(ws.engine, ws.definition, [])
        by = folded.set_index("unit_id")
        assert by.loc["a1", ["seats", "mrr", "high_effort_tickets_60d"]].tolist() == [3.0, 100.0, 0.0]
        assert by.loc["a2", ["mrr", "high_effort_tickets_60d"]].tolist() == [50.0, 1.0] and pd.isna(by.loc["a2", "seats"])
        expected = from_history(ws)
        pd.testing.assert_frame_equal(folded, expected[0], check_exact=False, rtol=1e-12)
        # a section the features read changes: every account is read again, under it
        (ws.path / "journeymap.yml").write_text(json.dumps(
            {**FEATURE_DEFINITION, "health": {"signals": {"effort": "effort", "high_effort": 7}}}))
        ws.__dict__.pop("definition", None)
        assert stale_because(ws.con, ws.definition) == "journeymap.yml (or journeymap) changed since they were folded"
        done = refresh_features(ws.engine, ws.definition)
        assert (done.mode, done.accounts_read) == ("rebuild", 2)
        folded, _ = stored_features(ws.engine, ws.definition, [])
        assert folded.set_index("unit_id").loc["a2", "high_effort_tickets_60d"] == 0.0  # effort 6 < 7 now
        pd.testing.assert_frame_equal(folded, from_history(ws)[0], check_exact=False, rtol=1e-12)


def test_an_erase_takes_the_erased_accounts_features_and_refolds_her_account(tmp_path):
    rows = [Row(0, "p1", "a1", "plan_changed", "track", "billing", None, {"mrr": 100, "seats": 3}, None, 0),
            Row(1, "p1", "a1", "nps_answered", "track", "survey", None, {"score": 2}, None, 24 * 100),
            Row(2, "p2", "a1", "nps_answered", "track", "survey", None, {"score": 9}, None, 24 * 50),
            Row(3, "p3", "a2", "plan_changed", "track", "billing", None, {"mrr": 50}, None, 24),
            Row(4, "p3", "a2", "page_viewed", "track", "product", None, {}, None, 24 * 120)]
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(FEATURE_DEFINITION))
        ws.ingest([str(write_batch([(r, False) for r in rows], tmp_path / "a.csv"))])  # the refresh folds them
        assert stale_because(ws.con, ws.definition) is None
        assert stored_features(ws.engine, ws.definition, [])[0].set_index("unit_id").loc["a1", "last_nps"] == 2.0
        result = ws.erase(person="p1")  # her answer was a1's latest
        assert result["removed"].get(FEATURES, 0) == 0  # a1 is not erased: its row is folded again, without her events
        assert stored_features(ws.engine, ws.definition, [])[0].set_index("unit_id").loc["a1", "last_nps"] == 9.0
        result = ws.erase(account="a2")
        assert result["removed"][FEATURES] == 1
        folded, _ = stored_features(ws.engine, ws.definition, [])
        assert folded["unit_id"].tolist() == ["a1"]
        pd.testing.assert_frame_equal(folded, from_history(ws)[0], check_exact=False, rtol=1e-12)


def test_an_account_whose_events_change_but_not_their_count_is_read_again(tmp_path):
    """Her account-less answer moves from a1 to a2 when she is identified with a2, in the batch that brings a1 a
    new event: a1 still has two events, but not the same ones (its signature changed, its count did not)."""
    first = [Row(0, "p1", "a1", "identify", "identify", "product", None, {}, {}, 0),
             Row(1, "p1", None, "nps_answered", "track", "survey", None, {"score": 2}, None, 24),
             Row(2, "p2", "a2", "plan_changed", "track", "billing", None, {"mrr": 50}, None, 0)]
    second = [Row(3, "p1", "a2", "identify", "identify", "product", None, {}, {}, 48),
              Row(4, "p3", "a1", "page_viewed", "track", "product", None, {}, None, 72)]
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(FEATURE_DEFINITION))
        ws.ingest([str(write_batch([(r, False) for r in first], tmp_path / "a.csv"))])
        a1 = "SELECT events, signature FROM state_units_account WHERE unit_id = 'a1'"
        before = ws.con.execute(a1).fetchone()
        assert stored_features(ws.engine, ws.definition, [])[0].set_index("unit_id").loc["a1", "last_nps"] == 2.0
        ws.ingest([str(write_batch([(r, False) for r in second], tmp_path / "b.csv"))])
        after = ws.con.execute(a1).fetchone()
        assert after[0] == before[0] and after[1] != before[1]  # the case this test is about
        folded = stored_features(ws.engine, ws.definition, [])[0]
        nps = folded.set_index("unit_id")["last_nps"]
        assert pd.isna(nps["a1"]) and nps["a2"] == 2.0  # her answer went with her
        pd.testing.assert_frame_equal(folded, from_history(ws)[0], check_exact=False, rtol=1e-12)


def test_the_last_account_unloaded_leaves_no_features_and_nothing_to_read(tmp_path):
    rows = [Row(0, "p1", "a1", "plan_changed", "track", "billing", None, {"mrr": 100}, None, 0),
            Row(1, "p2", None, "page_viewed", "track", "product", None, {}, None, 24)]
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(FEATURE_DEFINITION))
        for n, row in enumerate(rows):
            ws.ingest([str(write_batch([(row, False)], tmp_path / f"{n}.csv"))], refresh=False)
            refresh(ws.con, ws.definition)
            assert refresh_features(ws.engine, ws.definition).mode == ("rebuild" if n == 0 else "unchanged")
        ws.unload(ws.loads()[0]["load_id"], refresh=False)
        refresh(ws.con, ws.definition)
        done = refresh_features(ws.engine, ws.definition)
        assert (done.mode, done.accounts_read, done.accounts_dropped, done.accounts) == ("fold", 0, 1, 0)
        assert stored_features(ws.engine, ws.definition, []) is None and from_history(ws) is None
        again = refresh_features(ws.engine, ws.definition)
        assert (again.mode, again.accounts) == ("unchanged", 0)
