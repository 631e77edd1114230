"""The tracking API over a real socket: `journeymap serve` in a subprocess, driven with httpx.

Payloads are the examples of Segment's HTTP Tracking API documentation (with messageIds added).
The store is read after the server has stopped cleanly (DuckDB lets one process open the file).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

import httpx
import pytest

from conftest import invoke_cli, invoke_json, run_cli, serve_in_process
from journeymap.ingest.store import open_store
from journeymap.server.app import create_app
from journeymap.server.keys import create_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`journeymap serve` as a user runs it, on a free loopback port."""

    def __init__(self, workspace: Path, *args: str):
        self.workspace, self.args = workspace, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workspace / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeymap", "serve", "--workspace", str(self.workspace), "--port", str(self.port),
                 *self.args], stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes requests, then the journal is flushed and loaded into the store
        (uvicorn re-raises the signal once it has shut down cleanly, so the exit status is -SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(60) in (0, -signal.SIGTERM), self.log.read_text()
            assert "Traceback" not in self.log.read_text(), self.log.read_text()
        self.proc = None

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None


def make_workspace(path: Path) -> tuple[Path, dict[str, str]]:
    """A workspace with keys, made with the CLI's commands (in-process: `invoke_cli`)."""
    invoke_cli("init", str(path))
    tokens = {name: invoke_json("keys", "create", "--kind", kind, "--name", name, "--workspace", str(path))
              for name, kind in (("web", "write"), ("revoked", "write"), ("reader", "read"))}
    invoke_cli("keys", "revoke", tokens["revoked"]["key_id"], "--workspace", str(path))
    return path, {name: t["token"] for name, t in tokens.items()}


def quick_workspace(path: Path) -> tuple[Path, str]:
    """A workspace with one write key, made in-process (the CLI round trips cost a second each)."""
    path.mkdir(parents=True)
    con = open_store(path)
    _, token = create_key(con, "write", "test")
    con.close()
    return path, token


# -- Segment's documented examples ---------------------------------------------------------------

TRACK = {"userId": "019mr8mf4r", "event": "Item Purchased", "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
         "context": {"ip": "24.5.68.47", "library": {"name": "analytics.js", "version": "2.11.1"}},
         "timestamp": "2012-12-02T00:30:12.984Z", "messageId": "seg-track-1"}
IDENTIFY = {"userId": "019mr8mf4r", "traits": {"email": "pgibbons@example.com", "name": "Peter Gibbons", "industry": "Technology"},
            "context": {"ip": "24.5.68.47"}, "timestamp": "2012-12-02T00:30:08.276Z", "messageId": "seg-identify-1"}
GROUP = {"userId": "019mr8mf4r", "groupId": "8e9df332ac",
         "traits": {"name": "Initech", "industry": "Technology", "employees": 329, "plan": "enterprise", "total billed": 830},
         "timestamp": "2012-12-02T00:30:10Z", "messageId": "seg-group-1"}
PAGE = {"userId": "019mr8mf4r", "name": "Tracking HTTP API", "properties": {"url": "https://segment.com/docs/"},
        "timestamp": "2012-12-02T00:31:29.738Z", "messageId": "seg-page-1"}
SCREEN = {"userId": "019mr8mf4r", "name": "Tracking HTTP API", "context": {"library": {"name": "analytics-ios"}},
          "timestamp": "2012-12-02T00:31:29.738Z", "messageId": "seg-screen-1"}
ALIAS = {"previousId": "39239-239239-239239-23923", "userId": "019mr8mf4r", "timestamp": "2012-12-02T00:31:29.738Z",
         "messageId": "seg-alias-1"}
BATCH = {
    "batch": [
        {"type": "identify", "userId": "019mr8mf4r", "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26},
         "timestamp": "2012-12-02T00:30:08.276Z", "messageId": "seg-batch-1"},
        {"type": "track", "userId": "019mr8mf4r", "event": "Song Played",
         "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"}, "timestamp": "2012-12-02T00:30:12.984Z",
         "messageId": "seg-batch-2"},
        {"type": "identify", "userId": "971mj8mk7p", "traits": {"email": "cindy@example.com", "name": "Cindy Gonzalez", "age": 23},
         "timestamp": "2012-12-02T00:30:08.276Z", "messageId": "seg-batch-3"},
        {"type": "track", "userId": "971mj8mk7p", "event": "Song Played",
         "properties": {"name": "Get Right", "artist": "Jennifer Lopez"}, "timestamp": "2012-12-02T00:30:12.984Z",
         "messageId": "seg-batch-4"},
    ],
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("tracking") / "ws")


@pytest.fixture(scope="module")
def server(workspace):
    ws, _ = workspace
    srv = Server(ws, "--rate-limit", "0").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server, workspace):
    with httpx.Client(base_url=server.url, auth=(workspace[1]["web"], ""), timeout=30) as c:
        yield c


# -- auth, limits and status codes (live server) -------------------------------------------------

def test_write_key_as_basic_user_or_in_the_body(server, workspace):
    _, tokens = workspace
    r = httpx.post(f"{server.url}/v1/track", auth=(tokens["web"], ""), json={**TRACK, "messageId": "auth-basic"})
    assert (r.status_code, r.json()) == (200, {"success": True})
    r = httpx.post(f"{server.url}/v1/track", json={**TRACK, "messageId": "auth-body", "writeKey": tokens["web"]})
    assert (r.status_code, r.json()) == (200, {"success": True})
    r = httpx.post(f"{server.url}/v1/batch", json={**BATCH, "writeKey": tokens["web"]})
    assert (r.status_code, r.json()) == (200, {"success": True})


@pytest.mark.parametrize("key", ["missing", "wrong", "revoked", "reader"])
def test_bad_keys_are_401(server, workspace, key):
    _, tokens = workspace
    auth = None if key == "missing" else ("jm_w_not-a-key" if key == "wrong" else tokens[key], "")
    r = httpx.post(f"{server.url}/v1/track", auth=auth, json=TRACK)
    assert r.status_code == 401 and r.json()["success"] is False
    if key != "missing":
        r = httpx.post(f"{server.url}/v1/track", json={**TRACK, "writeKey": auth[0]})
        assert r.status_code == 401


def test_malformed_json_is_400(client):
    for path in ("/v1/track", "/v1/batch"):
        r = client.post(path, content=b'{"userId": "u1", "event": ', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    assert client.post("/v1/batch", json={"batch": "not a list"}).status_code == 400
    assert client.post("/v1/track", json=[1, 2]).status_code == 400


def test_structurally_bad_single_events_are_400_with_the_reason(client):
    r = client.post("/v1/track", json={"userId": "u1"})
    assert r.status_code == 400
    assert r.json()["rejected"] == [{"index": 0, "reason": "missing_event", "field": "event", "detail": "a track call needs an event name"}]
    r = client.post("/v1/identify", json={"traits": {"a": 1}})
    assert r.status_code == 400 and r.json()["rejected"][0]["reason"] == "missing_identity"
    r = client.post("/v1/track", json={"userId": "u1", "event": "e", "timestamp": "yesterday"})
    assert r.status_code == 400 and r.json()["rejected"][0]["reason"] == "bad_timestamp"


def test_event_over_32_kb_is_413(client):
    r = client.post("/v1/track", json={**TRACK, "properties": {"blob": "x" * 33_000}})
    assert r.status_code == 413


def test_batch_over_500_kb_is_413_by_content_length(client):
    big = {"batch": [{**TRACK, "messageId": f"big-{i}", "properties": {"pad": "x" * 1000}} for i in range(520)]}
    r = client.post("/v1/batch", json=big)
    assert r.status_code == 413


def test_batch_limit_is_enforced_while_streaming(server, workspace):
    """A chunked body that never ends: the server must answer 413 once 500 KB have arrived."""
    _, tokens = workspace
    auth = base64.b64encode(f"{tokens['web']}:".encode()).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall((f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"x" * 16384
        sent = 0
        while sent < 600 * 1024:  # more than the limit, and no final chunk: the body never ends
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        response = s.recv(4096)
    assert response.startswith(b"HTTP/1.1 413")


def test_gzip_bodies_are_inflated_and_the_limit_applies_to_the_json(client):
    big = {"batch": [{"type": "track", **TRACK, "messageId": f"gzbig-{i}", "properties": {"pad": "x" * 1000}} for i in range(600)]}
    packed = gzip.compress(json.dumps(big).encode())
    assert len(packed) < 100_000  # small on the wire, over 500 KB inflated
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    assert client.post("/v1/batch", content=packed, headers=headers).status_code == 413
    assert client.post("/v1/batch", content=b"not gzip", headers=headers).status_code == 400


def _deep(levels: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


def test_depth_and_key_count_limits(client):
    too_deep = {**TRACK, "messageId": "deep", "properties": _deep(12)}
    too_many = {**TRACK, "messageId": "wide", "properties": {f"p{i}": i for i in range(1001)}}
    fine = {**TRACK, "messageId": "limits-ok", "properties": {**_deep(6), **{f"p{i}": i for i in range(900)}}}
    assert client.post("/v1/track", json=too_deep).json()["rejected"][0]["reason"] == "too_deep"
    assert client.post("/v1/track", json=too_many).json()["rejected"][0]["reason"] == "too_many_keys"
    r = client.post("/v1/batch", json={"batch": [{"type": "track", **too_deep}, {"type": "track", **too_many},
                                                 {"type": "track", **fine}]})
    assert r.status_code == 200
    assert [(x["index"], x["reason"]) for x in r.json()["rejected"]] == [(0, "too_deep"), (1, "too_many_keys")]


def test_oversized_event_inside_a_batch_is_rejected_by_index(client):
    r = client.post("/v1/batch", json={"batch": [{"type": "track", **TRACK, "messageId": "small"},
                                                 {"type": "track", **TRACK, "messageId": "huge", "properties": {"b": "x" * 40_000}}]})
    assert r.status_code == 200
    assert r.json()["rejected"] == [{"index": 1, "reason": "oversized_event", "field": "properties",
                                     "detail": r.json()["rejected"][0]["detail"]}]


def test_file_ingest_while_serving_fails_with_the_lock_message(server, workspace, tmp_path):
    ws, _ = workspace
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps({"customer_id": "u1", "event": "x", "ts": "2024-01-01"}) + "\n")
    proc = run_cli("ingest", str(f), "--workspace", str(ws), check=False)  # another process, as a user would
    assert proc.returncode == 1
    assert f"workspace is locked by pid {server.proc.pid}" in " ".join(proc.stderr.split())


def test_rate_limit_is_429_with_retry_after(tmp_path):
    """In-process (`serve --rate-limit 5 --burst 10`'s app)."""
    ws, token = quick_workspace(tmp_path / "ws")
    with serve_in_process(ws, rate_limit=5, burst=10) as c:
        batch = {"batch": [{"type": "track", **TRACK, "messageId": f"rl-{i}"} for i in range(10)]}
        c.auth = (token, "")
        assert c.post("/v1/batch", json=batch).status_code == 200
        r = c.post("/v1/batch", json=batch)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 2  # 10 events at 5 per second, less what refilled meanwhile


def test_journal_unavailable_is_503_with_retry_after(tmp_path):
    """In-process through the ASGI transport, without the lifespan: the journal is not open, as when
    the server is shutting down."""
    ws, _ = quick_workspace(tmp_path / "ws")

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ws)), base_url="http://jm") as c:
            return await c.post("/v1/track", json=TRACK)

    r = asyncio.run(post())
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


# -- what the store holds (after a clean stop) ---------------------------------------------------

@pytest.fixture(scope="module")
def stored(server, client, workspace):
    """Send the documented examples and the edge cases, stop the server, read the store."""
    ws, _ = workspace
    responses = {}
    for call, payload in (("track", TRACK), ("identify", IDENTIFY), ("group", GROUP), ("page", PAGE), ("screen", SCREEN),
                          ("alias", ALIAS)):
        responses[call] = client.post(f"/v1/{call}", json=payload)
    responses["batch"] = client.post("/v1/batch", json=BATCH)
    responses["gzip"] = client.post("/v1/track", content=gzip.compress(json.dumps({**TRACK, "messageId": "gz-1"}).encode()),
                                    headers={"content-encoding": "gzip", "content-type": "application/json"})
    # The same event twice: stored once. The same id with other content: a conflict dead letter.
    responses["dup"] = [client.post("/v1/track", json={**TRACK, "messageId": "dup-1"}) for _ in range(2)]
    responses["conflict"] = client.post("/v1/track", json={**TRACK, "messageId": "dup-1", "event": "Other"})
    # A mixed batch.
    responses["mixed"] = client.post("/v1/batch", json={"batch": [
        {"type": "track", "userId": "u-mixed", "event": "Good One", "messageId": "mixed-0"},
        {"type": "track", "userId": "u-mixed", "messageId": "mixed-1"},                       # no event name
        "not an object",
        {"type": "track", "event": "No Identity", "messageId": "mixed-3"},                  # no userId/anonymousId
        {"type": "track", "anonymousId": "a-mixed", "event": "Good Two", "messageId": "mixed-4"},
        {"type": "track", "userId": "u-mixed", "event": "Bad Time", "timestamp": "31/12/2024", "messageId": "mixed-5"},
        {"type": "launch", "userId": "u-mixed", "messageId": "mixed-6"},
        {"type": "track", "userId": "guest", "event": "Placeholder Only", "messageId": "mixed-7"},  # rejected later, in SQL
    ]})
    # Clock skew: the client's clock is 1 hour ahead; the event happened 10 s before it was sent.
    before = datetime.now(UTC).replace(tzinfo=None)
    responses["skew"] = client.post("/v1/track", json={
        "userId": "u-skew", "event": "Skewed", "messageId": "skew-1",
        "originalTimestamp": "2030-01-01T01:00:00Z", "sentAt": "2030-01-01T01:00:10Z"})
    responses["skew_batch"] = client.post("/v1/batch", json={"sentAt": "2030-01-01T01:00:30+00:00", "batch": [
        {"type": "track", "userId": "u-skew", "event": "Skewed", "messageId": "skew-2", "originalTimestamp": "2030-01-01T01:00:00Z"}]})
    after = datetime.now(UTC).replace(tzinfo=None)
    server.stop()
    con = open_store(ws, read_only=True)
    cols = [d[0] for d in con.execute("SELECT * FROM events LIMIT 0").description]
    events = {r[0]: dict(zip(cols, r, strict=True)) for r in con.execute("SELECT * FROM events").fetchall()}
    counts = dict(con.execute("SELECT message_id, count(*) FROM events GROUP BY 1").fetchall())
    dead = con.execute("SELECT reason, field, message_id, file FROM dead_letters").fetchall()
    journey = con.execute("SELECT count(*) FROM journey_events").fetchall()[0][0]
    con.close()
    rejects = invoke_json("rejects", "--workspace", str(ws))
    return {"responses": responses, "events": events, "counts": counts, "dead": dead, "journey": journey,
            "rejects": rejects, "window": (before, after)}


def test_every_endpoint_is_acknowledged_like_segment(stored):
    for call in ("track", "identify", "group", "page", "screen", "alias", "batch", "gzip"):
        r = stored["responses"][call]
        assert (r.status_code, r.json()) == (200, {"success": True}), call


def test_every_endpoint_stores_the_canonical_row(stored):
    ev = stored["events"]
    t = ev["seg-track-1"]
    assert (t["event"], t["type"], t["source"], t["channel"], t["user_id"]) == ("Item Purchased", "track", "product", "web", "019mr8mf4r")
    assert json.loads(t["properties"]) == TRACK["properties"]
    assert t["ts"] == datetime(2012, 12, 2, 0, 30, 12, 984000)
    i = ev["seg-identify-1"]
    assert (i["event"], i["type"], i["email"]) == ("identify", "identify", "pgibbons@example.com")
    assert json.loads(i["traits"]) == IDENTIFY["traits"] and i["properties"] is None
    g = ev["seg-group-1"]
    assert (g["event"], g["type"], g["account_id"], g["user_id"]) == ("group", "group", "8e9df332ac", "019mr8mf4r")
    assert json.loads(g["traits"])["employees"] == 329
    p = ev["seg-page-1"]
    assert (p["event"], p["type"]) == ("page_viewed", "page")
    assert json.loads(p["properties"]) == {"url": "https://segment.com/docs/", "name": "Tracking HTTP API"}
    s = ev["seg-screen-1"]
    assert (s["event"], s["type"], s["channel"]) == ("screen_viewed", "screen", "mobile")
    a = ev["seg-alias-1"]
    assert (a["event"], a["type"], a["previous_id"], a["user_id"]) == ("alias", "alias", "39239-239239-239239-23923", "019mr8mf4r")
    assert ev["gz-1"]["event"] == "Item Purchased"  # a gzip body
    b = [ev[f"seg-batch-{k}"] for k in range(1, 5)]
    assert [x["event"] for x in b] == ["identify", "Song Played", "identify", "Song Played"]
    assert b[2]["email"] == "cindy@example.com"
    assert stored["journey"] == len(ev)  # identity was stitched over everything stored


def test_duplicates_are_stored_once_and_conflicts_dead_lettered(stored):
    assert [r.status_code for r in stored["responses"]["dup"]] == [200, 200]
    assert stored["responses"]["conflict"].status_code == 200  # durable first; the conflict is found on load
    assert stored["counts"]["dup-1"] == 1
    assert stored["events"]["dup-1"]["event"] == "Item Purchased"
    assert ("conflict", "message_id", "dup-1") in {d[:3] for d in stored["dead"]}
    assert all(n == 1 for n in stored["counts"].values())


def test_a_mixed_batch_stores_the_good_and_reports_the_bad(stored):
    r = stored["responses"]["mixed"]
    assert r.status_code == 200 and r.json()["success"] is True
    assert [(x["index"], x["reason"], x["field"]) for x in r.json()["rejected"]] == [
        (1, "missing_event", "event"), (2, "bad_json", None), (3, "missing_identity", "user_id"),
        (5, "bad_timestamp", "ts"), (6, "invalid_type", "type"),
    ]
    ev = stored["events"]
    assert {"mixed-0", "mixed-4"} <= set(ev)
    assert not {"mixed-1", "mixed-3", "mixed-5", "mixed-6", "mixed-7"} & set(ev)
    # Deeper checks run in the loader's SQL, as for files: the placeholder id is a dead letter.
    late = [d for d in stored["dead"] if d[2] == "mixed-7"]
    assert [d[:2] for d in late] == [("missing_identity", "user_id")]
    assert Path(late[0][3]).name.startswith("seg-") and "journal" in late[0][3]
    assert any(x["reason"] == "missing_identity" for x in stored["rejects"]["rejects"])


def test_clock_skew_is_corrected_with_the_server_receive_time(stored):
    before, after = stored["window"]
    for mid, lag in (("skew-1", 10), ("skew-2", 30)):
        ts = stored["events"][mid]["ts"]
        assert before - timedelta(seconds=lag, milliseconds=5) <= ts <= after - timedelta(seconds=lag), (mid, ts, before, after)


def test_keys_list_shows_kinds_and_revocations_never_tokens(stored, workspace):
    ws, tokens = workspace  # the server has stopped: the keys commands need the store
    listed = invoke_cli("keys", "list", "--workspace", str(ws), "--json").stdout
    keys = {k["name"]: k for k in json.loads(listed)["keys"]}
    assert {n: (k["kind"], k["revoked_at"] is not None) for n, k in keys.items()} == {
        "web": ("write", False), "revoked": ("write", True), "reader": ("read", False)}
    assert not any(t in listed for t in tokens.values())
    con = open_store(ws, read_only=True)
    hashes = {h for (h,) in con.execute("SELECT hash FROM api_keys").fetchall()}
    con.close()
    assert not any(t in hashes for t in tokens.values()) and len(hashes) == 3
