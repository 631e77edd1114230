"""kill -9 the sender mid-delivery, 20 times, against a receiver that fails at random: every firing is
received, each idempotency key handled once by the de-duplicating receiver, none lost, none dead.

The sender is the real `journeymap act send` in a subprocess over a real DuckDB store. Half the kills come
from inside the receiver, after it handled a request and before it answered (the sender never learns the
row was delivered: it must send it again, with the same webhook-id); the other half at a random moment
while the sender is delivering (between two writes to the store, or in the middle of one)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from delivery_receivers import SECRET, SECRET_ENV, Receiver, add_rows, webhook_entries

from journeymap.workspace import Workspace

ROWS = 600
"""Enough that the twenty kills come while rows are left: with 300, a fast machine delivered 295 by the
16th kill, and a sender with nothing left to send is never killed inside the receiver (run 16 timed out)."""
KILLS = 20


def outbox_status(path) -> dict:
    ws = Workspace(path)
    try:
        return dict(ws.con.execute("SELECT status, count(*) FROM act_outbox GROUP BY status").fetchall())
    finally:
        ws.close()


def test_kill_9_the_sender_20_times_loses_nothing(tmp_path):
    t0 = time.monotonic()
    ws = Workspace.init(tmp_path / "ws")
    w = str(tmp_path / "ws")
    env = {**os.environ, SECRET_ENV: SECRET, "COLUMNS": "200", "JOURNEYMAP_ACT_BACKOFF": "0.02",
           "JOURNEYMAP_ACT_BACKOFF_MAX": "0.2", "JOURNEYMAP_ACT_TIMEOUT": "0.4", "JOURNEYMAP_ACT_MAX_ATTEMPTS": "200"}
    send = [sys.executable, "-m", "journeymap", "act", "send", "-w", w, "--poll", "0.05"]
    rng = random.Random(2026)
    with Receiver(fail=0.2, throttle=0.05, slow=0.03, retry_after="1", slow_seconds=0.6, seed=11) as rx:
        add_rows(ws.con, webhook_entries(ROWS, rx.url + "/hook"))
        ws.close()
        delivered_before_kill, started = [], []
        try:
            for i in range(KILLS):
                handled = len(rx.handled)
                log = tmp_path / f"send-{i}.log"
                with log.open("w") as stderr:  # a file, not a pipe nobody reads: a full pipe would block the sender
                    proc = subprocess.Popen(send, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
                started.append(proc)
                if i % 2 == 0:  # in the receiver: after handling the n-th request, before answering it
                    rx.kill_on = (proc.pid, rng.randint(1, 15))
                    try:
                        proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        raise AssertionError(f"run {i} was not killed within 120 s: the receiver had {rx.requests} "
                                             f"requests, kill_on {rx.kill_on}; its stderr: {log.read_text()}") from None
                    finally:
                        rx.kill_on = None
                else:  # from outside, at a random moment after the sender's first request
                    requests = rx.requests
                    deadline = time.monotonic() + 60
                    while rx.requests == requests and proc.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.005)
                    time.sleep(rng.uniform(0.0, 0.4))
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=60)
                assert proc.returncode == -signal.SIGKILL, f"run {i} ended by itself ({proc.returncode}): {log.read_text()}"
                delivered_before_kill.append(len(rx.handled) - handled)
                print(f"run {i}: killed after {time.monotonic() - t0:.1f} s; {len(rx.handled)} keys handled", flush=True)
        finally:
            for proc in started:  # a failed assertion leaves no sender running
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert len(rx.handled) < ROWS, "the kills came too late to interrupt anything"
        # then a sender that is left alone finishes; rows told to wait (429, Retry-After: 1) come due meanwhile
        finals = 0
        for finals in range(1, 16):  # noqa: B007
            done = subprocess.run([*send, "--once"], env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            if outbox_status(w) == {"delivered": ROWS}:
                break
            time.sleep(0.5)
        status = outbox_status(w)
    keys = {f"nudge/acct-{i:04d}/1/0" for i in range(ROWS)}
    duplicates = sum(rx.received.values()) - len(rx.received)
    report = {"rows": ROWS, "kills": KILLS, "kills_inside_receiver": rx.kills, "final_runs": finals,
              "requests": rx.requests, "answers": dict(rx.answers), "handled": len(rx.handled),
              "duplicates_deduplicated": duplicates, "handled_per_run": delivered_before_kill,
              "cut_requests": rx.cut_requests,
              "seconds": round(time.monotonic() - t0, 1)}
    print("crash test:", report)
    assert rx.kills == KILLS // 2
    assert rx.bad_signatures == []
    assert set(rx.handled) == keys  # none lost
    assert set(rx.handled.values()) == {1}  # each key handled once
    assert status == {"delivered": ROWS}  # none dead, none left pending
    assert duplicates >= rx.kills  # each kill inside the receiver left a handled row to be sent again
    assert rx.answers[500] > 0 and rx.answers[429] > 0
