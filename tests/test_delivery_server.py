"""The web app's Tasks and Outbox pages and their JSON twins; closing and assigning tasks and re-sending
deliveries need an operator key (401 without a key, 403 with a key of another kind)."""

from __future__ import annotations

import time

from conftest import serve_in_process
from delivery_receivers import add_rows, webhook_entries
from test_delivery import FAST, one

from journeymap.act.deliver import Sender
from journeymap.server.keys import create_key
from journeymap.workspace import Workspace


def _workspace(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    add_rows(ws.con, [one("task", {"owner": "ana", "title": "Call acct-1", "body": "turned red", "due_at": None}),
                      one("task", {"owner": "bo", "title": "Call acct-2", "body": None, "due_at": None}, unit="acct-2")])
    add_rows(ws.con, webhook_entries(1, "ftp://example.com/hook", playbook="ftp"))  # refused: dead, nothing sent
    with Sender(ws.con, FAST, env={}) as sender:
        sender.drain()
    tokens = {kind: create_key(ws.con, kind, f"{kind} key")[1] for kind in ("read", "operator", "write", "admin")}
    assert tokens["operator"].startswith("jm_o_")
    task_ids = [r[0] for r in ws.con.execute("SELECT id FROM act_tasks ORDER BY id").fetchall()]
    ws.close()
    return tmp_path / "ws", tokens, task_ids


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_tasks_and_outbox_json_twins_and_write_rights(tmp_path):
    path, tokens, (t1, t2) = _workspace(tmp_path)
    with serve_in_process(path, deliver=False) as client:
        assert client.get("/app/tasks.json").status_code == 401
        data = client.get("/app/tasks.json", headers=bearer(tokens["read"])).json()
        assert [(t["id"], t["title"], t["owner"], t["status"]) for t in data["tasks"]] == [
            (t1, "Call acct-1", "ana", "open"), (t2, "Call acct-2", "bo", "open")]
        assert data["owners"] == ["ana", "bo"]
        only_bo = client.get("/app/tasks.json?owner=bo", headers=bearer(tokens["read"])).json()["tasks"]
        assert [t["id"] for t in only_bo] == [t2]

        close = f"/app/tasks/{t1}/close.json"
        assert client.post(close).status_code == 401
        for kind in ("read", "write", "admin"):
            answer = client.post(close, headers=bearer(tokens[kind]))
            assert answer.status_code == 403 and "an operator key is required" in answer.json()["detail"], kind
        answer = client.post(close, headers=bearer(tokens["operator"]))
        assert answer.status_code == 200
        task = answer.json()["task"]
        assert task["status"] == "done" and task["closed_by"].startswith("operator key")
        answer = client.post(f"/app/tasks/{t2}/assign.json", json={"owner": "carla"}, headers=bearer(tokens["operator"]))
        assert answer.status_code == 200 and answer.json()["task"]["owner"] == "carla"
        assert [h["action"] for h in answer.json()["task"]["history"]] == ["opened", "assigned"]
        assert client.post(f"/app/tasks/{t2}/assign.json", json={"owner": " "},
                           headers=bearer(tokens["operator"])).status_code == 422
        missing = client.post(f"/app/tasks/{t2 + 7}/close.json", headers=bearer(tokens["operator"]))
        assert missing.status_code == 404 and f"no task {t2 + 7}" in missing.json()["detail"]
        assert [t["id"] for t in client.get("/app/tasks.json", headers=bearer(tokens["read"])).json()["tasks"]] == [t2]

        box = client.get("/app/outbox.json", headers=bearer(tokens["read"])).json()
        assert box["counts"]["dead"] == 1 and box["counts"]["delivered"] == 2
        assert [(r["key"], r["status"]) for r in box["rows"]] == [("ftp/acct-0000/1/0", "dead")]
        assert "not an http(s) URL" in box["rows"][0]["last_error"]
        assert client.get("/app/outbox.json?status=daed", headers=bearer(tokens["read"])).status_code == 422
        retry = "/app/outbox/retry.json"
        assert client.post(retry, json={"dead": True}).status_code == 401
        assert client.post(retry, json={"dead": True}, headers=bearer(tokens["read"])).status_code == 403
        bad = client.post(retry, json={"keys": ["ftp/acct-0000/1/9"]}, headers=bearer(tokens["operator"]))
        assert bad.status_code == 400 and "did you mean" in bad.json()["detail"]
        ok = client.post(retry, json={"dead": True}, headers=bearer(tokens["operator"]))
        assert ok.status_code == 200 and ok.json()["queued"] == ["ftp/acct-0000/1/0"]
        box = client.get("/app/outbox.json?status=pending", headers=bearer(tokens["read"])).json()
        assert [r["key"] for r in box["rows"]] == ["ftp/acct-0000/1/0"]


def test_tasks_and_outbox_pages_and_their_forms(tmp_path):
    path, tokens, (t1, _t2) = _workspace(tmp_path)
    with serve_in_process(path, deliver=False) as client:
        assert client.get("/app/tasks").status_code == 303  # to the sign-in page
        client.cookies.set("jm_read", tokens["read"])
        page = client.get("/app/tasks")
        assert page.status_code == 200 and "Call acct-1" in page.text and 'data-nav="tasks"' in page.text
        outbox = client.get("/app/outbox")
        assert outbox.status_code == 200 and "ftp/acct-0000/1/0" in outbox.text and "not an http(s) URL" in outbox.text
        # the form without an operator key: the page again, with the reason, 403 (the cookie holds a read key)
        refused = client.post(f"/app/tasks/{t1}/close", data={"key": ""})
        assert refused.status_code == 403 and "an operator key is required" in refused.text
        done = client.post(f"/app/tasks/{t1}/close", data={"key": tokens["operator"]})
        assert done.status_code == 303 and done.headers["location"].startswith("/app/tasks?message=task")
        assert f"task {t1} closed" in client.get(done.headers["location"]).text
        resent = client.post("/app/outbox/retry", data={"key": tokens["operator"], "dead": "true"})
        assert resent.status_code == 303
        assert "1 delivery queued" in client.get(resent.headers["location"]).text


def test_cli_commands_are_answered_by_the_server_that_holds_the_workspace(tmp_path):
    """`journeymap tasks`, `act outbox` and `act retry` on a served workspace ask the server (its local token);
    `act send` says the server delivers."""
    from conftest import invoke_cli, invoke_json
    from test_tracking_api import Server

    path, _tokens, (t1, _t2) = _workspace(tmp_path)
    w = str(path)
    server = Server(path).start(timeout=120)
    try:
        assert [t["title"] for t in invoke_json("tasks", "-w", w)["tasks"]] == ["Call acct-1", "Call acct-2"]
        closed = invoke_json("tasks", "close", str(t1), "-w", w)
        assert closed["status"] == "done" and closed["closed_by"].startswith("journeymap CLI on this machine")
        assert invoke_json("tasks", "assign", str(t1 + 1), "dee", "-w", w)["owner"] == "dee"
        bad = invoke_cli("tasks", "close", "99", "-w", w, check=False)
        assert bad.returncode == 1 and "no task 99" in bad.stderr
        assert invoke_json("act", "outbox", "-w", w)["counts"]["dead"] == 1
        assert invoke_json("act", "retry", "--dead", "-w", w) == {"queued": ["ftp/acct-0000/1/0"]}
        deadline = time.monotonic() + 20  # the server's sender takes the re-queued row at once: refused again
        while time.monotonic() < deadline and invoke_json("act", "outbox", "-w", w)["counts"]["dead"] != 1:
            time.sleep(0.1)
        assert invoke_json("act", "outbox", "-w", w)["rows"][0]["status"] == "dead"
        send = invoke_cli("act", "send", "--once", "-w", w, check=False)
        assert send.returncode == 1 and f"served by pid {server.proc.pid}" in send.stderr
        assert "sender thread delivers the outbox" in send.stderr
    finally:
        server.stop()
