"""The JSON API: the app `journeymap serve` runs, served in this process (conftest.serve_in_process: lifespan and
all, requests through ASGI) on a simulated business, driven with httpx. The real `journeymap serve` on a real
socket answers the 409 test here, and schemathesis's run (test_api_schemathesis.py).

Expected answers come from the real CLI (`--json`, run in-process) on a copy of the workspace made before the
server started: the server holds the store, and the copy has the same data, definition and keys.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml
from typer.testing import CliRunner

from conftest import serve_in_process
from journeymap.cli.main import app as cli_app
from journeymap.engine.funnel_options import FunnelOptionError, funnel_options
from journeymap.journey.load import load_definition
from journeymap.server.keys import create_key
from journeymap.workspace import Workspace
from test_tracking_api import Server

FUNNEL = {"steps": "signed_up,trial_started,subscription_started", "window": "30d"}

# Every GET endpoint with parameters that make it run; {account} is filled in with a real account.
ENDPOINTS = [
    ("/map", {}),
    ("/funnel", FUNNEL),
    ("/paths", {"level": "stage", "depth": 3, "top": 5}),
    ("/variants", {"level": "stage", "top": 5}),
    ("/transitions", {"level": "stage"}),
    ("/retention", {"start": "signed_up", "return": "report_created", "interval": "month"}),
    ("/lifecycle", {"interval": "month"}),
    ("/stickiness", {"interval": "month"}),
    ("/surveys", {}),
    ("/revenue", {}),
    ("/risk", {}),
    ("/health", {}),
    ("/moments", {}),
    ("/voice", {}),
    ("/friction", {}),
    ("/clv", {}),
    ("/experiment", {"name": "pricing_page"}),
    ("/conformance", {"limit": 5}),
    ("/analyses", {}),
    ("/accounts", {"limit": 5}),
    ("/accounts/{account}/timeline", {"limit": 5}),
    ("/definition", {}),
    ("/keys", {}),
]


class Demo:
    """A demo workspace with the tokens of a read and a write key, and a copy of it for the CLI; `serve` it."""

    def __init__(self, sim):
        """`sim`: a fresh copy of the 600-account demo (seed 3), ingested (conftest's demo_copy)."""
        self.workspace = Path(sim.workspace)
        self.copy = self.workspace.parent / "cli"
        with Workspace(self.workspace) as ws:
            _, self.read = create_key(ws.con, "read", "analyst")
            _, self.write = create_key(ws.con, "write", "website")
            ws.con.execute("CHECKPOINT")
        self.copy.mkdir()
        for name in ("journeymap.yml", "journeymap.duckdb"):
            shutil.copy2(self.workspace / name, self.copy / name)
        self.url = "/api/v1"
        self.http: httpx.Client | None = None  # the served app: requests carry only the headers they are given

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.read}"})

    def post(self, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.read}", **kwargs.pop("headers", {})}
        return self.http.post(f"{self.url}{path}", headers=headers, **kwargs)

    def cli(self, *args: str) -> dict:
        """What `journeymap ARGS --workspace COPY --json` prints, parsed."""
        result = CliRunner().invoke(cli_app, [*args, "--workspace", str(self.copy), "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.copy / "journeymap.duckdb"), read_only=True)
        try:
            return con.execute(query, params or []).fetchall()
        finally:
            con.close()


def busiest_account(demo: Demo) -> str:
    """An account whose events come from at least three sources."""
    rows = demo.sql("SELECT account_id FROM journey_events WHERE account_id IS NOT NULL GROUP BY account_id "
                    "HAVING count(DISTINCT source) >= 3 ORDER BY count(*) DESC, account_id LIMIT 1")
    assert rows, "the demo has no account with events from three sources"
    return rows[0][0]


@pytest.fixture(scope="module")
def demo(demo_copy):
    """The demo served in-process for this module; its clean shutdown (journal flushed, store closed) is checked on exit."""
    d = Demo(demo_copy(600, 3))
    with serve_in_process(d.workspace) as http:
        d.http = http
        yield d


@pytest.fixture(scope="module")
def account(demo) -> str:
    return busiest_account(demo)


def finite(x):
    """NaN as null, as the API sends it (JSON has no NaN)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


# -- concurrency ----------------------------------------------------------------------------------

HEAVY = ["/risk", "/health", "/voice", "/map", "/friction", "/moments"]


def test_slow_analyses_run_concurrently_in_the_threadpool(demo):
    """The model-based analyses at once, each on its own cursor, while the event loop stays free."""
    with ThreadPoolExecutor(len(HEAVY)) as pool:
        futures = [pool.submit(demo.get, path) for path in HEAVY]
        health = demo.http.get("/-/health")  # answered while they compute
        answers = [f.result() for f in futures]
    assert health.status_code == 200
    assert [a.status_code for a in answers] == [200] * len(HEAVY), [a.text[:200] for a in answers]
    risk = answers[0].json()
    assert risk["paying_accounts"] > 0 and len(risk["accounts"]) == 20 and "roc_auc" in risk["evaluation"]["model"]
    again = demo.get("/risk")  # the same parameters on the same data: the cached result
    assert again.content == answers[0].content


# -- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_every_endpoint_answers_a_read_key_and_only_a_read_key(demo, account, path, params):
    path = path.format(account=account)
    ok = demo.get(path, **params)
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"].startswith("application/json")
    assert isinstance(ok.json(), dict)
    for headers in ({}, {"Authorization": f"Bearer {demo.write}"}, {"Authorization": "Bearer jm_r_nope"}):
        denied = demo.http.get(f"{demo.url}{path}", params=params, headers=headers)
        assert denied.status_code == 401, (headers, denied.text)
        assert "read key" in denied.json()["detail"]
    assert demo.http.post(f"{demo.url}/definition/validate", content="name: x").status_code == 401


def test_openapi_declares_bearer_auth_and_every_endpoint(demo):
    spec = demo.http.get("/-/openapi.json").json()
    assert spec["components"]["securitySchemes"]["readKey"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["readKey"]["description"]}
    paths = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/v1")}
    assert {p.removeprefix("/api/v1") for p in paths} == {p.replace("{account}", "{account_id}") for p, _ in ENDPOINTS} | {
        "/definition/validate", "/improvements", "/improvements/{improvement_id}"}
    for path, ops in paths.items():
        for method, op in ops.items():
            writes = path.startswith("/api/v1/improvements") and method in ("post", "patch")
            assert op["security"] == [{"writeKey" if writes else "readKey": []}], (path, method)
            assert op["summary"] and op["description"]
    funnel = {p["name"]: p for p in paths["/api/v1/funnel"]["get"]["parameters"]}
    assert funnel["order"]["schema"]["enum"] == ["ordered", "strict", "unordered"]
    problem = paths["/api/v1/funnel"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert {"error", "detail", "option", "add", "problems"} == set(spec["components"]["schemas"]["Problem"]["properties"])
    assert {"steps", "window", "window_from", "exclude", "optional", "from", "to", "tolerance", "by"} <= set(funnel)


# -- the same JSON as the CLI ----------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "args"), [
    ("/funnel", FUNNEL, ["funnel", "--steps", FUNNEL["steps"], "--window", "30d"]),
    ("/funnel", {**FUNNEL, "order": "strict", "window_from": "previous", "by": "person", "exclude": ["trial_expired:1:2"],
                 "breakdown": "method", "from": "2025-09-01", "to": "2026-06-30"},
     ["funnel", "--steps", FUNNEL["steps"], "--window", "30d", "--order", "strict", "--window-from", "previous", "--by",
      "person", "--exclude", "trial_expired:1:2", "--breakdown", "method", "--from", "2025-09-01", "--to", "2026-06-30"]),
    ("/retention", {"start": "signed_up", "return": "report_created", "interval": "month", "by": "account"},
     ["retention", "--start", "signed_up", "--return", "report_created", "--interval", "month", "--by", "account"]),
    ("/revenue", {}, ["revenue"]),
    ("/surveys", {}, ["surveys"]),
    ("/surveys", {"group": "period", "interval": "quarter"}, ["surveys", "--group", "period", "--interval", "quarter"]),
    ("/transitions", {"level": "stage", "collapse_repeats": True}, ["transitions", "--level", "stage", "--collapse-repeats"]),
    ("/paths", {"level": "stage", "start": "discovery", "depth": 4, "top": 10},
     ["paths", "--level", "stage", "--start", "discovery", "--depth", "4", "--top", "10"]),
    ("/lifecycle", {"interval": "month"}, ["lifecycle", "--interval", "month"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_answers_equal_the_cli_json(demo, path, params, args):
    got = demo.get(path, **params)
    assert got.status_code == 200, got.text
    assert got.json() == finite(demo.cli(*args))


def test_map_equals_the_cli_json(demo):
    got = demo.get("/map")
    assert got.status_code == 200, got.text
    api, cli = got.json(), demo.cli("map")
    api.pop("generated_at"), cli.pop("generated_at")
    assert api == finite(cli)
    assert api["views"]["all"]["units"] > 300


# -- errors ----------------------------------------------------------------------------------------


def test_bad_funnel_option_is_422_with_the_cli_message(demo):
    with pytest.raises(FunnelOptionError) as expected:
        funnel_options(FUNNEL["steps"], exclude=["X:1:1"])
    got = demo.get("/funnel", **FUNNEL, exclude="X:1:1")
    assert got.status_code == 422
    assert got.json()["detail"] == str(expected.value) == "exclusion 'X:1:1': FROM (1) must be lower than TO (1)"
    assert got.json()["error"] == "option"
    cli = CliRunner().invoke(cli_app, ["funnel", "--steps", FUNNEL["steps"], "--exclude", "X:1:1", "-w", str(demo.copy)])
    assert cli.exit_code == 2 and " ".join(cli.stderr.split()).endswith(got.json()["detail"])


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/funnel", {"steps": "signed_up"}, "--steps needs at least two non-empty event names, e.g. 'signup,invite,pay'"),
    ("/funnel", {**FUNNEL, "window": "soon"}, "--window: 'soon' is not a duration: write a number and one of s, m, h, d, w (e.g. '14d')"),
    ("/funnel", {**FUNNEL, "order": "random"}, "--order must be one of ordered, strict, unordered, not 'random'"),
    ("/funnel", {"window": "1d"}, "--steps is required"),
    ("/funnel", {**FUNNEL, "breakdown": 'plan"'},
     "--breakdown 'plan\"': write a property name or a dotted path of them, with no empty key and no double quote"),
    ("/funnel", {**FUNNEL, "breakdown": "billing."},
     "--breakdown 'billing.': write a property name or a dotted path of them, with no empty key and no double quote"),
    ("/funnel", {**FUNNEL, "window": "99999999999999999999d"}, "--window must be at most 36500d"),
    ("/funnel", {**FUNNEL, "from": "0001-01-01"}, "--from: '0001-01-01' is out of range: years 1900 to 2200"),
    ("/stickiness", {"to": "9999-12-31"}, "--to: '9999-12-31' is out of range: years 1900 to 2200"),
    ("/retention", {"start": "a", "return": "b", "brackets": "0-99999999999999999999"}, "--brackets: days must be at most 36500"),
    ("/health", {"horizon": "1000000000000d"}, "--horizon must be at most 36500d"),
    ("/map", {"by": "team"}, "--by must be person or account, not 'team'"),
    ("/retention", {"start": "a", "return": "b", "brackets": "7-1"},
     "--brackets must be ascending, non-overlapping day ranges lo-hi with 0 <= lo <= hi: '7-1'"),
    ("/risk", {"at": "yesterday"}, "--at: 'yesterday' is not a date (write YYYY-MM-DD)"),
    ("/risk", {"horizon": "12h"}, "--horizon must be at least 1d"),
    ("/moments", {"within": "0d"}, "--within must be positive"),
    ("/paths", {"before": "x", "start": "y"}, "--before cannot be combined with --start or --end"),
    ("/paths", {"depth": "deep"}, "--depth must be a whole number, not 'deep'"),
    ("/accounts", {"limit": 0}, "--limit must be at least 1, not '0'"),
])
def test_bad_parameters_are_422_with_a_clear_message(demo, path, params, message):
    got = demo.get(path, **params)
    assert got.status_code == 422, got.text
    assert got.json()["detail"] == message and got.json()["error"] == "option"


def test_analyses_that_cannot_run_are_409(tmp_path):
    """Over a real socket, on the real `journeymap serve`: the JSON API's smoke test of the installed server."""
    ws = Workspace.init(tmp_path / "empty")
    _, token = create_key(ws.con, "read", "analyst")
    ws.close()
    server = Server(ws.path).start()
    try:
        client = httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                              timeout=30)  # the first request imports the analyses: seconds on a busy machine
        for path in ("/revenue", "/funnel?steps=a,b", "/accounts", "/map", "/accounts/x/timeline"):
            got = client.get(path)
            assert got.status_code == 409, (path, got.text)
            assert "no events yet" in got.json()["detail"]
        (ws.path / "journeymap.yml").write_text("stages: 3\n")
        got = client.get("/definition")
        assert got.status_code == 409 and "not a valid journey definition" in got.json()["detail"]
        client.close()
    finally:
        server.stop()


# -- accounts, timeline, definition, keys ----------------------------------------------------------


def test_accounts_are_paginated(demo):
    total = demo.sql("SELECT count(*) FROM accounts")[0][0]
    first = demo.get("/accounts", limit=7).json()
    second = demo.get("/accounts", limit=7, offset=7).json()
    assert first["total"] == second["total"] == total > 500
    ids = [a["account_id"] for a in first["accounts"] + second["accounts"]]
    assert ids == [r[0] for r in demo.sql("SELECT account_id FROM accounts ORDER BY account_id LIMIT 14")]
    a = first["accounts"][0]
    assert set(a) == {"account_id", "persons", "events", "first_seen", "last_seen", "created_at", "traits"}
    assert a["events"] > 0 and a["first_seen"] <= a["last_seen"] and isinstance(a["traits"], dict)
    assert demo.get("/accounts", offset=10 ** 6).json()["accounts"] == []


def test_account_timeline_is_every_event_in_time_order_across_sources(demo, account):
    expected = demo.sql("SELECT count(*), count(DISTINCT source) FROM journey_events WHERE account_id = ?", [account])[0]
    events, offset = [], 0
    while True:
        page = demo.get(f"/accounts/{account}/timeline", limit=50, offset=offset).json()
        assert page["total"] == expected[0] and page["account_id"] == account
        events += page["events"]
        offset += 50
        if offset >= page["total"]:
            break
    assert len(events) == expected[0] and len({e["source"] for e in events}) == expected[1] >= 3
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert len({e["message_id"] for e in events}) == len(events)
    assert set(events[0]) == {"ts", "person_id", "source", "channel", "event", "type", "properties", "traits", "message_id"}
    assert all(e["properties"] is None or isinstance(e["properties"], dict) for e in events)
    assert demo.get("/accounts/no-such-account/timeline").status_code == 404


def test_definition_and_its_validation(demo):
    assert demo.get("/definition").json() == load_definition(demo.copy / "journeymap.yml").model_dump(mode="json")
    text = (demo.copy / "journeymap.yml").read_text()
    post = lambda body: demo.post("/definition/validate", content=body.encode(),  # noqa: E731
                                  headers={"content-type": "application/yaml"})
    assert post(text).json() == {"valid": True, "problems": []}
    data = yaml.safe_load(text)
    data["analysis"]["level"] = "team"
    planted = post(yaml.safe_dump(data, sort_keys=False))
    assert planted.status_code == 200
    assert planted.json()["valid"] is False
    assert [p["key"] for p in planted.json()["problems"]] == ["analysis.level"]
    broken = post("stages:\n  - id: a\n   name: b\n").json()
    assert broken["valid"] is False and re.fullmatch(r"line \d+, column \d+", broken["problems"][0]["key"])
    assert post("").json()["valid"] is False


def test_keys_are_listed_without_tokens_or_hashes(demo):
    got = demo.get("/keys")
    assert {(k["kind"], k["name"]) for k in got.json()["keys"]} == {("read", "analyst"), ("write", "website")}
    assert all(set(k) == {"key_id", "kind", "name", "created_at", "revoked_at"} for k in got.json()["keys"])
    assert demo.read not in got.text and demo.write not in got.text
    assert got.json() == demo.cli("keys", "list")

