"""journeymap.yml checked against the data (engine.checks): `validate`, the map and the analyses say what
matches nothing, naming the key and the closest names that occur. Real workspaces: CSV ingested by the CLI."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from conftest import invoke_cli, invoke_json, serve_in_process
from journeymap.errors import DefinitionError
from journeymap.ingest.store import open_store
from journeymap.journey.load import parse_definition
from journeymap.server.keys import create_key
from journeymap.workspace import Workspace

EVENTS = """customer_id,event,ts,source,channel,properties
ann,page_viewed,2025-03-01T09:00:00,marketing,web,"{""path"": ""/pricing""}"
ann,signup_completed,2025-03-01T09:05:00,product,web,{}
ann,deal_won,2025-03-02T09:05:00,crm,sales,"{""plan"": ""pro""}"
bob,page_viewed,2025-03-02T10:00:00,marketing,web,"{""path"": ""/home""}"
bob,signup_completed,2025-03-02T10:05:00,product,web,{}
cat,page_viewed,2025-03-03T10:00:00,marketing,web,"{""path"": ""/home""}"
cat,nps_answered,2025-03-04T10:00:00,survey,email,"{""score"": 9}"
"""
TRAITS = """customer_id,event,ts,type,traits
ann,identify,2025-03-01T09:00:00,identify,"{""employees"": 20, ""tier"": ""smb""}"
bob,identify,2025-03-01T09:00:00,identify,"{""employees"": 400, ""tier"": ""ent""}"
"""
GOOD = """
stages:
  - {id: discovery, name: Discovery, entry: {source: marketing}}
  - {id: onboarding, name: Onboarding, entry: signup_completed}
  - {id: won, name: Won, entry: {event: deal_won, where: {plan: pro}}}
touchpoints:
  - {id: pricing, name: Pricing, match: {event: page_viewed, where: {path: /pricing}}}
  - {id: sales, name: Sales, match: {event: deal_won, channel: sales}}
personas:
  - {id: smb, name: SMB, traits: {employees: {lt: 50}}}
  - {id: ent, name: Ent, traits: {tier: ent}}
milestones:
  start: signup_completed
  value_moment: deal_won
  key_features: [{id: signup, name: Signup, match: signup_completed}]
surveys:
  - {id: nps, kind: nps, match: nps_answered, score: score}
"""
TYPOS = """
stages:
  - {id: discovery, name: Discovery, entry: {source: marketing}}
  - {id: onboarding, name: Onboarding, entry: signup_complete}
  - {id: won, name: Won, entry: {event: deal_wonn}}
  - {id: paying, name: Paying, entry: {event: deal_won, where: {plan: {eq: proo}}}}
  - {id: again, name: Again, entry: {event: page_viewed}}
  - {id: adv, name: Adv, entry: {any: [{event: nps_answered, where: {scroe: {gte: 9}}}, {event: referal}]}}
touchpoints:
  - {id: pricing, name: Pricing, match: {event: page_viewed, where: {path: /pricng}}}
  - {id: sales, name: Sales, match: {event: deal_won, channel: sale}}
  - {id: both, name: Both, match: [page_viewed, page_veiwed]}
personas:
  - {id: smb, name: SMB, traits: {employes: {lt: 50}}}
  - {id: ent, name: Ent, traits: {tier: entt}}
  - {id: all, name: All, traits: {employees: {gte: 1}}}
  - {id: big, name: Big, traits: {employees: {gte: 100}}}
milestones:
  start: signup_complete
  value_moment: {event: deal_won, source: crmm}
  key_features: [{id: r, name: R, match: report_creatd}]
surveys:
  - {id: nps, kind: nps, match: nps_answered, score: scor}
  - {id: csat, kind: csat, match: csat_answerd}
"""


def _workspace(root: Path, definition: str) -> Path:
    """A workspace made as a user makes one: init, journeymap.yml, CSV ingested through the CLI."""
    ws = root / "ws"
    invoke_cli("init", str(ws))
    (ws / "journeymap.yml").write_text(textwrap.dedent(definition))
    (root / "events.csv").write_text(EVENTS)
    (root / "traits.csv").write_text(TRAITS)
    invoke_cli("ingest", str(root / "events.csv"), str(root / "traits.csv"), "--workspace", str(ws))
    return ws


@pytest.fixture(scope="module")
def typos(tmp_path_factory) -> Path:
    return _workspace(tmp_path_factory.mktemp("typos"), TYPOS)


@pytest.fixture(scope="module")
def typos_report(typos) -> dict:
    proc = invoke_cli("validate", "--workspace", str(typos), "--json")
    assert proc.returncode == 0
    return json.loads(proc.stdout)


def _by_key(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for w in report["warnings"]:
        out.setdefault(w["key"], []).append(w)
    return out


@pytest.mark.parametrize("key, message, suggestion", [
    ("stages[1].entry", "no event named 'signup_complete' occurs, so this rule matches no event",
     "did you mean 'signup_completed'?"),
    ("stages[2].entry", "no event named 'deal_wonn' occurs", "did you mean 'deal_won'?"),
    ("stages[3].entry", "no 'deal_won' event has plan = 'proo'", "did you mean 'pro'?"),
    ("stages[4].entry", "no person reaches this stage: the 3 events its entry matches all match an earlier "
                        "stage's entry first", None),
    ("stages[5].entry.any[0]", "no 'nps_answered' event has the property 'scroe'", "did you mean 'score'?"),
    ("stages[5].entry.any[1]", "no event named 'referal' occurs", "events present: 'page_viewed'"),
    ("touchpoints[0].match", "no 'page_viewed' event has path = '/pricng'", "did you mean '/pricing'?"),
    ("touchpoints[1].match", "no 'deal_won' event has channel 'sale'", "did you mean 'sales'?"),
    ("touchpoints[2].match", "no event named 'page_veiwed' occurs", "did you mean 'page_viewed'?"),
    ("milestones.start", "no event named 'signup_complete' occurs", "did you mean 'signup_completed'?"),
    ("milestones.value_moment", "no 'deal_won' event has source 'crmm'", "did you mean 'crm'?"),
    ("milestones.key_features[0].match", "no event named 'report_creatd' occurs", None),
    ("surveys[0].score", "no 'nps_answered' event has the property 'scor'", "did you mean 'score'?"),
    ("surveys[1].match", "no event named 'csat_answerd' occurs", None),
    ("personas[0].traits.employes", "matches no person: no person has the trait 'employes'",
     "did you mean 'employees'?"),
    ("personas[1].traits.tier", "matches no person: no person has tier = 'entt'", "did you mean 'ent'?"),
    ("personas[3]", "no person gets this persona: every person it matches (1) matches an earlier persona first", None),
])
def test_validate_names_each_rule_that_matches_nothing_with_did_you_mean(typos_report, key, message, suggestion):
    found = _by_key(typos_report).get(key, [])
    assert any(message in w["message"] and (suggestion is None or (w["suggestion"] or "").startswith(suggestion))
               for w in found), (key, found)


def test_validate_exits_0_with_warnings_and_says_them_on_stderr(typos, typos_report):
    assert typos_report["ok"] is True and typos_report["errors"] == []
    assert {w["key"] for w in typos_report["warnings"]} >= {"stages[2].entry", "personas[0].traits.employes"}
    proc = invoke_cli("validate", "--workspace", str(typos))
    assert proc.returncode == 0
    assert f"{len(typos_report['warnings'])} warnings" in proc.stdout
    assert "warning: stages[2].entry: no event named 'deal_wonn' occurs, so this rule matches no event " \
           "(did you mean 'deal_won'?)" in proc.stderr


def test_a_definition_that_matches_its_data_validates_without_warnings(tmp_path):
    ws = _workspace(tmp_path, GOOD)
    assert invoke_json("validate", "--workspace", str(ws)) == {"ok": True, "errors": [], "warnings": []}
    proc = invoke_cli("validate", "--workspace", str(ws))
    assert "warning" not in proc.stderr and "ok" in proc.stdout


def test_validate_without_events_checks_only_the_file(tmp_path):
    ws = tmp_path / "empty"
    invoke_cli("init", str(ws))
    (ws / "journeymap.duckdb").unlink()
    assert invoke_json("validate", "--workspace", str(ws))["warnings"] == []
    assert not (ws / "journeymap.duckdb").exists()  # validating creates no store


def test_validate_json_reports_definition_errors_and_exits_1(tmp_path):
    ws = tmp_path / "bad"
    invoke_cli("init", str(ws))
    (ws / "journeymap.yml").write_text(textwrap.dedent("""
        stages: [{id: a, name: A, entry: x}]
        targets: [{metric: reached, stage: a, op: ">=", value: 1000}]
    """))
    proc = invoke_cli("validate", "--workspace", str(ws), "--json", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["warnings"] == []
    assert report["errors"] == [{"key": "targets[0].value", "message": "reached is a rate between 0 and 1 (or a "
                                                                       "percentage such as '25%'), not 1000"}]


# -- target values -------------------------------------------------------------------------------------------


STAGES = {"stages": [{"id": "s", "name": "S", "entry": "x"}]}


def _target(**target):
    return parse_definition({**STAGES, "targets": [target]})


@pytest.mark.parametrize("target, message", [
    ({"metric": "conversion", "stage": "s", "op": ">=", "value": 1000}, "not 1000"),
    ({"metric": "conversion", "stage": "s", "op": ">=", "value": 10}, "not 10 (did you mean 0.1?)"),
    ({"metric": "churn_rate", "op": "<=", "value": "120%"}, "'120%' is not between 0% and 100%"),
    ({"metric": "csat", "op": ">=", "value": "3d"}, "csat is a rate: write a fraction such as 0.25"),
    ({"metric": "nps", "op": ">=", "value": 140}, "NPS is in points, from -100 to 100: 140 is out of range"),
    ({"metric": "nps", "op": ">=", "value": "40%"}, "(did you mean 40?)"),
    ({"metric": "ces", "op": "<=", "value": 9}, "from 1 to 7: 9 is out of range"),
    ({"metric": "ttv_p50", "op": "<=", "value": "0d"}, "ttv_p50 is a duration and must be positive"),
    ({"metric": "time_in_stage_p50", "stage": "s", "op": "<=", "value": -5}, "must be positive"),
    ({"metric": "ttv_p90", "op": "<=", "value": "25%"}, "ttv_p90 is a duration"),
])
def test_target_values_out_of_their_metrics_range_are_definition_errors(target, message):
    with pytest.raises(DefinitionError) as exc:
        _target(**target)
    assert [k for k, _ in exc.value.problems] == ["targets[0].value"]
    assert message in exc.value.problems[0][1], exc.value.problems


def test_target_values_in_range_keep_their_meaning():
    assert _target(metric="csat", op=">=", value="87%").targets[0].numeric_value() == 87
    assert _target(metric="csat", op=">=", value=0.87).targets[0].numeric_value() == 87  # a fraction
    assert _target(metric="ttv_p50", op="<=", value="3d").targets[0].numeric_value() == 3 * 86400
    assert _target(metric="nps", op=">=", value=-20).targets[0].numeric_value() == -20
    scaled = parse_definition({**STAGES, "surveys": [{"id": "c", "kind": "ces", "match": "x", "scale": [1, 10]}],
                               "targets": [{"metric": "ces", "op": "<=", "value": 9}]})
    assert scaled.targets[0].numeric_value() == 9  # within that survey's own scale


# -- the map and the analyses say the same ---------------------------------------------------------------------


def test_map_carries_the_warnings_validate_gives(typos, typos_report):
    model = invoke_json("map", "--workspace", str(typos), "--no-insights")
    assert model["warnings"] == typos_report["warnings"]
    proc = invoke_cli("map", "--workspace", str(typos), "--no-insights", "--out", str(typos.parent / "m.html"))
    assert "warning: stages[2].entry: no event named 'deal_wonn' occurs" in proc.stderr


@pytest.mark.parametrize("args, key, suggestion", [
    (["funnel", "--steps", "page_viewed,signup_complete"], "steps", "did you mean 'signup_completed'?"),
    (["funnel", "--steps", "page_viewed,deal_won", "--exclude", "deal_wonn:0:1"], "exclude", "did you mean 'deal_won'?"),
    (["retention", "--start", "signup_completed", "--return", "page_veiwed"], "return", "did you mean 'page_viewed'?"),
    (["paths", "--start", "page_viewd"], "start", "did you mean 'page_viewed'?"),
    (["paths", "--level", "stage", "--start", "discovry"], "start", "did you mean 'discovery'?"),
    (["variants", "--converted", "deal_wonn"], "converted", "did you mean 'deal_won'?"),
    (["lifecycle", "--event", "deal_wonn"], "event", "did you mean 'deal_won'?"),
])
def test_analyses_warn_about_names_that_never_occur(tmp_path, args, key, suggestion):
    ws = _workspace(tmp_path, GOOD)
    result = invoke_json(*args, "--workspace", str(ws))
    assert [(w["key"], w["suggestion"]) for w in result["warnings"]] == [(key, suggestion)]
    proc = invoke_cli(*args, "--workspace", str(ws))
    assert re.search(rf"warning: {key}: no \w+ named '\w+' occurs \({re.escape(suggestion)}\)", proc.stderr), proc.stderr
    clean = invoke_json("funnel", "--steps", "page_viewed,signup_completed", "--workspace", str(ws))
    assert clean["warnings"] == []


def test_web_pages_and_the_api_show_the_warnings(typos):
    con = open_store(typos)
    _, token = create_key(con, "read", "warnings test")
    con.close()
    auth = {"Authorization": f"Bearer {token}"}
    with serve_in_process(typos) as client:
        page = client.get("/app/funnel", params={"steps": "page_viewed,signup_complete"}, headers=auth).text
        assert re.search(r'<li data-warning-key="steps"><strong>steps</strong>: no event named '
                         r"&#39;signup_complete&#39; occurs \(did you mean &#39;signup_completed&#39;\?\)</li>", page)
        page = client.get("/app/analyses/retention", params={"start": "signup_completed", "return": "page_veiwed"},
                          headers=auth).text
        assert 'data-warning-key="return"' in page
        assert 'data-warning-key="stages[2].entry"' in client.get("/app/map", headers=auth).text
        api = client.get("/api/v1/funnel", params={"steps": "page_viewed,signup_complete"}, headers=auth).json()
        assert api["warnings"][0]["key"] == "steps"


# -- real data -----------------------------------------------------------------------------------------------


def test_the_demo_validates_without_warnings(ingested_demo):
    demo = ingested_demo(300, 7)
    assert invoke_json("validate", "--workspace", str(demo.workspace)) == {"ok": True, "errors": [], "warnings": []}
    with Workspace(demo.workspace) as ws:
        assert ws.check("person") == []  # and at the other unit of analysis


OLIST = """
analysis: {level: person}
sources:
  mqls:
    source: marketing
    fields: {user_id: mql_id, event: {value: mql_created}, ts: first_contact_date, channel: origin}
  deals:
    source: crm
    fields: {user_id: mql_id, event: {value: deal_won}, ts: won_date}
  leads:
    source: crm
    fields: {user_id: mql_id, type: {value: identify}, event: {value: identify}, ts: won_date}
    traits: [lead_type, business_segment]
stages:
  - {id: mql, name: Marketing-qualified lead, entry: mql_created}
  - {id: won, name: Won, entry: deal_won}
personas:
  - {id: online, name: Online sellers, traits: {lead_type: {in: [online_medium, online_big, online_small, online_beginner, online_top]}}}
  - {id: offline, name: Offline sellers, traits: {lead_type: offline}}
  - {id: industry, name: Industry, traits: {lead_type: industry}}
"""


def test_olist_personas_known_only_on_won_deals_are_reported(shared_eval, tmp_path):
    """Olist's lead types exist only on the 842 closed deals, so each lead-type persona 'converts' 100%."""
    folder = shared_eval / "olist_marketing_funnel"
    ws = tmp_path / "olist"
    invoke_cli("init", str(ws))
    (ws / "journeymap.yml").write_text(OLIST)
    invoke_cli("ingest", str(folder / "olist_marketing_qualified_leads_dataset.csv"), "--source", "mqls", "-w", str(ws))
    for mapping in ("deals", "leads"):
        invoke_cli("ingest", str(folder / "olist_closed_deals_dataset.csv"), "--source", mapping, "-w", str(ws))
    report = invoke_json("validate", "--workspace", str(ws))
    assert report["ok"]
    messages = {w["key"]: w["message"] for w in report["warnings"]}
    assert set(messages) == {"personas[0]", "personas[1]", "personas[2]"}, report
    assert all("reached stage 'won', against 0% of the 7,167 persons with no persona" in m for m in messages.values())
    # ... and the map it warns about does show 100% conversion for each such persona
    model = invoke_json("map", "--workspace", str(ws), "--no-insights")
    assert model["warnings"] == report["warnings"]
    for persona in ("online", "offline", "industry"):
        stages = model["views"][persona]["stages"]
        assert stages["won"]["share_of_units"] == 1.0
        assert stages["mql"]["conversion_rate"] > 0.99  # one deal's won_date precedes its first contact
