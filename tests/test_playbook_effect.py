"""A playbook's measured effect (docs/playbooks.md, "Measured effect"): the stored effect of a small workspace
equals a brute-force count over its raw events with statsmodels' intervals; history is never measured; the
interval arithmetic against statsmodels; the demo's planted nudge effect (truth/playbooks.json) recovered within
its interval."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from journeymap.act import effect
from journeymap.act.outbox import in_holdout
from journeymap.workspace import Workspace

BASE = dt.datetime(2025, 1, 1)
WITHIN, WINDOW = dt.timedelta(days=7), dt.timedelta(days=14)

DEFINITION = {
    "analysis": {"level": "person"},
    "stages": [{"id": "trial", "name": "Trial", "entry": {"event": "signed_up"}, "owner": "Growth"},
               {"id": "active", "name": "Active", "entry": {"event": ["used", "connected"]}, "owner": "Product"},
               {"id": "churned", "name": "Churned", "entry": {"event": "cancelled"}, "terminal": True, "kind": "churn"}],
    "revenue": {"match": {"event": "paid"}, "mrr": "mrr", "churn": "cancelled"},
    "playbooks": [{"id": "nudge", "name": "Nudge", "started": "2025-01-01",
                   "entry": {"absence": {"did": "signed_up", "not_did": "connected", "within": "7d"}},
                   "goal": {"event": "connected", "within": "14d"}, "exit": {"stage": "churned"},
                   "holdout": 0.3, "owner": "CS", "actions": [{"kind": "task"}]}],
}


def random_log(seed: int, people: int) -> list[tuple[str, str, dt.datetime, dict]]:
    """People signing up over 60 days; some pay, some connect (late ones too: the goal), some cancel."""
    rnd = random.Random(seed)
    rows = []
    for i in range(people):
        who, t0 = f"p{i}", BASE + dt.timedelta(hours=rnd.uniform(0, 60 * 24))
        rows.append((who, "signed_up", t0, {}))
        if rnd.random() < 0.6:
            rows.append((who, "paid", t0 + dt.timedelta(days=rnd.uniform(0, 20)), {"mrr": rnd.choice([50, 100, 300])}))
        if rnd.random() < 0.3:
            rows.append((who, "paid", t0 + dt.timedelta(days=rnd.uniform(5, 30)), {"mrr": rnd.choice([0, 80, 500])}))
        if rnd.random() < 0.6:
            rows.append((who, "connected", t0 + dt.timedelta(days=rnd.uniform(0, 30)), {}))
        if rnd.random() < 0.2:
            rows.append((who, "cancelled", t0 + dt.timedelta(days=rnd.uniform(3, 40)), {}))
    rows.append(("last", "used", BASE + dt.timedelta(days=75), {}))  # the data's end
    return rows


def write(rows, path: Path) -> Path:
    lines = ["customer_id,event,ts,source,message_id,properties"]
    for i, (who, event, ts, props) in enumerate(rows):
        lines.append(",".join([who, event, ts.isoformat() + "Z", "product", f"m{i}",
                               '"' + json.dumps(props).replace('"', '""') + '"' if props else ""]))
    path.write_text("\n".join(lines) + "\n")
    return path


def brute_force(rows, now: dt.datetime) -> list[tuple[bool, bool, bool, float]]:
    """(holdout, goal, churned, mrr change) per measured entry, from the raw rows alone."""
    out = []
    for who in sorted({r[0] for r in rows if r[0] != "last"}):
        own = sorted((ts, e, p) for u, e, ts, p in rows if u == who)
        signed = next(ts for ts, e, _ in own if e == "signed_up")
        if any(e == "connected" and signed < ts <= signed + WITHIN for ts, e, _ in own):
            continue
        entered = signed + WITHIN
        end = entered + WINDOW
        if end > now:
            continue
        goal_at, churn_at = (min((ts for ts, e, _ in own if e == name and ts > entered), default=None)
                             for name in ("connected", "cancelled"))
        goal = goal_at is not None and goal_at <= end and (churn_at is None or goal_at < churn_at)
        churned = churn_at is not None and churn_at <= end
        pays = [(ts, 0.0 if e == "cancelled" else float(p["mrr"])) for ts, e, p in own if e in ("paid", "cancelled")]
        start, final = ([m for ts, m in pays if ts <= at][-1:] or [0.0] for at in (entered, end))
        out.append((in_holdout("nudge", f"u:{who}", 0.3), goal, churned, final[0] - start[0]))
    return out


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    base = tmp_path_factory.mktemp("effect")
    rows = random_log(3, 400)
    ws = Workspace.init(base / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    ws.__dict__.pop("definition", None)
    with ws:
        ws.ingest([str(write(rows, base / "log.csv"))])
        got = effect.stored(ws.con)["nudge"]
        now = ws.con.execute("SELECT max(ts) FROM state_events_person").fetchone()[0]
    return rows, got, now


def test_the_stored_effect_equals_a_brute_force_count_with_statsmodels_intervals(measured):
    rows, got, now = measured
    want = brute_force(rows, now)
    treated, held = [w for w in want if not w[0]], [w for w in want if w[0]]
    assert got["measured"] == len(want) and len(held) > 10 and len(treated) > 10
    for key, col in (("goal", 1), ("churn", 2)):
        x_t, x_h = sum(w[col] for w in treated), sum(w[col] for w in held)
        side = got[key]
        assert (side["treated"]["n"], side["treated"]["reached"]) == (len(treated), x_t)
        assert (side["holdout"]["n"], side["holdout"]["reached"]) == (len(held), x_h)
        lo, hi = confint_proportions_2indep(x_t, len(treated), x_h, len(held), method="newcomb", compare="diff")
        assert side["difference"] == pytest.approx(x_t / len(treated) - x_h / len(held))
        assert (side["ci_low"], side["ci_high"]) == pytest.approx((lo, hi), abs=1e-9)
    a, b = [w[3] for w in treated], [w[3] for w in held]
    lo, hi = CompareMeans(DescrStatsW(a), DescrStatsW(b)).tconfint_diff(usevar="unequal")
    assert got["mrr"]["difference"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert (got["mrr"]["ci_low"], got["mrr"]["ci_high"]) == pytest.approx((lo, hi), rel=1e-9)


def test_a_small_holdout_is_too_small_to_tell_and_says_how_many_entries_are_needed(measured):
    _, got, _ = measured
    goal = got["goal"]
    assert goal["too_small"] and goal["verdict"] == "too small to tell"  # about 30 held out: an interval of ±20 points
    assert goal["needed"]["entries"] > got["measured"] and "too small to tell" in goal["text"]


def test_history_is_not_measured(tmp_path):
    """Without `started`, the first evaluation's entries are history: recorded, never sent, never measured."""
    definition = json.loads(json.dumps(DEFINITION))
    del definition["playbooks"][0]["started"]
    ws = Workspace.init(tmp_path / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(definition))
    ws.__dict__.pop("definition", None)
    with ws:
        ws.ingest([str(write(random_log(3, 60), tmp_path / "log.csv"))])
        got = effect.stored(ws.con)["nudge"]
        entries = ws.con.execute("SELECT count(*), count(*) FILTER (WHERE live) FROM act_entries").fetchone()
    assert entries[0] > 0 and entries[1] == 0
    assert got["measured"] == 0 and "no measured entries" in got["note"]
    assert got["volume"]["entries"] == entries[0]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(30, 100, 8, 40), (0, 50, 3, 20), (50, 50, 1, 30), (7, 9, 2, 11)])
def test_newcombe_equals_statsmodels(x1, n1, x2, n2):
    d, lo, hi = effect.newcombe(x1, n1, x2, n2)
    assert (lo, hi) == pytest.approx(confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff"))


def test_entries_needed_gives_the_power_asked_for():
    """The sample the power calculation asks for, simulated: a 10-point change is found about 80% of the time."""
    total, held = effect.entries_needed(0.2, 0.25)
    rnd = random.Random(1)
    found = 0
    for _ in range(400):
        x_h = sum(rnd.random() < 0.2 for _ in range(held))
        x_t = sum(rnd.random() < 0.3 for _ in range(total - held))
        _, lo, _ = effect.newcombe(x_t, total - held, x_h, held)
        found += lo > 0
    assert 0.72 < found / 400 < 0.88


def test_the_pages_json_twins_and_the_cli_read_the_stored_effect(measured, tmp_path):
    from conftest import invoke_cli, invoke_json, serve_in_process
    from journeymap.ingest.store import open_store
    from journeymap.server.keys import create_key

    _, got, _ = measured
    ws = Workspace.init(tmp_path / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    ws.__dict__.pop("definition", None)
    with ws:
        ws.ingest([str(write(random_log(3, 400), tmp_path / "log.csv"))])
    shown = invoke_json("act", "show", "nudge", "-w", str(ws.path))
    listed = invoke_json("act", "playbooks", "-w", str(ws.path))
    assert shown["goal"] == got["goal"] and listed["playbooks"][0]["goal"] == got["goal"]
    assert len(shown["recent"]) == 25 and shown["definition"]["goal"]["within"] == "14d"
    assert got["goal"]["text"] in invoke_cli("act", "show", "nudge", "-w", str(ws.path)).stdout.replace("\n", " ")
    assert "did you mean 'nudge'" in invoke_cli("act", "show", "nudgee", "-w", str(ws.path), check=False).stderr
    con = open_store(ws.path)
    _, token = create_key(con, "read", "t")
    con.close()
    with serve_in_process(ws.path) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert client.get("/app/playbooks.json").json()["playbooks"][0] == {**listed["playbooks"][0]}
        assert client.get("/app/playbooks/nudge.json").json()["goal"] == got["goal"]
        assert client.get("/app/playbooks/nudgee.json").status_code == 404
        client.cookies.set("jm_read", token)
        page = client.get("/app/playbooks/nudge")
        assert page.status_code == 200 and "too small to tell" in page.text and "Recent firings" in page.text
        assert 'href="/app/playbooks/nudge"' in client.get("/app/playbooks").text


def test_the_maps_actions_lane_places_the_playbook_on_its_owners_stage_with_its_effect(tmp_path):
    from journeymap.report.html import render_map_html

    definition = json.loads(json.dumps(DEFINITION))
    definition["playbooks"][0]["owner"] = {"stage": "trial", "fallback": "CS"}
    ws = Workspace.init(tmp_path / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(definition))
    ws.__dict__.pop("definition", None)
    with ws:
        ws.ingest([str(write(random_log(3, 200), tmp_path / "log.csv"))])
        stored = effect.stored(ws.con)["nudge"]
        model = ws.journey_map(insights=False)
    (lane,) = model["playbooks"]["trial"]
    assert set(model["playbooks"]) == {"trial"}
    assert lane["owner"] == "Growth" and lane["entries_30d"] == stored["volume"]["last_30_days"]
    assert lane["effect"]["text"] == stored["goal"]["text"]
    html = render_map_html(model)
    assert 'data-playbook="nudge"' in html and stored["goal"]["text"].split(":")[0] in html


def test_the_worked_example_in_the_docs():
    """docs/playbooks.md, "Measured effect": 120 of 400 treated, 18 of 100 held out."""
    d, lo, hi = effect.newcombe(120, 400, 18, 100)
    assert (round(100 * d, 1), round(100 * lo, 1), round(100 * hi, 1)) == (12.0, 2.3, 19.8)
    assert effect.proportion(120, 400, 18, 100, 0.2, "goal rate")["verdict"] == "higher"
    out = effect.proportion(72, 240, 11, 60, 0.2, "goal rate")
    assert (round(100 * out["ci_low"], 1), round(100 * out["ci_high"], 1)) == (-1.1, 21.5)
    assert out["too_small"] and (out["needed"]["entries"], out["needed"]["holdout"]) == (905, 181)


def test_the_demo_splits_the_holdout_as_the_evaluator_does():
    """The simulator plants the nudge's effect on the treated side only, so its copy of the hash (the demo imports
    nothing of act/) must put every unit where act.outbox.in_holdout does."""
    from journeymap.demo.nudge import in_holdout as demo_in_holdout

    rnd = random.Random(5)
    units = [f"acct_{rnd.randrange(10**6, 10**7)}" for _ in range(3000)] + [f"u:{rnd.random()}" for _ in range(1000)]
    for playbook, fraction in (("onboarding_nudge", 0.2), ("risk_alert", 0.1), ("x", 0.5), ("x", 0.0)):
        sides = [in_holdout(playbook, u, fraction) for u in units]
        assert [demo_in_holdout(playbook, u, fraction) for u in units] == sides
        assert fraction == 0 or abs(sum(sides) / len(sides) - fraction) < 0.03


def test_the_demos_planted_nudge_effect_is_recovered_within_its_interval(ingested_demo):
    """The 1,500-account demo (seed 7): the onboarding nudge, live since its `started:` day, raises the treated
    accounts' 14-day connection rate by the effect truth/playbooks.json plants. The evaluator measures exactly the
    entries and goals the simulator planted, and the stored 95% interval covers the true effect and excludes 0."""
    from conftest import invoke_json

    demo = ingested_demo(1500, 7)
    truth = json.loads((Path(demo.workspace) / "truth" / "playbooks.json").read_text())["onboarding_nudge"]
    shown = invoke_json("act", "show", "onboarding_nudge", "-w", str(demo.workspace))
    definition = shown["definition"]
    assert (str(definition["started"]), definition["holdout"], definition["entry"]["absence"]["within"],
            definition["goal"]["within"]) == (truth["started"], truth["holdout"], f"{truth['entry_days']}d",
                                              f"{truth['window_days']}d")
    goal = shown["goal"]
    for side in ("treated", "holdout"):
        assert (goal[side]["n"], goal[side]["reached"]) == (truth["measured"][side], truth["goal_reached"][side])
    assert goal["ci_low"] <= truth["true_effect"] <= goal["ci_high"]
    assert goal["ci_low"] > 0 and goal["verdict"] == "higher" and truth["true_effect"] > 0.1
    with Workspace(demo.workspace) as ws:
        live = ws.con.execute(
            "SELECT min(entered_at), count(*) FILTER (WHERE holdout), count(*) FILTER (WHERE sent AND NOT holdout), "
            "count(*) FILTER (WHERE NOT holdout) FROM act_entries WHERE playbook = 'onboarding_nudge' AND live"
        ).fetchone()
        pending = ws.con.execute("SELECT DISTINCT status FROM act_outbox WHERE playbook = 'onboarding_nudge'").fetchall()
    assert live[0].date().isoformat() >= truth["started"] and live[2] == live[3] > truth["measured"]["treated"]
    assert pending == [("pending",)]  # the demo runs no sender: its emails and tasks wait in the outbox
