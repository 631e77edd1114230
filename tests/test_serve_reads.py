"""Read-only CLI commands while `journeymap serve` holds the workspace (cli/forward.py, server/local.py).

The server is the real `journeymap serve` on a loopback port (test_tracking_api.Server); the CLI runs as a user
runs it, against the served workspace: in this process (`invoke_cli`: its DuckDB finds the store locked by the
server's pid, as a separate command does) and once as its own process (`run_cli`). Every expected answer is
the same command run after the server has stopped, on the same workspace.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import invoke_cli, invoke_json, run_cli, serve_in_process
from journeymap.server.local import SERVER_FILE, LocalServer
from journeymap.workspace import Workspace
from test_tracking_api import Server, quick_workspace

# Commands that only read, with options that cover lists, dates, durations, view options and a CLI-only file.
READS = [
    ("funnel", "--steps", "signed_up,trial_started,subscription_started", "--window", "30d"),
    ("retention", "--start", "signed_up", "--return", "report_created", "--interval", "month"),
    ("paths", "--level", "stage", "--depth", "3", "--top", "5"),
    ("transitions", "--level", "stage", "--rows", "4"),
    ("lifecycle", "--interval", "month", "--from", "2024-01-01"),
    ("revenue",),
    ("clv", "--margin", "0.7", "--touch-sources", "marketing", "--touch-sources", "crm"),
    ("experiment", "pricing_page"),  # a positional option
]
STORE_READS = [("state",), ("loads",), ("rejects", "--limit", "3"), ("validate",), ("act", "playbooks"),
               ("act", "show", "onboarding_nudge"), ("act", "backtest", "--playbook", "onboarding_nudge", "--from", "2026-09-01"),
               ("act", "--dry-run", "--limit", "5")]
"""Commands outside the registry that read the store (Workspace.read_report, answered at /-/reads/NAME)."""


@pytest.fixture(scope="module")
def served(demo_copy, tmp_path_factory):
    """A demo workspace (300 accounts) served by `journeymap serve`, and a spend file for clv --spend."""
    sim = demo_copy(300, 7)
    spend = tmp_path_factory.mktemp("spend") / "spend.csv"
    spend.write_text("channel,spend\nsearch,1200\nsocial,800\n")
    server = Server(Path(sim.workspace)).start()
    yield server, spend
    server.stop()


def _outputs(workspace: Path, spend: Path) -> dict:
    out = {}
    for args in READS + [("clv", "--spend", str(spend))] + STORE_READS:
        for fmt in ((), ("--json",)):
            got = invoke_cli(*args, *fmt, "--workspace", str(workspace))
            stdout = got.stdout
            if args[:2] == ("act", "--dry-run") and fmt:  # how long the evaluation took differs between two runs
                report = json.loads(stdout)
                assert report.pop("seconds") >= 0 and report["dry_run"] and report["playbooks"]
                stdout = json.dumps(report)
            out[" ".join(args + fmt)] = (stdout, got.stderr)
    unit = invoke_json("act", "show", "onboarding_nudge", "--workspace", str(workspace))["recent"][0]["unit_id"]
    for fmt in ((), ("--json",)):  # why the unit entered, at the data's latest event
        got = invoke_cli("explain", unit, "--playbook", "onboarding_nudge", *fmt, "--workspace", str(workspace))
        out[" ".join(("explain", "--playbook", "onboarding_nudge") + fmt)] = (got.stdout, got.stderr)
    got = invoke_cli("map", "--json", "--workspace", str(workspace))
    whole = json.loads(got.stdout)
    assert whole.pop("generated_at")  # when it was computed: the one field that differs between two runs
    out["map --json"] = (json.dumps(whole), got.stderr)
    return out


def test_analyses_while_serving_print_what_they_print_with_the_server_stopped(served):
    server, spend = served
    workspace = server.workspace
    # the server holds the store: a command that opened it itself would fail with "locked by pid N"
    assert json.loads((workspace / SERVER_FILE).read_text())["pid"] == server.proc.pid
    while_serving = _outputs(workspace, spend)
    as_a_process = run_cli("funnel", *READS[0][1:], "--json", "--workspace", str(workspace))
    server.stop()
    assert not (workspace / SERVER_FILE).exists()
    stopped = _outputs(workspace, spend)
    assert while_serving.keys() == stopped.keys()
    for command, (stdout, stderr) in stopped.items():
        assert while_serving[command][0] == stdout, command  # --json: the same bytes; tables: the same rendering
        assert while_serving[command][1] == stderr, command  # the same warnings
    assert as_a_process.stdout == stopped[" ".join(READS[0]) + " --json"][0]
    assert json.loads(stopped["funnel --steps signed_up,trial_started,subscription_started --window 30d --json"][0])[
        "steps"][0]["count"] > 0
    server.start()  # for the next tests of the module


def test_an_error_of_the_served_analysis_has_its_message_and_exit_code(served):
    server, _ = served
    definition = server.workspace / "journeymap.yml"
    kept = definition.read_text()
    definition.write_text("stages: 3\n")  # the server reads it as the command would: a DefinitionError
    try:
        got = invoke_cli("funnel", "--steps", "a,b", "--workspace", str(server.workspace), check=False)
        server.stop()
        local = invoke_cli("funnel", "--steps", "a,b", "--workspace", str(server.workspace), check=False)
    finally:
        definition.write_text(kept)
        if server.proc is None:
            server.start()
    assert local.returncode == 1 and "not a valid journey definition" in local.stderr
    assert (got.returncode, got.stdout, got.stderr) == (local.returncode, local.stdout, local.stderr)


def test_keys_while_serving_take_effect_at_once(served):
    server, _ = served
    ws = str(server.workspace)
    read = invoke_json("keys", "create", "--kind", "read", "--name", "analyst", "--workspace", ws)
    write = invoke_json("keys", "create", "--kind", "write", "--name", "site", "--workspace", ws)
    assert read["token"].startswith("jm_r_") and write["token"].startswith("jm_w_")
    api = httpx.Client(base_url=f"{server.url}/api/v1", headers={"Authorization": f"Bearer {read['token']}"})
    assert api.get("/funnel", params={"steps": "signed_up,trial_started"}).status_code == 200  # no restart
    tracked = httpx.post(f"{server.url}/v1/track", auth=(write["token"], ""),
                         json={"userId": "u-keys", "event": "signed_up", "messageId": "keys-1"})
    assert tracked.status_code == 200, tracked.text
    listed = {k["key_id"]: k for k in invoke_json("keys", "list", "--workspace", ws)["keys"]}
    assert {read["key_id"], write["key_id"]} <= set(listed) and "token" not in listed[read["key_id"]]
    table = invoke_cli("keys", "list", "--workspace", ws).stdout
    assert read["key_id"] in table and "analyst" in table
    revoked = invoke_json("keys", "revoke", read["key_id"], "--workspace", ws)
    assert revoked["revoked_at"] is not None
    assert api.get("/funnel", params={"steps": "signed_up,trial_started"}).status_code == 401  # refused at once
    bad = invoke_cli("keys", "revoke", "k_nosuch", "--workspace", ws, check=False)
    assert bad.returncode == 1 and "no key 'k_nosuch'" in bad.stderr
    api.close()
    server.stop()
    after = {k["key_id"]: k for k in invoke_json("keys", "list", "--workspace", ws)["keys"]}  # the store, not the server
    server.start()
    assert after[read["key_id"]]["revoked_at"] == revoked["revoked_at"] and after[write["key_id"]]["revoked_at"] is None


def test_the_server_file_is_private_and_its_token_is_the_local_admin(served):
    server, _ = served
    path = server.workspace / SERVER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert (info["host"], info["port"]) == ("127.0.0.1", server.port)
    assert info["token"] not in server.log.read_text()
    ok = httpx.get(f"{server.url}/api/v1/revenue", headers={"Authorization": f"Bearer {info['token']}"})
    assert ok.status_code == 200
    assert httpx.get(f"{server.url}/-/keys", headers={"Authorization": "Bearer jm_local_wrong"}).status_code == 401
    assert "/-/keys" not in httpx.get(f"{server.url}/-/openapi.json").text


def test_a_second_server_on_a_served_workspace_names_the_first(served):
    server, _ = served
    proc = run_cli("serve", "--workspace", str(server.workspace), "--port", "1", check=False)
    assert proc.returncode == 1
    assert f"already served by pid {server.proc.pid} at {server.url}" in " ".join(proc.stderr.split())


# -- a command holds the workspace first ----------------------------------------------------------

HOLD = """
import sys, time
from journeymap.workspace import Workspace
ws = Workspace(sys.argv[1]); ws.con  # what every command does first: it holds the store until it ends
print("holding", flush=True)
sys.stdin.read()
"""


def test_a_command_holding_the_workspace_first_makes_serve_refuse_clearly(tmp_path):
    ws, _ = quick_workspace(tmp_path / "ws")
    # a server file left by a server that was killed: it names another pid, so it is ignored
    LocalServer(os.getpid(), "127.0.0.1", 9, "jm_local_stale").write(ws)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ws)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        refused = run_cli("serve", "--workspace", str(ws), "--port", "1", check=False)
        assert refused.returncode == 1
        said = " ".join(refused.stderr.split())
        assert f"cannot serve {ws}: the workspace is locked by pid {holder.pid}, a journeymap command" in said
        assert "Start the server once it has finished; nothing was started" in said
        read = run_cli("funnel", "--steps", "a,b", "--workspace", str(ws), check=False)  # not a server: as before
        assert read.returncode == 1
        assert f"workspace is locked by pid {holder.pid}" in " ".join(read.stderr.split())
    finally:
        holder.communicate("", timeout=30)
    server = Server(ws).start()  # once the command has ended, the server starts
    try:
        assert json.loads((ws / SERVER_FILE).read_text())["pid"] == server.proc.pid
    finally:
        server.stop()


# -- a new workspace served: empty state, then events through the tracking API (issue 16, item 10) ---


def _events(n: int) -> list[dict]:
    names = ("signed_up", "report_created", "trial_started")
    return [{"type": "track", "userId": f"u{i % 400}", "event": names[i % 3], "messageId": f"m-{i}",
             "timestamp": f"2025-0{1 + i % 6}-{1 + i % 27:02d}T10:00:00Z", "context": {"groupId": f"acct-{i % 40}"}}
            for i in range(n)]


def new_served_workspace(path: Path) -> tuple[Path, str, str]:
    """A new workspace with a read key and a write key: (path, read token, write token)."""
    from journeymap.server.keys import create_key

    ws = Workspace.init(path)
    _, read = create_key(ws.con, "read", "analyst")
    _, write = create_key(ws.con, "write", "site")
    ws.close()
    return ws.path, read, write


def test_a_new_workspace_shows_its_empty_state_then_its_loaded_events(tmp_path):
    path, read, write = new_served_workspace(tmp_path / "new")
    auth = {"Authorization": f"Bearer {read}"}
    # a stitch every 10 minutes: only the first load after start is stitched at once
    with serve_in_process(path, stitch_seconds=600, rate_limit=0) as http:
        for page in ("/app/accounts", "/app/retention", "/app/map", "/app/funnel", "/app/lifecycle", "/app/revenue",
                     "/app/paths", "/app/voice", "/app/conformance", "/app/stages/evaluation"):
            got = http.get(page, headers=auth)
            assert got.status_code == 200, (page, got.text[-500:])
            assert "no events yet" in got.text and 'class="jm-note jm-empty"' in got.text, page
        assert http.get("/app/settings", headers=auth).status_code == 200
        assert http.get("/app/accounts.json", headers=auth).status_code == 409
        assert "no events yet" in http.get("/api/v1/accounts", headers=auth).json()["detail"]

        # One batch: its 500 events are journaled by one request, loaded together, and stitched at once.
        events = _events(500)
        assert http.post("/v1/batch", json={"batch": events}, auth=(write, "")).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            loader = http.get("/-/health").json()["loader"]
            if loader["accepted"] == 500 and loader["stitches"] >= 1:
                break
            time.sleep(0.2)
        assert loader["accepted"] == 500 and loader["stitches"] >= 1, loader
        accounts = http.get("/api/v1/accounts", headers=auth)
        assert accounts.status_code == 200 and accounts.json()["total"] == 40, accounts.text
        funnel = http.get("/api/v1/funnel", params={"steps": "signed_up,report_created"}, headers=auth)
        signed_up = {e["userId"] for e in events if e["event"] == "signed_up"}
        assert funnel.status_code == 200 and funnel.json()["steps"][0]["count"] == len(signed_up), funnel.text
        page = http.get("/app/accounts", headers=auth)
        assert page.status_code == 200 and "no events yet" not in page.text


def test_events_loaded_but_not_stitched_are_said_so(tmp_path):
    """Between a load and its stitch (a stitch failed, or is under way) the answer says what is loaded."""
    ws, write = quick_workspace(tmp_path / "ws")
    from journeymap.ingest.store import open_store
    from journeymap.server.keys import create_key

    con = open_store(ws)
    _, read = create_key(con, "read", "analyst")
    con.execute("INSERT INTO events (message_id, ts, event, type, source, user_id, seq) "
                "VALUES ('m1', TIMESTAMP '2025-01-01', 'signed_up', 'track', 'product', 'u1', 1)")
    con.close()
    with serve_in_process(ws) as http:
        got = http.get("/api/v1/funnel", params={"steps": "signed_up,x"}, headers={"Authorization": f"Bearer {read}"})
        assert got.status_code == 409
        assert "1 event is loaded but not yet stitched into journeys" in got.json()["detail"]


def test_an_edited_definition_is_refolded_by_the_server_without_new_events(tmp_path):
    """Work happens when the definition changes too: the loader refolds the journey state after journeymap.yml
    is edited, so the views read state again without waiting for the next event (issue 13)."""
    from journeymap.journey.load import load_definition
    from journeymap.state import current_tables

    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    export = tmp_path / "e.csv"
    export.write_text("user_id,event,ts\n" + "".join(
        f"u{i},{e},2024-01-0{d}T10:00:00\n" for i in range(5) for d, e in ((1, "pricing_viewed"), (2, "signup_completed"))))
    invoke_cli("ingest", str(export), "--workspace", str(ws))
    definition = ws / "journeymap.yml"
    with serve_in_process(ws, stitch_seconds=3600) as client:
        runner = client.app.state.runner
        stitches = runner.stats["stitches"]
        text = definition.read_text()
        assert "entry: signup_completed" in text
        definition.write_text(text.replace("entry: signup_completed", "entry: {event: [signup_completed, pricing_viewed]}"))
        edited = load_definition(definition)
        deadline = time.monotonic() + 20
        while True:
            with runner.lock:
                folded = len(current_tables(runner.con.cursor(), edited))
            # the loader publishes the refresh (the stitch count) once it has computed the map on it (server/warm.py)
            if (folded == 2 and runner.stats["stitches"] > stitches) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert folded == 2, "the edited definition was not folded"
        assert runner.stats["stitches"] == stitches + 1 and runner.stats["accepted"] == 0  # no event arrived
        status = client.get("/-/health").json()["loader"]
        assert status["stitches"] == stitches + 1


def test_the_map_is_computed_when_events_arrive_not_when_it_is_viewed(tmp_path):
    """After each refresh the loader computes the map page's default result and publishes it with the new data
    version (server/warm.py): the first view after new events is a cache hit, the API and the page share it,
    and it is the map the CLI prints once the server has stopped (issue 13)."""
    path, read, write = new_served_workspace(tmp_path / "ws")
    auth = {"Authorization": f"Bearer {read}"}
    with serve_in_process(path, stitch_seconds=0, rate_limit=0) as http:
        cache, runner = http.app.state.cache, http.app.state.runner
        for batch in (_events(300), _events(500)[300:]):  # the second batch: new events, a new version
            warmed = cache.stats["warmed"]
            assert http.post("/v1/batch", json={"batch": batch}, auth=(write, "")).status_code == 200
            deadline = time.monotonic() + 60
            while cache.stats["warmed"] == warmed and time.monotonic() < deadline:
                time.sleep(0.1)
            assert cache.stats["warmed"] == warmed + 1, (runner.warm.stats, runner.stats)
            misses = cache.stats["misses"]
            answer = http.get("/api/v1/map", headers=auth)
            assert answer.status_code == 200, answer.text
            page = http.get("/app/map", headers=auth)
            assert page.status_code == 200 and "no events yet" not in page.text
            assert cache.stats["misses"] == misses  # neither the API nor the page computed the map
        assert http.get("/-/health").json()["loader"]["warm"]["warmed"] == runner.warm.stats["warmed"] >= 2
        served = answer.json()
    # restarted on the same store: the loader computes the map of what it holds through the cache, so the view
    # and the loader compute it once between them, whichever comes first (one miss), and the page reads it too
    with serve_in_process(path, stitch_seconds=0, rate_limit=0) as http:
        cache = http.app.state.cache
        answer = http.get("/api/v1/map", headers=auth)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while http.app.state.runner.warm.stats["warmed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.app.state.runner.warm.stats["warmed"] == 1
        assert cache.stats["misses"] == 1 and http.get("/app/map", headers=auth).status_code == 200
        assert cache.stats["misses"] == 1
        restarted = answer.json()
    printed = invoke_json("map", "--workspace", str(path))
    assert restarted.pop("generated_at")
    assert restarted == {k: v for k, v in printed.items() if k != "generated_at"}
    assert served.pop("generated_at") and printed.pop("generated_at")
    assert served == printed
    assert served["stages"], served  # a map with stages, not an empty answer


def test_a_read_during_the_loaders_refresh_computes_from_its_snapshot_and_keeps_nothing(tmp_path, monkeypatch):
    """While the loader refreshes (the stitch committed, the fold's transaction open with the person level written,
    the account level held here), a request does not wait for it: it reads one snapshot (the stitched journey
    events, and the state of the previous version, which it reads as stale and computes from the events) and
    gives the numbers of all the events, those it gives once the refresh is published and the CLI gives once the
    server has stopped. It neither answers from nor keeps in the cache, whose results are of the previous version:
    a page viewed meanwhile shows the previous version's numbers, or its own snapshot's, never a mix."""
    import threading

    from journeymap.server.api import cache_key
    from journeymap.analyses import get
    from journeymap.state import fold as fold_module

    path, read, write = new_served_workspace(tmp_path / "ws")
    auth = {"Authorization": f"Bearer {read}"}
    steps = "signed_up,report_created,trial_started"
    query = f"/api/v1/funnel?steps={steps}&window=30d&by=person"
    key = cache_key(get("funnel"), get("funnel").validate({"steps": steps, "window": "30d", "by": "person"}))
    entered, release, holding = threading.Event(), threading.Event(), threading.Event()
    real = fold_module._fold_level

    def held(con, engine, definition, level, *args):
        if level == "account" and holding.is_set():
            entered.set()
            release.wait(60)
        return real(con, engine, definition, level, *args)

    monkeypatch.setattr(fold_module, "_fold_level", held)
    with serve_in_process(path, stitch_seconds=0, rate_limit=0) as http:
        cache, runner = http.app.state.cache, http.app.state.runner

        def published(warmed: int) -> None:
            deadline = time.monotonic() + 60
            while cache.stats["warmed"] == warmed and time.monotonic() < deadline:
                time.sleep(0.05)
            assert cache.stats["warmed"] > warmed

        warmed = cache.stats["warmed"]
        assert http.post("/v1/batch", json={"batch": _events(300)}, auth=(write, "")).status_code == 200
        published(warmed)
        before = http.get(query, headers=auth).json()
        assert cache.peek(key) == before and runner.settled()
        holding.set()
        warmed = cache.stats["warmed"]
        assert http.post("/v1/batch", json={"batch": _events(600)[300:]}, auth=(write, "")).status_code == 200
        assert entered.wait(60), "the loader never reached the account level's fold"
        assert not runner.settled()
        misses, answers = cache.stats["misses"], []
        reader = threading.Thread(target=lambda: answers.append(http.get(query, headers=auth)))
        reader.start()
        reader.join(30)
        waited = reader.is_alive()
        kept = cache.peek(key)
        release.set()
        reader.join(60)
        assert not waited, "the read waited for the loader's refresh"
        assert answers[0].status_code == 200 and cache.stats["misses"] == misses + 1  # computed, not the cached one
        assert kept == before  # and not kept: the cache holds the previous version's result
        published(warmed)
        after = http.get(query, headers=auth).json()
    assert after["steps"][0]["count"] > before["steps"][0]["count"]  # the second batch brought new persons
    assert answers[0].json() == after
    printed = invoke_json("funnel", "--steps", "signed_up,report_created,trial_started", "--window", "30d",
                          "--by", "person", "--workspace", str(path))
    assert after == printed


def test_a_dry_run_while_serving_waits_for_the_loader_and_keeps_no_write(demo_copy):
    """`act --dry-run` folds the comment playbooks' texts, a write: the server runs it with the loader's lock held,
    so no refresh commits under it, in a transaction it rolls back. Other reads answer meanwhile."""
    import threading

    from journeymap.server.local import new_token

    workspace, token = Path(demo_copy(300, 7).workspace), new_token()
    with serve_in_process(workspace, rate_limit=0, local=LocalServer(os.getpid(), "127.0.0.1", 1, token)) as http:
        auth = {"Authorization": f"Bearer {token}"}
        runner, got = http.app.state.runner, {}
        runner.lock.acquire()
        try:
            asking = threading.Thread(target=lambda: got.update(answer=http.get("/-/reads/dry-run", headers=auth)))
            asking.start()
            asking.join(1.5)
            assert asking.is_alive() and not got  # waiting for the loader's lock
            assert http.get("/-/reads/state", headers=auth).status_code == 200  # a snapshot read does not wait
        finally:
            runner.lock.release()
        asking.join(120)
        answer = got["answer"]
        assert answer.status_code == 200, answer.text
        assert answer.json()["dry_run"] and {p["playbook"] for p in answer.json()["playbooks"]} >= {"onboarding_nudge"}
        with runner.con.cursor() as cursor:  # the snapshot was rolled back: no transaction left open, nothing kept
            cursor.execute("CREATE TEMP TABLE _probe AS SELECT 1")
        unknown = http.get("/-/reads/dry-run", params={"playbook": "onboarding_nudg"}, headers=auth)
        assert unknown.status_code == 422 and "did you mean 'onboarding_nudge'" in unknown.json()["detail"]
