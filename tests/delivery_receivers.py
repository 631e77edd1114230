"""Real receivers on loopback for the delivery tests: an HTTP server that fails at random, verifies every
webhook's signature with `standardwebhooks` (the reference implementation, not our code) and de-duplicates by
webhook-id; an aiosmtpd SMTP server that keeps every message."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from journeymap.act.outbox import Action, Entry, record

SECRET = "whsec_" + base64.b64encode(b"journeymap-test-secret-32-bytes!").decode()
SECRET_ENV = "JM_TEST_WEBHOOK_SECRET"


class Receiver:
    """POST /hook: a Standard Webhooks receiver; POST /slack: an incoming webhook; POST /gone: always 410.

    `fail`, `throttle`, `slow`: the chance that a request is answered 500, 429 (Retry-After: `retry_after`), or
    handled and then answered only after `slow_seconds` (longer than the sender waits: it retries a request the
    receiver did handle). `handled` counts each webhook-id handled (a duplicate is acknowledged, not handled);
    `received` counts every request per id. `kill_on`: (pid, n): kill -9 that pid on the n-th verified request from
    now, after handling it and before answering it."""

    def __init__(self, fail=0.0, throttle=0.0, slow=0.0, retry_after="1", slow_seconds=1.0, seed=7):
        self.rng = random.Random(seed)
        self.fail, self.throttle, self.slow = fail, throttle, slow
        self.retry_after, self.slow_seconds = retry_after, slow_seconds
        self.lock = threading.Lock()
        self.handled: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.answers: Counter[int] = Counter()
        self.bad_signatures: list[str] = []
        self.cut_requests = 0  # bodies shorter than their Content-Length: the sender was killed while sending
        self.slack: list[dict] = []
        self.requests = 0
        self.kill_on: tuple[int, int] | None = None
        self.kills = 0
        self.verifier = Webhook(SECRET)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, h: BaseHTTPRequestHandler, code: int, text: str = "", headers: dict | None = None):
        with self.lock:
            self.answers[code] += 1
        try:
            h.send_response(code)
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            body = text.encode()
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:  # the sender gave up (timeout) or was killed
            pass

    def serve(self, h: BaseHTTPRequestHandler):
        length = int(h.headers.get("Content-Length", 0))
        body = h.rfile.read(length)
        if len(body) < length:  # the sender died mid-request: a real server never hands a cut body to its handler
            with self.lock:
                self.cut_requests += 1
            return None
        with self.lock:
            self.requests += 1
            roll = self.rng.random()
        if h.path == "/gone":
            return self.answer(h, 410, "this hook was removed by its owner")
        if h.path == "/always500":
            return self.answer(h, 500, "down for maintenance")
        if roll < self.fail:
            return self.answer(h, 500, "internal error")
        if roll < self.fail + self.throttle:
            return self.answer(h, 429, "slow down", {"Retry-After": self.retry_after})
        if h.path == "/slack":
            with self.lock:
                self.slack.append({"text": json.loads(body)["text"], "key": h.headers.get("Idempotency-Key")})
            return self.answer(h, 200, "ok")
        headers = {k.lower(): v for k, v in h.headers.items()}
        msg_id = headers.get("webhook-id", "")
        try:
            self.verifier.verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.bad_signatures.append(f"{msg_id}: {exc}")
            return self.answer(h, 401, f"bad signature: {exc}")
        with self.lock:
            self.received[msg_id] += 1
            if self.handled[msg_id] == 0:  # de-duplicate: handle each webhook-id once, acknowledge repeats
                self.handled[msg_id] += 1
            kill = None
            if self.kill_on is not None:  # counted on handled requests only: the kill comes after handling one
                pid, n = self.kill_on
                if n <= 1:
                    kill, self.kill_on = pid, None
                else:
                    self.kill_on = (pid, n - 1)
        if kill is not None:
            os.kill(kill, signal.SIGKILL)
            with self.lock:
                self.kills += 1
            return self.answer(h, 200, "ok")  # too late: the sender is gone before reading it
        if roll > 1 - self.slow:
            time.sleep(self.slow_seconds)
        return self.answer(h, 200, "ok")


def webhook_entries(n: int, url: str, playbook: str = "nudge", secret_env: str = SECRET_ENV) -> list[Entry]:
    entered = datetime(2026, 1, 5, 9, 0)
    return [Entry(playbook, "account", f"acct-{i:04d}", 1, entered, False, "csm@example.com", {"rule": "test"},
                  [Action("webhook", {"url": url, "secret_env": secret_env, "body": {
                      "type": "journeymap.playbook.entered", "playbook": playbook,
                      "unit": {"level": "account", "id": f"acct-{i:04d}"}, "entry": 1,
                      "entered_at": entered.isoformat(), "owner": "csm@example.com", "reason": {"rule": "test"}}})])
            for i in range(n)]


def add_rows(con, entries: list[Entry], now: datetime | None = None) -> int:
    from journeymap.act.deliver import utcnow

    con.begin()
    n = record(con, entries, now or utcnow())
    con.commit()
    return n
