"""kill -9 during sustained ingest: every acknowledged event is in the store exactly once after a restart."""

from __future__ import annotations

import threading
import time

import httpx

from journeymap.ingest.store import open_store
from test_tracking_api import Server, quick_workspace

CLIENTS = 3
BATCH = 50


def test_kill_9_loses_no_acknowledged_event(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    # Short segments and a quick stitch, so the kill can land mid-load as well as mid-append.
    server = Server(ws, "--rate-limit", "0", "--stitch-seconds", "0.5").start()
    acked: list[list[str]] = [[] for _ in range(CLIENTS)]
    sent = [0] * CLIENTS
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, auth=(token, ""), timeout=10) as c:
            n = 0
            while not stop.is_set():
                ids = [f"c{k}-{n + i}" for i in range(BATCH)]
                n += BATCH
                body = {"batch": [{"type": "track", "userId": f"user-{k}-{i % 13}", "event": "Crash Tested", "messageId": mid,
                                   "properties": {"i": i, "client": k}} for i, mid in enumerate(ids)]}
                try:
                    r = c.post("/v1/batch", json=body)
                except httpx.TransportError:
                    return  # the server died: this batch was never acknowledged
                sent[k] += 1
                if r.status_code == 200 and "rejected" not in r.json():
                    acked[k].extend(ids)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    server.kill()  # SIGKILL: no shutdown, no flush, no final load
    stop.set()
    for t in threads:
        t.join(30)
    acknowledged = [mid for ids in acked for mid in ids]
    print(f"{len(acknowledged)} events acknowledged in {sum(sent)} batches before the kill")
    assert len(acknowledged) > 1000, f"too little traffic to mean anything: {len(acknowledged)}"

    journal_files = list((ws / "journal").glob("seg-*.jsonl"))
    assert journal_files, "the kill should leave segments not yet loaded"
    server.start()  # recovery: torn tails cut, every segment replayed
    server.stop()

    con = open_store(ws, read_only=True)
    con.execute("CREATE TEMP TABLE acked (message_id VARCHAR)")
    con.executemany("INSERT INTO acked VALUES (?)", [[m] for m in acknowledged])
    missing = con.execute("SELECT count(*) FROM acked a ANTI JOIN events e USING (message_id)").fetchall()[0][0]
    total, distinct = con.execute("SELECT count(*), count(DISTINCT message_id) FROM events").fetchall()[0]
    conflicts = con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
    con.close()
    assert missing == 0
    assert total == distinct  # nothing stored twice, though segments were replayed
    assert total >= len(acknowledged)  # unacknowledged but durable events may be stored too (at-least-once)
    assert conflicts == 0
    assert not list((ws / "journal").glob("seg-*.jsonl"))  # everything was loaded at the clean stop
