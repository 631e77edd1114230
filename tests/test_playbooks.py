"""Playbooks (docs/playbooks.md): the definition validates with key paths and suggestions; the evaluator's
entries equal a plain-Python reference on random logs, evaluated once or after every load; the watermark, the
secrets check, dry-run, explain and backtest through the real CLI; the demo's three playbooks."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import invoke_cli, invoke_json
from journeymap.act.evaluate import evaluate
from journeymap.errors import DefinitionError
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.load import parse_text
from journeymap.workspace import Workspace

PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])
BASE = dt.datetime(2025, 1, 1)

DEFINITION = {
    "analysis": {"level": "person"},
    "stages": [{"id": "trial", "name": "Trial", "entry": {"event": "signed_up"}, "owner": "Growth"},
               {"id": "active", "name": "Active", "entry": {"event": ["used", "connected"]}, "owner": "Product"}],
    "personas": [{"id": "everyone", "name": "Everyone", "traits": {"plan": {"exists": False}}}],
}


def definition_with(*playbooks: dict) -> dict:
    return {**DEFINITION, "playbooks": list(playbooks)}


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as info:
        parse_text(yaml.safe_dump(data, sort_keys=False))
    return info.value.problems


# -- the definition ----------------------------------------------------------------------------------------------

def test_unknown_stage_persona_and_survey_fail_at_load_with_the_key_and_a_suggestion():
    found = dict(problems_of(definition_with({
        "id": "nudge", "name": "Nudge", "entry": {"stage_entered": "actve"},
        "audience": {"persona": ["everyon"]}, "goal": {"stage": "trail"},
        "owner": {"stage": "current", "fallback": "CS"}})))
    assert found["playbooks[0].entry.stage_entered"] == "unknown stage 'actve'; did you mean 'active'?"
    assert found["playbooks[0].audience.persona[0]"] == "unknown persona 'everyon'; did you mean 'everyone'?"
    assert found["playbooks[0].goal.stage"] == "unknown stage 'trail'; did you mean 'trial'?"


def test_a_webhook_url_that_is_not_http_and_two_entry_kinds_fail_at_load():
    found = dict(problems_of(definition_with({
        "id": "hook", "name": "Hook", "entry": {"event": "used", "stage_entered": "active"}, "owner": "CS",
        "actions": [{"kind": "webhook", "url": "ftp://example.com/x", "secret_env": "HOOK_SECRET"}]})))
    assert "exactly one of" in found["playbooks[0].entry"]
    assert found["playbooks[0].actions[0].url"].startswith("'ftp://example.com/x' is not an http(s) URL")


def test_the_owner_trait_is_checked_against_the_traits_the_mappings_declare():
    data = definition_with({"id": "p", "name": "P", "entry": {"event": "used"}, "owner": {"trait": "csn", "fallback": "CS"}})
    data["sources"] = {"crm": {"source": "crm", "fields": {"account_id": "id", "event": {"value": "synced"},
                                                            "ts": "at", "type": {"value": "group"}},
                               "traits": ["csm", "region"]}}
    assert dict(problems_of(data))["playbooks[0].owner.trait"] == "no source mapping copies a trait 'csn'; did you mean 'csm'?"


def test_playbooks_are_in_the_json_schema():
    schema = json.loads(invoke_cli("schema").stdout)
    assert schema["properties"]["playbooks"]["items"]["$ref"].endswith("/Playbook")
    assert {"entry", "owner", "actions", "holdout", "reentry"} <= set(schema["$defs"]["Playbook"]["properties"])


# -- random logs against a reference -----------------------------------------------------------------------------

def write_events(rows: list[tuple[str, str, dt.datetime]], path: Path, start: int) -> Path:
    lines = ["customer_id,event,ts,source,message_id"]
    lines += [f"{who},{event},{ts.isoformat()}Z,product,m{start + i}" for i, (who, event, ts) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def reference(events: list[tuple[str, str, dt.datetime]], visits: list[tuple], kind: str, within: dt.timedelta,
              cooldown: dt.timedelta, most: int | None, now: dt.datetime) -> set[tuple[str, int, dt.datetime]]:
    """The entries, from the event rows (and the stage visits: unit, stage, entered_at, left_at) alone: the
    candidates per unit, then the greedy cooldown and max entries."""
    out = set()
    for unit in {u for u, _, _ in events}:
        own = sorted((ts, e) for u, e, ts in events if u == unit)
        if kind == "event":
            cands = [ts for ts, e in own if e == "used"]
        elif kind == "absence":  # signed_up and no connected within `within`
            cands = [ts + within for ts, e in own if e == "signed_up" and ts + within <= now
                     and not any(e2 == "connected" and ts < t2 <= ts + within for t2, e2 in own)]
        elif kind == "stage":
            cands = [entered for u, stage, entered, _ in visits if u == unit and stage == "active"]
        else:  # stalled in trial beyond `within`
            cands = [entered + within for u, stage, entered, left in visits if u == unit and stage == "trial"
                     and entered + within <= now and (left is None or left > entered + within)]
        last, n = None, 0
        for c in sorted(set(cands)):
            if most is not None and n >= most:
                break
            if last is None or c >= last + cooldown:
                n += 1
                out.add((unit, n, c))
                last = c
    return out


event_rows = st.lists(st.tuples(st.sampled_from(["ann", "bob"]),
                                st.sampled_from(["signed_up", "used", "used", "connected", "signed_up"]),
                                st.integers(0, 24 * 12)), min_size=3, max_size=40)
"""Two persons with many events each: many candidates per unit, so cooldown and max entries decide."""


@settings(max_examples=20, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=event_rows, kind=st.sampled_from(["event", "absence", "stage", "stalled"]), cooldown_h=st.integers(1, 24 * 3),
       most=st.sampled_from([1, 3, None]), within_h=st.integers(1, 24 * 3), cuts=st.sets(st.integers(1, 24 * 12), max_size=3))
def test_entries_equal_the_reference_evaluated_once_or_after_every_load(tmp_path_factory, raw, kind, cooldown_h,
                                                                          most, within_h, cuts):
    """Loads arrive in time order, cut between distinct hours; the entries stored after evaluating at every
    refresh equal the reference over all events, and equal one evaluation over everything."""
    entry = {"event": {"event": {"event": "used"}}, "stage": {"stage_entered": "active"},
             "absence": {"absence": {"did": "signed_up", "not_did": "connected", "within": f"{within_h}h"}},
             "stalled": {"stalled": {"stage": "trial", "beyond": f"{within_h}h"}}}[kind]
    playbook = {"id": "p", "name": "P", "entry": entry, "reentry": {"cooldown": f"{cooldown_h}h", "max_entries": most},
                "owner": {"stage": "current", "fallback": "nobody"}, "actions": [{"kind": "task", "title": "{unit}"}]}
    rows = sorted((who, event, BASE + dt.timedelta(hours=h)) for who, event, h in raw)
    base = tmp_path_factory.mktemp("pb")
    edges = [0, *sorted(cuts), 24 * 13]
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(definition_with(playbook)))
        n = 0
        for lo, hi in zip(edges, edges[1:], strict=False):
            batch = [r for r in rows if BASE + dt.timedelta(hours=lo) <= r[2] < BASE + dt.timedelta(hours=hi)]
            if batch:
                ws.ingest([str(write_events(batch, base / f"b{lo}.csv", n))], max_reject_rate=None)
                n += len(batch)
        events = ws.con.execute("SELECT unit_id, event, ts FROM state_events_person").fetchall()
        now = max(ts for _, _, ts in events)
        visits = ws.con.execute("SELECT unit_id, stage, entered_at, left_at FROM state_visits_person").fetchall()
        want = reference(events, visits, kind, dt.timedelta(hours=within_h), dt.timedelta(hours=cooldown_h), most, now)
        stored = set(ws.con.execute("SELECT unit_id, entry, entered_at FROM act_entries").fetchall())
        assert stored == want
        ws.con.execute("DELETE FROM act_outbox")
        ws.con.execute("DELETE FROM act_entries")
        evaluate(ws.con, ws.definition)
        assert set(ws.con.execute("SELECT unit_id, entry, entered_at FROM act_entries").fetchall()) == want
        evaluate(ws.con, ws.definition)  # nothing new: stored entries are never recorded twice
        assert ws.con.execute("SELECT count(*) FROM act_entries").fetchone()[0] == len(want)


# -- a small workspace: watermark, secrets, goals, CLI --------------------------------------------------------------

NUDGE = {"id": "nudge", "name": "Onboarding nudge",
         "entry": {"absence": {"did": "signed_up", "not_did": "connected", "within": "7d"}},
         "goal": {"event": "connected"}, "owner": {"stage": "current", "fallback": "CS"},
         "actions": [{"kind": "task", "title": "Call {unit}", "due": "2d"}]}


def small_workspace(path: Path, *playbooks: dict) -> Workspace:
    ws = Workspace.init(path)
    (ws.path / "journeymap.yml").write_text(json.dumps(definition_with(*(playbooks or (NUDGE,)))))
    ws.__dict__.pop("definition", None)
    return ws


def history(path: Path) -> Path:
    """ann signs up and never connects; bob connects on day 2; cy signs up, connects on day 10 (after the window)."""
    return write_events([("ann", "signed_up", BASE), ("bob", "signed_up", BASE),
                         ("bob", "connected", BASE + dt.timedelta(days=2)), ("cy", "signed_up", BASE),
                         ("cy", "connected", BASE + dt.timedelta(days=10)),
                         ("dee", "used", BASE + dt.timedelta(days=30))], path, 0)


def test_history_is_recorded_without_actions_and_later_entries_are_sent(tmp_path):
    with small_workspace(tmp_path / "ws") as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))])
        run = ws.last_refresh.act.playbooks[0]
        assert (run.entered, run.backfill, run.sent) == (2, 2, 0)
        rows = ws.con.execute("SELECT unit_id, sent, exit_reason, exited_at FROM act_entries ORDER BY unit_id").fetchall()
        assert rows == [("u:ann", False, None, None), ("u:cy", False, "goal", BASE + dt.timedelta(days=10))]
        assert ws.con.execute("SELECT count(*) FROM act_outbox").fetchone()[0] == 0
        later = BASE + dt.timedelta(days=40)
        ws.ingest([str(write_events([("eve", "signed_up", later), ("dee", "used", later + dt.timedelta(days=8))],
                                    tmp_path / "b.csv", 100))])
        run = ws.last_refresh.act.playbooks[0]
        assert (run.entered, run.backfill, run.sent, run.outbox) == (1, 0, 1, 1)
        key, kind, owner, payload = ws.con.execute("SELECT key, kind, owner, payload FROM act_outbox").fetchone()
        assert (key, kind, owner) == ("nudge/u:eve/1/0", "task", "Growth")  # the owner of the stage eve is in
        assert json.loads(payload)["title"] == "Call u:eve"
        assert json.loads(payload)["due_at"] is not None
        ws.refresh()
        assert ws.con.execute("SELECT count(*) FROM act_outbox").fetchone()[0] == 1  # never twice


def test_a_webhook_without_its_secret_records_nothing_and_says_which_variable(tmp_path, monkeypatch):
    hook = {**NUDGE, "actions": [{"kind": "webhook", "url": "https://example.com/hook", "secret_env": "PB_TEST_SECRET"}]}
    monkeypatch.delenv("PB_TEST_SECRET", raising=False)
    with small_workspace(tmp_path / "ws", hook) as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))])
        run = ws.last_refresh.act.playbooks[0]
        assert "'PB_TEST_SECRET'" in run.error and "not set" in run.error
        assert ws.con.execute("SELECT count(*) FROM act_entries").fetchone()[0] == 0
        monkeypatch.setenv("PB_TEST_SECRET", "whsec_dGVzdA==")
        ws.refresh()
        assert ws.last_refresh.act.playbooks[0].error is None
        assert ws.con.execute("SELECT count(*) FROM act_entries").fetchone()[0] == 2


def test_dry_run_explain_and_backtest_through_the_cli(tmp_path):
    """The state folded, no playbook evaluated yet: a dry run lists everything and writes nothing."""
    from journeymap.state import refresh as fold_only

    with small_workspace(tmp_path / "ws") as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))], refresh=False)
        fold_only(ws.con, ws.definition)
    w = str(tmp_path / "ws")
    dry = invoke_json("act", "--dry-run", "-w", w)
    [p] = dry["playbooks"]
    assert (p["playbook"], p["entered"], p["sent"]) == ("nudge", 2, 0)
    assert {e["unit"] for e in p["entries"]} == {"u:ann", "u:cy"}
    ann = next(e for e in p["entries"] if e["unit"] == "u:ann")
    assert ann["reason"]["rule"] == "absence" and ann["reason"]["values"]["did"] == "signed_up"
    with Workspace(w) as ws:
        assert not ws.con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'act_entries'").fetchall()
    why = invoke_json("explain", "u:bob", "--playbook", "nudge", "-w", w)
    assert why["entered"] is False and why["failed_condition"] == "entry.absence"
    assert why["conditions"][0]["why_not"][0]["why"] == "not_did happened within 7d"
    yes = invoke_json("explain", "u:ann", "--playbook", "nudge", "-w", w)
    assert yes["entered"] and yes["entries"][0]["entered_at"] == "2025-01-08T00:00:00"
    early = invoke_json("explain", "u:ann", "--playbook", "nudge", "--at", "2025-01-05", "-w", w)
    assert early["entered"] is False and "window is not over" in early["conditions"][0]["why_not"][0]["why"]
    bt = invoke_json("act", "backtest", "--playbook", "nudge", "--from", "2025-01-01", "--to", "2025-02-28", "-w", w)
    assert bt["total"]["entered"] == 2 and bt["total"]["goal_reached"] == 1
    assert bt["weeks"][0]["week"] == "2025-01-06"
    # a period nobody entered in: zero counts, not an error (it was an internal error: an empty executemany)
    none = invoke_json("act", "backtest", "--playbook", "nudge", "--from", "2025-01-01", "--to", "2025-01-03", "-w", w)
    assert none["total"]["entered"] == 0 and none["weeks"] == []
    assert invoke_json("act", "--dry-run", "--playbook", "nudge", "-w", w)["playbooks"][0]["entered"] == 2
    refreshed = invoke_json("refresh", "-w", w)["act"]["playbooks"]
    assert [(p["playbook"], p["entered"], p["backfill"]) for p in refreshed] == [("nudge", 2, 2)]
    assert invoke_json("act", "--dry-run", "-w", w)["playbooks"][0]["entered"] == 0  # recorded: nothing new
    assert invoke_json("explain", "u:ann", "--playbook", "nudge", "-w", w)["stored_entries"][0]["sent"] is False
    bad = invoke_cli("act", "--dry-run", "--playbook", "nuge", "-w", w, check=False)
    assert bad.returncode == 2 and "did you mean 'nudge'?" in bad.stderr
    bad = invoke_cli("explain", "u:ann", "--playbook", "nudg", "-w", w, check=False)
    assert bad.returncode == 2 and "did you mean 'nudge'?" in bad.stderr
    bad = invoke_cli("explain", "u:an", "--playbook", "nudge", "-w", w, check=False)
    assert bad.returncode == 2 and "did you mean 'u:ann'?" in bad.stderr


def test_validate_warns_about_a_playbook_event_that_never_occurs(tmp_path):
    typo = {**NUDGE, "entry": {"absence": {"did": "signed_up", "not_did": "conected", "within": "7d"}}}
    with small_workspace(tmp_path / "ws", typo) as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))])
    out = invoke_json("validate", "-w", str(tmp_path / "ws"))
    [w] = [w for w in out["warnings"] if w["key"].startswith("playbooks")]
    assert w["key"] == "playbooks[0].entry.absence.not_did" and "connected" in w["suggestion"]


# -- the demo ----------------------------------------------------------------------------------------------------

def test_the_demos_three_playbooks_enter_plausible_numbers(ingested_demo):
    demo = ingested_demo(300, 7)
    with Workspace(demo.workspace) as ws:
        d: JourneyDefinition = ws.definition
        assert [p.id for p in d.playbooks] == ["onboarding_nudge", "risk_alert", "detractor_follow_up"]
        counts = dict(ws.con.execute("SELECT playbook, count(DISTINCT unit_id) FROM act_entries GROUP BY 1").fetchall())
        acquired = ws.con.execute("SELECT count(DISTINCT unit_id) FROM state_visits_account "
                                  "WHERE stage = 'acquisition'").fetchone()[0]
        owners = ws.con.execute("SELECT count(*) FILTER (WHERE owner IS NULL) FROM act_entries").fetchone()[0]
    assert 0.05 * acquired < counts["onboarding_nudge"] < 0.8 * acquired
    assert counts["detractor_follow_up"] > 0 and counts["risk_alert"] > 0
    assert owners == 0


# -- every entry kind on a hand-written log ----------------------------------------------------------------------

KINDS = {
    **DEFINITION,
    "stages": [*DEFINITION["stages"], {"id": "churned", "name": "Churned", "entry": {"event": "cancelled"},
                                       "terminal": True, "kind": "churn"}],
    "surveys": [{"id": "nps", "kind": "nps", "match": "nps", "score": "score"}],
    "revenue": {"match": {"event": "paid"}, "mrr": "mrr", "churn": "cancelled", "plan": "plan", "seats": "seats"},
}


def day(n: float) -> dt.datetime:
    return BASE + dt.timedelta(days=n)


def kinds_log(path: Path) -> Path:
    """ann: signs up, uses on day 1, pays 200 (pro, 10 seats) on day 2 and 80 (4 seats) on day 20, NPS 3 on day 5, a failed payment on day 6 (CSM Zoe);
    bob: signs up, pays 50 (basic) on day 1, NPS 9 on day 3, never leaves trial; cy: uses 8 times in its first
    week, once in the second; dee: one use on day 30 (the data's end)."""
    rows = [("ann", "identify", "identify", day(0), {}, {"csm": "Zoe"}), ("ann", "signed_up", "track", day(0), {}, None),
            ("ann", "used", "track", day(1), {}, None), ("ann", "paid", "track", day(2), {"mrr": 200, "plan": "pro", "seats": 10}, None),
            ("ann", "paid", "track", day(20), {"mrr": 80, "plan": "pro", "seats": 4}, None),
            ("ann", "nps", "track", day(5), {"score": 3}, None), ("ann", "payment_failed", "track", day(6), {}, None),
            ("bob", "signed_up", "track", day(0), {}, None), ("bob", "paid", "track", day(1), {"mrr": 50, "plan": "basic"}, None),
            ("bob", "nps", "track", day(3), {"score": 9}, None),
            *[("cy", "used", "track", day(0.1 + 0.8 * i), {}, None) for i in range(8)], ("cy", "used", "track", day(10), {}, None),
            ("dee", "used", "track", day(30), {}, None)]
    lines = ["customer_id,event,type,ts,source,message_id,properties,traits"]
    for i, (who, event, kind, ts, props, traits) in enumerate(rows):
        lines.append(",".join([who, event, kind, ts.isoformat() + "Z", "product", f"k{i}",
                               '"' + json.dumps(props).replace('"', '""') + '"' if props else "",
                               '"' + json.dumps(traits).replace('"', '""') + '"' if traits else ""]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def kinds_workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("kinds")
    ws = Workspace.init(base / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(KINDS))
    ws.__dict__.pop("definition", None)
    with ws:
        ws.ingest([str(kinds_log(base / "log.csv"))])
    return ws.path


@pytest.mark.parametrize(("entry", "audience", "want"), [
    ({"stage_entered": "active"}, {}, {("u:ann", day(1)), ("u:cy", day(0.1)), ("u:dee", day(30))}),
    ({"stalled": {"stage": "trial", "beyond": "10d"}}, {}, {("u:bob", day(10))}),
    ({"survey": {"survey": "nps", "answer": "detractor"}}, {}, {("u:ann", day(5))}),
    ({"survey": {"survey": "nps", "answer": "promoter"}}, {}, {("u:bob", day(3))}),
    ({"survey": {"survey": "nps", "score": {"gte": 0}}}, {"mrr": {"gte": 100}}, {("u:ann", day(5))}),
    ({"survey": {"survey": "nps", "score": {"gte": 0}}}, {"plan": "basic"}, {("u:bob", day(3))}),
    ({"survey": {"survey": "nps", "score": {"gte": 0}}}, {"traits": {"csm": "Zoe"}}, {("u:ann", day(5))}),
    ({"failed_payment": True}, {}, {("u:ann", day(6))}),
    ({"seats_drop": {"fraction": 0.5, "window": "14d"}}, {}, {("u:ann", day(20))}),
    ({"seats_drop": {"fraction": 0.5, "window": "30d"}}, {}, set()),  # nothing stated 30 days before day 20
    ({"usage_drop": {"fraction": 0.5, "window": "7d", "usage": {"event": "used"}}}, {}, {("u:cy", day(14.1))}),  # first use + 2 windows
])
def test_each_entry_kind_and_audience_filter(kinds_workspace, entry, audience, want):
    from journeymap.act.evaluate import new_entries
    from journeymap.journey.load import parse_definition

    playbook = {"id": "k", "name": "K", "entry": entry, "audience": audience, "owner": {"trait": "csm", "fallback": "CS"}}
    definition = parse_definition({**KINDS, "playbooks": [playbook]})
    with Workspace(kinds_workspace) as ws:
        rows = new_entries(ws.con, definition, definition.playbooks[0], day(30), seeded=False)
    assert {(r["unit_id"], r["ts"]) for r in rows} == want
    assert {r["owner"] for r in rows if r["unit_id"] == "u:ann"} <= {"Zoe"}
    assert {r["owner"] for r in rows if r["unit_id"] != "u:ann"} <= {"CS"}


def test_an_unknown_health_band_fails_at_load():
    data = {**KINDS, "health": {"components": {"recency": {"weight": 1}}},
            "playbooks": [{"id": "h", "name": "H", "entry": {"health_band": {"to": ["rd"]}}, "owner": "CS"}]}
    assert dict(problems_of(data))["playbooks[0].entry.health_band.to[0]"] == "unknown health band 'rd'; did you mean 'red'?"


def test_the_servers_loader_evaluates_the_playbooks_after_each_load(tmp_path):
    """Events sent to the tracking API are loaded, stitched and folded by the server's loader, which then
    evaluates the playbooks: the entry is in the store once the server has stopped."""
    from conftest import serve_in_process

    with small_workspace(tmp_path / "ws") as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))])  # the watermark: day 30
    token = invoke_json("keys", "create", "--kind", "write", "--name", "app", "--workspace", str(tmp_path / "ws"))["token"]
    later = BASE + dt.timedelta(days=40)
    batch = [{"type": "track", "userId": who, "event": event, "timestamp": ts.isoformat() + "Z", "messageId": f"s{i}"}
             for i, (who, event, ts) in enumerate([("fay", "signed_up", later), ("dee", "used", later + dt.timedelta(days=9))])]
    with serve_in_process(tmp_path / "ws", segment_seconds=0.1, stitch_seconds=0.1) as http:
        assert http.post("/v1/batch", json={"batch": batch, "writeKey": token}).status_code == 200
    with Workspace(tmp_path / "ws") as ws:
        rows = ws.con.execute("SELECT unit_id, entered_at, sent FROM act_entries WHERE unit_id = 'u:fay'").fetchall()
        assert rows == [("u:fay", later + dt.timedelta(days=7), True)]
        assert ws.con.execute("SELECT key FROM act_outbox").fetchall() == [("nudge/u:fay/1/0",)]


def test_health_turning_red_is_sent_and_the_first_evaluations_reds_are_only_recorded(demo_copy):
    """At the demo's one refresh, the accounts red then are the risk alert's starting point (recorded, not sent);
    accounts that were green at the previous evaluation and are red now enter and are sent."""
    from journeymap.act.outbox import in_holdout

    demo = demo_copy(300, 7)
    with Workspace(demo.workspace) as ws:
        first = ws.con.execute("SELECT count(*), count(*) FILTER (WHERE sent) FROM act_entries "
                               "WHERE playbook = 'risk_alert'").fetchone()
        assert first[0] > 0 and first[1] == 0
        turned = [r[0] for r in ws.con.execute("SELECT unit_id FROM act_health WHERE band = 'red' ORDER BY unit_id "
                                               "LIMIT 4").fetchall()]
        ws.con.execute("UPDATE act_health SET band = 'green' WHERE unit_id IN (SELECT unnest(?))", [turned])
        ws.con.execute("DELETE FROM meta WHERE key = 'act.health.computed_from'")  # as if events had come since
        ws.con.execute("DELETE FROM act_outbox WHERE playbook = 'risk_alert' AND unit_id IN (SELECT unnest(?))", [turned])
        ws.con.execute("DELETE FROM act_entries WHERE playbook = 'risk_alert' AND unit_id IN (SELECT unnest(?))", [turned])
        report = evaluate(ws.con, ws.definition)
        run = next(p for p in report.playbooks if p.playbook == "risk_alert")
        assert run.entered == len(turned)
        rows = ws.con.execute("SELECT unit_id, sent, owner FROM act_entries WHERE playbook = 'risk_alert' "
                              "AND unit_id IN (SELECT unnest(?)) ORDER BY unit_id", [turned]).fetchall()
        assert [(u, s) for u, s, _ in rows] == [(u, not in_holdout("risk_alert", u, 0.1)) for u in turned]
        assert all(owner for _, _, owner in rows)
        assert evaluate(ws.con, ws.definition).playbooks[1].entered == 0  # still red: no change, no entry


def test_a_backtest_of_a_score_entry_says_the_scores_have_no_history(demo_copy):
    """The risk alert enters on health bands, kept as of the latest refresh only: its replay finds none of the
    entries the refresh recorded, and says so with their count instead of printing 0 entries alone."""
    from journeymap.act.backtest import backtest

    demo = demo_copy(300, 7)
    with Workspace(demo.workspace) as ws:
        (recorded,) = ws.con.execute("SELECT count(*) FROM act_entries WHERE playbook = 'risk_alert'").fetchone()
        risk = backtest(ws.con, ws.definition, "risk_alert")
        assert recorded > 0 and risk["total"]["entered"] == 0
        assert risk["note"].startswith("entry.health_band reads the latest refresh's scores")
        assert f"{recorded:,} entries were recorded" in risk["note"]
        nudge = backtest(ws.con, ws.definition, "onboarding_nudge")  # events have history: replayed, no note
        assert nudge["total"]["entered"] > 0 and nudge["note"] is None


def test_the_bands_read_from_the_stored_health_equal_those_scored_from_features_or_computed_alone(demo_copy):
    """The evaluation reads the bands the refresh stored with the churn scores (state_health, what `journeymap
    health` shows); scored from the features the risk scoring handed over, or computed by health.prepare alone
    (no current stored health), they are the same bands, health and dates."""
    from journeymap.act import health
    from journeymap.insights.risk.health import health_report

    demo = demo_copy(300, 7)
    with Workspace(demo.workspace) as ws:
        ws.con.execute("DELETE FROM meta WHERE key = 'act.health.computed_from'")  # as if events had come since
        result = ws.refresh()
        at, now = result.risk.features
        assert result.risk.model in ("reused", "refitted") and len(now) == result.risk.accounts > 0
        assert "features" not in result.risk.to_dict()

        def bands(*features) -> list[tuple]:
            ws.con.execute("DELETE FROM meta WHERE key = 'act.health.computed_from'")
            health.prepare(ws.con, ws.definition, *features)
            return ws.con.execute("SELECT * FROM _act_health_now ORDER BY unit_id").fetchall()

        stored = bands()
        shown = health_report(ws.engine, ws.definition)
        ((summary,),) = ws.con.execute("SELECT value FROM meta WHERE key = 'health.summary'").fetchall()
        ws.con.execute("DELETE FROM meta WHERE key = 'health.summary'")  # no stored health: score or compute
        handed, alone = bands((at, now)), bands()
    assert stored == handed == alone and len(alone) == len(now)
    assert {band for _, band, *_ in alone} >= {"red"} and shown["scores"] == "stored"
    assert sorted((a["unit_id"], a["band"], a["health"]) for a in shown["accounts"]) == [r[:3] for r in stored]
    assert json.loads(summary)["at"] == at.isoformat()


def test_a_refresh_with_every_event_gone_evaluates_the_bands_as_empty(demo_copy):
    """Every event deleted (every load unloaded): the refresh's health bands score no account (they raised on the
    missing latest event before), and every playbook is evaluated on nothing."""
    demo = demo_copy(300, 7)
    with Workspace(demo.workspace) as ws:
        ws.con.execute("DELETE FROM events")
        result = ws.refresh()
        assert ws.con.execute("SELECT count(*) FROM _act_health_now").fetchone()[0] == 0
        assert result.act is not None and all(p.entered == 0 for p in result.act.playbooks)


def test_erasing_a_person_removes_their_entries_and_firings(tmp_path):
    with small_workspace(tmp_path / "ws") as ws:
        ws.ingest([str(history(tmp_path / "a.csv"))])
        ws.ingest([str(write_events([("ann", "used", BASE + dt.timedelta(days=60))], tmp_path / "b.csv", 50))])
        ws.con.execute("DELETE FROM act_entries WHERE unit_id = 'u:ann'")  # ann enters again, now sent: an outbox row
        ws.con.execute("DELETE FROM meta WHERE key = 'act.nudge.watermark'")
        ws.con.execute("INSERT INTO meta VALUES ('act.nudge.watermark', '2024-01-01T00:00:00')")
        ws.refresh()
        assert ws.con.execute("SELECT count(*) FROM act_outbox WHERE unit_id = 'u:ann'").fetchone()[0] == 1
        out = ws.erase(person="ann")
        assert out["removed"]["act_entries"] == 1 and out["removed"]["act_outbox"] == 1
        assert ws.con.execute("SELECT count(*) FROM act_entries WHERE unit_id = 'u:ann'").fetchone()[0] == 0
        assert ws.con.execute("SELECT count(*) FROM act_outbox WHERE unit_id = 'u:ann'").fetchone()[0] == 0
        assert ws.con.execute("SELECT count(*) FROM act_entries WHERE unit_id = 'u:cy'").fetchone()[0] == 1


def test_seats_drop_needs_revenue_seats():
    data = {**DEFINITION, "playbooks": [{"id": "s", "name": "S", "entry": {"seats_drop": {"fraction": 0.3}}, "owner": "CS"}]}
    assert dict(problems_of(data))["playbooks[0].entry.seats_drop"].startswith("needs revenue.seats")


def test_explain_names_the_audience_filter_that_kept_a_unit_out(kinds_workspace):
    from journeymap.act.explain import explain
    from journeymap.journey.load import parse_definition

    playbook = {"id": "k", "name": "K", "entry": {"survey": {"survey": "nps", "score": {"gte": 0}}},
                "audience": {"mrr": {"gte": 100}}, "owner": "CS"}
    definition = parse_definition({**KINDS, "playbooks": [playbook]})
    with Workspace(kinds_workspace) as ws:
        bob = explain(ws.con, definition, "k", "u:bob")
        ann = explain(ws.con, definition, "k", "u:ann")
    assert (bob["entered"], bob["failed_condition"]) == (False, "audience.mrr.gte")
    assert bob["conditions"][1]["values"]["mrr"] == 50.0 and bob["conditions"][0]["holds"]
    assert ann["entered"] and ann["entries"][0]["reason"]["values"]["score"] == 3.0


def test_email_to_the_owner_goes_to_the_address_under_owners_and_validate_names_owners_without_one(demo_copy):
    """The demo's CRM owners are names (its CSMs and a self-serve queue): an `email` action `to: owner` needs
    their addresses under `owners:`. validate names the owners without one (read here from the CRM export
    itself); once given, the outbox rows carry the addresses; an owner still without one is refused by name."""
    import csv

    from journeymap.act import mail

    demo = demo_copy(300, 7)
    path = demo.workspace / "journeymap.yml"
    spec = yaml.safe_load(path.read_text())
    follow_up = next(p for p in spec["playbooks"] if p["id"] == "detractor_follow_up")
    follow_up["actions"].append({"kind": "email", "to": "owner", "subject": "NPS detractor at {unit}"})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with (demo.workspace / "data" / "crm_accounts.csv").open(newline="") as fh:
        crm_owners = {row["owner"] for row in csv.DictReader(fh) if row["owner"]}
    fallback = follow_up["owner"]["fallback"]
    key = f"playbooks[{spec['playbooks'].index(follow_up)}].actions[{len(follow_up['actions']) - 1}].to"
    with Workspace(demo.workspace) as ws:
        (finding,) = [f for f in ws.check() if f["key"] == key]
        named = crm_owners | {fallback}
        assert f"{len(named)} of the {len(named)} owners it can name have no email address" in finding["message"]
        assert "owners:" in finding["suggestion"]
    # every owner but one gets an address; the one left is said, and its emails are refused by name
    left = sorted(crm_owners)[0]
    addresses = {name: f"owner{i}@lumen.example" for i, name in enumerate(sorted(named)) if name != left}
    spec["owners"] = addresses
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with Workspace(demo.workspace) as ws:
        (finding,) = [f for f in ws.check() if f["key"] == key]
        assert f"1 of the {len(named)} owners it can name has no email address: {left!r}" in finding["message"]
        ws.con.execute("DELETE FROM act_outbox WHERE playbook = 'detractor_follow_up'")
        ws.con.execute("DELETE FROM act_entries WHERE playbook = 'detractor_follow_up'")
        ws.con.execute("DELETE FROM meta WHERE key = 'act.detractor_follow_up.watermark'")
        ws.con.execute("INSERT INTO meta VALUES ('act.detractor_follow_up.watermark', '1970-01-01T00:00:00')")
        evaluate(ws.con, ws.definition)
        rows = ws.con.execute("""SELECT e.owner, o.payload FROM act_outbox o JOIN act_entries e USING (playbook,
                                 unit_id, entry) WHERE o.playbook = 'detractor_follow_up' AND o.kind = 'email'""").fetchall()
    assert rows, "the detractors entered and were sent"
    for owner, payload in rows:
        to = json.loads(payload)["to"]
        assert to == [addresses.get(owner, owner)]
        refused = mail.check(json.loads(payload), {})
        if owner == left:
            assert isinstance(refused, mail.Refused) and repr(left) in refused.error and "owners:" in refused.error


def test_a_negative_comment_on_a_theme_enters_the_units_a_direct_reading_of_the_texts_finds(demo_copy, monkeypatch):
    """The demo's customers complain about sharing dashboards. A `comment` entry on that theme enters exactly
    the accounts whose texts (the voice sources) mention it as a whole word and read negative to VADER, each at
    its first such text: recomputed here with Python's re and vaderSentiment over the same texts. validate says
    when a theme is in no text, with the closest word the texts use."""
    import re

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from journeymap.act import comments
    from journeymap.act.comments import prepare
    from journeymap.engine.backends import duckdb_engine
    from journeymap.insights.voice.text_state import stored_texts
    from journeymap.insights.voice.texts import text_rows
    from journeymap.state.read import current_tables

    demo = demo_copy(300, 7)
    path = demo.workspace / "journeymap.yml"
    spec = yaml.safe_load(path.read_text())
    spec["playbooks"].append({"id": "sharing_complaint", "name": "Dashboard sharing complaint",
                              "entry": {"comment": {"theme": ["dashboard", "dashboards", "share", "sharing"],
                                                    "sentiment": "negative"}},
                              "owner": "Customer success", "actions": [{"kind": "task", "title": "Call {unit}"}]})
    spec["playbooks"].append({"id": "typo", "name": "Typo", "entry": {"comment": {"theme": ["dashbaord"]}},
                              "owner": "Customer success", "actions": [{"kind": "task", "title": "x"}]})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    vader = SentimentIntensityAnalyzer()
    word = re.compile(r"(^|\W)(dashboard|dashboards|share|sharing)(\W|$)", re.IGNORECASE)
    with Workspace(demo.workspace) as ws:
        report = evaluate(ws.con, ws.definition, only=["sharing_complaint"])
        assert report.playbooks[0].error is None
        engine = duckdb_engine(ws.con)
        engine.journey = current_tables(ws.con, ws.definition)
        texts = text_rows(engine, ws.definition, "account").to_pylist()
        first: dict[str, tuple] = {}
        for t in texts:
            if word.search(t["text"]) and vader.polarity_scores(t["text"])["compound"] <= -0.05:
                first[t["unit_id"]] = min(first.get(t["unit_id"], (t["ts"], t["seq"])), (t["ts"], t["seq"]))
        got = dict(ws.con.execute("SELECT unit_id, entered_at FROM act_entries WHERE playbook = 'sharing_complaint'")
                   .fetchall())
        assert len(first) >= 5, "the demo has complaints about sharing dashboards"
        assert got == {u: ts for u, (ts, _) in first.items()}
        detail = json.loads(ws.con.execute("SELECT reason FROM act_entries WHERE playbook = 'sharing_complaint' "
                                           "LIMIT 1").fetchone()[0])["values"]
        assert detail["theme"] in ("dashboard", "dashboards", "share", "sharing") and detail["sentiment"] <= -0.05 and detail["text"]
        # scored once: a second evaluation scores nothing new
        assert prepare(ws.con, ws.definition, ["account"]) == 0
        # validate reads the texts just folded, and finds what it finds reading them from the journey state
        assert stored_texts(engine, ws.definition, "account") is not None
        (finding,) = [f for f in ws.check() if f["key"].endswith("entry.comment.theme")]
        with monkeypatch.context() as m:
            m.setattr(comments, "stored_texts", lambda *_: None)
            assert [f for f in ws.check() if f["key"].endswith("entry.comment.theme")] == [finding]
    assert finding["key"] == f"playbooks[{len(spec['playbooks']) - 1}].entry.comment.theme"
    assert "no customer text mentions 'dashbaord'" in finding["message"] and "'dashboard'" in finding["suggestion"]
