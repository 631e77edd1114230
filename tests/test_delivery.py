"""The sender (journeymap.act.deliver) against real receivers on loopback: signed webhooks checked by the
`standardwebhooks` package, Slack-style hooks, email through an aiosmtpd server, tasks in the store; backoff,
Retry-After, dead letters, refusals before sending, `journeymap act retry/outbox`, `journeymap tasks`, and the
server's sender thread."""

from __future__ import annotations

import email
import random
import socket
import time
from datetime import datetime

import pytest
from aiosmtpd.controller import Controller
from conftest import invoke_cli, invoke_json, serve_in_process
from delivery_receivers import SECRET, SECRET_ENV, Receiver, add_rows, webhook_entries

from journeymap.act.deliver import Policy, Sender, utcnow
from journeymap.act.mail import message_id
from journeymap.act.outbox import Action, Entry
from journeymap.workspace import Workspace

FAST = Policy(max_attempts=30, backoff=0.01, backoff_max=0.05, timeout=0.5, concurrency=4)
ENV = {SECRET_ENV: SECRET}


@pytest.fixture
def ws(tmp_path):
    w = Workspace.init(tmp_path / "ws")
    yield w
    w.close()


def statuses(con) -> dict:
    return dict(con.execute("SELECT status, count(*) FROM act_outbox GROUP BY status").fetchall())


def row(con, key) -> dict:
    cols = ("status", "attempts", "last_error", "next_attempt_at", "delivered_at")
    return dict(zip(cols, con.execute(f"SELECT {', '.join(cols)} FROM act_outbox WHERE key = ?", [key]).fetchone(),
                    strict=True))


def drain_all(sender: Sender, seconds: float = 30.0) -> None:
    """Drain until nothing is pending (retries come due within the small backoff)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sender.drain()
        if sender.next_due() is None:
            return
        time.sleep(0.02)
    raise AssertionError("the outbox did not drain")


def one(kind: str, payload: dict, unit: str = "acct-1", playbook: str = "p") -> Entry:
    return Entry(playbook, "account", unit, 1, datetime(2026, 1, 5), False, "csm@example.com", {"rule": "t"},
                 [Action(kind, payload)])


def test_flaky_receiver_gets_every_webhook_signed_and_each_key_handled_once(ws):
    with Receiver(fail=0.25, throttle=0.1, slow=0.05, retry_after="0", slow_seconds=0.8) as rx:
        add_rows(ws.con, webhook_entries(60, rx.url + "/hook"))
        with Sender(ws.con, FAST, env=ENV, rng=random.Random(1)) as sender:
            drain_all(sender)
        assert statuses(ws.con) == {"delivered": 60}
        assert rx.bad_signatures == []
        assert set(rx.handled) == {f"nudge/acct-{i:04d}/1/0" for i in range(60)}
        assert set(rx.handled.values()) == {1}
        assert rx.answers[500] > 0 and rx.answers[429] > 0  # it did fail, and was retried
        retried = ws.con.execute("SELECT count(*) FROM act_outbox WHERE attempts > 1").fetchone()[0]
        assert retried > 0


def test_signature_is_the_standard_one_and_a_wrong_secret_is_refused_by_the_receiver(ws):
    from journeymap.act.webhook import sign
    from standardwebhooks.webhooks import Webhook

    body = b'{"a":1}'
    ts = int(time.time())
    headers = {"webhook-id": "p/u/1/0", "webhook-timestamp": str(ts), "webhook-signature": sign(SECRET, "p/u/1/0", ts, body)}
    assert Webhook(SECRET).verify(body, headers) == {"a": 1}
    with Receiver() as rx:  # signed with another secret: the receiver answers 401, a 4xx: dead with its answer
        other = "whsec_" + "b3RoZXItc2VjcmV0"
        add_rows(ws.con, webhook_entries(1, rx.url + "/hook"))
        with Sender(ws.con, FAST, env={SECRET_ENV: other}) as sender:
            sender.drain()
        r = row(ws.con, "nudge/acct-0000/1/0")
        assert r["status"] == "dead" and r["attempts"] == 1
        assert "HTTP 401" in r["last_error"] and "bad signature" in r["last_error"]
        assert len(rx.bad_signatures) == 1 and not rx.handled


def test_a_4xx_is_dead_at_once_with_the_receivers_answer_and_408_429_5xx_are_retried(ws):
    with Receiver() as rx:
        add_rows(ws.con, webhook_entries(1, rx.url + "/gone", playbook="gone"))
        add_rows(ws.con, webhook_entries(1, rx.url + "/always500", playbook="down"))
        with Sender(ws.con, Policy(max_attempts=3, backoff=0.01, backoff_max=0.02, timeout=1), env=ENV) as sender:
            drain_all(sender)
        gone = row(ws.con, "gone/acct-0000/1/0")
        assert gone["status"] == "dead" and gone["attempts"] == 1
        assert gone["last_error"] == f"HTTP 410 from {rx.url}/gone: this hook was removed by its owner"
        down = row(ws.con, "down/acct-0000/1/0")
        assert down["status"] == "dead" and down["attempts"] == 3
        assert "HTTP 500" in down["last_error"] and "dead after 3 attempts" in down["last_error"]
        assert rx.answers[410] == 1 and rx.answers[500] == 3


def test_retry_after_is_honoured_and_backoff_grows(ws):
    with Receiver(throttle=1.0, retry_after="120") as rx:
        add_rows(ws.con, webhook_entries(1, rx.url + "/hook"))
        before = utcnow()
        with Sender(ws.con, FAST, env=ENV) as sender:
            sender.drain()
        r = row(ws.con, "nudge/acct-0000/1/0")
        assert r["status"] == "pending" and r["attempts"] == 1 and "HTTP 429" in r["last_error"]
        wait = (r["next_attempt_at"] - before).total_seconds()
        assert 119 <= wait <= 125
    p = Policy(backoff=30, backoff_max=3600)
    rng = random.Random(0)
    for attempts, top in ((1, 30), (2, 60), (5, 480), (20, 3600)):
        waits = [p.delay(attempts, rng) for _ in range(200)]
        assert top / 2 <= min(waits) and max(waits) <= top and max(waits) - min(waits) > top / 4  # jitter


def test_refused_before_sending_a_missing_secret_and_a_non_http_url(ws):
    with Receiver() as rx:
        add_rows(ws.con, webhook_entries(1, rx.url + "/hook", playbook="nosecret", secret_env="JM_NOT_SET"))
        add_rows(ws.con, webhook_entries(1, "ftp://example.com/hook", playbook="ftp"))
        add_rows(ws.con, [one("slack", {"url": "file:///etc/passwd", "text": "hi"}, playbook="slackfile")])
        with Sender(ws.con, FAST, env=ENV) as sender:
            sender.drain()
        a, b, c = (row(ws.con, k) for k in ("nosecret/acct-0000/1/0", "ftp/acct-0000/1/0", "slackfile/acct-1/1/0"))
        assert a["status"] == b["status"] == c["status"] == "dead"
        assert a["attempts"] == b["attempts"] == c["attempts"] == 0  # nothing was sent
        assert "JM_NOT_SET is not set" in a["last_error"]
        assert "'ftp://example.com/hook' is not an http(s) URL" in b["last_error"]
        assert "not an http(s) URL" in c["last_error"]
        assert rx.requests == 0


def test_slack_message(ws):
    with Receiver() as rx:
        add_rows(ws.con, [one("slack", {"url": rx.url + "/slack", "text": "acct-1 turned red"})])
        with Sender(ws.con, FAST, env=ENV) as sender:
            sender.drain()
        assert rx.slack == [{"text": "acct-1 turned red", "key": "p/acct-1/1/0"}]
        assert row(ws.con, "p/acct-1/1/0")["status"] == "delivered"


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    box = Mailbox()
    with socket.socket() as s:  # a free port (the controller's own start-up check cannot use port 0)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.env = {"JOURNEYMAP_SMTP_HOST": "127.0.0.1", "JOURNEYMAP_SMTP_PORT": str(port),
               "JOURNEYMAP_SMTP_TLS": "none", "JOURNEYMAP_SMTP_FROM": "journeymap@example.com"}
    yield box
    controller.stop()


def test_email_through_a_real_smtp_server_with_a_message_id_from_the_key(ws, smtp):
    add_rows(ws.con, [one("email", {"to": ["csm@example.com", "lead@example.com"], "subject": "acct-1 is at risk",
                                    "text": "Health turned red."})])
    add_rows(ws.con, [one("email", {"to": ["nobody@example.com"], "subject": "x", "text": "y"}, playbook="bounce")])
    with Sender(ws.con, FAST, env=smtp.env) as sender:
        sender.drain()
    assert len(smtp.messages) == 1
    to, msg = smtp.messages[0]
    assert to == ["csm@example.com", "lead@example.com"]
    assert msg["Subject"] == "acct-1 is at risk" and msg["From"] == "journeymap@example.com"
    assert msg["Message-ID"] == message_id("p/acct-1/1/0") and msg["X-Journeymap-Key"] == "p/acct-1/1/0"
    assert msg.get_payload().strip() == "Health turned red."
    assert row(ws.con, "p/acct-1/1/0")["status"] == "delivered"
    bounced = row(ws.con, "bounce/acct-1/1/0")
    assert bounced["status"] == "dead" and "550" in bounced["last_error"] and "no such user" in bounced["last_error"]


def test_email_over_starttls_to_a_server_without_it_is_dead_and_a_bad_tls_setting_refused(ws, smtp):
    add_rows(ws.con, [one("email", {"to": ["csm@example.com"], "subject": "s", "text": "t"})])
    with Sender(ws.con, FAST, env={**smtp.env, "JOURNEYMAP_SMTP_TLS": "starttls"}) as sender:
        sender.send_due()
    r = row(ws.con, "p/acct-1/1/0")
    assert r["status"] == "dead" and r["attempts"] == 1 and "STARTTLS" in r["last_error"]
    assert "JOURNEYMAP_SMTP_TLS=starttls" in r["last_error"] and smtp.messages == []  # never sent in clear text
    add_rows(ws.con, [one("email", {"to": ["csm@example.com"], "subject": "s", "text": "t"}, playbook="q")])
    with Sender(ws.con, FAST, env={**smtp.env, "JOURNEYMAP_SMTP_TLS": "tls"}) as sender:
        sender.send_due()
    r = row(ws.con, "q/acct-1/1/0")
    assert r["status"] == "dead" and r["attempts"] == 0
    assert r["last_error"] == "JOURNEYMAP_SMTP_TLS is 'tls': it takes starttls, ssl or none; nothing was sent"


def test_email_without_smtp_settings_is_refused(ws):
    add_rows(ws.con, [one("email", {"to": ["csm@example.com"], "subject": "s", "text": "t"})])
    with Sender(ws.con, FAST, env={}) as sender:
        sender.drain()
    r = row(ws.con, "p/acct-1/1/0")
    assert r["status"] == "dead" and r["attempts"] == 0 and "JOURNEYMAP_SMTP_HOST is not set" in r["last_error"]


def test_tasks_are_opened_once_per_key_and_listed_assigned_closed(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    due = "2026-02-01T14:00:00+02:00"  # stored in UTC: 12:00
    add_rows(ws.con, [one("task", {"owner": "ana", "title": "Call acct-1", "body": "red", "due_at": due}),
                      one("task", {"owner": "bo", "title": "Call acct-2", "body": None, "due_at": None}, unit="acct-2")])
    with Sender(ws.con, FAST, env={}) as sender:
        sender.drain()
    assert statuses(ws.con) == {"delivered": 2}
    ws.close()
    w = str(tmp_path / "ws")
    assert invoke_json("act", "retry", "p/acct-1/1/0", "-w", w) == {"queued": ["p/acct-1/1/0"]}
    invoke_cli("act", "send", "--once", "-w", w)  # sent again: the task exists, so nothing new is opened
    tasks = invoke_json("tasks", "-w", w)["tasks"]
    assert [(t["title"], t["owner"], t["status"]) for t in tasks] == [("Call acct-1", "ana", "open"),
                                                                       ("Call acct-2", "bo", "open")]
    assert tasks[0]["due_at"].startswith("2026-02-01T12:00")
    assert [t["title"] for t in invoke_json("tasks", "--owner", "bo", "-w", w)["tasks"]] == ["Call acct-2"]
    first = tasks[0]["id"]
    assigned = invoke_json("tasks", "assign", str(first), "carla", "-w", w)
    assert assigned["owner"] == "carla" and [h["action"] for h in assigned["history"]] == ["opened", "assigned"]
    closed = invoke_json("tasks", "close", str(first), "-w", w)
    assert closed["status"] == "done" and closed["closed_by"] and closed["closed_at"]
    assert [t["title"] for t in invoke_json("tasks", "-w", w)["tasks"]] == ["Call acct-2"]
    assert len(invoke_json("tasks", "--status", "all", "-w", w)["tasks"]) == 2
    bad = invoke_cli("tasks", "close", str(first + 10), "-w", w, check=False)
    assert bad.returncode == 1 and f"no task {first + 10}" in bad.stderr and "did you mean" in bad.stderr
    bad = invoke_cli("tasks", "--status", "opne", "-w", w, check=False)
    assert bad.returncode == 2 and "did you mean 'open'" in bad.stderr


def test_cli_send_outbox_retry(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    w = str(tmp_path / "ws")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver() as rx:
        add_rows(ws.con, webhook_entries(3, rx.url + "/hook"))
        add_rows(ws.con, webhook_entries(1, rx.url + "/gone", playbook="gone"))
        ws.close()
        sent = invoke_json("act", "send", "--once", "-w", w, "--backoff", "0.01")
        assert (sent["delivered"], sent["dead"], sent["pending"], sent["dead_total"]) == (3, 1, 0, 1)
        box = invoke_json("act", "outbox", "-w", w)
        assert box["counts"]["dead"] == 1 and box["counts"]["delivered"] == 3
        assert [(r["key"], r["status"]) for r in box["rows"]] == [("gone/acct-0000/1/0", "dead")]
        assert "HTTP 410" in box["rows"][0]["last_error"]
        table = invoke_cli("act", "outbox", "-w", w).stdout
        assert "gone/acct-0000/1/0" in table and "1 dead" in table
        # the receiver is fixed: --dead re-queues the dead row, which is then delivered
        assert invoke_json("act", "retry", "--dead", "-w", w) == {"queued": ["gone/acct-0000/1/0"]}
        ws2 = Workspace(w)
        ws2.con.execute("UPDATE act_outbox SET payload = replace(payload, '/gone', '/hook')")
        ws2.close()
        assert invoke_json("act", "send", "--once", "-w", w)["delivered"] == 1
        assert set(rx.handled) == {*(f"nudge/acct-{i:04d}/1/0" for i in range(3)), "gone/acct-0000/1/0"}
    bad = invoke_cli("act", "retry", "nudge/acct-0001/1/9", "-w", w, check=False)
    assert bad.returncode == 1 and "no outbox row with key 'nudge/acct-0001/1/9'" in bad.stderr
    assert "did you mean" in bad.stderr and "nudge/acct-0001/1/0" in bad.stderr
    bad = invoke_cli("act", "retry", "-w", w, check=False)
    assert bad.returncode == 2 and "KEY ... or --dead" in bad.stderr
    bad = invoke_cli("act", "outbox", "--status", "daed", "-w", w, check=False)
    assert bad.returncode == 2 and "did you mean 'dead'" in bad.stderr
    bad = invoke_cli("act", "send", "--once", "--max-attempts", "0", "-w", w, check=False)
    assert bad.returncode == 2 and "--max-attempts must be positive" in bad.stderr
    monkeypatch.setenv("JOURNEYMAP_ACT_TIMEOUT", "soon")
    bad = invoke_cli("act", "send", "--once", "-w", w, check=False)
    assert bad.returncode == 2 and "JOURNEYMAP_ACT_TIMEOUT takes a number, not 'soon'" in bad.stderr


def test_a_sender_that_cannot_run_makes_the_server_unhealthy(tmp_path, monkeypatch):
    """Firings that are not delivered are not a healthy server: /-/health says why, with 503."""
    Workspace.init(tmp_path / "ws").close()
    monkeypatch.setenv("JOURNEYMAP_ACT_MAX_ATTEMPTS", "many")
    with serve_in_process(tmp_path / "ws") as client:
        deadline = time.monotonic() + 20
        answer = client.get("/-/health")
        while answer.json()["sender"]["error"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = client.get("/-/health")
        body = answer.json()
        assert answer.status_code == 503 and body["ok"] is False
        assert "JOURNEYMAP_ACT_MAX_ATTEMPTS" in body["sender"]["error"]
        assert body["journal"]["error"] is None and body["loader"]["error"] is None  # the sender alone


def test_one_sender_per_store(ws):
    from journeymap.errors import WorkspaceError

    with Sender(ws.con, FAST, env=ENV), pytest.raises(WorkspaceError, match="already delivering"):
        with Sender(ws.con.cursor(), FAST, env=ENV):
            pass


def test_the_servers_sender_thread_delivers(tmp_path, monkeypatch):
    ws = Workspace.init(tmp_path / "ws")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with Receiver() as rx:
        add_rows(ws.con, webhook_entries(2, rx.url + "/hook"))
        add_rows(ws.con, [Entry("later", "account", "acct-9", 1, datetime(2026, 1, 5), False, None, {},
                                [Action("webhook", {"url": rx.url + "/hook", "secret_env": SECRET_ENV, "body": {}},
                                        delay_seconds=3600)])])
        ws.close()
        with serve_in_process(tmp_path / "ws") as client:
            deadline = time.monotonic() + 20
            while len(rx.handled) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert set(rx.handled) == {"nudge/acct-0000/1/0", "nudge/acct-0001/1/0"}
            health = client.get("/-/health").json()["sender"]
            assert health["running"] is True and health["error"] is None
        ws = Workspace(tmp_path / "ws")
        assert statuses(ws.con) == {"delivered": 2, "pending": 1}  # the delayed one is not due yet
        ws.close()
