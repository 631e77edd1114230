"""The tracking API against hostile and awkward input (issue 16): each test drives the real app in process
(`serve_in_process`: the lifespan opens the store, the journal and the loader thread; leaving it flushes the
journal and loads it), then reads the store it left behind."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from conftest import invoke_cli, invoke_json, serve_in_process
from journeymap.ingest.store import open_store
from journeymap.journey import load
from journeymap.journey.load import DefinitionError, json_schema
from test_tracking_api import quick_workspace


def _store(ws, sql: str) -> list[tuple]:
    con = open_store(ws, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _good(mid: str, **extra) -> dict:
    return {"type": "track", "userId": "u-hard", "event": "Good", "messageId": mid, "timestamp": "2024-05-01T10:00:00Z", **extra}


def _wait_loaded(client, accepted: int, timeout: float = 20) -> None:
    """Until the loader thread has stored `accepted` events (so what comes next is compared with the store)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loader = client.get("/-/health").json()["loader"]
        if loader["accepted"] >= accepted:
            return
        time.sleep(0.05)
    raise AssertionError(f"the loader stored {loader['accepted']} of {accepted} events in {timeout} s")


# -- 1. one bad item must not lose a batch ---------------------------------------------------------------

OUT_OF_RANGE = [
    {"timestamp": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
    {"timestamp": "9999-12-31T23:59:59-14:00"},  # after year 9999 in UTC
    {"originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"},  # the skew correction overflows
]


def test_an_out_of_range_time_rejects_its_item_and_keeps_the_batch(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    batch = [_good("range-ok-1")]
    for i, times in enumerate(OUT_OF_RANGE):
        bad = {k: v for k, v in _good(f"range-bad-{i}").items() if k != "timestamp"}
        batch.append({**bad, **times})
    batch.append(_good("range-ok-2"))
    with serve_in_process(ws) as c:
        c.auth = (token, "")
        r = c.post("/v1/batch", json={"batch": batch})
        single = c.post("/v1/track", json={**_good("range-single"), "timestamp": "0001-01-01T00:00:00+14:00"})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    rejected = r.json()["rejected"]
    assert [(x["index"], x["reason"], x["field"]) for x in rejected] == [(i, "absurd_timestamp", "ts") for i in (1, 2, 3)]
    assert "out of range" in rejected[0]["detail"] and "0001-01-01T00:00:00+14:00" in rejected[0]["detail"]
    assert "skew correction" in rejected[2]["detail"]
    assert single.status_code == 400 and single.json()["rejected"][0]["reason"] == "absurd_timestamp"
    assert _store(ws, "SELECT message_id FROM events ORDER BY 1") == [("range-ok-1",), ("range-ok-2",)]


# -- 2. deep nesting -----------------------------------------------------------------------------------------

def test_a_body_nesting_2000_arrays_is_400_before_it_is_parsed(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    deep = b"[" * 2000 + b"]" * 2000  # 4 KB
    in_batch = b'{"batch": [' + b"[" * 2000 + b"]" * 2000 + b"]}"
    # The same brackets inside a string are text, not nesting: that event is stored.
    text = json.dumps({"batch": [_good("brackets-in-text", properties={"note": "[" * 2000 + "{" * 100})]}).encode()
    with serve_in_process(ws) as c:
        c.auth = (token, "")
        answers = [c.post(path, content=body, headers={"content-type": "application/json"})
                   for path, body in (("/v1/batch", deep), ("/v1/batch", in_batch), ("/v1/track", deep))]
        fine = c.post("/v1/batch", content=text, headers={"content-type": "application/json"})
    for r in answers:
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid_request" and body["success"] is False
        assert "nests 200" in body["message"] and "the limit is 100" in body["message"]
    assert (fine.status_code, fine.json()) == (200, {"success": True})
    assert _store(ws, "SELECT message_id FROM events") == [("brackets-in-text",)]


# -- 3. retries stay duplicates ------------------------------------------------------------------------------

def test_a_retry_of_a_skew_corrected_batch_is_a_duplicate_not_a_conflict(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    skewed = {"sentAt": "2030-01-01T01:00:30Z", "batch": [
        {"type": "track", "userId": "u-retry", "event": "Retried", "messageId": "retry-1",
         "originalTimestamp": "2030-01-01T01:00:00Z", "properties": {"n": 1}},
        {"type": "identify", "userId": "u-retry", "messageId": "retry-2", "traits": {"plan": "pro"},
         "originalTimestamp": "2030-01-01T01:00:10Z"},
        {"type": "track", "userId": "u-retry", "event": "No Time", "messageId": "retry-3"},  # ts = receivedAt
    ]}
    with serve_in_process(ws, segment_seconds=0.2) as c:
        c.auth = (token, "")
        first = c.post("/v1/batch", json=skewed)
        _wait_loaded(c, 3)  # stored: the retry is compared with the store
        time.sleep(1.5)
        retry = c.post("/v1/batch", json=skewed)
        twice = c.post("/v1/batch", json={**skewed, "batch": skewed["batch"][:1] * 2})  # a repeat within one segment
        # What is not a retry stays a conflict: other content under the same id, or another explicit time.
        changed = c.post("/v1/batch", json={**skewed, "batch": [{**skewed["batch"][0], "properties": {"n": 2}}]})
        c.post("/v1/track", json=_good("explicit-1"))
        _wait_loaded(c, 4)
        moved = c.post("/v1/track", json={**_good("explicit-1"), "timestamp": "2024-05-01T10:00:05Z"})
    # An event and its retry in the same journal segment (it closes only at shutdown): compared with each other.
    fresh = {**skewed, "batch": [{**skewed["batch"][0], "messageId": "retry-4"}]}
    with serve_in_process(ws, segment_seconds=600) as c:
        c.auth = (token, "")
        same_segment = [c.post("/v1/batch", json=fresh), time.sleep(1.5), c.post("/v1/batch", json=fresh)][::2]
    assert all(r.status_code == 200 for r in (first, retry, twice, changed, moved, *same_segment))
    assert _store(ws, "SELECT message_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ("explicit-1", 1), ("retry-1", 1), ("retry-2", 1), ("retry-3", 1), ("retry-4", 1)]
    assert _store(ws, "SELECT reason, message_id FROM dead_letters ORDER BY 2") == [
        ("conflict", "explicit-1"), ("conflict", "retry-1")]
    ts = _store(ws, "SELECT ts FROM events WHERE message_id = 'retry-1'")[0][0]
    assert ts.year == datetime.now(UTC).year  # corrected with the receive time, not the client's 2030 clock
    # duplicates: the 3 retried, the 2 of `twice`, and retry-4's second sending
    assert _store(ws, "SELECT sum(duplicate) FROM journal_segments") == [(6,)]


# -- 4. RudderStack's identify traits ------------------------------------------------------------------------

def test_identify_reads_rudderstacks_context_traits_and_top_level_traits_win(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    rudder = {"type": "identify", "userId": "u-rs", "messageId": "rs-1", "timestamp": "2024-05-01T10:00:00Z",
              "context": {"traits": {"email": "ann@example.com", "plan": "pro", "name": "Ann"},
                          "library": {"name": "RudderLabs JavaScript SDK"}}}
    both = {**rudder, "messageId": "rs-2", "traits": {"plan": "enterprise", "seats": 5}}
    with serve_in_process(ws) as c:
        c.auth = (token, "")
        assert c.post("/v1/identify", json=rudder).json() == {"success": True}
        assert c.post("/v1/batch", json={"batch": [both]}).json() == {"success": True}
    rows = {m: (e, json.loads(t)) for m, e, t in _store(ws, "SELECT message_id, email, traits FROM events")}
    assert rows["rs-1"] == ("ann@example.com", {"email": "ann@example.com", "plan": "pro", "name": "Ann"})
    assert rows["rs-2"] == ("ann@example.com", {"email": "ann@example.com", "plan": "enterprise", "name": "Ann", "seats": 5})


# -- 5. Segment-shaped errors --------------------------------------------------------------------------------

def test_every_error_answer_carries_segments_code_and_message(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    with serve_in_process(ws, rate_limit=1, burst=1) as c:
        answers = {
            "unauthorized": c.post("/v1/track", json=_good("e-401"), auth=("jm_w_not-a-key", "")),
            "invalid_request": c.post("/v1/batch", content=b'{"batch": [', auth=(token, "")),
            "payload_too_large": c.post("/v1/track", json=_good("e-413", properties={"b": "x" * 33_000}), auth=(token, "")),
        }
        rejected = c.post("/v1/track", json={"userId": "u1"}, auth=(token, ""))
        c.post("/v1/track", json=_good("e-ok"), auth=(token, ""))
        answers["rate_limited"] = c.post("/v1/track", json=_good("e-429"), auth=(token, ""))
    statuses = {"unauthorized": 401, "invalid_request": 400, "payload_too_large": 413, "rate_limited": 429}
    for code, r in answers.items():
        body = r.json()
        assert (r.status_code, body["code"]) == (statuses[code], code), body
        assert body["message"] and body["error"] == body["message"] and body["success"] is False
    body = rejected.json()
    assert (rejected.status_code, body["code"]) == (400, "invalid_request")
    assert body["message"] == "the event is rejected: a track call needs an event name"
    assert body["rejected"][0]["reason"] == "missing_event"  # the fields it had before stay


# -- 6. CORS -------------------------------------------------------------------------------------------------

SHOP = "https://shop.example.com"


def _cors_workspace(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    (ws / "journeymap.yml").write_text("server:\n  cors_origins: [https://Shop.Example.com, 'http://localhost:3000']\n")
    return ws, token


def test_cors_preflight_and_allow_origin_only_for_the_listed_origins(tmp_path):
    ws, token = _cors_workspace(tmp_path)
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with serve_in_process(ws) as c:
        ok = c.options("/v1/batch", headers={"Origin": SHOP, **ask})
        local = c.options("/v1/track", headers={"Origin": "http://localhost:3000", **ask})
        other = c.options("/v1/batch", headers={"Origin": "https://evil.example.net", **ask})
        plain = c.options("/v1/batch")
        posted = c.post("/v1/batch", json={"batch": [_good("cors-1")]}, auth=(token, ""), headers={"Origin": SHOP})
        refused = c.post("/v1/track", json=_good("cors-2"), auth=(token, ""), headers={"Origin": "https://evil.example.net"})
        bad_key = c.post("/v1/track", json=_good("cors-3"), auth=("jm_w_nope", ""), headers={"Origin": SHOP})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert {m.strip() for m in ok.headers["access-control-allow-methods"].split(",")} >= {"POST", "OPTIONS"}
    assert {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")} >= {"authorization", "content-type"}
    assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert other.json()["code"] == "origin_not_allowed" and "server.cors_origins" in other.json()["message"]
    assert plain.status_code == 204 and "access-control-allow-origin" not in plain.headers
    assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == SHOP
    assert posted.headers["vary"] == "Origin"
    # The origin is not a credential: the event is stored, but the browser may not read the answer.
    assert refused.status_code == 200 and "access-control-allow-origin" not in refused.headers
    assert bad_key.status_code == 401 and bad_key.headers["access-control-allow-origin"] == SHOP  # the page can see why


def test_no_cors_origins_means_no_cors_headers(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    with serve_in_process(ws) as c:
        pre = c.options("/v1/batch", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
        r = c.post("/v1/track", json=_good("nocors"), auth=(token, ""), headers={"Origin": SHOP})
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers and "vary" not in r.headers


@pytest.mark.parametrize(("origin", "says"), [
    ("https://shop.example.com/", "did you mean 'https://shop.example.com'?"),
    ("shop.example.com", "write scheme://host[:port]"),
    ("ftp://shop.example.com", "write scheme://host[:port]"),
    ("https://shop.example.com:99999", "the port is not a number"),
])
def test_a_bad_cors_origin_names_the_key_and_the_fix(tmp_path, origin, says):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(f"server:\n  cors_origins: ['{SHOP}', '{origin}']\n")
    with pytest.raises(DefinitionError) as exc:
        load.server_config_for(ws)
    assert exc.value.problems[0][0] == "server.cors_origins[1]"
    assert says in exc.value.problems[0][1]


def test_cors_origins_is_in_the_json_schema_and_the_definition(tmp_path):
    schema = json.loads(json_schema())
    server = schema["$defs"]["ServerConfig"]["properties"]["cors_origins"]
    assert server["type"] == "array" and "Origins" in server["description"]
    ws, _ = _cors_workspace(tmp_path)
    assert load.server_config_for(ws).cors_origins == [SHOP, "http://localhost:3000"]
    assert load.server_config_for(tmp_path).cors_origins == []  # no journeymap.yml


def test_the_real_server_answers_a_preflight(tmp_path):
    """`journeymap serve` over a socket, as a browser reaches it."""
    from test_tracking_api import Server

    ws, token = _cors_workspace(tmp_path)
    server = Server(ws, "--rate-limit", "0").start()
    try:
        pre = httpx.options(f"{server.url}/v1/batch", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
        deep = httpx.post(f"{server.url}/v1/batch", content=b"[" * 2000 + b"]" * 2000, auth=(token, ""))
    finally:
        server.stop()
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == SHOP
    assert deep.status_code == 400 and deep.json()["code"] == "invalid_request"
    assert invoke_json("rejects", "--workspace", str(ws))["rejects"] == []


def test_serve_refuses_a_bad_cors_origin_in_one_line(tmp_path):
    ws, _ = quick_workspace(tmp_path / "ws")
    (ws / "journeymap.yml").write_text("server:\n  cors_origins: ['https://shop.example.com/checkout']\n")
    proc = invoke_cli("serve", "--workspace", str(ws), "--port", "1", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.split())
    assert "server.cors_origins[0]" in said and "did you mean 'https://shop.example.com'?" in said
