"""The HTML journey map: what a reader sees, in the file and in a real browser."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape
from pathlib import Path
from typing import Any

import pytest

import journeymap.report as report
from journeymap.report import render_map_html, write_map_html

DAY = 86400.0
HOUR = 3600.0

STAGES = [
    # id, name, owner, description, team opportunities
    ("discovery", "Discovery", "Marketing", "First visit to the site or docs", ["Lead with the ROI calculator"]),
    ("signup", "Sign-up", "Growth", "Creates a workspace", []),
    ("onboarding", "Onboarding", "Product", "Connects a first data source", ["Offer a sample dataset"]),
    ("activation", "Activation", "Product", "First dashboard shared with a teammate", []),
    ("adoption", "Adoption", "Customer Success", "Three or more weekly active users", []),
    ("purchase", "Purchase", "Sales", "First paid invoice", ["Annual plan nudge at day 25"]),
    ("expansion", "Expansion", "Account Management", "Seat or plan upgrade", []),
    ("advocacy", "Advocacy", "Customer Success", "Referral, review or case study", []),
]
OUTCOMES = [("churned", "Churned", "churn", "Customer Success"), ("lost", "Lost", "lost", "Sales")]

PERSONAS = {
    # units, conversion rate per journey stage (the last stage has none), emotion per stage, NPS per stage
    "all": (5000, [0.62, 0.81, 0.72, 0.78, 0.64, 0.45, 0.38],
            [0.35, None, -0.18, 0.42, 0.28, -0.05, 0.51, 0.7], [None, None, 12.0, 31.5, 28.0, 18.0, 41.0, None]),
    "smb": (3100, [0.66, 0.84, 0.66, 0.72, 0.58, 0.36, 0.30],
            [0.41, 0.2, -0.35, 0.3, 0.12, -0.22, None, 0.6], [None, None, 4.0, 24.0, 20.0, 9.0, None, None]),
    "enterprise": (1900, [0.55, 0.76, 0.78, 0.84, 0.70, 0.55, 0.45],
                   [0.22, None, 0.05, 0.58, 0.46, 0.18, 0.62, 0.75], [None, None, 22.0, 41.0, 39.0, 31.0, 47.0, 55.0]),
}
NAMES = {"all": "All customers", "smb": "SMB self-serve", "enterprise": "Enterprise sales-led"}


def _stage_view(stage_id: str, reached: int, rate: float | None, emotion: float | None, nps: float | None,
                step: int) -> dict[str, Any]:
    converted = None if rate is None else round(reached * rate)
    in_stage = round(reached * 0.03)
    dropped = None if converted is None else reached - converted - in_stage
    return {
        "reached": reached, "converted": converted, "dropped": dropped, "in_stage": in_stage,
        "conversion_rate": rate, "drop_rate": None if dropped is None else dropped / reached,
        "share_of_units": None,  # filled by the caller
        "time_in_stage": {"p50_seconds": (step + 1) * 0.8 * DAY if step != 1 else 5 * HOUR,
                          "p90_seconds": None if stage_id == "expansion" else (step + 1) * 4.2 * DAY,
                          "n": reached, "censored": in_stage},
        "touchpoints": [
            {"id": f"{stage_id}_web", "name": f"{stage_id.title()} page", "channel": "web", "owner": "Marketing",
             "units": round(reached * 0.7), "events": reached * 3},
            {"id": f"{stage_id}_email", "name": "Lifecycle email", "channel": "email", "owner": "Growth",
             "units": round(reached * 0.45), "events": reached * 2},
            {"id": f"{stage_id}_call", "name": "CSM call", "channel": "sales", "owner": "Customer Success",
             "units": round(reached * 0.12), "events": round(reached * 0.2)},
        ] if stage_id != "advocacy" else [],
        "channels": [{"channel": "paid_search", "units": round(reached * 0.5), "events": reached},
                     {"channel": "organic", "units": round(reached * 0.3), "events": reached},
                     {"channel": "email", "units": round(reached * 0.2), "events": reached}],
        "actions": [{"event": "docs_viewed", "units": round(reached * 0.48), "share": 0.48},
                    {"event": f"{stage_id}_completed", "units": round(reached * 0.31), "share": 0.31},
                    {"event": "invite_sent", "units": round(reached * 0.12), "share": 0.12}],
        "surveys": {"nps": {"score": nps, "n": None if nps is None else 120 + step * 10},
                    "csat": {"score": 0.86 if step % 2 else None, "n": 300 if step % 2 else 0},
                    "ces": {"score": 3.1 if step < 4 else None, "n": 80 if step < 4 else 0}},
        "emotion": emotion,
    }


def sample_model() -> dict[str, Any]:
    """A realistic map model (docs/map-json.md): 3 personas, 8 journey stages, 2 outcomes, some nulls."""
    stages = [{"id": i, "name": n, "owner": o, "terminal": False, "kind": None, "description": d,
               "opportunities": opps} for i, n, o, d, opps in STAGES]
    stages += [{"id": i, "name": n, "owner": o, "terminal": True, "kind": k, "description": None,
                "opportunities": []} for i, n, k, o in OUTCOMES]
    views = {}
    for persona, (units, rates, emotions, nps) in PERSONAS.items():
        stage_views, reached = {}, units
        for step, (stage_id, *_rest) in enumerate(STAGES):
            rate = rates[step] if step < len(rates) else None
            stage_views[stage_id] = _stage_view(stage_id, reached, rate, emotions[step], nps[step], step)
            stage_views[stage_id]["share_of_units"] = reached / units
            if rate is not None:
                reached = round(reached * rate)
        customers = stage_views["purchase"]["reached"]
        churned = round(customers * 0.12)
        stage_views["churned"] = {"reached": churned, "share_of_units": churned / units, "emotion": -0.6,
                                  "conversion_rate": None, "surveys": {"nps": {"score": -42.0, "n": 35}}}
        stage_views["lost"] = {"reached": 0, "share_of_units": 0.0, "emotion": None, "conversion_rate": None}
        views[persona] = {
            "units": units,
            "stages": stage_views,
            "ttv": {"p50_seconds": 3.5 * DAY if persona != "enterprise" else 9.2 * DAY,
                    "p90_seconds": 14 * DAY, "reached": round(units * 0.6), "n": units, "share": 0.6},
            "adoption": [{"feature": "dashboards", "name": "Dashboards", "adopters": round(units * 0.42), "rate": 0.42},
                         {"feature": "alerts", "name": "Alerts", "adopters": round(units * 0.18), "rate": 0.18},
                         {"feature": "sql_editor", "name": None, "adopters": None, "rate": None}],
            "churn": {"churned": churned, "customers": customers, "rate": churned / customers},
            "pain_points": [
                {"kind": "drop_off", "stage": "onboarding", "title": "42% drop in Onboarding",
                 "detail": f"{round(units * 0.62 * 0.81 * 0.42):,} units never connected a source",
                 "units": 900, "severity": 0.42},
                {"kind": "slow_stage", "stage": "purchase", "title": "Slow to first invoice",
                 "detail": "p90 is 25 days", "units": 300, "severity": 0.18},
                {"kind": "low_score", "stage": "onboarding", "title": "CES 5.1 in setup", "detail": None,
                 "units": 80, "severity": 0.1},
                {"kind": "support_load", "stage": None, "title": "Billing tickets spike at renewal",
                 "detail": "1 in 9 customers", "units": 120, "severity": 0.2},
            ],
            "opportunities": [{"stage": "onboarding", "title": "Guided source setup", "source": "data"},
                              {"stage": "discovery", "title": "Lead with the ROI calculator", "source": "team"},
                              {"stage": None, "title": "Usage-based pricing pilot", "source": "team"}],
            "targets": [
                {"label": "TTV p50 <= 3d", "metric": "ttv_p50", "stage": None, "persona": None,
                 "target": 3 * DAY, "actual": 3.5 * DAY, "met": False, "display_target": "3.0d",
                 "display_actual": "3.5d" if persona != "enterprise" else "9.2d",
                 "reference": "OpenView 2023 Product Benchmarks"},
                {"label": "NPS >= 30", "metric": "nps", "stage": None, "persona": None, "target": 30.0,
                 "actual": 33.0, "met": True, "display_target": "30", "display_actual": "33", "reference": None},
                {"label": "Activation conversion >= 75%", "metric": "conversion", "stage": "activation",
                 "persona": None, "target": 75.0, "actual": rates[3] * 100, "met": rates[3] >= 0.75,
                 "display_target": "75%", "display_actual": f"{rates[3] * 100:.0f}%",
                 "reference": "https://example.org/benchmarks"},
                {"label": "CES down 15% YoY", "metric": "ces", "stage": None,
                 "persona": persona if persona != "all" else None,
                 "target": None, "actual": None, "met": None, "display_target": "-15%", "display_actual": None,
                 "reference": None},
            ],
        }
    return {
        "title": "Acme Analytics customer journey",
        "generated_at": "2026-11-23T12:00:00Z",
        "level": "account",
        "data_window": {"from": "2025-01-01T00:00:00", "to": "2026-06-30T23:59:59"},
        "events": 1234567,
        "stages": stages,
        "personas": [{"id": "all", "name": NAMES["all"], "description": None},
                     {"id": "smb", "name": NAMES["smb"], "description": "Under 50 seats, card payment, no sales touch"},
                     {"id": "enterprise", "name": NAMES["enterprise"], "description": "Over 500 seats with an AE"}],
        "views": views,
    }


@pytest.fixture
def model() -> dict[str, Any]:
    return sample_model()


@pytest.fixture
def page(model: dict[str, Any]) -> str:
    return render_map_html(model)


def view_html(page: str, persona: str) -> str:
    """The pre-rendered block of one persona's view."""
    match = re.search(rf'<main class="view" data-persona="{persona}".*?</main>', page, re.S)
    assert match, f"no view for {persona}"
    return match.group(0)


def metric(view: str, stage: str, name: str) -> str:
    match = re.search(rf'<td [^>]*data-stage="{stage}">(?:(?!</td>).)*?data-metric="{name}"[^>]*>(.*?)</',
                      view, re.S)
    assert match, f"no {name} in {stage}"
    return unescape(match.group(1)).strip()


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_api_is_pinned() -> None:
    assert report.__all__ == ["render_map_html", "write_map_html"]


def test_every_stage_is_a_column_in_order(page: str) -> None:
    for persona in PERSONAS:
        view = view_html(page, persona)
        headers = re.findall(r'<th scope="col" class="([^"]+)" data-stage="([^"]+)"', view)
        assert [stage for _css, stage in headers] == [s[0] for s in STAGES] + [o[0] for o in OUTCOMES]
        assert all("outcome" in css for css, stage in headers if stage in ("churned", "lost"))
        assert not any("outcome" in css for css, stage in headers if stage not in ("churned", "lost"))
        for _id, name, *_ in STAGES + OUTCOMES:
            assert f'<span class="stage-name">{name}</span>' in view


def test_lanes_are_labelled(page: str) -> None:
    view = text(view_html(page, "all"))
    for lane in ("Touchpoints & channels", "Key customer actions", "Metrics", "Emotion", "Pain points",
                 "Opportunities", "Owners"):
        assert lane in view


def test_persona_switcher_has_every_persona(page: str) -> None:
    buttons = re.findall(r'data-persona-button="([^"]+)" aria-pressed="(true|false)">([^<]+)</button>', page)
    assert buttons == [("all", "true", NAMES["all"]), ("smb", "false", NAMES["smb"]),
                       ("enterprise", "false", NAMES["enterprise"])]
    assert re.search(r'<main class="view" data-persona="all" [^>]*>', page).group(0).count("hidden") == 0
    assert ' hidden>' in re.search(r'<main class="view" data-persona="smb"[^>]*>', page).group(0)


def test_each_view_shows_its_own_numbers(page: str) -> None:
    assert metric(view_html(page, "all"), "discovery", "reached") == "5,000"
    assert metric(view_html(page, "smb"), "discovery", "reached") == "3,100"
    assert metric(view_html(page, "enterprise"), "activation", "conversion_rate") == "84.0%"


def test_null_is_a_dash_never_zero(page: str) -> None:
    view = view_html(page, "all")
    assert metric(view, "advocacy", "conversion_rate") == "–"  # last stage: no next stage
    assert metric(view, "discovery", "nps") == "–"
    assert metric(view, "expansion", "time_p90") == "–"
    assert metric(view, "discovery", "csat") == "–"
    # a real zero still reads as zero
    assert metric(view, "lost", "reached") == "0"
    assert metric(view, "lost", "share_of_units") == "0.0%"
    adoption = text(re.search(r'<ul class="adoption">.*?</ul>', view, re.S).group(0))
    assert "Sql editor – Adopters: –" in adoption


def test_numbers_read_well(page: str) -> None:
    view = view_html(page, "all")
    assert metric(view, "discovery", "conversion_rate") == "62.0%"
    assert metric(view, "signup", "time_p50") == "5.0h"
    assert metric(view, "discovery", "time_p50") == "19.2h"
    assert metric(view, "onboarding", "time_p50") == "2.4d"
    assert metric(view, "activation", "nps").startswith("+31.5")
    assert metric(view, "signup", "csat").startswith("86.0%")
    assert "1,234,567" in text(page)
    assert "1 Jan 2025 – 30 Jun 2026" in text(page)
    assert "23 Nov 2026, 12:00 UTC" in text(page)


def test_warnings_and_the_period_are_on_the_page(model: dict[str, Any], page: str) -> None:
    """The export says what the map's `warnings` say (journeymap.yml or a period the data does not bear out),
    above every view, and the period it maps; a map with neither shows neither."""
    assert 'class="warnings"' not in page and "data-period" not in page
    model["period"] = {"from": "2030-01-01", "to": None}
    model["warnings"] = [
        {"key": "stages[3].entry", "message": "no event named 'deal_wonn' occurs", "suggestion": "did you mean 'deal_won'?"},
        {"key": "from", "message": "no event occurs from 2030-01-01 on, so there is nothing to count",
         "suggestion": "the data runs from 2025-05-01 to 2026-10-31"}]
    shown = render_map_html(model)
    block = re.search(r'<section class="warnings".*?</section>', shown, re.S)
    assert block and shown.index(block.group(0)) < shown.index('<main class="view"')
    said = text(block.group(0))
    assert said.startswith("2 warnings")
    for w in model["warnings"]:
        assert f"{w['key']} {w['message']} ({w['suggestion']})" in said
    period = re.search(r"<dd data-period>(.*?)</dd>", shown)
    assert period and unescape(period.group(1)) == "1 Jan 2030 – …"


def test_summary_strip(page: str) -> None:
    summary = text(re.search(r'<section class="summary".*?</section>', view_html(page, "all"), re.S).group(0))
    assert "Time to value (p50) 3.5d" in summary
    assert "Target 3.0d · missed" in summary
    assert "Churn rate 12.0%" in summary
    assert "Net Promoter Score +33.0" in summary  # the engine's whole-journey number, from the nps target
    assert "Targets met 2 of 4" in summary
    assert "1 missed · 1 unknown" in summary
    reached = 5000
    for rate in PERSONAS["all"][1]:
        reached = round(reached * rate)
    assert f"End-to-end conversion {reached / 5000 * 100:.1f}%" in summary
    assert "Discovery → Advocacy" in summary


def test_targets_show_met_missed_and_unknown(page: str) -> None:
    rows = re.findall(r'<tr data-status="(\w+)">(.*?)</tr>', view_html(page, "smb"), re.S)
    status = {text(row).split(" ")[0] + " " + text(row).split(" ")[1]: s for s, row in rows}
    assert status == {"TTV p50": "missed", "NPS >=": "met", "Activation conversion": "missed", "CES down": "unknown"}
    by_label = {text(row).split(" Source")[0].split(" ")[0]: text(row) for _s, row in rows}
    assert by_label["TTV"].endswith("Whole journey 3.5d 3.0d Missed")
    assert "Source: OpenView 2023 Product Benchmarks" in by_label["TTV"]
    assert "Activation 72% 75% Missed" in by_label["Activation"]
    assert "SMB self-serve – -15% Unknown" in by_label["CES"]


def test_pain_points_and_opportunities_sit_in_their_stage(page: str) -> None:
    view = view_html(page, "all")
    pains = re.search(r'<tr class="lane lane--pains">.*?</tr>', view, re.S).group(0)
    onboarding = re.search(r'data-stage="onboarding">(.*?)</td>', pains, re.S).group(1)
    assert onboarding.index("pain--high") < onboarding.index("pain--low")  # most severe first
    assert "42% drop in Onboarding" in onboarding
    assert "pain--medium" in re.search(r'data-stage="purchase">(.*?)</td>', pains, re.S).group(1)
    journey_wide = text(re.search(r'<tr class="lane lane--journey-wide">.*?</tr>', view, re.S).group(0))
    assert "Billing tickets spike at renewal" in journey_wide and "Usage-based pricing pilot" in journey_wide
    assert "Billing tickets" not in pains
    opps = re.search(r'<tr class="lane lane--opportunities">.*?</tr>', view, re.S).group(0)
    discovery = re.search(r'data-stage="discovery">(.*?)</td>', opps, re.S).group(1)
    assert discovery.count("Lead with the ROI calculator") == 1  # team idea and data row merged
    assert "opp--data" in re.search(r'data-stage="onboarding">(.*?)</td>', opps, re.S).group(1)


def test_emotion_curve_shows_gaps_honestly(page: str) -> None:
    curve = re.search(r"<svg class=\"emotion-curve\".*?</svg>", view_html(page, "all"), re.S).group(0)
    assert curve.count('class="point point--none"') == 2  # signup and the lost outcome
    assert curve.count('class="curve-gap"') == 1  # discovery to onboarding bridges signup
    assert curve.count('class="curve-line"') == 5  # the other journey neighbours, outcomes stand alone
    assert 'class="baseline"' in curve


def test_owners_lane(page: str) -> None:
    owners = re.search(r'<tr class="lane lane--owners">.*?</tr>', view_html(page, "all"), re.S).group(0)
    discovery = text(re.search(r'data-stage="discovery">(.*?)</td>', owners, re.S).group(1))
    assert discovery == "Marketing with Growth, Customer Success"


def test_no_network_references(page: str) -> None:
    resource = re.compile(r"""(?:\b(?:src|href|action|poster|srcset|xlink:href)\s*=\s*["']?\s*(?:https?:)?//)"""
                          r"""|url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)
    assert not resource.search(page)
    outside_data = re.sub(r'<script type="application/json".*?</script>', "", page, flags=re.S)
    assert not re.search(r"<(?:link|img|iframe|object|embed|source)\b", outside_data)
    assert not re.search(r"<script\b[^>]*\bsrc=", outside_data)
    # the one URL in the model is a target's citation, shown as text, not a link
    assert re.findall(r"https?://[^\s<\"]+", outside_data) == ["https://example.org/benchmarks"] * 3
    assert "<a " not in outside_data


def test_one_self_contained_file(tmp_path: Path, model: dict[str, Any]) -> None:
    written = write_map_html(model, tmp_path / "out" / "map.html")
    assert written == tmp_path / "out" / "map.html"
    assert list(written.parent.iterdir()) == [written]
    page = written.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<style>") == 1 and page.count("<html") == 1
    embedded = re.search(r'<script type="application/json" id="journeymap-model">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1)) == model


def test_model_text_is_escaped(model: dict[str, Any]) -> None:
    model["title"] = "Acme <script>alert(1)</script> & Co"
    model["views"]["all"]["pain_points"][0]["title"] = "</script><b>bold</b>"
    page = render_map_html(model)
    assert "<script>alert(1)" not in page and "<b>bold</b>" not in page
    assert "Acme &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    embedded = re.search(r'<script type="application/json" id="journeymap-model">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1))["title"] == model["title"]


def test_sparse_model_renders() -> None:
    page = render_map_html({"title": "Empty", "stages": [{"id": "trial", "name": "Trial"}],
                            "personas": [], "views": {"all": {"units": None, "stages": {}}}})
    view = view_html(page, "all")
    assert metric(view, "trial", "reached") == "–"
    assert "No targets are set" in view
    assert render_map_html({"stages": [], "views": {}}).count("no views yet") == 1


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]
SCREENSHOT = Path("/tmp/journeymap-map.png")


@pytest.mark.browser
def test_map_in_a_real_browser(tmp_path: Path, model: dict[str, Any]) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (apt-get install chromium); the browser test needs a real browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    path = write_map_html(model, tmp_path / "map.html")
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(path.as_uri())

            visible = "main.view:not([hidden])"
            stage_headers = page.locator(f"{visible} th[data-stage]")
            assert stage_headers.count() == len(STAGES) + len(OUTCOMES)
            assert page.locator("main.view:visible").count() == 1

            reached = page.locator(f'{visible} td[data-stage="discovery"] [data-metric="reached"]')
            conversion = page.locator(f'{visible} td[data-stage="activation"] [data-metric="conversion_rate"]')
            assert reached.inner_text() == "5,000"
            assert conversion.inner_text() == "78.0%"

            # columns line up: every lane's cell sits under its stage header
            heads = [stage_headers.nth(i).bounding_box() for i in range(stage_headers.count())]
            for lane in ("touchpoints", "metrics", "pains", "owners"):
                cells = page.locator(f"{visible} tr.lane--{lane} td")
                for i, head in enumerate(heads):
                    box = cells.nth(i).bounding_box()
                    assert abs(box["x"] - head["x"]) < 1.5 and abs(box["width"] - head["width"]) < 1.5
            # emotion points sit over the centre of their stage column
            points = page.locator(f"{visible} svg.emotion-curve circle")
            for i, head in enumerate(heads):
                box = points.nth(i).bounding_box()
                assert abs(box["x"] + box["width"] / 2 - (head["x"] + head["width"] / 2)) < 2
            # nothing spills sideways at 1600px
            assert page.evaluate("document.documentElement.scrollWidth") <= 1600
            spilling = page.evaluate(
                "[...document.querySelectorAll('main.view:not([hidden]) :is(.journey-grid td, .kpi, .panel)')]"
                ".filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.textContent.trim().slice(0, 40))"
            )
            assert spilling == []

            page.screenshot(path=str(tmp_path / "map.png"), full_page=True)
            page.click('[data-persona-button="smb"]')
            assert page.locator('[data-persona-button="smb"]').get_attribute("aria-pressed") == "true"
            assert reached.inner_text() == "3,100"
            assert conversion.inner_text() == "72.0%"
            assert page.locator("main.view:visible").get_attribute("data-persona") == "smb"
            assert page.locator(".facts dd span:visible").inner_text() == "3,100"
            page.screenshot(path=str(tmp_path / "map-smb.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "map.png").stat().st_size > 10_000
    shutil.copyfile(tmp_path / "map.png", SCREENSHOT)
    shutil.copyfile(tmp_path / "map-smb.png", SCREENSHOT.with_name("journeymap-map-smb.png"))
    assert [url for url in requests if not url.startswith("file://")] == []
    assert errors == []
