"""Fault campaign against the tracking server, its journal and `journeymap erase` (run on demand, never by tests).

    PYTHONPATH=src .venv/bin/python benchmarks/fault_campaign.py [--rounds 20] [--damage 20] [--seed 16]
        [--parts kill,damage,hostile,erase] [--workdir DIR] [--keep]

Every part drives the real `journeymap` CLI in subprocesses (`python -m journeymap`, with this tree's `src`
first on PYTHONPATH, so the code under test is this checkout's) and reads the store only after the server
has stopped cleanly. Each part prints what it did; the summary table at the end gives the figures with the
expected value next to each (the figures of issue 16's "Done when"; docs/benchmarks.md "Fault campaign").

1. kill -9 rounds (`--rounds`): one workspace; per round a `journeymap serve --rate-limit 0
   --stitch-seconds 0.5` on a loopback port, 3 client threads posting /v1/batch of 50 track events with
   unique messageIds, SIGKILL after a random 1-4 s, a restart (recovery cuts torn tails and replays the
   journal), a clean stop (SIGTERM). An event is acknowledged when its batch answered 200 with no
   `rejected`. After the last round: acknowledged events not in `events` (lost), message_ids stored more
   than once (duplicated), and dead letters.
2. damaged journal (`--damage`): one workspace; per case a closed segment of 200 records is written with
   the journal's own writer (`journeymap.ingest.journal.Journal`, as the server writes them), one random
   byte of one random record is changed (XOR with a random non-zero mask, never into or from a newline:
   that would be a different fault, a split or joined record), a later segment of 10 records is written,
   then the server is started, 5 live events posted, and the server stopped (a clean stop loads all).
   Counts: records lost beyond the damaged one (expected 0), records quarantined (expected 1 per case),
   damaged records stored anyway (expected 0), and cases whose later and live events did not all load.
3. hostile bodies: a list of hostile requests to /v1/batch, /v1/track and /v1/identify of one running
   server (deep nesting, 100k-digit integers, invalid UTF-8, extreme timestamps and sentAt/originalTimestamp
   overflow, a wrong JSON type for every field, a 10 MB body, gzip bombs, empty and non-object bodies,
   batches of 0 and 10,000 items, NaN/Infinity, NUL bytes, huge keys, a 10 KB messageId). Counts the
   requests and the 5xx answers (expected 0, each listed with its body), transport errors, and whether the
   server still answers /-/health and still takes a good batch afterwards.
4. erase byte search: a workspace with a canonical CSV holding a person (`erase.me@example.com`, user id
   `erase-me-42`, a survey comment only they wrote), more of their events and an identify sent through a
   running server's tracking API (`--keep-segments 10`, so loaded segments stay in journal/loaded/), a
   clean stop, `journeymap erase --email erase.me@example.com`, then every byte of every file under the
   workspace searched for the email, the user id and the comment (any case; also as base64 at each of
   the 3 alignments, as the quarantine stores raw records). Expected 0.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
if SRC.is_dir():
    sys.path.insert(0, str(SRC))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))

from journeymap.ingest.journal import Journal, read_quarantine  # noqa: E402
from journeymap.ingest.segment import canonical, line  # noqa: E402
from journeymap.ingest.store import open_store  # noqa: E402


# -- the CLI and the server, as a user runs them ---------------------------------------------------------

def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "journeymap", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"journeymap {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def new_workspace(path: Path) -> tuple[Path, str]:
    """`journeymap init` and a write key from `journeymap keys create`."""
    cli("init", str(path))
    out = cli("keys", "create", "--kind", "write", "--name", "campaign", "--workspace", str(path), "--json").stdout
    return path, json.loads(out)["token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`journeymap serve` on a free loopback port, its output in a log file of the workdir."""

    def __init__(self, workspace: Path, log_dir: Path, *args: str):
        self.workspace, self.args = workspace, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"server-{workspace.name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeymap", "serve", "--workspace", str(self.workspace), "--port", str(self.port),
                 *self.args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"server not ready in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes requests, then the journal is flushed and loaded into the store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(180)
            if code not in (0, -signal.SIGTERM):
                raise SystemExit(f"server stopped with {code}:\n{self.log.read_text()}")
        self.proc = None

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0


# -- 1. kill -9 rounds -----------------------------------------------------------------------------------

CLIENTS, BATCH = 3, 50


def _client(url: str, token: str, r: int, k: int, stop: threading.Event, sent: list[int], acked: list[str]) -> None:
    """Posts batches of 50 until `stop` or the server dies; an acknowledged batch's ids go to `acked`."""
    with httpx.Client(base_url=url, auth=(token, ""), timeout=30) as c:
        n = 0
        while not stop.is_set():
            ids = [f"r{r}-c{k}-{n + i}" for i in range(BATCH)]
            n += BATCH
            body = {"batch": [{"type": "track", "userId": f"user-{k}-{i % 13}", "event": "Crash Tested",
                               "messageId": mid, "properties": {"i": i, "client": k, "round": r}}
                              for i, mid in enumerate(ids)]}
            try:
                resp = c.post("/v1/batch", json=body)
            except httpx.TransportError:
                return  # the server died: this batch was never acknowledged
            sent[k] += 1
            if resp.status_code == 200 and "rejected" not in resp.json():
                acked.extend(ids)


def kill_rounds(workdir: Path, rounds: int, rng: random.Random) -> dict:
    ws, token = new_workspace(workdir / "kill")
    acked: list[str] = []
    batches = 0
    for r in range(rounds):
        server = Server(ws, workdir, "--rate-limit", "0", "--stitch-seconds", "0.5").start()
        round_acked: list[list[str]] = [[] for _ in range(CLIENTS)]
        sent = [0] * CLIENTS
        stop = threading.Event()

        threads = [threading.Thread(target=_client, args=(server.url, token, r, k, stop, sent, round_acked[k]))
                   for k in range(CLIENTS)]
        for t in threads:
            t.start()
        wait = rng.uniform(1.0, 4.0)
        time.sleep(wait)
        server.kill()
        stop.set()
        for t in threads:
            t.join(60)
        segments = len(list((ws / "journal").glob("seg-*.jsonl")))
        server.start()  # recovery
        server.stop()
        n = sum(len(ids) for ids in round_acked)
        acked.extend(mid for ids in round_acked for mid in ids)
        batches += sum(sent)
        print(f"  round {r + 1}/{rounds}: killed after {wait:.1f} s, {n} events acknowledged, "
              f"{segments} segments left by the kill", flush=True)

    con = open_store(ws, read_only=True)
    con.execute("CREATE TEMP TABLE acked (message_id VARCHAR)")
    con.executemany("INSERT INTO acked VALUES (?)", [[m] for m in acked])
    lost = con.execute("SELECT count(*) FROM acked a ANTI JOIN events e USING (message_id)").fetchall()[0][0]
    total, distinct = con.execute("SELECT count(*), count(DISTINCT message_id) FROM events").fetchall()[0]
    duplicated = con.execute("SELECT count(*) FROM (SELECT message_id FROM events GROUP BY 1 HAVING count(*) > 1)").fetchall()[0][0]
    dead = con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
    con.close()
    return {"rounds": rounds, "batches": batches, "acknowledged": len(acked), "stored": total, "lost": lost,
            "duplicated": duplicated, "extra_rows": total - distinct, "dead_letters": dead,
            "segments_left": len(list((ws / "journal").glob("seg-*.jsonl")))}


# -- 2. damaged journal ----------------------------------------------------------------------------------

RECORDS = 200


def _record(case: int, i: int) -> bytes:
    ev = {"type": "track", "event": "Song Played", "userId": f"u{i % 7}", "messageId": f"d{case}-{i}",
          "timestamp": "2024-02-01T10:00:00Z", "properties": {"i": i, "case": case, "text": "Grüße, ünïcödé"}}
    return line(canonical(ev))


def damaged_journal(workdir: Path, cases: int, rng: random.Random) -> dict:
    ws, token = new_workspace(workdir / "damage")
    journal_dir = ws / "journal"
    totals = {"cases": cases, "records": 0, "quarantined": 0, "lost_beyond": 0, "damaged_stored": 0,
              "later_missing_cases": 0, "live_missing_cases": 0, "cases_not_exactly_1": 0}
    for case in range(cases):
        before = len(read_quarantine(journal_dir)) if journal_dir.exists() else 0
        journal = Journal(journal_dir)
        journal.open()
        journal.write(b"".join(_record(case, i) for i in range(RECORDS)))
        journal.close()
        segment = journal.closed_segments()[-1]
        data = bytearray(segment.read_bytes())
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10][:-1]
        victim = rng.randrange(RECORDS)
        end = data.index(b"\n", starts[victim])
        pos = rng.randrange(starts[victim], end)
        while True:
            new = data[pos] ^ rng.randrange(1, 256)
            if new != 10:
                break
        data[pos] = new
        segment.write_bytes(bytes(data))

        later = Journal(journal_dir)
        later.open()
        later.write(b"".join(_record(case, i) for i in range(RECORDS, RECORDS + 10)))
        later.close()

        server = Server(ws, workdir, "--rate-limit", "0").start()
        live = [{"type": "track", "userId": "live", "event": "Live", "messageId": f"d{case}-live-{i}"} for i in range(5)]
        resp = httpx.post(f"{server.url}/v1/batch", auth=(token, ""), json={"batch": live}, timeout=30)
        server.stop()

        con = open_store(ws, read_only=True)
        stored = {r[0] for r in con.execute("SELECT message_id FROM events WHERE message_id LIKE ?", [f"d{case}-%"]).fetchall()}
        con.close()
        quarantined = len(read_quarantine(journal_dir)) - before
        first = {f"d{case}-{i}" for i in range(RECORDS)} - {f"d{case}-{victim}"}
        lost = len(first - stored)
        later_ok = {f"d{case}-{i}" for i in range(RECORDS, RECORDS + 10)} <= stored
        live_ok = resp.status_code == 200 and {e["messageId"] for e in live} <= stored
        totals["records"] += RECORDS
        totals["quarantined"] += quarantined
        totals["lost_beyond"] += lost
        totals["damaged_stored"] += f"d{case}-{victim}" in stored
        totals["later_missing_cases"] += not later_ok
        totals["live_missing_cases"] += not live_ok
        totals["cases_not_exactly_1"] += quarantined != 1
        print(f"  case {case + 1}/{cases}: record {victim + 1}, byte {pos - starts[victim]} of {end - starts[victim]} "
              f"changed; quarantined {quarantined}, lost beyond it {lost}, later segment loaded {later_ok}, "
              f"live events loaded {live_ok}", flush=True)
    totals["tracebacks"] = sum(1 for p in workdir.glob("server-damage-*.log") if "Traceback" in p.read_text(errors="replace"))
    return totals


# -- 3. hostile bodies -----------------------------------------------------------------------------------

ENDPOINTS = ("/v1/batch", "/v1/track", "/v1/identify")
FIELDS = ("type", "userId", "anonymousId", "event", "messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt",
          "properties", "traits", "context", "integrations", "groupId", "previousId", "name", "category")
WRONG = (None, True, 0, -1, 1.5, 10**30, "", "x", [], [1], {}, {"a": 1})


def _base(endpoint: str, mid: str) -> dict:
    ev = {"userId": "hostile-user", "messageId": mid, "timestamp": "2024-02-01T10:00:00Z"}
    if endpoint == "/v1/identify":
        ev["traits"] = {"plan": "pro"}
    else:
        ev.update(type="track", event="Hostile", properties={"k": 1})
    return ev


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _wrap(endpoint: str, item: bytes) -> bytes:
    """An item's JSON text as the body for the endpoint: inside a batch next to a good event for /v1/batch."""
    if endpoint == "/v1/batch":
        good = _dumps({"type": "track", "userId": "good", "event": "Good", "messageId": f"good-{random.random()}"})
        return b'{"batch": [' + good + b", " + item + b"]}"
    return item


def hostile_requests() -> list[tuple[str, str, bytes, dict]]:
    """(name, endpoint, body, extra headers)."""
    out: list[tuple[str, str, bytes, dict]] = []
    n = 0

    def mid() -> str:
        nonlocal n
        n += 1
        return f"h-{n}"

    def item_text(endpoint: str, **fields) -> bytes:
        return _dumps({**_base(endpoint, mid()), **fields})

    gz_bomb = gzip.compress(b"\0" * 100_000_000, compresslevel=9)
    gz_json_bomb = gzip.compress(b'{"batch": [' + b" " * 100_000_000 + b"]}", compresslevel=9)
    for ep in ENDPOINTS:
        key = "traits" if ep == "/v1/identify" else "properties"
        # deep nesting, in the body itself and inside a property
        deep = b"[" * 2000 + b"]" * 2000
        out.append(("deep nesting: 2,000 arrays as the body", ep, deep, {}))
        out.append(("deep nesting: 2,000 objects in a property", ep,
                    _wrap(ep, item_text(ep)[:-1] + b', "deep": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}"), {}))
        out.append(("deep nesting: 2,000 arrays in " + key, ep,
                    _wrap(ep, item_text(ep)[:-1] + b', "' + key.encode() + b'": {"x": ' + deep + b"}}"), {}))
        out.append(("deep nesting: 100,000 arrays as the body", ep, b"[" * 100_000 + b"]" * 100_000, {}))
        # huge integers
        big = b"9" * 100_000
        out.append(("100k-digit integer in a property", ep, _wrap(ep, item_text(ep)[:-1] + b', "' + key.encode() + b'": {"n": ' + big + b"}}"), {}))
        out.append(("100k-digit integer as messageId", ep, _wrap(ep, item_text(ep)[:-1] + b', "messageId": ' + big + b"}"), {}))
        out.append(("100k-digit integer as timestamp", ep, _wrap(ep, item_text(ep)[:-1] + b', "timestamp": ' + big + b"}"), {}))
        out.append(("100k-digit float exponent", ep, _wrap(ep, item_text(ep)[:-1] + b', "' + key.encode() + b'": {"n": 1e' + big + b"}}"), {}))
        # invalid UTF-8
        out.append(("invalid UTF-8 in a string", ep, _wrap(ep, item_text(ep).replace(b"hostile-user", b"bad\xff\xfe\xc0\x80")), {}))
        out.append(("invalid UTF-8: lone surrogate escape", ep, _wrap(ep, item_text(ep).replace(b"hostile-user", b"\\ud800x")), {}))
        out.append(("invalid UTF-8: raw surrogate bytes", ep, _wrap(ep, item_text(ep).replace(b"hostile-user", b"\xed\xa0\x80")), {}))
        out.append(("UTF-16 body", ep, _wrap(ep, item_text(ep)).decode().encode("utf-16"), {}))
        # extreme timestamps
        for ts in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-00-00T00:00:00Z", "99999-01-01T00:00:00Z",
                   "2024-02-30T10:00:00Z", "2024-02-01T10:00:00+99:99", "-0001-01-01T00:00:00Z", "1e308", ""):
            for f in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
                out.append((f"{f} {ts!r}", ep, _wrap(ep, item_text(ep, **{f: ts})), {}))
        for ot, sa in (("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"), ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"),
                       ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"),
                       ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00")):
            out.append((f"originalTimestamp {ot} with sentAt {sa} (skew overflow)", ep,
                        _wrap(ep, item_text(ep, originalTimestamp=ot, sentAt=sa)), {}))
            out.append((f"originalTimestamp {ot} with sentAt {sa}, no timestamp", ep,
                        _wrap(ep, _dumps({k: v for k, v in {**_base(ep, mid()), "originalTimestamp": ot, "sentAt": sa}.items()
                                          if k != "timestamp"})), {}))
        # wrong JSON types for every field
        for f in FIELDS:
            for v in WRONG:
                out.append((f"{f} = {json.dumps(v)}", ep, _wrap(ep, item_text(ep, **{f: v})), {}))
        for f in ("batch", "context", "sentAt", "integrations"):
            for v in WRONG:
                if ep == "/v1/batch":
                    out.append((f"top-level {f} = {json.dumps(v)}", ep, _dumps({"batch": [_base(ep, mid())], f: v}), {}))
        out.append(("context.traits wrong type", ep, _wrap(ep, item_text(ep, context={"traits": [1, 2]})), {}))
        out.append(("context.traits huge", ep, _wrap(ep, item_text(ep, context={"traits": {"k" * 100_000: "v" * 100_000}})), {}))
        # size
        out.append(("10 MB body", ep, _wrap(ep, item_text(ep, **{key: {"blob": "x" * 10_000_000}})), {}))
        out.append(("gzip bomb: 100 MB of zeros", ep, gz_bomb, {"Content-Encoding": "gzip"}))
        out.append(("gzip bomb: 100 MB of JSON whitespace", ep, gz_json_bomb, {"Content-Encoding": "gzip"}))
        out.append(("gzip: not gzip at all", ep, b"not gzip", {"Content-Encoding": "gzip"}))
        out.append(("gzip: truncated", ep, gzip.compress(_wrap(ep, item_text(ep)))[:20], {"Content-Encoding": "gzip"}))
        out.append(("Content-Encoding: br (unsupported)", ep, _wrap(ep, item_text(ep)), {"Content-Encoding": "br"}))
        out.append(("Content-Encoding: gzip, gzip", ep, gzip.compress(gzip.compress(_wrap(ep, item_text(ep)))),
                    {"Content-Encoding": "gzip, gzip"}))
        # empty and non-object bodies
        out.append(("empty body", ep, b"", {}))
        out.append(("whitespace body", ep, b"   \n", {}))
        for literal in (b"[]", b'"s"', b"1", b"null", b"true", b"[{}]", b"{", b"}", b'{"a":}', b"\xef\xbb\xbf{}"):
            out.append((f"body {literal!r}", ep, literal, {}))
        out.append(("batch of 0 items", ep, b'{"batch": []}', {}))
        ten_thousand = _dumps({"batch": [{"type": "track", "userId": "bulk", "event": "Bulk", "messageId": f"bulk-{ep}-{i}"}
                                         for i in range(10_000)]})
        out.append(("batch of 10,000 items", ep, ten_thousand, {}))
        out.append(("batch of 10,000 empty objects", ep, _dumps({"batch": [{}] * 10_000}), {}))
        small = b'{"batch":[' + b",".join(b'{"type":"track","userId":"s%d","event":"S"}' % (i % 10) for i in range(10_000)) + b"]}"
        out.append((f"batch of 10,000 small items ({len(small) // 1000} KB, no messageId)", ep, small, {}))
        out.append(("batch of 10,000 items, gzip", ep, gzip.compress(ten_thousand), {"Content-Encoding": "gzip"}))
        # NaN / Infinity
        for lit in (b"NaN", b"Infinity", b"-Infinity"):
            out.append((f"{lit.decode()} in a property", ep, _wrap(ep, item_text(ep)[:-1] + b', "' + key.encode() + b'": {"n": ' + lit + b"}}"), {}))
            out.append((f"{lit.decode()} as timestamp", ep, _wrap(ep, item_text(ep)[:-1] + b', "timestamp": ' + lit + b"}"), {}))
            out.append((f"{lit.decode()} as messageId", ep, _wrap(ep, item_text(ep)[:-1] + b', "messageId": ' + lit + b"}"), {}))
        # NUL bytes
        out.append(("NUL escape in userId and event", ep, _wrap(ep, item_text(ep, userId="a\u0000b", event="e\u0000")), {}))
        out.append(("NUL escape in a property key", ep, _wrap(ep, item_text(ep, **{key: {"a\u0000": 1}})), {}))
        out.append(("raw NUL byte in a string", ep, _wrap(ep, item_text(ep).replace(b"hostile-user", b"a\x00b")), {}))
        # huge keys and ids
        out.append(("1 MB property key", ep, _wrap(ep, item_text(ep, **{key: {"k" * 1_000_000: 1}})), {}))
        out.append(("100,000 property keys", ep, _wrap(ep, item_text(ep, **{key: {f"k{i}": i for i in range(100_000)}})), {}))
        out.append(("10 KB messageId", ep, _wrap(ep, item_text(ep, messageId="m" * 10_000)), {}))
        out.append(("10 KB userId", ep, _wrap(ep, item_text(ep, userId="u" * 10_000)), {}))
        out.append(("10 KB event name", ep, _wrap(ep, item_text(ep, event="e" * 10_000)), {}))
        out.append(("duplicate keys", ep, _wrap(ep, b'{"userId": "a", "userId": 5, "messageId": "dupkeys", "event": "x", "type": "track"}'), {}))
        # content types
        out.append(("Content-Type text/plain", ep, _wrap(ep, item_text(ep)), {"Content-Type": "text/plain"}))
        out.append(("Content-Type form", ep, b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"}))
        out.append(("Content-Type charset=latin-1", ep, _wrap(ep, item_text(ep)), {"Content-Type": "application/json; charset=latin-1"}))
    return out


def hostile_bodies(workdir: Path) -> dict:
    ws, token = new_workspace(workdir / "hostile")
    server = Server(ws, workdir, "--rate-limit", "0").start()
    requests = hostile_requests()
    statuses: dict[int, int] = {}
    five_xx: list[str] = []
    transport: list[str] = []
    slowest = (0.0, "")
    answers: list[str] = []
    try:
        with httpx.Client(base_url=server.url, auth=(token, ""), timeout=120) as c:
            for name, ep, body, headers in requests:
                hdrs = {"Content-Type": "application/json", **headers}
                started = time.monotonic()
                try:
                    r = c.post(ep, content=body, headers=hdrs)
                except httpx.TransportError as exc:
                    transport.append(f"POST {ep} [{name}]: {type(exc).__name__}: {exc}")
                    if server.proc.poll() is not None:
                        transport.append(f"the server exited {server.proc.returncode}")
                        break
                    continue
                took = time.monotonic() - started
                if took > slowest[0]:
                    slowest = (took, f"POST {ep} [{name}]")
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                answers.append(f"{r.status_code} POST {ep} [{name}] ({len(body):,} bytes): {r.text[:200]}")
                if r.status_code >= 500:
                    five_xx.append(f"POST {ep} [{name}] ({len(body):,} bytes) -> {r.status_code} {r.text[:300]}")
            health = c.get("/-/health").json()
            good = c.post("/v1/batch", json={"batch": [{"type": "track", "userId": "after", "event": "After", "messageId": "after-1"}]})
            still_ok = good.status_code == 200 and good.json() == {"success": True}
    finally:
        server.stop()
    con = open_store(ws, read_only=True)
    after_stored = con.execute("SELECT count(*) FROM events WHERE message_id = 'after-1'").fetchall()[0][0]
    stored = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    dead = con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
    con.close()
    (workdir / "hostile-answers.txt").write_text("\n".join(answers) + "\n")
    return {"requests": len(requests), "statuses": dict(sorted(statuses.items())), "five_xx": five_xx, "transport": transport,
            "health_ok": bool(health.get("ok")), "good_batch_after": still_ok and after_stored == 1,
            "slowest": f"{slowest[0]:.2f} s: {slowest[1]}", "stored": stored, "dead_letters": dead, "tracebacks": server.tracebacks()}


# -- 4. erase byte search --------------------------------------------------------------------------------

EMAIL, USER, ANON = "erase.me@example.com", "erase-me-42", "anon-erase-me-7f3a"
COMMENT = "the export button ate my quarterly numbers vqzpx"
EXPORT = f"""message_id,user_id,anonymous_id,email,event,ts,type,properties
e1,,{ANON},,pricing_viewed,2025-03-01T09:00:00,track,
e2,{USER},{ANON},{EMAIL},signup_completed,2025-03-01T09:05:00,track,
e3,{USER},,,survey_answered,2025-03-02T09:00:00,track,"{{""comment"": ""{COMMENT}"", ""score"": 2}}"
e4,keep-1,,keep@example.org,pricing_viewed,2025-03-02T10:00:00,track,
e5,keep-1,,,signup_completed,2025-03-02T10:05:00,track,
e6,keep-2,,,pricing_viewed,2025-03-03T10:00:00,track,
"""


def _needles() -> list[tuple[bytes, bool]]:
    """(needle, any case): each identifier as text (any case), and as base64 at each of the 3 alignments
    (the middle of an encoding does not depend on the bytes around it)."""
    out = []
    for text in (EMAIL, USER, COMMENT):
        raw = text.encode()
        out.append((raw.lower(), True))
        for shift in range(3):
            out.append((base64.b64encode(b"\0" * shift + raw)[4:-4], False))
    return out


def erase_search(workdir: Path) -> dict:
    ws, token = new_workspace(workdir / "erase")
    csv = workdir / "erase-export.csv"
    csv.write_text(EXPORT)
    cli("ingest", str(csv), "--workspace", str(ws))
    server = Server(ws, workdir, "--rate-limit", "0", "--keep-segments", "10").start()
    with httpx.Client(base_url=server.url, auth=(token, ""), timeout=30) as c:
        answers = [
            c.post("/v1/identify", json={"userId": USER, "anonymousId": ANON, "messageId": "t1",
                                         "traits": {"email": EMAIL.upper(), "note": COMMENT}}).status_code,
            c.post("/v1/track", json={"userId": USER, "event": "Survey Answered", "messageId": "t2",
                                      "properties": {"comment": COMMENT, "email": EMAIL}}).status_code,
            c.post("/v1/batch", json={"batch": [
                {"type": "page", "userId": USER, "name": "Pricing", "messageId": "t3", "context": {"traits": {"email": EMAIL}}},
                {"type": "track", "anonymousId": ANON, "event": "Pricing Viewed", "messageId": "t4"},
                {"type": "track", "userId": "keep-1", "event": "Pricing Viewed", "messageId": "t5"}]}).status_code,
        ]
    server.stop()
    before = _occurrences(ws)
    erased = cli("erase", "--email", EMAIL, "--workspace", str(ws), check=False)
    after = _occurrences(ws)
    con = open_store(ws, read_only=True)
    others = con.execute("SELECT count(*) FROM events WHERE user_id = 'keep-1'").fetchall()[0][0]
    con.close()
    return {"posted": answers, "before": sum(before.values()), "erase_rc": erased.returncode,
            "erase_output": (erased.stdout + erased.stderr).strip(), "after": sum(after.values()), "where": after,
            "files": sum(1 for p in ws.rglob("*") if p.is_file()), "others_kept": others}


def _occurrences(folder: Path) -> dict[str, int]:
    found = {}
    needles = _needles()
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            lower = data.lower()
            for needle, any_case in needles:
                n = (lower if any_case else data).count(needle)
                if n:
                    found[f"{path.relative_to(folder)}: {needle[:40]!r}"] = n
    return found


# -- the table -------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="kill -9 rounds")
    parser.add_argument("--damage", type=int, default=20, help="damaged-journal cases")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--parts", default="kill,damage,hostile,erase")
    parser.add_argument("--workdir", type=Path, help="where the workspaces go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []
    started = time.monotonic()
    try:
        if "kill" in parts:
            print(f"1. kill -9 rounds ({args.rounds})", flush=True)
            k = kill_rounds(workdir, args.rounds, rng)
            rows += [("kill -9 rounds", f"{k['rounds']}", ""),
                     ("  batches sent / events acknowledged", f"{k['batches']:,} / {k['acknowledged']:,}", ""),
                     ("  acknowledged but lost", f"{k['lost']:,}", "0"),
                     ("  duplicated (message_id stored > once)", f"{k['duplicated']:,}", "0"),
                     ("  events stored (acked + durable unacked)", f"{k['stored']:,}", f">= {k['acknowledged']:,}"),
                     ("  dead letters", f"{k['dead_letters']:,}", "0"),
                     ("  segments left after the clean stop", f"{k['segments_left']}", "0")]
        if "damage" in parts:
            print(f"2. damaged journal ({args.damage} cases)", flush=True)
            d = damaged_journal(workdir, args.damage, rng)
            rows += [("damaged-journal cases", f"{d['cases']} ({d['records']:,} records)", ""),
                     ("  records quarantined", f"{d['quarantined']}", f"{d['cases']}"),
                     ("  cases not quarantining exactly 1", f"{d['cases_not_exactly_1']}", "0"),
                     ("  records lost beyond the damaged one", f"{d['lost_beyond']}", "0"),
                     ("  damaged records stored anyway", f"{d['damaged_stored']}", "0"),
                     ("  cases whose later segment did not load", f"{d['later_missing_cases']}", "0"),
                     ("  cases whose live events did not load", f"{d['live_missing_cases']}", "0"),
                     ("  server logs with a traceback", f"{d['tracebacks']}", "0")]
        if "hostile" in parts:
            print("3. hostile bodies", flush=True)
            h = hostile_bodies(workdir)
            rows += [("hostile requests sent", f"{h['requests']:,}", ""),
                     ("  answers by status", ", ".join(f"{s}: {n}" for s, n in h["statuses"].items()), ""),
                     ("  5xx answers", f"{len(h['five_xx'])}", "0"),
                     ("  transport errors (no answer)", f"{len(h['transport'])}", "0"),
                     ("  healthy and taking a good batch after", f"{h['health_ok'] and h['good_batch_after']}", "True"),
                     ("  tracebacks in the server log", f"{h['tracebacks']}", "0"),
                     ("  events stored / dead letters after the stop", f"{h['stored']:,} / {h['dead_letters']:,}", ""),
                     ("  slowest answer", h["slowest"], "")]
            notes += h["five_xx"] + h["transport"]
        if "erase" in parts:
            print("4. erase byte search", flush=True)
            e = erase_search(workdir)
            rows += [("erase: occurrences before the erase", f"{e['before']}", "> 0"),
                     ("  tracking API answers", " ".join(map(str, e["posted"])), "200 200 200"),
                     ("  journeymap erase exit status", f"{e['erase_rc']}", "0"),
                     ("  occurrences after, in every byte of every file", f"{e['after']}", "0"),
                     ("  files searched", f"{e['files']}", ""),
                     ("  another person's events kept (2 CSV, 1 tracked)", f"{e['others_kept']}", "3")]
            notes += [f"erase: {e['erase_output']}"] + [f"erase left {n} x {w}" for w, n in e["where"].items()]
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            print(f"workdir kept: {workdir}")
    print(f"\nFault campaign (seed {args.seed}, {time.monotonic() - started:.0f} s)\n")
    width = max(len(r[0]) for r in rows) if rows else 10
    vwidth = max(len(r[1]) for r in rows) if rows else 10
    print(f"| {'measure'.ljust(width)} | {'figure'.ljust(vwidth)} | expected |")
    print(f"|{'-' * (width + 2)}|{'-' * (vwidth + 2)}|----------|")
    for name, value, expected in rows:
        print(f"| {name.ljust(width)} | {value.ljust(vwidth)} | {expected} |")
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
