"""`journeymap improvements add|list|set|show` on a real demo workspace: the round trip, the status history, the
errors (with did-you-mean), the measured effect in `show --json`, and the table carried by backup/restore."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import invoke_cli, invoke_json

from journeymap.insights.improvements.effect import estimate



@pytest.fixture(scope="module")
def ws(demo_copy):
    return str(demo_copy(300, 7).workspace)


def test_round_trip_add_set_list_show_with_history(ws):
    added = invoke_json("improvements", "add", "--stage", "onboarding", "--opportunity", "1", "--metric",
                        "conversion", "--owner", "Onboarding PM", "--status", "planned", "--target", "60%",
                        "--workspace", ws)
    # promoted from journeymap.yml's first onboarding opportunity: its text and stage kept
    assert added["title"] == "Make connecting a data source the first checklist step, not the third"
    assert (added["stage"], added["source"], added["status"], added["target_value"]) == (
        "onboarding", "team", "planned", 60.0)
    iid = added["id"]
    moved = invoke_json("improvements", "set", iid, "--status", "in progress", "--owner", "Integrations team",
                        "--workspace", ws)
    assert moved["owner"] == "Integrations team" and moved["note"] is None
    shipped = invoke_json("improvements", "set", iid, "--status", "shipped", "--workspace", ws)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert shipped["ship_date"] == today and shipped["note"] == f"no --ship-date given: shipped today, {today}"
    text = invoke_cli("improvements", "set", iid, "--ship-date", "2026-01-07", "--workspace", ws)
    assert "shipped 2026-01-07" in text.stderr
    history = invoke_json("improvements", "show", iid, "--workspace", ws)["history"]
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "planned"), ("planned", "in progress"), ("in progress", "shipped"), ("shipped", "shipped")]
    assert history[1]["note"] == "owner: Onboarding PM -> Integrations team"
    assert history[3]["note"] == f"ship_date: {today} -> 2026-01-07"
    listed = invoke_json("improvements", "list", "--status", "shipped", "--workspace", ws)["improvements"]
    assert [i["id"] for i in listed] == [iid]
    assert invoke_json("improvements", "list", "--status", "idea", "--workspace", ws)["improvements"] == []
    table = invoke_cli("improvements", "list", "--workspace", ws).stdout
    assert "Integrations" in table and "shipped" in table


def test_show_measures_a_shipped_improvement_from_the_engine(ws):
    invoke_json("improvements", "add", "--stage", "acquisition", "--metric", "reached", "--title",
                "Shorter signup form", "--status", "shipped", "--ship-date", "2026-01-07", "--workspace", ws)
    # by account (the demo's level) 300 accounts give a handful a week: not measured, and said why
    by_account = invoke_json("improvements", "show", "shorter-signup-form", "--workspace", ws)["effect"]
    assert by_account["verdict"] is None and "fewer than 20 units" in by_account["verdict_text"]
    e = invoke_json("improvements", "show", "shorter-signup-form", "--by", "person", "--workspace", ws)["effect"]
    assert e["method"] == "its" and e["why"] == "no comparison series" and e["level"] == "person"
    weeks = e["series"]["weeks"]
    assert len(weeks) == e["weeks_before"] + e["weeks_after"] + 1 and e["weeks_before"] >= 8
    assert all(w["n"] >= 20 for w in weeks)
    # the same numbers from the returned series alone: show wires the engine's series into the estimator
    again = estimate([dt.date.fromisoformat(w["week"]) for w in weeks], [w["value"] for w in weeks],
                     dt.date(2026, 1, 7), "reached")
    assert (again["effect"], again["ci_low"], again["verdict"]) == (e["effect"], e["ci_low"], e["verdict"])
    assert e["verdict"] in ("moved", "no detectable change", "too early") and e["ci_low"] < e["effect"] < e["ci_high"]
    # a named comparison: difference-in-differences, or the ITS with the reason
    invoke_json("improvements", "set", "shorter-signup-form", "--compare", "stage:evaluation", "--workspace", ws)
    e = invoke_json("improvements", "show", "shorter-signup-form", "--by", "person", "--workspace", ws)["effect"]
    assert e["comparison"] == "reached at evaluation" and e["comparison_series"]["weeks"]
    assert e["method"] == "did" or "trended differently" in e["why"]
    human = invoke_cli("improvements", "show", "shorter-signup-form", "--by", "person", "--workspace", ws).stdout
    assert "verdict:" in human and "effect:" in human and "method:" in human


@pytest.mark.parametrize(("args", "message"), [
    (["add", "--stage", "onboardng", "--metric", "conversion", "--title", "x"],
     "--stage: unknown stage 'onboardng'; did you mean 'onboarding'?"),
    (["add", "--stage", "onboarding", "--metric", "conversoin", "--title", "x"],
     "--metric: unknown metric 'conversoin'; did you mean 'conversion'?"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--status", "shiped"],
     "--status: unknown status 'shiped'; did you mean 'shipped'?"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--persona", "smbb"],
     "--persona: unknown persona 'smbb'; did you mean 'smb'?"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--target", "60"],
     "--target: conversion is a rate between 0 and 1 (or a percentage such as '25%'), not 60 (did you mean 0.6?)"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--ship-date", "June"],
     "--ship-date: 'June' is not a date; write YYYY-MM-DD"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--compare", "stage"],
     "--compare: write stage:ID or persona:ID, not 'stage'"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--title", "x", "--compare", "stage:evalution"],
     "--compare: unknown stage 'evalution'; did you mean 'evaluation'"),
    (["add", "--stage", "onboarding", "--metric", "ttv_p50", "--title", "x", "--compare", "stage:evaluation"],
     "--compare stage:evaluation: ttv_p50 is not measured per stage; compare against a persona"),
    (["add", "--stage", "onboarding", "--metric", "conversion"],
     "give --title, or --opportunity to promote one of the stage's opportunities"),
    (["add", "--stage", "onboarding", "--metric", "conversion", "--opportunity", "9"],
     "--opportunity 9: stage 'onboarding' has 2 opportunities in journeymap.yml"),
    (["set", "signup-erors", "--status", "planned"], "did you mean 'signup-errors'?"),
    (["set", "signup-errors", "--status", "dropt"], "--status: unknown status 'dropt'; did you mean 'dropped'?"),
    (["show", "nothing-like-it"], "no improvement 'nothing-like-it'; improvements are"),
])
def test_errors_are_one_line_with_did_you_mean(ws, args, message):
    if args[0] in ("set", "show"):
        invoke_cli("improvements", "add", "--stage", "acquisition", "--metric", "reached", "--title",
                   "Signup errors", "--id", "signup-errors", "--workspace", ws, check=False)
    proc = invoke_cli("improvements", *args, "--workspace", ws, check=False)
    assert proc.returncode in (1, 2), proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 or "error:" in proc.stderr.splitlines()[0]


def test_backup_and_restore_carry_the_improvements(demo_copy, tmp_path):
    ws = str(demo_copy(300, 7).workspace)
    invoke_json("improvements", "add", "--stage", "onboarding", "--metric", "conversion", "--title", "Checklist first",
                "--status", "shipped", "--ship-date", "2026-02-02", "--owner", "Ann", "--workspace", ws)
    invoke_json("improvements", "set", "checklist-first", "--status", "dropped", "--workspace", ws)
    before = invoke_json("improvements", "show", "checklist-first", "--workspace", ws)
    invoke_cli("backup", str(tmp_path / "bk"), "--workspace", ws)
    restored = tmp_path / "restored"
    invoke_cli("restore", str(tmp_path / "bk"), "--workspace", str(restored))
    after = invoke_json("improvements", "show", "checklist-first", "--workspace", str(restored))
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert [h["to"] for h in after["history"]] == ["shipped", "dropped"]


def test_while_served_the_commands_ask_the_server(demo_copy):
    """The store is the server's: add/set/list/show go to /api/v1/improvements with the local token, the same JSON."""
    from test_tracking_api import Server

    path = demo_copy(300, 7).workspace
    ws = str(path)
    server = Server(path).start(timeout=60)
    try:
        added = invoke_json("improvements", "add", "--stage", "acquisition", "--metric", "reached", "--title",
                            "Served signup", "--owner", "Growth", "--workspace", ws)
        assert (added["id"], added["status"], added["owner"]) == ("served-signup", "idea", "Growth")
        shipped = invoke_json("improvements", "set", "served-signup", "--status", "shipped", "--workspace", ws)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        assert shipped["note"] == f"no --ship-date given: shipped today, {today}"
        listed = invoke_json("improvements", "list", "--status", "shipped", "--workspace", ws)["improvements"]
        assert [i["id"] for i in listed] == ["served-signup"]
        shown = invoke_json("improvements", "show", "served-signup", "--workspace", ws)
        assert [h["to"] for h in shown["history"]] == ["idea", "shipped"] and shown["effect"]["metric"] == "reached"
        typo = invoke_cli("improvements", "set", "served-signp", "--owner", "X", "--workspace", ws, check=False)
        assert typo.returncode == 1 and "did you mean 'served-signup'?" in typo.stderr
        bad = invoke_cli("improvements", "set", "served-signup", "--status", "shiped", "--workspace", ws, check=False)
        assert bad.returncode == 2 and "did you mean 'shipped'?" in bad.stderr
        assert "Served signup" in invoke_cli("improvements", "list", "--workspace", ws).stdout
    finally:
        server.stop()
