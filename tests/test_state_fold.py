"""The journey state folded in batch by batch equals the state rebuilt from scratch, and what the engine
computes from the events directly.

Hypothesis draws event logs (the reference test's vocabulary: stage rules, touchpoints, personas from
identify and group traits, many ties in time), shuffles them (arrival order is not time order, so most
batches bring late events), cuts them into batches, and loads each batch through a real workspace,
which stitches and folds after every batch. Some rows carry only an anonymous id until an identify call
links it to the customer, so identity merges join units after the fact; a batch may also be unloaded.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import duckdb_engine
from journeymap.identity import stitch
from journeymap.state.fold import STATE_VERSION, fold, stored, tables
from journeymap.workspace import Workspace
from test_engine_reference import DEFINITION, Row, event_logs

PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])
LEVELS = ("person", "account")


def write_batch(rows: list[tuple[Row, bool]], path: Path) -> Path:
    """Canonical CSV; a row flagged anonymous names only `anon-<customer>` (identify rows name both)."""
    cols = ["customer_id", "anonymous_id", "event", "ts", "account_id", "source", "channel", "message_id",
            "properties", "type", "traits"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r, anonymous in rows:
            customer = "" if anonymous and r.type != "identify" else (r.customer or "")
            anon = f"anon-{r.customer}" if r.customer and (anonymous or r.type == "identify") else ""
            w.writerow([customer, anon, r.event, r.ts.isoformat() + "Z", r.account or "", r.source, r.channel or "",
                        f"m{r.idx}", json.dumps(r.props) if r.props else "", r.type,
                        json.dumps(r.traits) if r.traits is not None else ""])
    return path


def rows_of(con, sql: str) -> list[tuple]:
    return sorted(con.execute(sql).fetchall(), key=repr)


def state_rows(con, level: str) -> dict[str, list[tuple]]:
    t = tables(level)
    return {name: rows_of(con, f"SELECT * EXCLUDE (signature, last_ts, last_seq) FROM {t[name]}" if name == "units"
                          else f"SELECT * FROM {t[name]}") for name in ("events", "visits", "units")}


def visits_stored_once(con, level: str) -> bool:
    """Whether each unit's visits 1..n are stored once: its last (n, none when NULL) in its row of state_units_L,
    where the next fold's tails start, and only the others, each left (left_at, next_stage), in
    state_closed_visits_L; so the view state_visits_L shows every visit once (what it shows is compared with
    the visits computed from the events)."""
    w = stored(level)
    closed: dict[str, list[int]] = {}
    for unit, no, left_at, next_stage in con.execute(
            f"SELECT unit_id, visit_no, left_at, next_stage FROM {w['closed']}").fetchall():
        if left_at is None or next_stage is None:
            return False
        closed.setdefault(unit, []).append(no)
    last = dict(con.execute(f"SELECT unit_id, last_visit_no FROM {w['units']}").fetchall())
    return set(closed) <= set(last) and all(sorted(closed.get(unit, [])) == list(range(1, n or 1))
                                            for unit, n in last.items())


def identity_rows(con) -> dict[str, list[tuple]]:
    return {t: rows_of(con, f"SELECT * FROM {t}")
            for t in ("journey_events", "identity_map", "persons", "accounts", "identity_activity")}


def direct_rows(con, definition, level: str) -> dict[str, list[tuple]]:
    """What the engine computes from the journey events, with no state at all."""
    engine = duckdb_engine(con)
    assert engine.journey == {}
    with engine.scope():
        a, v, ac = journey_tables(engine, definition, level)
        events = rows_of(con, f"SELECT * FROM ({engine.backend.compile(ac)})")
        visits = rows_of(con, f"SELECT * FROM ({engine.backend.compile(v)})")
        units = rows_of(con, f"SELECT unit_id, any_value(persona), count(*) FROM ({engine.backend.compile(a)}) "
                             "GROUP BY unit_id")
    return {"events": events, "visits": visits, "units": units}


def draw_arrival(rows: list[Row], data) -> tuple[list[list[int]], list[bool], bool]:
    """(the rows' indexes in batches, in arrival order: time order, or shuffled so that most batches bring late
    events; which rows name only their anonymous id; whether to unload the first batch at the end)."""
    if data.draw(st.booleans(), label="arrival in time order"):  # batches then append to the units they touch
        order = sorted(range(len(rows)), key=lambda i: (rows[i].ts, i))
    else:
        order = data.draw(st.permutations(range(len(rows))), label="arrival order")
    anonymous = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)), label="anonymous rows")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=4), label="batch cuts"))
    unload = data.draw(st.booleans(), label="unload the first batch at the end")
    return [order[i:j] for i, j in zip([0, *cuts], [*cuts, len(rows)], strict=True) if order[i:j]], anonymous, unload


@settings(max_examples=25, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=event_logs(), data=st.data())
def test_folding_batches_equals_a_rebuild(tmp_path_factory, rows, data):
    batches, anonymous, unload = draw_arrival(rows, data)
    # with one thread the levels fold one after the other in one transaction, with two at once (state.fold)
    threads = data.draw(st.sampled_from([1, 2]), label="store threads")
    base = tmp_path_factory.mktemp("fold")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JOURNEYMAP_THREADS", str(threads))
        check_folding_batches(base, rows, batches, anonymous, unload)


def check_folding_batches(base: Path, rows, batches, anonymous, unload) -> None:
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))  # JSON is YAML
        for n, batch in enumerate(batches):
            path = write_batch([(rows[i], anonymous[i]) for i in batch], base / f"batch{n}.csv")
            ws.ingest([str(path)], max_reject_rate=None)
            event(f"journey events {ws.last_refresh.stitch.journey_events}")
            if ws.last_refresh.state.at_once:
                event("levels folded at once")
            for lv in ws.last_refresh.state.levels:  # which ways of folding this example took
                event(f"{lv.looked_at} units looked at")
                for kind in ("appended", "late", "new"):
                    if getattr(lv, f"{kind}_units"):
                        event(f"{kind} units folded")
                if lv.changed_units - lv.appended_units - lv.late_units - lv.new_units:
                    event("units recomputed whole")
        if unload and len(batches) > 1:
            ws.unload(ws.loads()[0]["load_id"])
        assert all(row["current"] for row in ws.state())
        folded = {level: state_rows(ws.con, level) for level in LEVELS}
        direct = {level: direct_rows(ws.con, ws.definition, level) for level in LEVELS}
        assert all(visits_stored_once(ws.con, level) for level in LEVELS)
        # the journey events as the stitches after each batch wrote them (updated in place) equal one stitch
        # of everything, which writes them whole
        stitched = identity_rows(ws.con)
        ws.con.execute("DELETE FROM meta WHERE key LIKE 'identity.%'")
        assert stitch(ws.con).journey_events == "rebuilt"
        assert identity_rows(ws.con) == stitched
        report = fold(ws.con, ws.definition, rebuild=True)
        assert [lv.mode for lv in report.levels] == ["rebuild", "rebuild"]
        for level in LEVELS:
            rebuilt = state_rows(ws.con, level)
            assert folded[level] == rebuilt, level
            assert folded[level]["events"] == direct[level]["events"], level
            assert folded[level]["visits"] == direct[level]["visits"], level
            assert [row[:3] for row in folded[level]["units"]] == direct[level]["units"], level


def reference_workspace(path: Path) -> Workspace:
    """A new workspace with the reference journey's definition (test_engine_reference.DEFINITION)."""
    ws = Workspace.init(path)
    ws.definition_path.write_text(json.dumps(DEFINITION))  # JSON is YAML
    ws.__dict__.pop("definition", None)
    return ws


def test_a_fold_recomputes_only_the_units_whose_events_changed(tmp_path):
    """Two persons; a late event for one of them re-folds that person alone, and an unchanged store folds
    nothing. An identity merge re-folds both persons it joins."""
    ws = reference_workspace(tmp_path / "ws")
    first = tmp_path / "a.csv"
    first.write_text("customer_id,anonymous_id,event,ts,source,message_id\n"
                     "ann,,signup_completed,2024-01-02T00:00:00Z,product,m1\n"
                     "bob,,signup_completed,2024-01-02T00:00:00Z,product,m2\n"
                     ",anon-cy,pricing_viewed,2024-01-01T00:00:00Z,product,m3\n")
    with ws:
        ws.ingest([str(first)])
        late = tmp_path / "b.csv"
        late.write_text("customer_id,event,ts,source,message_id\n"
                        "ann,pricing_viewed,2024-01-01T00:00:00Z,product,m4\n")
        ws.ingest([str(late)])
        report = fold(ws.con, ws.definition)
        assert [(lv.level, lv.mode, lv.changed_units) for lv in report.levels] == [
            ("person", "unchanged", 0), ("account", "unchanged", 0)]
        # The late event made ann's first stage evaluation, before onboarding.
        assert ws.con.execute("SELECT stage, visit_no FROM state_visits_person WHERE unit_id = 'u:ann' "
                              "ORDER BY visit_no").fetchall() == [("evaluation", 1), ("onboarding", 2)]
        merge = tmp_path / "c.csv"
        merge.write_text("customer_id,anonymous_id,event,ts,source,message_id,type\n"
                         "cy,anon-cy,identify,2024-01-03T00:00:00Z,product,m5,identify\n"
                         "cy,,signup_completed,2024-01-03T00:00:00Z,product,m6,track\n")
        refreshed = ws.ingest([str(merge)], refresh=False)
        assert refreshed[0].accepted == 2
        result = ws.refresh()
        person = result.state.levels[0]
        # the anonymous unit leaves and u:cy arrives with its events: two units changed, ann and bob did not
        assert (person.mode, person.changed_units, person.units) == ("fold", 2, 3)
        assert ws.con.execute("SELECT stage FROM state_visits_person WHERE unit_id = 'u:cy' ORDER BY visit_no"
                              ).fetchall() == [("evaluation",), ("onboarding",)]


def test_a_merge_without_new_events_keeps_the_folds_mark(tmp_path):
    """A batch that only merges two units (an identify call: no journey event at the person level) folds the
    units it joins, whose events are older than the state's mark; the mark must stay, or the next fold takes
    every event between for a new one and folds it twice (found by test_folding_batches_equals_a_rebuild)."""
    ws = reference_workspace(tmp_path / "ws")
    first = tmp_path / "a.csv"
    first.write_text("customer_id,anonymous_id,event,ts,source,message_id\n"
                     ",anon-cy,pricing_viewed,2024-01-01T00:00:00Z,product,m1\n"
                     "cy,,signup_completed,2024-01-02T00:00:00Z,product,m2\n"
                     "ann,,pricing_viewed,2024-01-03T00:00:00Z,product,m3\n"
                     "ann,,signup_completed,2024-01-04T00:00:00Z,product,m4\n")
    with ws:
        ws.ingest([str(first)])
        (mark,) = ws.con.execute("SELECT value FROM meta WHERE key = 'state.person.seq'").fetchone()
        merge = tmp_path / "b.csv"
        merge.write_text("customer_id,anonymous_id,event,ts,source,message_id,type\n"
                         "cy,anon-cy,identify,2024-01-05T00:00:00Z,product,m5,identify\n")
        ws.ingest([str(merge)])
        person = ws.last_refresh.state.levels[0]
        assert (person.mode, person.looked_at, person.changed_units) == ("fold", "named", 2)
        assert ws.con.execute("SELECT value FROM meta WHERE key = 'state.person.seq'").fetchone() == (mark,)
        later = tmp_path / "c.csv"
        later.write_text("customer_id,event,ts,source,message_id\nbob,pricing_viewed,2024-01-06T00:00:00Z,product,m6\n")
        ws.ingest([str(later)])
        assert ws.con.execute("SELECT count(*), count(DISTINCT seq) FROM state_events_person WHERE unit_id = 'u:ann'"
                              ).fetchone() == (2, 2)
        folded = state_rows(ws.con, "person")
        assert folded["events"] == direct_rows(ws.con, ws.definition, "person")["events"]
        fold(ws.con, ws.definition, rebuild=True)
        assert state_rows(ws.con, "person") == folded


def test_events_after_a_units_folded_ones_are_appended_without_reading_its_history(tmp_path):
    """Ann's new events all come after her folded ones: her last visit (onboarding) is extended and a new
    visit added, reading none of her earlier events. Bob's late event comes before his only visit: he is
    refolded from his folded events (late). Both equal a rebuild."""
    ws = reference_workspace(tmp_path / "ws")
    first = tmp_path / "a.csv"
    first.write_text("customer_id,event,ts,source,message_id\n"
                     "ann,pricing_viewed,2024-01-01T00:00:00Z,product,m1\n"
                     "ann,signup_completed,2024-01-02T00:00:00Z,product,m2\n"
                     "bob,signup_completed,2024-01-05T00:00:00Z,product,m3\n")
    second = tmp_path / "b.csv"
    second.write_text("customer_id,event,ts,source,message_id,properties\n"
                      "ann,signup_completed,2024-01-02T00:00:00Z,product,m4,\n"  # a tie in time: after m2 by seq
                      'ann,report_created,2024-01-09T00:00:00Z,product,m5,"{""shared"": true}"\n'
                      "bob,pricing_viewed,2024-01-04T00:00:00Z,product,m6,\n")
    with ws:
        ws.ingest([str(first)])
        ws.ingest([str(second)], refresh=False)
        person = ws.refresh().state.levels[0]
        assert (person.mode, person.changed_units, person.appended_units, person.late_units) == ("fold", 2, 1, 1)
        visits = ws.con.execute("SELECT stage, visit_no, entered_at::DATE::VARCHAR, left_at::DATE::VARCHAR, "
                                "next_stage FROM state_visits_person WHERE unit_id = 'u:ann' ORDER BY visit_no").fetchall()
        assert visits == [("evaluation", 1, "2024-01-01", "2024-01-02", "onboarding"),
                          ("onboarding", 2, "2024-01-02", "2024-01-09", "adoption"),
                          ("adoption", 3, "2024-01-09", None, None)]
        assert ws.con.execute("SELECT event, current_stage, stage_before FROM state_events_person "
                              "WHERE unit_id = 'u:ann' ORDER BY ts, seq").fetchall() == [
            ("pricing_viewed", "evaluation", None), ("signup_completed", "onboarding", "evaluation"),
            ("signup_completed", "onboarding", "onboarding"), ("report_created", "adoption", "onboarding")]
        folded = {level: state_rows(ws.con, level) for level in LEVELS}
        direct = {level: direct_rows(ws.con, ws.definition, level) for level in LEVELS}
        fold(ws.con, ws.definition, rebuild=True)
        for level in LEVELS:
            assert folded[level] == state_rows(ws.con, level), level
            assert folded[level]["visits"] == direct[level]["visits"], level


def test_a_changed_definition_is_rebuilt_and_stale_state_is_not_read(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    events = tmp_path / "e.csv"
    events.write_text("customer_id,event,ts\nann,pricing_viewed,2025-03-01T09:00:00\n"
                      "ann,signup_completed,2025-03-01T09:05:00\n")
    with ws:
        ws.ingest([str(events)])
        assert all(row["current"] for row in ws.state())
        assert ws.engine.journey  # the analyses read the state
        text = ws.definition_path.read_text()
        ws.definition_path.write_text(text.replace("signup_completed", "signup_done", 1))
        ws.__dict__.pop("definition", None)
        stale = ws.state()
        assert [r["stale_because"] for r in stale] == ["journeymap.yml's stages, touchpoints or personas changed since"] * 2
        assert ws.engine.journey == {}  # computed from the events instead
        report = ws.refresh().state
        assert [(lv.mode, lv.reason) for lv in report.levels] == [
            ("rebuild", "journeymap.yml's stages, touchpoints or personas changed")] * 2


def test_a_state_of_the_previous_layout_is_rebuilt_not_read(tmp_path):
    """Layout 3 kept every visit in a table state_visits_L (now a view over the closed visits and the units'
    last visits): a store folded by that journeymap says so, computes from the events until a refresh, and the
    refresh rebuilds both levels, after which the next batch folds from the last visits the rebuild wrote."""
    ws = Workspace.init(tmp_path / "ws")
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("customer_id,event,ts\nann,pricing_viewed,2025-03-01T09:00:00\n"
                     "ann,signup_completed,2025-03-01T09:05:00\n")
    second.write_text("customer_id,event,ts\nann,pricing_viewed,2025-03-02T09:00:00\n")
    with ws:
        ws.ingest([str(first)])
        for level in LEVELS:  # the tables as layout 3 wrote them
            t, w = tables(level), stored(level)
            ws.con.execute(f"CREATE TABLE _layout3 AS SELECT * FROM {t['visits']}")
            ws.con.execute(f"DROP VIEW {t['visits']}")
            ws.con.execute(f"DROP TABLE {w['closed']}")
            ws.con.execute(f"ALTER TABLE _layout3 RENAME TO {t['visits']}")
        ws.con.execute("UPDATE meta SET value = '3' WHERE key = 'state.version'")
        why = f"the state was written by layout 3, this journeymap reads {STATE_VERSION}"
        assert [r["stale_because"] for r in ws.state()] == [why] * 2
        assert ws.engine.journey == {}  # computed from the events instead
        report = ws.refresh().state
        assert [(lv.mode, lv.reason) for lv in report.levels] == [
            ("rebuild", why)] * 2
        assert ws.engine.journey and all(visits_stored_once(ws.con, level) for level in LEVELS)
        ws.ingest([str(second)], refresh=False)
        report = ws.refresh().state
        assert [(lv.level, lv.mode, lv.appended_units) for lv in report.levels] == [
            ("person", "fold", 1), ("account", "unchanged", 0)]
        assert all(visits_stored_once(ws.con, level) for level in LEVELS)
        assert ws.con.execute("SELECT last_visit_no, last_stage FROM state_units_person").fetchall() == [(3, "evaluation")]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_interrupted_fold_leaves_each_levels_previous_or_new_state(tmp_path, monkeypatch, threads):
    """A level's state and its meta keys commit together. With one thread both levels fold in one transaction:
    when the fold dies after the person level was written and before the account level was, the store still
    holds both previous states (marked stale). With two, each level folds in its own transaction at once: the
    person level's new state is committed and read, the account level's previous one is stale. Either way the
    next fold completes it."""
    import journeymap.state.fold as fold_module

    monkeypatch.setenv("JOURNEYMAP_THREADS", str(threads))
    ws = Workspace.init(tmp_path / "ws")
    events = tmp_path / "e.csv"
    events.write_text("customer_id,account_id,event,ts\nann,acme,pricing_viewed,2025-03-01T09:00:00\n")
    with ws:
        ws.ingest([str(events)])
        before = {lv: state_rows(ws.con, lv) for lv in LEVELS}
        more = tmp_path / "f.csv"
        more.write_text("customer_id,account_id,event,ts\nbob,acme,signup_completed,2025-03-02T09:00:00\n")
        real = fold_module._fold_level

        def dies_at_the_account_level(con, engine, definition, level, *rest):
            if level == "account":
                raise KeyboardInterrupt("killed")
            return real(con, engine, definition, level, *rest)

        monkeypatch.setattr(fold_module, "_fold_level", dies_at_the_account_level)
        with pytest.raises(KeyboardInterrupt):
            ws.ingest([str(more)])
        monkeypatch.undo()
        monkeypatch.setenv("JOURNEYMAP_THREADS", str(threads))
        assert state_rows(ws.con, "account") == before["account"]
        stale = [row["level"] for row in ws.state() if not row["current"]]
        if threads == 1:
            assert state_rows(ws.con, "person") == before["person"]
            assert stale == ["person", "account"]
            assert ws.engine.journey == {}  # computed from the events instead
        else:
            assert state_rows(ws.con, "person") != before["person"]
            assert ws.con.execute("SELECT count(*) FROM state_units_person").fetchone()[0] == 2
            assert stale == ["account"]
            assert [level for level, _ in ws.engine.journey] == ["person"]
        report = fold(ws.con, ws.definition)
        assert report.at_once == (threads == 2)
        assert [lv.mode for lv in report.levels] == ["fold" if threads == 1 else "unchanged", "fold"]
        assert all(row["current"] for row in ws.state())
        assert ws.con.execute("SELECT count(*) FROM state_units_person").fetchone()[0] == 2
        assert ws.con.execute("SELECT events FROM state_units_account").fetchall() == [(2,)]


def test_the_demo_map_folded_in_batches_equals_the_one_shot_map(ingested_demo, tmp_path):
    """The demo business loaded month by month, then day by day over its last 30 days, with a refresh (stitch
    and fold) after each batch, draws the same map, insights included, as the demo loaded at once, and as
    the map computed from the events with no state; apart from `generated_at` and the accounts at risk
    (scored by the model of the last scheduled refit: see `drawn`)."""
    import datetime as dt

    from journeymap.analyses.map import panels
    from journeymap.insights.map import build_map

    demo = ingested_demo(300, 7)
    ws = Workspace.init(tmp_path / "ws")
    ws.definition_path.write_text(Path(demo.definition).read_text())
    ws.__dict__.pop("definition", None)

    at_risk = {}

    def drawn(workspace, engine=None) -> str:
        """The map as JSON without generated_at and the accounts-at-risk panels: those read the churn model the
        refreshes fitted on a data-time schedule (risk.refit), so a history loaded in batches is scored by a
        model fitted on fewer days than one loaded at once (tests/test_risk_state.py checks that panel)."""
        engine = engine or workspace.engine
        with engine.scope():
            m = build_map(engine, workspace.definition, None, panels=panels())
        m.pop("generated_at")
        at_risk[id(engine)] = [view.pop("at_risk", None) for view in m["views"].values()]
        return json.dumps(m, sort_keys=True, default=str)

    with ws:
        ws.con.execute(f"ATTACH '{Path(demo.workspace) / 'journeymap.duckdb'}' AS demo (READ_ONLY)")
        lo, hi = ws.con.execute("SELECT min(ts), max(ts) FROM demo.events").fetchone()
        last_month = hi - dt.timedelta(days=30)
        monthly = [lo + dt.timedelta(days=30 * k) for k in range((last_month - lo).days // 30 + 1)]
        daily = [last_month + dt.timedelta(days=k) for k in range(31)]
        bounds = sorted({*monthly, *daily}) + [hi + dt.timedelta(seconds=1)]
        modes, appended, recomputed = [], 0, 0
        for n, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
            # As a loader numbers them: a later batch's seq above every earlier one's (seq orders ties in time,
            # and a tie never spans two batches, so the order of events is the one-shot load's).
            ws.con.execute(f"INSERT INTO events SELECT * REPLACE (seq + {n * 10**15} AS seq) FROM demo.events "
                           "WHERE ts >= ? AND ts < ?", [start, end])
            levels = ws.refresh().state.levels
            modes.append([lv.mode for lv in levels])
            if n:
                appended += sum(lv.appended_units for lv in levels)
                recomputed += sum(lv.changed_units - lv.appended_units - lv.new_units for lv in levels)
        ws.con.execute("DETACH demo")
        assert len(modes) == len(bounds) - 1 > 30  # the daily batches of the last month included
        assert modes[0] == ["rebuild", "rebuild"] and modes.count(["fold", "fold"]) > len(modes) // 2
        # most known units a batch touches only gained later events: their new events were folded onto their state
        assert appended > 2 * recomputed > 0, (appended, recomputed)
        assert ws.con.execute("SELECT count(*) FROM events").fetchone()[0] > 0
        folded = drawn(ws)
        direct = drawn(ws, duckdb_engine(ws.con))
        # the customer texts the churn features read, folded at each of those refreshes, equal a read of them all
        from test_text_state import scored_from_scratch, stored_rows

        texts = stored_rows(ws.con)
        assert len(texts) > 100 and texts == scored_from_scratch(ws.con, ws.definition)
    with Workspace(demo.workspace) as one_shot:
        assert one_shot.engine.journey  # its state was built in one refresh
        at_once = drawn(one_shot)
    assert folded == at_once
    assert folded == direct
    assert all(panel is not None for panels_ in at_risk.values() for panel in panels_)


@pytest.mark.parametrize("kept", [1_000_000, 0])
def test_a_merge_is_folded_from_the_moves_the_stitch_names(tmp_path, monkeypatch, kept):
    """An identify call joins an anonymous person to cy: the stitch lists both persons in journey_moves, and
    the fold looks only at the units it names. Past the list's limit (`kept` 0) the stitch starts the list again
    and the fold compares every unit instead. Either way the state equals a rebuild."""
    from journeymap.identity import journey_events

    monkeypatch.setattr(journey_events, "MOVES_KEPT", kept)
    ws = reference_workspace(tmp_path / "ws")
    first = tmp_path / "a.csv"
    first.write_text("customer_id,anonymous_id,event,ts,source,message_id\n"
                     "ann,,signup_completed,2024-01-02T00:00:00Z,product,m1\n"
                     ",anon-cy,pricing_viewed,2024-01-01T00:00:00Z,product,m2\n")
    merge = tmp_path / "b.csv"
    merge.write_text("customer_id,anonymous_id,event,ts,source,message_id,type\n"
                     "cy,anon-cy,identify,2024-01-03T00:00:00Z,product,m3,identify\n")
    with ws:
        ws.ingest([str(first)])
        ws.ingest([str(merge)], refresh=False)
        result = ws.refresh()
        assert result.stitch.journey_events == "updated"
        person = result.state.levels[0]
        assert person.looked_at == ("named" if kept else "all")
        assert (person.mode, person.changed_units) == ("fold", 2)  # a:anon-cy left, u:cy came
        if kept:  # folded by both levels, the moves are not kept
            assert ws.con.execute("SELECT count(*) FROM journey_moves").fetchall()[0][0] == 0
        folded = {level: state_rows(ws.con, level) for level in LEVELS}
        fold(ws.con, ws.definition, rebuild=True)
        assert folded == {level: state_rows(ws.con, level) for level in LEVELS}
