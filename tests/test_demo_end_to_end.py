"""`journeymap demo` end to end: simulate, ingest, stitch, compute, render; then read the map as a user would."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import cli_json, invoke_json, run_cli
from journeymap.insights.map.journey_map import emotion
from journeymap.journey.load import load_definition

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "ws"
    proc = run_cli("demo", "--out", str(out), "--accounts", "400", "--seed", "3")
    assert "journey-map.html" in proc.stdout
    assert re.search(r"playbooks \(docs/playbooks.md\): onboarding_nudge [\d,]+ entered; risk_alert", proc.stdout)
    return out


def test_demo_writes_a_map_and_a_queryable_workspace(demo):
    html = (demo / "journey-map.html").read_text()
    definition = load_definition(demo / "journeymap.yml")
    model = cli_json("map", "--workspace", str(demo))
    expected_order = [s.id for s in definition.progression] + [s.id for s in definition.stages if s.terminal]
    assert [s["id"] for s in model["stages"]] == expected_order
    assert {p["id"] for p in model["personas"]} >= {"all"} | {p.id for p in definition.personas[:1]}
    view = model["views"]["all"]
    assert view["units"] > 300
    for stage in definition.progression:
        s = view["stages"][stage.id]
        assert s["reached"] == s["converted"] + s["dropped"]
        assert 0 <= s["in_stage"] <= s["reached"]  # units may come back to k after moving on
    # The last stage ends the journey: no drop or conversion rate there (it showed "Drop 100%"); every
    # stage before it that anyone reached has both.
    *before, last = definition.progression
    assert (view["stages"][last.id]["drop_rate"], view["stages"][last.id]["conversion_rate"]) == (None, None)
    assert all(view["stages"][s.id]["drop_rate"] is not None for s in before if view["stages"][s.id]["reached"])
    # The emotion lane blends survey scores with what customers wrote, weighted by counts.
    adoption = view["stages"]["adoption"]
    assert adoption["sentiment"]["n"] > 0 and -1 <= adoption["sentiment"]["mean_compound"] <= 1
    answers = sum(x["n"] for x in adoption["surveys"].values())
    survey_only = emotion(adoption["surveys"])
    blended = (survey_only * answers + adoption["sentiment"]["mean_compound"] * adoption["sentiment"]["n"]) / (
        answers + adoption["sentiment"]["n"])
    assert adoption["emotion"] == pytest.approx(blended)
    # The HTML embeds the same model the JSON twin prints (the timestamp aside).
    embedded = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S).group(1))
    embedded.pop("generated_at"), model.pop("generated_at")
    assert embedded == json.loads(json.dumps(model))
    rejects = invoke_json("rejects", "--workspace", str(demo))
    assert rejects["total"] > 0  # the simulator plants bad rows; they are kept, with reasons
    assert {r["reason"] for r in rejects["rejects"]} <= {"missing_identity", "bad_timestamp", "bad_json", "missing_event"}


@pytest.mark.browser
def test_demo_map_reads_well_in_a_real_browser(demo, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (apt-get install chromium); the browser test needs a real browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    model = invoke_json("map", "--workspace", str(demo))
    persona = next(p["id"] for p in model["personas"] if p["id"] != "all")
    first = model["stages"][0]["id"]
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto((demo / "journey-map.html").as_uri())
            visible = "main.view:not([hidden])"
            assert page.locator(f"{visible} th[data-stage]").count() == len(model["stages"])
            reached = page.locator(f'{visible} td[data-stage="{first}"] [data-metric="reached"]')
            assert reached.inner_text() == f"{model['views']['all']['stages'][first]['reached']:,}"
            page.click(f'[data-persona-button="{persona}"]')
            assert reached.inner_text() == f"{model['views'][persona]['stages'][first]['reached']:,}"
            page.screenshot(path=str(tmp_path / "demo-map.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "demo-map.png").stat().st_size > 50_000
    assert [u for u in requests if not u.startswith("file://")] == []
