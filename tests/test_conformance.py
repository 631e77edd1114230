"""`future_state:` and `journeymap conformance` (docs/metrics/conformance.md).

The analysis is checked against a brute-force reference written from the doc page alone: each unit's events
sorted by (ts, file order), each labelled with the first step in design order that names its event, walked
with plain lists and dicts. Hypothesis draws small logs (ties in time, a terminal event, events no step names)
and small designs (steps, any-order groups, exclusive choices, optional and repeating steps, budgets with and
without `since`, an end-to-end budget, an allowlist); each log is ingested into a real workspace and held to
several designs.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import invoke_cli, invoke_json, serve_in_process
from journeymap.errors import DefinitionError
from journeymap.journey.load import parse_text
from journeymap.workspace import Workspace

T0 = dt.datetime(2024, 3, 1)
ALPHABET = ["a", "b", "c", "d", "e", "f"]  # step events; "x" is noise, "z" ends the journey
BASE = {
    "stages": [
        {"id": "active", "name": "Active", "entry": {"event": ALPHABET}},
        {"id": "ended", "name": "Ended", "entry": "z", "terminal": True, "kind": "lost"},
    ],
    "analysis": {"level": "person"},
}
DURATIONS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "2d": 2 * 86400}


# -- the reference -----------------------------------------------------------------------------------------


def steps_of(design: dict) -> list[tuple[int, dict, dict | None]]:
    """(position, step, one_of item or None), in design order."""
    out = []
    for pos, item in enumerate(design["steps"]):
        if "any_order" in item:
            out += [(pos, s, None) for s in item["any_order"]]
        elif "one_of" in item:
            out += [(pos, s, item) for s in item["one_of"]]
        else:
            out.append((pos, item, None))
    return out


def reference(design: dict, events: list[tuple[dt.datetime, int, str]], as_of: dt.datetime) -> list[tuple] | None:
    """The unit's deviations as sorted tuples (type, step, allowed, detail); None when it is not evaluated."""
    steps = steps_of(design)
    pos_of = {s["id"]: p for p, s, _ in steps}
    first: dict[str, tuple] = {}
    count: Counter = Counter()
    ended = False
    for ts, i, name in sorted(events):
        if name == "z":
            ended = True
        for _, s, _ in steps:  # the first step in design order that names the event
            if name in s["event"]:
                count[s["id"]] += 1
                first.setdefault(s["id"], (ts, i))
                break
    if not first:
        return None
    start = min(first.values())[0]
    furthest = max(pos_of[s] for s in first)

    def allowed(kind, step):
        return any(a["deviation"] == kind and a.get("step") in (None, step) for a in design.get("allow", []))

    def budget_out(s):
        if "within" not in s:
            return False
        since = s.get("since")
        if since is not None and since not in first:
            return False
        ref = start if since is None else first[since][0]
        return (as_of - ref).total_seconds() > DURATIONS[s["within"]]

    e2e_out = "within" in design and (as_of - start).total_seconds() > DURATIONS[design["within"]]

    def due(pos, own):
        for why, holds in (("later", furthest > pos), ("ended", ended), ("budget", any(budget_out(s) for s in own)),
                           ("end_to_end", e2e_out)):
            if holds:
                return why
        return None

    out = []
    for pos, item in enumerate(design["steps"]):
        members = item.get("any_order") or item.get("one_of") or [item]
        if "one_of" in item:
            taken = [s["id"] for s in sorted(members, key=lambda s: first.get(s["id"], (dt.datetime.max, 0)))
                     if s["id"] in first]
            if len(taken) > 1:
                out.append(("exclusive_choice", item["id"], allowed("exclusive_choice", item["id"]), tuple(taken)))
            if not taken and not item.get("optional") and due(pos, members):
                out.append(("missing", item["id"], allowed("missing", item["id"]), due(pos, members)))
        for s in members:
            sid = s["id"]
            if sid not in first:
                if "one_of" not in item and not s.get("optional") and due(pos, [s]):
                    out.append(("missing", sid, allowed("missing", sid), due(pos, [s])))
                continue
            before = sorted((first[t], t) for t in first if pos_of[t] > pos and first[t] < first[sid])
            if before:
                out.append(("out_of_order", sid, allowed("out_of_order", sid), before[0][1]))
            if count[sid] > 1 and not s.get("repeats"):
                out.append(("repeated", sid, allowed("repeated", sid), count[sid]))
            if "within" in s:
                since = s.get("since")
                if since is None or since in first:
                    ref = start if since is None else first[since][0]
                    over = (first[sid][0] - ref).total_seconds() - DURATIONS[s["within"]]
                    if over > 0:
                        out.append(("over_budget", sid, allowed("over_budget", sid), over))
    if "within" in design:
        last = len(design["steps"]) - 1
        ends = [first[s["id"]][0] for p, s, _ in steps if p == last and s["id"] in first]
        if ends:
            over = (min(ends) - start).total_seconds() - DURATIONS[design["within"]]
            if over > 0:
                out.append(("over_budget", "end_to_end", allowed("over_budget", "end_to_end"), over))
    return sorted(out, key=repr)


def as_tuples(deviations: list[dict]) -> list[tuple]:
    detail = {"exclusive_choice": lambda d: tuple(d["taken"]), "missing": lambda d: d["due"],
              "out_of_order": lambda d: d["after"], "repeated": lambda d: d["count"],
              "over_budget": lambda d: d["by_seconds"]}
    return sorted(((d["type"], d["step"], d["allowed"], detail[d["type"]](d)) for d in deviations), key=repr)


# -- random logs and designs ---------------------------------------------------------------------------------


@st.composite
def event_logs(draw) -> list[tuple[str, str, dt.datetime]]:
    rows = []
    for u in range(draw(st.integers(1, 5))):
        t = T0
        for _ in range(draw(st.integers(1, 7))):
            t += dt.timedelta(hours=draw(st.sampled_from([0, 0, 1, 5, 20, 30])))  # 0: ties in time
            rows.append((f"c{u}", draw(st.sampled_from([*ALPHABET, "x", "z"])), t))
    draw(st.randoms(use_true_random=False)).shuffle(rows)  # file order is not time order
    return rows


@st.composite
def designs(draw) -> dict:
    ids = iter(f"s{i}" for i in range(100))
    earlier: list[str] = []

    def step(in_choice: bool = False):
        s = {"id": next(ids), "event": draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=2, unique=True))}
        if not in_choice and draw(st.booleans()):  # a choice is optional as a whole
            s["optional"] = True
        if draw(st.booleans()):
            s["repeats"] = True
        if draw(st.integers(0, 2)) == 0:
            s["within"] = draw(st.sampled_from(list(DURATIONS)))
            if earlier and draw(st.booleans()):
                s["since"] = draw(st.sampled_from(earlier))
        return s

    items = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["step", "step", "any_order", "one_of"]))
        if kind == "step":
            item = step()
            members = [item]
        elif kind == "any_order":
            members = [step(), step()]
            item = {"any_order": members}
        else:
            members = [step(True), step(True)]
            item = {"id": next(ids), "one_of": members, "optional": draw(st.booleans())}
        earlier += [m["id"] for m in members]
        items.append(item)
    design: dict = {"steps": items}
    if draw(st.booleans()):
        design["within"] = draw(st.sampled_from(list(DURATIONS)))
    names = [s["id"] for _, s, _ in steps_of(design)] + [i["id"] for i in items if "one_of" in i] + ["end_to_end"]
    design["allow"] = draw(st.lists(st.fixed_dictionaries(
        {"deviation": st.sampled_from(["missing", "out_of_order", "repeated", "exclusive_choice", "over_budget"])},
        optional={"step": st.sampled_from(names)}), max_size=2))
    return design


def write_log(rows, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts"])
        for c, e, t in rows:
            w.writerow([c, e, t.isoformat() + "Z"])
    return path


PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])


@settings(max_examples=25, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=event_logs(), ds=st.lists(designs(), min_size=1, max_size=4))
def test_conformance_agrees_with_the_reference(tmp_path_factory, rows, ds):
    base = tmp_path_factory.mktemp("conf")
    path = base / "ws"
    path.mkdir()
    (path / "journeymap.yml").write_text(json.dumps({**BASE, "future_state": ds[0]}))
    with Workspace(path) as ws:
        (report,) = ws.ingest([str(write_log(rows, base / "events.csv"))])
        assert report.accepted == len(rows)
    as_of = max(t for _, _, t in rows)
    for design in ds:
        (path / "journeymap.yml").write_text(json.dumps({**BASE, "future_state": design}))
        by_unit: dict[str, list] = {}
        for i, (c, e, t) in enumerate(rows):
            by_unit.setdefault(c, []).append((t, i, e))
        want = {c: reference(design, evs, as_of) for c, evs in by_unit.items()}
        want = {c: w for c, w in want.items() if w is not None}
        with Workspace(path) as ws:
            if not want:
                with pytest.raises(Exception, match="no unit has a step of the design"):
                    ws.conformance()
                continue
            got = ws.conformance(limit=0)
        listed = {u["unit_id"]: u for u in got["units_list"]}
        assert got["units"] == len(want), (design, rows)
        for c, w in want.items():
            uid = next((k for k in listed if k == c or k.endswith(":" + c)), None)
            have = as_tuples(listed[uid]["deviations"]) if uid else []
            assert [x[:3] for x in have] == [x[:3] for x in w], (c, design, sorted(by_unit[c]))
            for h, x in zip(have, w, strict=True):
                assert h[3] == pytest.approx(x[3]) if isinstance(x[3], float) else h[3] == x[3]
        conforming = sum(all(d[2] for d in w) for w in want.values())
        assert got["conforming"] == conforming
        assert got["rate"] == pytest.approx(conforming / len(want))
        assert sum(r["units"] for r in got["over_time"]) == len(want)


# -- the worked example of docs/metrics/conformance.md -----------------------------------------------------------

WORKED = {
    "stages": [
        {"id": "trial", "name": "Trial", "entry": "signup"},
        {"id": "churned", "name": "Churned", "entry": "cancelled", "terminal": True, "kind": "churn"},
    ],
    "touchpoints": [{"id": "checklist", "name": "Checklist", "match": "checklist_done"}],
    "analysis": {"level": "person"},
    "future_state": {
        "steps": [
            {"id": "signup", "stage": "trial"},
            {"id": "route", "one_of": [{"id": "self_serve", "touchpoint": "checklist"},
                                       {"id": "sales_assisted", "event": "demo_booked"}]},
            {"any_order": [{"id": "connect", "event": "connected"},
                           {"id": "invite", "event": "invited", "optional": True}]},
            {"id": "first_dashboard", "event": "dashboard_shared", "within": "3d", "since": "signup"},
        ],
        "within": "30d",
        "allow": [{"deviation": "out_of_order", "step": "invite"}],
    },
}
JOURNEYS = {  # the doc page's table: unit -> (event, day of 2025)
    "A": [("signup", 1), ("checklist_done", 1), ("connected", 2), ("invited", 2), ("dashboard_shared", 3)],
    "B": [("signup", 1), ("invited", 1), ("checklist_done", 2), ("connected", 2), ("dashboard_shared", 3)],
    "C": [("signup", 1), ("checklist_done", 1), ("demo_booked", 2), ("connected", 3), ("dashboard_shared", 9)],
    "D": [("signup", 1), ("checklist_done", 1), ("connected", 1), ("connected", 2), ("dashboard_shared", 2)],
    "E": [("signup", 58), ("checklist_done", 58)],
    "F": [("signup", 1), ("checklist_done", 1), ("cancelled", 20)],
    "G": [("signup", 1), ("checklist_done", 1)],
}


@pytest.fixture(scope="module")
def worked(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("worked")
    ws = base / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(yaml.safe_dump(WORKED))
    rows = [(u, e, dt.datetime(2025, 1, 1) + dt.timedelta(days=d - 1, minutes=i))
            for u, evs in JOURNEYS.items() for i, (e, d) in enumerate(evs)]
    rows.append(("H", "noise", dt.datetime(2025, 3, 1)))  # the data ends on 1 March
    invoke_json("ingest", str(write_log(rows, base / "events.csv")), "--workspace", str(ws))
    return ws


def test_the_worked_example(worked):
    got = invoke_json("conformance", "--workspace", str(worked), "--limit", "0")
    devs = {u["unit_id"].split(":")[-1]: {(d["type"], d["step"]) for d in u["deviations"]} for u in got["units_list"]}
    assert devs == {
        "B": {("out_of_order", "self_serve")},
        "C": {("exclusive_choice", "route"), ("over_budget", "first_dashboard")},
        "D": {("repeated", "connect")},
        "F": {("missing", "connect"), ("missing", "first_dashboard")},
        "G": {("missing", "connect"), ("missing", "first_dashboard")},
    }
    by = {u["unit_id"].split(":")[-1]: u for u in got["units_list"]}
    c_over = next(d for d in by["C"]["deviations"] if d["type"] == "over_budget")
    assert c_over["by_seconds"] == 5 * 86400 + 4 * 60  # day 9 (its 5th event: +4 min) from signup, minus 3 days
    assert {d["step"]: d["due"] for d in by["F"]["deviations"]} == {"connect": "ended", "first_dashboard": "ended"}
    assert {d["step"]: d["due"] for d in by["G"]["deviations"]} == {"connect": "end_to_end", "first_dashboard": "budget"}
    assert (got["units"], got["conforming"], got["finished"]) == (7, 2, 1)
    assert round(got["rate"], 3) == 0.286 and round(got["ci_low"], 3) == 0.082 and round(got["ci_high"], 3) == 0.641
    kinds = {d["type"]: d for d in got["deviations"]}
    assert (kinds["missing"]["deviations"], kinds["missing"]["units"]) == (4, 2)
    assert got["impact"]["missing"]["units_with"] == 2
    leaves = {tuple(v["path"]): v["leaves_at"] for v in got["variants"]}
    assert leaves[("signup", "self_serve")] == {"step": "connect", "position": 2, "deviation": "missing"}
    # --unit lists that unit alone, conforming or not; --limit/--offset page
    a_id = by["B"]["unit_id"][:-1] + "A"  # A conforms, so it is listed only when asked for
    one = invoke_json("conformance", "--workspace", str(worked), "--unit", a_id)
    assert len(one["units_list"]) == 1 and one["units_list"][0]["conforms"] and one["units_list"][0]["deviations"] == []
    assert one["warnings"] == []
    typo = invoke_json("conformance", "--workspace", str(worked), "--unit", a_id + "x")
    assert typo["units_list"] == [] and typo["warnings"][0]["key"] == "unit"
    assert typo["warnings"][0]["suggestion"] == f"did you mean {a_id!r}?"
    paged = invoke_json("conformance", "--workspace", str(worked), "--limit", "2", "--offset", "1")
    assert [u["unit_id"] for u in paged["units_list"]] == [u["unit_id"] for u in got["units_list"][1:3]]
    assert paged["units_total"] == 5


def test_allowlist_and_period(worked, tmp_path):
    definition = {**WORKED, "future_state": {**WORKED["future_state"], "allow": [
        {"deviation": "out_of_order", "step": "self_serve"}, {"deviation": "repeated"}]}}
    (worked / "journeymap.yml").write_text(yaml.safe_dump(definition))
    try:
        got = invoke_json("conformance", "--workspace", str(worked), "--limit", "0")
        assert got["conforming"] == 4  # A, E and now B and D
        b = next(u for u in got["units_list"] if u["unit_id"].endswith("B"))
        assert b["conforms"] and b["deviations"][0]["allowed"]  # still listed, allowed
        feb = invoke_json("conformance", "--workspace", str(worked), "--from", "2025-02-01")
        assert (feb["units"], feb["conforming"]) == (1, 1)  # E alone started in February
        assert [p["period"] for p in got["over_time"]] == ["2025-01-01", "2025-02-01"]
    finally:
        (worked / "journeymap.yml").write_text(yaml.safe_dump(WORKED))


def test_cli_api_and_errors(worked):
    bad = invoke_cli("conformance", "--workspace", str(worked), "--persona", "smbb", check=False)
    assert bad.returncode == 2 and "--persona: no persona 'smbb'" in bad.stderr
    order = invoke_cli("conformance", "--workspace", str(worked), "--from", "2025-03-01", "--to", "2025-01-01",
                       check=False)
    assert order.returncode == 2 and "--from must not be after --to" in order.stderr
    table = invoke_cli("conformance", "--workspace", str(worked))
    assert "Conformance: 2 of 7 units fit the design" in table.stdout
    from journeymap.server.keys import create_key

    ws = Workspace(worked)
    _, token = create_key(ws.con, "read", "conformance-test")
    ws.close()
    with serve_in_process(worked) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        api = client.get("/api/v1/conformance", params={"limit": 0})
        assert api.status_code == 200
        assert api.json()["conforming"] == 2 and len(api.json()["units_list"]) == 5
        assert client.get("/api/v1/conformance", params={"limit": -1}).status_code == 422


def test_no_design_says_what_to_add(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(yaml.safe_dump({k: v for k, v in WORKED.items() if k != "future_state"}))
    invoke_json("ingest", str(write_log([("a", "signup", T0)], tmp_path / "e.csv")), "--workspace", str(ws))
    proc = invoke_cli("conformance", "--workspace", str(ws), check=False)
    assert proc.returncode == 3 and "no `future_state:` design" in proc.stderr


# -- validation ------------------------------------------------------------------------------------------------


def _problems(future_state: dict, **extra) -> list[tuple[str, str]]:
    data = {**WORKED, "personas": [{"id": "smb", "name": "SMB", "traits": {"size": "s"}}], **extra,
            "future_state": future_state}
    with pytest.raises(DefinitionError) as exc:
        parse_text(yaml.safe_dump(data))
    return exc.value.problems


def test_unknown_names_are_refused_with_the_key_path_and_a_suggestion():
    problems = dict(_problems({
        "steps": [{"id": "a", "touchpoint": "checklst"},
                  {"id": "r", "one_of": [{"id": "b", "stage": "trail"}, {"id": "c", "event": "x"}]},
                  {"id": "d", "event": "y", "within": "2d", "since": "zz"}],
        "allow": [{"deviation": "missing", "step": "rr"}],
        "personas": {"smbb": {"within": "3d"}},
    }))
    assert problems == {
        "future_state.steps[0].touchpoint": "unknown touchpoint 'checklst'; did you mean 'checklist'?",
        "future_state.steps[1].one_of[0].stage": "unknown stage 'trail'; did you mean 'trial'?",
        "future_state.steps[2].since": "'zz' is not an earlier step",
        "future_state.allow[0].step": "'rr' is not a step of the design; did you mean 'r'?",
        "future_state.personas.smbb": "unknown persona 'smbb'; did you mean 'smb'?",
    }


def test_shape_errors_name_the_key():
    problems = _problems({"steps": [{"id": "a"}, {"any_order": [{"id": "b", "event": "x", "withn": "3d"}]},
                                    {"id": "c", "event": "y", "within": "soon"}, {"id": "a", "event": "z"}],
                          "allow": [{"deviation": "repeat"}]})
    keys = [k for k, _ in problems]
    assert keys == ["future_state.steps[0]", "future_state.steps[1].any_order[0]", "future_state.steps[2].within",
                    "future_state.allow[0].deviation"]
    text = dict(problems)
    assert "give exactly one of event, match, touchpoint, stage" in text["future_state.steps[0]"]
    assert "unknown key 'withn'; did you mean 'within'?" in text["future_state.steps[1].any_order[0]"]
    assert "'soon' is not a duration" in text["future_state.steps[2].within"]
    twice = dict(_problems({"steps": [{"id": "a", "event": "x"}, {"id": "a", "event": "y"}]}))
    assert twice == {"future_state.steps[1].id": "id 'a' is used twice"}
    alone = dict(_problems({"steps": [{"id": "r", "one_of": [{"id": "a", "event": "x", "optional": True},
                                                               {"id": "b", "event": "y"}]}]}))
    assert "write optional: true on the one_of 'r'" in alone["future_state.steps[0]"]
    later = dict(_problems({"steps": [{"id": "a", "event": "x", "within": "1d", "since": "b"}, {"id": "b", "event": "y"}]}))
    assert "comes later" in later["future_state.steps[0].since"]


def test_the_design_is_in_the_json_schema():
    from journeymap.journey.load import json_schema

    schema = json.loads(json_schema())
    assert "future_state" in schema["properties"]
    assert {"DesignStep", "AnyOrder", "OneOf", "Allowed", "PersonaDesign"} <= set(schema["$defs"])


def test_validate_warns_about_design_events_the_data_lacks(worked):
    definition = {**WORKED, "future_state": {**WORKED["future_state"], "steps": [
        *WORKED["future_state"]["steps"], {"id": "paid", "event": "dashbord_shared"}]}}
    (worked / "journeymap.yml").write_text(yaml.safe_dump(definition))
    try:
        out = invoke_json("validate", "--workspace", str(worked))
        text = json.dumps(out)
        assert "future_state.steps[4].event" in text and "did you mean 'dashboard_shared'?" in text
        got = invoke_json("conformance", "--workspace", str(worked))
        assert got["warnings"][0]["suggestion"] == "did you mean 'dashboard_shared'?"
    finally:
        (worked / "journeymap.yml").write_text(yaml.safe_dump(WORKED))


# -- real logs: a design from the log's documented process, against a direct count ---------------------------------

# The running example of van der Aalst's Process Mining (2016), 6 compensation requests: register request, then
# examine (thoroughly or casually: one of them) and check ticket in any order, then decide; then pay compensation
# or reject request (one of them). "reinitiate request" loops back, so its cases repeat steps.
RUNNING_EXAMPLE = {
    "stages": [{"id": "open", "name": "Open", "entry": "register request"},
               {"id": "closed", "name": "Closed", "entry": {"event": ["pay compensation", "reject request"]},
                "terminal": True, "kind": "won"}],
    "analysis": {"level": "person"},
    "future_state": {"steps": [
        {"id": "register", "event": "register request"},
        {"any_order": [{"id": "check", "event": "check ticket"},
                       {"id": "examine", "event": ["examine thoroughly", "examine casually"]}]},
        {"id": "decide", "event": "decide"},
        {"id": "outcome", "one_of": [{"id": "pay", "event": "pay compensation"},
                                     {"id": "reject", "event": "reject request"}]},
    ]},
}


def _cases(path: Path) -> dict[str, list[str]]:
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cases: dict[str, list] = {}
    for i, r in enumerate(rows):
        cases.setdefault(r["customer_id"], []).append((dt.datetime.fromisoformat(r["ts"]), i, r["event"]))
    return {c: [e for _, _, e in sorted(evs)] for c, evs in cases.items()}


def _ingest(path: Path, definition: dict, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(yaml.safe_dump(definition))
    invoke_json("ingest", str(path), "--workspace", str(ws))
    return ws


def test_running_example_against_a_direct_count(tmp_path, shared_eval):
    cases = _cases(shared_eval / "canonical" / "running-example.csv.gz")

    def fits(names: list[str]) -> bool:  # the documented process, counted straight from the sequence
        core = list(names)
        if core.count("register request") != 1 or core[0] != "register request":
            return False
        if "reinitiate request" in core:
            return False  # a loop repeats check, examine and decide
        examine = [n for n in core if n.startswith("examine")]
        return (len(examine) == 1 and core.count("check ticket") == 1 and core.count("decide") == 1
                and core.index("decide") > max(core.index("check ticket"), core.index(examine[0]))
                and core[-1] in ("pay compensation", "reject request"))

    ws = _ingest(shared_eval / "canonical" / "running-example.csv.gz", RUNNING_EXAMPLE, tmp_path)
    got = invoke_json("conformance", "--workspace", str(ws), "--limit", "0")
    assert got["units"] == len(cases) == 6
    assert got["conforming"] == sum(fits(n) for n in cases.values()) == 4
    repeats = {u["unit_id"] for u in got["units_list"] if any(d["type"] == "repeated" for d in u["deviations"])}
    assert len(repeats) == sum("reinitiate request" in n for n in cases.values())


# The Helpdesk log (Verenich 2016): a ticket is assigned a seriousness, taken in charge, resolved and closed.
HELPDESK = {
    "stages": [{"id": "open", "name": "Open", "entry": "Assign seriousness"},
               {"id": "closed", "name": "Closed", "entry": "Closed", "terminal": True, "kind": "won"}],
    "analysis": {"level": "person"},
    "future_state": {"steps": [
        {"id": "assign", "event": "Assign seriousness"},
        {"id": "take", "event": "Take in charge ticket"},
        {"id": "resolve", "event": "Resolve ticket"},
        {"id": "close", "event": "Closed"},
    ]},
}


def test_helpdesk_against_a_direct_count(tmp_path, shared_eval):
    path = shared_eval / "canonical" / "helpdesk.csv.gz"
    cases = _cases(path)
    design = ["Assign seriousness", "Take in charge ticket", "Resolve ticket", "Closed"]

    def fits(names: list[str]) -> bool:
        """The designed activities, once each and in order, so far: the whole design once the ticket is closed
        (its journey ended), a prefix of it while it is open (the next step is not due yet)."""
        done = [n for n in names if n in design]
        return done == design[:len(done)]

    ws = _ingest(path, HELPDESK, tmp_path)
    got = invoke_json("conformance", "--workspace", str(ws), "--limit", "0", "--top", "3")
    evaluated = [n for n in cases.values() if any(x in design for x in n)]
    assert got["units"] == len(evaluated)
    assert got["conforming"] == sum(fits(n) for n in evaluated)
    missing_take = sum("Take in charge ticket" not in n and ("Resolve ticket" in n or "Closed" in n) for n in evaluated)
    by_step = {s["step"]: s["deviations"] for d in got["deviations"] if d["type"] == "missing" for s in d["by_step"]}
    assert by_step.get("take", 0) == missing_take


# -- the map's current-vs-future view ----------------------------------------------------------------------------


def test_the_map_shows_the_design_next_to_what_units_did(worked, tmp_path):
    model = invoke_json("map", "--workspace", str(worked), "--no-insights")
    fs = model["views"]["all"]["future_state"]
    assert (fs["design"], fs["units"], fs["conforming"]) == ("default", 7, 2)
    steps = {s["id"]: s for s in fs["steps"]}
    assert steps["signup"]["stage"] == "trial" and steps["signup"]["done_share"] == 1.0
    dash = steps["first_dashboard"]
    assert dash["budget_seconds"] == 3 * 86400 and dash["units_done"] == 4  # A, B, C, D
    # A day 3 (+4 min), B day 3 (+4 min), C day 9 (+4 min), D day 2 (+4 min), each from signup (+0)
    assert dash["median_seconds"] == 2 * 86400 + 4 * 60
    assert (dash["over_budget"], dash["missing"]) == (1, 2)
    # every step here falls in the trial stage (the stage units were in): one row whose conformance counts
    # the units without a deviation at its steps
    assert [(s["stage"], s["conforming"]) for s in fs["stages"]] == [("trial", 2)]
    pains = {(p["deviation"], p["step"]) for p in fs["pain_points"]}
    assert ("missing", "connect") in pains and len(fs["pain_points"]) <= 5
    out = tmp_path / "map.html"
    invoke_cli("map", "--workspace", str(worked), "--no-insights", "--out", str(out))
    html = out.read_text()
    assert "Current vs future" in html and "2 of 7" in html and "Deviations with the largest impact" in html


# -- the map's two curves: emotion and time, actual against target (docs/map-json.md, "The curves") -----------------

CURVES = {
    "stages": [
        {"id": "trial", "name": "Trial", "entry": "signup"},
        {"id": "active", "name": "Active", "entry": "connected"},
        {"id": "paying", "name": "Paying", "entry": "paid"},
        {"id": "churned", "name": "Churned", "entry": "cancelled", "terminal": True, "kind": "churn"},
    ],
    "touchpoints": [{"id": "connect_tp", "name": "Connect", "match": "connected", "stage": "active"}],
    "surveys": [{"id": "nps", "kind": "nps", "match": "nps_submitted"},
                {"id": "csat", "kind": "csat", "match": "csat_submitted"}],
    "analysis": {"level": "person"},
    "future_state": {"steps": [{"id": "signup", "stage": "trial"},
                               {"id": "connect", "touchpoint": "connect_tp", "within": "2d"},
                               {"id": "paid", "stage": "paying"}],
                     "within": "10d"},
    "targets": [
        {"metric": "csat", "stage": "trial", "op": ">=", "value": "80%"},
        {"metric": "nps", "stage": "trial", "op": ">=", "value": 20},
        {"metric": "time_in_stage_p50", "stage": "trial", "op": "<=", "value": "1d"},
        {"metric": "nps", "stage": "active", "op": ">=", "value": 0},
        {"metric": "ces", "stage": "active", "change": "-10%", "baseline": "yoy"},  # relative: no level to draw
    ],
}
DAY = 86400.0
TRIAL_DAYS = {"u1": 0.5, "u2": 1, "u3": 2, "u4": 4}  # signup -> connected; u5 never connects
ACTIVE_DAYS = {"u1": 1, "u2": 3, "u3": 5}  # connected -> paid; u4 never pays
TRIAL_ANSWERS = [("u1", "csat_submitted", 5), ("u2", "csat_submitted", 4), ("u3", "csat_submitted", 2),
                 ("u1", "nps_submitted", 9), ("u2", "nps_submitted", 3)]
ACTIVE_ANSWERS = [("u1", "csat_submitted", 5), ("u2", "csat_submitted", 5)]


@pytest.fixture(scope="module")
def curved(tmp_path_factory) -> tuple[Path, list]:
    """Five people through trial -> active -> paying, survey answers in trial and active, the data ending on day 30."""
    base = tmp_path_factory.mktemp("curves")
    ws = base / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(yaml.safe_dump(CURVES))
    rows = []
    for i, u in enumerate(["u1", "u2", "u3", "u4", "u5"]):
        start = T0 + dt.timedelta(hours=i)
        rows.append((u, "signup", start, {}))
        for n, (who, event, score) in enumerate(TRIAL_ANSWERS):
            if who == u:
                rows.append((u, event, start + dt.timedelta(hours=1, minutes=n), {"score": score}))
        if u in TRIAL_DAYS:
            connected = start + dt.timedelta(days=TRIAL_DAYS[u])
            rows.append((u, "connected", connected, {}))
            for n, (who, event, score) in enumerate(ACTIVE_ANSWERS):
                if who == u:
                    rows.append((u, event, connected + dt.timedelta(hours=1, minutes=n), {"score": score}))
            if u in ACTIVE_DAYS:
                rows.append((u, "paid", connected + dt.timedelta(days=ACTIVE_DAYS[u]), {}))
    rows.append(("zz", "noise", T0 + dt.timedelta(days=30), {}))  # the end of the data
    path = base / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "properties"])
        for c, e, t, props in rows:
            w.writerow([c, e, t.isoformat() + "Z", json.dumps(props)])
    invoke_json("ingest", str(path), "--workspace", str(ws))
    return ws, rows


def _km_median(rows: list, enter: str, leave: str | None) -> float | None:
    """lifelines' Kaplan-Meier median of the time from `enter` to `leave` per unit, censored at the end of the data."""
    from lifelines import KaplanMeierFitter

    end = max(t for _, _, t, _ in rows)
    first = {}
    for c, e, t, _ in rows:
        first.setdefault((c, e), t)
    units = sorted({c for c, e in first if e == enter})
    durations = [((first.get((u, leave)) or end) - first[(u, enter)]).total_seconds() for u in units]
    observed = [(u, leave) in first for u in units]
    median = KaplanMeierFitter().fit(durations, observed).median_survival_time_
    return None if median == float("inf") else float(median)


def test_the_map_draws_emotion_and_time_against_their_targets(curved, tmp_path):
    ws, rows = curved
    model = invoke_json("map", "--workspace", str(ws), "--no-insights", "--min-answers", "1")
    view = model["views"]["all"]
    curves = view["future_state"]["curves"]
    emotion = {p["stage"]: p for p in curves["emotion"]}
    time = {p["stage"]: p for p in curves["time"]}
    assert list(emotion) == list(time) == ["trial", "active", "paying"]  # journey stages, the terminal one left out

    # Emotion. Trial's answers, counted from the log: CSAT 5, 4, 2 (satisfied: 4 or 5) and NPS 9, 3.
    csat = [s for _, e, s in TRIAL_ANSWERS if e == "csat_submitted"]
    nps = [s for _, e, s in TRIAL_ANSWERS if e == "nps_submitted"]
    csat_share = sum(s >= 4 for s in csat) / len(csat)
    nps_points = 100 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps)
    actual = (len(csat) * (2 * csat_share - 1) + len(nps) * nps_points / 100) / (len(csat) + len(nps))
    assert emotion["trial"]["actual"] == pytest.approx(actual) == pytest.approx(view["stages"]["trial"]["emotion"])
    # targets csat >= 80% and nps >= 20 on the same scale (2 x 0.8 - 1, 20/100), weighted by trial's answers
    assert emotion["trial"]["target"] == pytest.approx((len(csat) * (2 * 0.80 - 1) + len(nps) * 20 / 100)
                                                       / (len(csat) + len(nps)))
    assert [x.split()[0] for x in sorted(emotion["trial"]["target_from"])] == ["csat", "nps"]
    # active: nps >= 0 and no NPS answers there (weighted equally: itself); the relative CES target is left out
    assert emotion["active"]["target"] == 0.0 and [x.split()[0] for x in emotion["active"]["target_from"]] == ["nps"]
    assert emotion["active"]["actual"] == pytest.approx(1.0)  # two CSAT 5s
    assert emotion["paying"]["target"] is None and "add {metric: csat, stage: paying" in emotion["paying"]["note"]
    assert curves["notes"] == {"emotion": None, "time": None}

    # Time: Kaplan-Meier medians by lifelines, straight from the log; the designed times from the definition
    assert time["trial"]["actual_seconds"] == _km_median(rows, "signup", "connected") == 2 * DAY
    assert time["active"]["actual_seconds"] == _km_median(rows, "connected", "paid") == 3 * DAY
    assert time["paying"]["actual_seconds"] is None  # nobody has left it: censoring hides the median
    assert (time["trial"]["target_seconds"], time["trial"]["target_from"]) == (1 * DAY, "time_in_stage_p50")
    assert (time["active"]["target_seconds"], time["active"]["target_from"], time["active"]["steps"]) == (
        2 * DAY, "steps", ["connect"])
    assert (time["paying"]["target_seconds"], time["paying"]["target_from"]) == (10 * DAY, "end_to_end")

    # drawn: two charts, each with a solid actual line and a dashed target line, both named in the legend
    out = tmp_path / "map.html"
    invoke_cli("map", "--workspace", str(ws), "--no-insights", "--min-answers", "1", "--out", str(out))
    charts = re.findall(r'<svg class="target-curves".*?</svg>', out.read_text(), re.S)
    assert len(charts) == 2
    for svg in charts:
        assert 'class="curve-actual"' in svg and 'class="curve-target"' in svg
        assert re.search(r'class="curve-target"[^>]*stroke-dasharray', svg)
        assert not re.search(r'class="curve-actual"[^>]*stroke-dasharray', svg)
        assert '>actual</text>' in svg and '>target</text>' in svg
    assert f">{emotion['trial']['target']:+.2f}<" in charts[0] and ">+1.00<" in charts[0]
    assert "Emotion by stage" in charts[0] and "Median time in stage, by stage" in charts[1]


def test_without_stage_targets_the_curves_say_what_to_add(curved, tmp_path):
    ws, _ = curved
    bare = tmp_path / "ws"
    shutil.copytree(ws, bare)
    (bare / "journeymap.yml").write_text(yaml.safe_dump({**CURVES, "targets": [],
                                                         "future_state": {"steps": CURVES["future_state"]["steps"][:1]}}))
    curves = invoke_json("map", "--workspace", str(bare), "--no-insights")["views"]["all"]["future_state"]["curves"]
    assert all(p["target"] is None and p["note"].startswith("no target: add") for p in curves["emotion"])
    assert "no stage has an NPS, CSAT or CES target" in curves["notes"]["emotion"]
    assert "no stage has a time budget" in curves["notes"]["time"]


def test_the_map_without_a_design_has_none(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(yaml.safe_dump({k: v for k, v in WORKED.items() if k != "future_state"}))
    invoke_json("ingest", str(write_log([("a", "signup", T0)], tmp_path / "e.csv")), "--workspace", str(ws))
    model = invoke_json("map", "--workspace", str(ws), "--no-insights")
    assert model["views"]["all"]["future_state"] is None


# -- the demo ----------------------------------------------------------------------------------------------------------


def test_the_demo_design_gives_a_meaningful_answer(ingested_demo):
    """The demo's future_state (SMB self-serve by default, sales-led designs for mid-market and enterprise):
    each persona held to its own design, every deviation type present, and the units evaluated counted
    directly: accounts with a designed step's event."""
    out = ingested_demo(300, 7)
    got = invoke_json("conformance", "--workspace", str(out.workspace), "--limit", "0")
    assert {p["persona"]: p["design"] for p in got["personas"]} == {
        "smb": "default", "mid_market": "mid_market", "enterprise": "enterprise"}
    assert {d["type"] for d in got["deviations"]} >= {"missing", "out_of_order", "over_budget"}
    assert 0 < got["rate"] < 1 and got["units"] == sum(p["units"] for p in got["personas"])
    assert got["conforming"] == sum(u["conforms"] for u in got["units_list"]) + (
        got["units"] - len(got["units_list"]))  # units without any deviation are not listed
    impact = got["impact"]["missing"]
    assert impact["conversion"]["with"]["n"] + impact["conversion"]["without"]["n"] == got["units"]
    assert impact["mrr"]["with"]["n"] == impact["units_with"]
