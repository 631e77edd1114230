"""Insights placed on the journey map: friction and delight, moments of truth, themes and accounts at risk.

One reduced demo (1,500 accounts, seed 7) is built once; a tiny workspace with no revenue, surveys or texts
checks that every section degrades to empty with a note instead of failing the map.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from html import unescape

import pytest

from conftest import DEMO_MAP_GROUP

from journeymap.insights.friction import friction
from journeymap.insights.map.journey_map import SECTIONS, build_map
from journeymap.report import render_map_html
from journeymap.report.context import money
from journeymap.workspace import Workspace

pytestmark = pytest.mark.xdist_group(DEMO_MAP_GROUP)


@pytest.fixture(scope="module")
def demo(ingested_demo):
    ws = Workspace(ingested_demo(1500, 7).workspace)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def model(demo_map):
    return demo_map()  # the one build of the demo's map, shared with the other map test module


@pytest.fixture(scope="module")
def page(model):
    return render_map_html(model)


def stage_ids(model) -> set[str]:
    return {s["id"] for s in model["stages"]}


def test_friction_and_delight_are_ranked_items_on_real_stages(model):
    view, stages = model["views"]["all"], stage_ids(model)
    assert view["friction"] and view["delight"]
    for side in ("friction", "delight"):
        items = view[side]
        assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
        for i in items:
            assert i["stage"] is None or i["stage"] in stages
            assert isinstance(i["units"], int) and i["units"] > 0
            assert i["mrr_at_stake"] is not None and i["mrr_at_stake"] >= 0
            assert i["evidence"]["sentence"]
    assert any(i["stage"] for i in view["friction"])
    assert view["pain_points"] is not None  # kept for compatibility


def test_friction_on_the_map_is_what_insights_friction_returns(demo, model):
    f = json.loads(json.dumps(friction(demo.engine, demo.definition), default=str))
    assert model["views"]["all"]["friction"] == f["friction"]
    assert model["views"]["all"]["delight"] == f["delight"]


def test_moments_of_truth_sit_on_a_stage(model):
    mot, stages = model["views"]["all"]["moments_of_truth"], stage_ids(model)
    assert 1 <= len(mot["items"]) <= 5
    assert "correlation" in mot["caveat"]
    assert mot["activation"] is None or "definition" in mot["activation"]
    for m in mot["items"]:
        assert m["stage"] in stages and m["placed_by"] in ("touchpoint", "enters", "most_units")
        lo, hi = m["lift_ci"]
        assert m["lift"] is not None and lo <= m["lift"] <= hi
    # Persona views do not rerun it: null, with a note.
    persona = next(p for p in model["views"] if p != "all")
    assert model["views"][persona]["moments_of_truth"] is None
    assert "all customers" in model["views"][persona]["insights_notes"]["moments_of_truth"]


def test_themes_per_stage_with_a_quote(model):
    for view in model["views"].values():
        themes = view["themes"]
        assert set(themes) <= stage_ids(model)
        for rows in themes.values():
            assert 1 <= len(rows) <= 3
            assert [r["n"] for r in rows] == sorted((r["n"] for r in rows), reverse=True)
            for r in rows:
                assert r["sentiment"] in ("positive", "neutral", "negative") and 0 < r["share"] <= 1
                assert r["quote"] is None or len(r["quote"]) <= 140
    assert any(r["quote"] for rows in model["views"]["all"]["themes"].values() for r in rows)


def test_at_risk_by_stage_adds_up(model):
    views, stages = model["views"], stage_ids(model)
    risk = views["all"]["at_risk"]
    assert risk["paying_accounts"] > 0 and 0 < risk["accounts"] <= risk["paying_accounts"]
    assert set(risk["by_stage"]) <= stages
    assert sum(s["accounts"] for s in risk["by_stage"].values()) <= risk["accounts"]
    assert sum(s["mrr"] for s in risk["by_stage"].values()) == pytest.approx(risk["mrr"], abs=0.05)
    top = risk["top"]
    assert 1 <= len(top) <= 5 and [a["risk"] for a in top] == sorted((a["risk"] for a in top), reverse=True)
    assert all(a["reasons"] and a["reasons"][0]["text"] for a in top)
    # Persona views use the same cutoff, so their counts add up to the whole.
    personas = [p for p in views if p != "all" and views[p]["at_risk"]]
    assert sum(views[p]["at_risk"]["accounts"] for p in personas) <= risk["accounts"]


def section(page: str, persona: str, cls: str) -> str:
    view = re.search(rf'<main class="view" data-persona="{persona}".*?</main>', page, re.S).group(0)
    m = re.search(rf'<article class="panel {cls}".*?</article>', view, re.S)
    assert m, f"no {cls} panel in the {persona} view"
    return m.group(0)


def text(fragment: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_html_shows_the_moments_panel_and_markers(model, page):
    panel = section(page, "all", "panel--moments")
    items = model["views"]["all"]["moments_of_truth"]["items"]
    for m in items:
        row = re.search(rf'<tr data-moment="{re.escape(m["behaviour"])}">(.*?)</tr>', panel, re.S).group(1)
        assert f"×{m['lift']:.2f}" in text(row)
    assert "correlation, not causation" in text(panel)
    grid = re.search(r'<main class="view" data-persona="all".*?<tr class="lane lane--actions">(.*?)</tr>', page, re.S).group(1)
    for m in items:
        cell = re.search(rf'data-stage="{m["stage"]}">(.*?)</td>', grid, re.S).group(1)
        assert f'data-moment="{m["behaviour"]}"' in cell


def test_html_at_risk_panel_and_lane_match_the_json(model, page):
    risk = model["views"]["all"]["at_risk"]
    panel = section(page, "all", "panel--risk")
    assert re.search(r'data-metric="at_risk_total">([^<]*)<', panel).group(1) == f"{risk['accounts']:,}"
    assert re.search(r'data-metric="at_risk_mrr_total">([^<]*)<', panel).group(1) == money(risk["mrr"])
    for a in risk["top"]:
        assert f'data-account="{a["unit_id"]}"' in panel
    view = re.search(r'<main class="view" data-persona="all".*?</main>', page, re.S).group(0)
    metrics = re.search(r'<tr class="lane lane--metrics">.*?</tr>', view, re.S).group(0)
    for stage, numbers in risk["by_stage"].items():
        cell = re.search(rf'data-stage="{stage}">(.*?)</td>', metrics, re.S).group(1)
        assert re.search(r'data-metric="at_risk_accounts"[^>]*>([^<]*)<', cell).group(1) == f"{numbers['accounts']:,}"
        assert re.search(r'data-metric="at_risk_mrr">([^<]*)<', cell).group(1) == money(numbers["mrr"])


def test_html_pain_lane_shows_friction_with_mrr(model, page):
    view = re.search(r'<main class="view" data-persona="all".*?</main>', page, re.S).group(0)
    pains = re.search(r'<tr class="lane lane--pains">.*?</tr>', view, re.S).group(0)
    top = model["views"]["all"]["friction"][0]
    cell = re.search(rf'data-stage="{top["stage"]}">(.*?)</td>', pains, re.S).group(1)
    assert 'data-rank="1"' in cell and f"MRR {money(top['mrr_at_stake'])} at stake" in text(cell)
    voice = re.search(r'<tr class="lane lane--voice">.*?</tr>', view, re.S).group(0)
    assert "quote" in voice
    assert "http://" not in page and "https://" not in page


# -- a tiny workspace: no revenue, no surveys, no texts -----------------------------------------------

TINY = {
    "name": "Tiny journey",
    "stages": [
        {"id": "visit", "name": "Visit", "entry": "page_viewed"},
        {"id": "trial", "name": "Trial", "entry": "signup_completed"},
        {"id": "paid", "name": "Paid", "entry": "plan_bought"},
        {"id": "churned", "name": "Churned", "entry": "plan_cancelled", "terminal": True, "kind": "churn"},
    ],
    "milestones": {"start": "signup_completed", "customer_stage": "paid"},
}


def test_a_tiny_workspace_without_revenue_surveys_or_texts_still_builds(tmp_path):
    t0 = dt.datetime(2024, 3, 1)
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "source"])
        for u in range(12):
            w.writerow([f"u{u}", "page_viewed", (t0 + dt.timedelta(days=u)).isoformat() + "Z", "product"])
            if u % 2:
                w.writerow([f"u{u}", "signup_completed", (t0 + dt.timedelta(days=u + 1)).isoformat() + "Z", "product"])
            if u % 4 == 1:
                w.writerow([f"u{u}", "plan_bought", (t0 + dt.timedelta(days=u + 3)).isoformat() + "Z", "billing"])
            if u == 5:
                w.writerow([f"u{u}", "plan_cancelled", (t0 + dt.timedelta(days=u + 9)).isoformat() + "Z", "billing"])
    ws = Workspace(tmp_path / "ws")
    ws.path.mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps(TINY))
    try:
        ws.ingest([str(path)])
        m = build_map(ws.engine, ws.definition)
        plain = build_map(ws.engine, ws.definition, insights=False)
        # A period (March 1-6): u0-u5 visit, u1 and u3 sign up in it (u5 on the 7th), u1 buys on the 5th.
        period = build_map(ws.engine, ws.definition, insights=False, date_from="2024-03-01", date_to="2024-03-06")
        with pytest.raises(ValueError, match="after --to"):
            build_map(ws.engine, ws.definition, date_from="2024-03-06", date_to="2024-03-01")
    finally:
        ws.close()
    pv = period["views"]["all"]
    assert period["period"] == {"from": "2024-03-01", "to": "2024-03-06"} and pv["units"] == 6
    assert [pv["stages"][s]["reached"] for s in ("visit", "trial", "paid")] == [6, 2, 1]
    assert period["data_window"]["to"].startswith("2024-03-06")
    view = m["views"]["all"]
    assert view["units"] == 12
    assert view["themes"] == {} and "no customer texts" in view["insights_notes"]["themes"]
    assert view["at_risk"] is None and view["insights_notes"]["at_risk"]
    assert isinstance(view["friction"], list) and isinstance(view["delight"], list)
    assert all(i["mrr_at_stake"] is None for i in view["friction"] + view["delight"])
    assert "moments_of_truth" in view
    json.dumps(m, default=str, allow_nan=False)  # no NaN anywhere
    page = render_map_html(json.loads(json.dumps(m, default=str)))
    assert "Tiny journey" in page and 'class="panel panel--risk"' not in page

    # --no-insights: every section null with a note, the old pain points still there, no insight panels.
    view = plain["views"]["all"]
    assert all(view[k] is None for k in SECTIONS) and set(view["insights_notes"]) == set(SECTIONS)
    assert view["pain_points"] is not None
    assert 'class="panel panel--moments"' not in render_map_html(plain)


def test_the_web_app_leaves_the_maps_formatting_alone():
    """The web app's templates overlay the map's Jinja environment with their own money and number filters;
    the map's HTML (`map --out`, exports) keeps its own in a process that has served pages too."""
    from journeymap.report.html import template_environment
    from journeymap.server.views.base import _env

    web = _env()
    assert web.filters["money"] is not money
    assert template_environment().filters["money"] is money
