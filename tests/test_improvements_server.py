"""/api/v1/improvements and the web app's improvement pages on a served demo workspace: reads need a read key,
writes a write key (a read key is refused with 401 and nothing is written); the JSON twin is the page's data."""

from __future__ import annotations

import pytest
from conftest import serve_in_process

from journeymap.ingest.store import open_store
from journeymap.server.context import READ_COOKIE
from journeymap.server.keys import create_key



@pytest.fixture(scope="module")
def served(demo_copy):
    ws = demo_copy(300, 7).workspace
    con = open_store(ws)
    _, read = create_key(con, "read", "improvement tests")
    _, write = create_key(con, "write", "improvement writer")
    con.close()
    with serve_in_process(ws) as client:
        yield client, read, write


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_reads_need_a_read_key_and_writes_a_write_key(served):
    client, read, write = served
    assert client.get("/api/v1/improvements").status_code == 401
    body = {"stage": "acquisition", "metric": "reached", "title": "Shorter signup form", "owner": "Growth",
            "status": "shipped", "ship_date": "2026-01-07"}
    refused = client.post("/api/v1/improvements", json=body, headers=_bearer(read))
    assert refused.status_code == 401 and "a write key is required" in refused.json()["detail"]
    assert client.get("/api/v1/improvements", headers=_bearer(read)).json() == {"improvements": []}
    made = client.post("/api/v1/improvements", json=body, headers=_bearer(write))
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "shorter-signup-form" and made.json()["ship_date"] == "2026-01-07"
    bad = client.post("/api/v1/improvements", json={**body, "stage": "aquisition"}, headers=_bearer(write))
    assert bad.status_code == 422 and "did you mean 'acquisition'" in bad.json()["detail"]
    assert bad.json()["option"] == "stage"
    assert client.patch("/api/v1/improvements/shorter-signup-form", json={"owner": "Ann"},
                        headers=_bearer(read)).status_code == 401
    changed = client.patch("/api/v1/improvements/shorter-signup-form", json={"owner": "Ann"}, headers=_bearer(write))
    assert changed.status_code == 200 and changed.json()["owner"] == "Ann"
    assert changed.json()["history"][-1]["note"] == "owner: Growth -> Ann"
    unknown = client.patch("/api/v1/improvements/shorter-signup-fom", json={"owner": "Bo"}, headers=_bearer(write))
    assert unknown.status_code == 400 and "did you mean 'shorter-signup-form'?" in unknown.json()["detail"]
    shown = client.get("/api/v1/improvements/shorter-signup-form?by=person", headers=_bearer(read)).json()
    assert shown["effect"]["method"] == "its" and shown["effect"]["verdict"] in (
        "moved", "no detectable change", "too early")
    assert shown["effect"]["weeks_before"] >= 8


def test_web_pages_and_forms_write_only_with_a_write_key(served):
    client, read, write = served
    client.cookies.set(READ_COOKIE, read)
    try:
        page = client.get("/app/improvements")
        assert page.status_code == 200 and 'id="improvement-add"' in page.text
        form = {"opportunity": "1", "stage": "onboarding", "metric": "conversion", "owner": "Onboarding PM",
                "status": "planned", "target": "60%"}
        refused = client.post("/app/improvements", data=form)
        assert refused.status_code == 401 and "a write key is required" in refused.text
        assert "make-connecting" not in client.get("/app/improvements.json").text
        added = client.post("/app/improvements", data={**form, "key": write})
        assert added.status_code == 303
        target = added.headers["location"]
        assert target == "/app/improvements/make-connecting-a-data-source-the"
        detail = client.get(target)
        assert detail.status_code == 200
        assert "Make connecting a data source the first checklist step" in detail.text
        assert "not measured: the improvement is planned" in detail.text
        typo = client.post(target, data={"status": "shiped", "key": write})
        assert typo.status_code == 422 and "did you mean &#39;shipped&#39;?" in typo.text
        assert client.post(target, data={"status": "shipped"}).status_code == 401
        shipped = client.post(target, data={"status": "shipped", "ship_date": "2026-01-07", "key": write})
        assert shipped.status_code == 303
        twin = client.get(target + ".json").json()
        assert twin["improvement"]["status"] == "shipped" and twin["effect"]["metric"] == "conversion"
        assert [h["to"] for h in twin["improvement"]["history"]] == ["planned", "shipped"]
        listed = client.get("/app/improvements.json?status=shipped").json()["improvements"]
        assert "make-connecting-a-data-source-the" in [i["id"] for i in listed]
    finally:
        client.cookies.clear()


def test_the_map_shows_owners_status_and_effect_and_is_recomputed_after_a_change(served):
    client, read, write = served
    client.post("/api/v1/improvements", headers=_bearer(write), json={
        "stage": "onboarding", "opportunity": "2", "metric": "conversion", "owner": "Onboarding PM",
        "status": "in progress"})
    client.post("/api/v1/improvements", headers=_bearer(write), json={
        "stage": "acquisition", "metric": "reached", "title": "Signup form for the map", "id": "signup-map",
        "status": "shipped", "ship_date": "2026-01-07"})
    params = "?by=person&insights=false"
    first = client.get("/api/v1/map" + params, headers=_bearer(read)).json()["improvements"]
    by_id = {i["id"]: i for i in first}
    promoted = next(i for i in first if i["source"] == "team" and i["status"] == "in progress")
    assert promoted["owner"] == "Onboarding PM" and promoted["effect"] is None
    signup = by_id["signup-map"]  # shipped: its effect, without the weekly series
    assert signup["effect"]["method"] == "its" and "series" not in signup["effect"]
    client.patch(f"/api/v1/improvements/{promoted['id']}", headers=_bearer(write), json={"owner": "Growth"})
    again = {i["id"]: i for i in client.get("/api/v1/map" + params, headers=_bearer(read)).json()["improvements"]}
    assert again[promoted["id"]]["owner"] == "Growth"  # the cached map was dropped by the change
    html = client.get("/app/map.html" + params, headers=_bearer(read)).text
    lane = html[html.index("lane--opportunities"):html.index("lane--owners")]
    assert f'data-improvement="{promoted["id"]}"' in lane and "in progress · Growth" in lane
    assert 'data-improvement="signup-map"' in lane and signup["effect"]["verdict_text"] in lane.replace(
        "&#39;", "'")
