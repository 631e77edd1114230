"""The conformance page of the web app, `/app/conformance` and its JSON twin, served by `journeymap serve` on
loopback: the worked example of docs/metrics/conformance.md, its numbers counted in the doc's table, the
registry's options, paging and the per-unit lookup, and the empty state of a journeymap.yml without a design."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import invoke_json
from journeymap.analyses import get
from journeymap.analyses.base import options
from journeymap.server.keys import create_key
from journeymap.workspace import Workspace
from test_conformance import JOURNEYS, WORKED, write_log
from test_tracking_api import Server


def _workspace(path: Path, definition: dict) -> tuple[Path, str]:
    """The worked example's events under `definition`, with a read key."""
    path.mkdir(parents=True)
    (path / "journeymap.yml").write_text(yaml.safe_dump(definition))
    rows = [(u, e, dt.datetime(2025, 1, 1) + dt.timedelta(days=d - 1, minutes=i))
            for u, evs in JOURNEYS.items() for i, (e, d) in enumerate(evs)]
    rows.append(("H", "noise", dt.datetime(2025, 3, 1)))
    invoke_json("ingest", str(write_log(rows, path.parent / f"{path.name}.csv")), "--workspace", str(path))
    with Workspace(path) as ws:
        _, token = create_key(ws.con, "read", "conformance-page")
    return path, token


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ws, token = _workspace(tmp_path_factory.mktemp("conf-page") / "ws", WORKED)
    server = Server(ws).start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            yield http
    finally:
        server.stop()


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_page_and_its_twin_show_the_worked_example(served):
    twin = served.get("/app/conformance.json", params={"limit": 0})
    assert twin.status_code == 200, twin.text
    data = twin.json()
    r = data["result"]
    # the doc's table: 7 units evaluated, A and E conform; B, C, D, F, G deviate
    assert (r["units"], r["conforming"]) == (7, 2)
    assert r == served.get("/api/v1/conformance", params={"limit": 0}).json()  # one computation for both
    rows = {d["type"]: d for d in data["deviation_rows"]}
    assert set(rows) == {"missing", "out_of_order", "repeated", "exclusive_choice", "over_budget"}
    assert rows["missing"]["units"] == 2 and rows["missing"]["deviations"] == 4  # F and G, two steps each
    assert data["needs_design"] is None

    page = served.get("/app/conformance", params={"limit": 0})
    assert page.status_code == 200
    text = _text(page.text)
    assert "Conformance 28.6% 95% CI 8.2%–64.1%" in text  # 2/7, Wilson (the doc's worked example)
    assert "Conforming 2 of 7" in text
    assert "connect (position 2): missing" in text  # where F and G leave the design
    for table in ("conformance-by-persona", "conformance-by-period", "conformance-deviations", "conformance-variants",
                  "conformance-units"):
        assert f'id="{table}"' in page.text, table
    assert '<script src="/app/static/plotly.min.js"></script>' in page.text  # the package's Plotly, no CDN
    assert 'data-chart-for="conformance-personas"' in page.text and 'data-chart-for="conformance-periods"' in page.text
    assert '<a href="/app/conformance" data-nav="conformance" aria-current="page">Conformance</a>' in page.text


def test_the_options_are_the_registrys(served):
    data = served.get("/app/conformance.json").json()
    want = {o.key: o for o in options(get("conformance").params, "web")}
    assert {f["name"] for f in data["form"]} == set(want)
    page = served.get("/app/conformance").text
    for key in want:
        assert f'name="{key}"' in page, key
    bad = served.get("/app/conformance.json", params={"persona": "smb"})  # WORKED defines no persona
    assert bad.status_code == 422 and "--persona: no persona 'smb'" in bad.json()["detail"]


def test_units_are_paged_and_looked_up(served):
    everyone = served.get("/app/conformance.json", params={"limit": 0}).json()["result"]["units_list"]
    page = served.get("/app/conformance.json", params={"limit": 2, "offset": 1}).json()
    assert [u["unit_id"] for u in page["result"]["units_list"]] == [u["unit_id"] for u in everyone[1:3]]
    assert page["pages"] == {"shown_from": 2, "shown_to": 3, "total": 5, "previous": 0, "next": 3}
    shown = served.get("/app/conformance", params={"limit": 2, "offset": 1}).text
    assert "offset=3" in shown and "next ›" in shown and "‹ previous" in shown
    b = next(u["unit_id"] for u in everyone if u["unit_id"].endswith("B"))
    one = served.get("/app/conformance.json", params={"unit": b}).json()["result"]
    assert [u["unit_id"] for u in one["units_list"]] == [b]
    assert [(d["type"], d["step"]) for d in one["units_list"][0]["deviations"]] == [("out_of_order", "self_serve")]
    assert "out of order: self_serve" in _text(served.get("/app/conformance", params={"unit": b}).text)


def test_without_a_design_the_page_says_what_to_add(tmp_path):
    ws, token = _workspace(tmp_path / "ws", {k: v for k, v in WORKED.items() if k != "future_state"})
    server = Server(ws).start()
    try:
        auth = {"Authorization": f"Bearer {token}"}
        page = httpx.get(f"{server.url}/app/conformance", headers=auth, timeout=60)
        twin = httpx.get(f"{server.url}/app/conformance.json", headers=auth, timeout=60)
    finally:
        server.stop()
    assert page.status_code == 200 and twin.status_code == 200
    assert "No designed journey yet" in page.text and "future_state:" in page.text
    example = twin.json()["needs_design"]["example"]
    assert twin.json()["result"] is None and "a `future_state:` section" in twin.json()["needs_design"]["add"]
    assert html.escape(example.splitlines()[1], quote=False) in page.text
    from journeymap.journey.future_state import FutureState

    FutureState.model_validate(yaml.safe_load(example)["future_state"])  # the example is a valid design


def test_the_web_map_draws_the_two_curves(served):
    """The web map renders the HTML export's panels: the current-vs-future curves are there too, with the
    notes saying what to add (the worked example has no survey target and no time target for its stage)."""
    page = served.get("/app/map").text
    charts = re.findall(r'<svg class="target-curves".*?</svg>', page, re.S)
    assert len(charts) == 2 and "Emotion by stage" in charts[0] and "Median time in stage, by stage" in charts[1]
    curves = served.get("/app/map.json").json()["views"]["all"]["future_state"]["curves"]
    assert curves["notes"]["emotion"] in html.unescape(page)
