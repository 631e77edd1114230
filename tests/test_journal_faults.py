"""The journal under faults, through the real `journeymap serve` on loopback: a damaged record, a journal
that cannot grow (503 with Retry-After, a truthful /-/health, recovery without a restart, SIGTERM still
stops it), a journal that cannot be written at start-up, and the warning for a non-loopback --host.

Faults that must work as root (the tests may run as root, whom a read-only folder does not stop): the
next segment's path made a directory (creating the segment fails with EISDIR, as a full disk or a
read-only folder fails it). When not root, the same tests also run with the folder made read-only (chmod).
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from conftest import invoke_json, run_cli
from journeymap.ingest.journal import Journal, segment_name
from journeymap.ingest.store import open_store
from test_journal import _event
from test_tracking_api import Server, free_port, quick_workspace

ROOT = os.geteuid() == 0
FAULTS = ["next_segment_is_a_directory",
          pytest.param("read_only_folder", marks=pytest.mark.skipif(ROOT, reason="root writes to a read-only folder"))]


def _health(server: Server) -> dict:
    r = httpx.get(f"{server.url}/-/health", timeout=5)
    assert r.status_code == (200 if r.json()["ok"] else 503), r.text  # not ok is 503, for `curl -f` and balancers
    return r.json()


def _until(check, timeout: float = 15.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def _track(i: int) -> dict:
    return {"type": "track", "userId": f"u{i % 5}", "event": "Fault Tested", "messageId": f"f-{i}"}


class Fault:
    """Makes the journal's next segment impossible to create, and undoes it."""

    def __init__(self, journal: Path, kind: str):
        self.journal, self.kind = journal, kind
        self.blocker: Path | None = None

    def __enter__(self) -> Fault:
        if self.kind == "read_only_folder":
            os.chmod(self.journal, stat.S_IRUSR | stat.S_IXUSR)
        else:
            # The open segment is the one last-segment names; the next rotation creates the one after it.
            self.blocker = self.journal / segment_name(int((self.journal / "last-segment").read_text()) + 1)
            self.blocker.mkdir()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "read_only_folder":
            os.chmod(self.journal, 0o755)
        elif self.blocker is not None:
            self.blocker.rmdir()


def test_a_damaged_byte_in_a_segment_costs_one_record_on_a_live_server(tmp_path):
    """A segment of 300 records with one byte changed (left by an earlier run): the server loads 299,
    quarantines 1, says so in /-/health and `journeymap rejects`, and keeps loading what arrives after."""
    ws, token = quick_workspace(tmp_path / "ws")
    journal = Journal(ws / "journal")
    journal.open()
    journal.write(b"".join(_event(i) for i in range(300)))
    journal.close()
    (segment,) = journal.closed_segments()
    data = bytearray(segment.read_bytes())
    where = data.index(b'"m-150"')
    line_start = data.rindex(b"\n", 0, where) + 1
    data[where + 3] = 0xFF
    segment.write_bytes(bytes(data))

    server = Server(ws, "--rate-limit", "0").start()
    try:
        r = httpx.post(f"{server.url}/v1/batch", auth=(token, ""), json={"batch": [_track(i) for i in range(5)]})
        assert (r.status_code, r.json()) == (200, {"success": True})
        health = _until(lambda: (h := _health(server))["loader"]["accepted"] >= 304 and h, what="the loads")
        assert health["loader"]["quarantined"] == 1 and health["loader"]["error"] is None
    finally:
        server.stop()
    con = open_store(ws, read_only=True)
    ids = {r[0] for r in con.execute("SELECT message_id FROM events").fetchall()}
    con.close()
    assert len(ids) == 304 and "m-150" not in ids and {f"f-{i}" for i in range(5)} <= ids
    rejects = invoke_json("rejects", "--workspace", str(ws))
    assert rejects["quarantined"]["total"] == 1
    (q,) = rejects["quarantined"]["records"]
    assert (q["segment"], q["line"], q["reason"]) == (segment.name, 151, "bad_checksum")
    assert q["offset"] == line_start


@pytest.mark.parametrize("fault", FAULTS)
def test_a_journal_that_cannot_grow_answers_503_recovers_and_stops(tmp_path, fault):
    ws, token = quick_workspace(tmp_path / "ws")
    server = Server(ws, "--rate-limit", "0").start()
    acked: list[str] = []
    n = 0

    def post(timeout: float = 5) -> httpx.Response:
        nonlocal n
        ids = [n, n + 1]
        n += 2
        r = httpx.post(f"{server.url}/v1/batch", auth=(token, ""), json={"batch": [_track(i) for i in ids]}, timeout=timeout)
        if r.status_code == 200:
            acked.extend(f"f-{i}" for i in ids)
        return r

    try:
        assert post().status_code == 200
        # Wait for that segment's rotation: then the open segment is empty and will not rotate until written.
        _until(lambda: _health(server)["loader"]["segments_loaded"] >= 1, what="the first segment loaded")
        with Fault(ws / "journal", fault):
            assert post().status_code == 200  # the open segment is still writable
            # After its rotation (1 s) the next segment cannot be created: 503 at once, never a hang.
            r = _until(lambda: (r := post()).status_code == 503 and r, what="a 503")
            assert r.headers["retry-after"] == "1"
            assert "the journal cannot be written" in r.json()["error"]
            health = _health(server)
            assert health["ok"] is False and health["journal"]["accepting"] is False
            assert "the journal cannot be written" in health["journal"]["error"]
            assert health["journal"]["write_failures"] >= 1
        # The fault is gone: it accepts again within a retry, without a restart.
        _until(lambda: post().status_code == 200, what="recovery")
        health = _health(server)
        assert health["ok"] is True and health["journal"]["error"] is None and health["journal"]["recoveries"] >= 1

        _until(lambda: _health(server)["journal"]["segments"] >= 3 and post().status_code == 200, what="more segments")
        with Fault(ws / "journal", fault):
            post()
            _until(lambda: post().status_code == 503, what="a 503 again")
            started = time.monotonic()
            server.stop()  # SIGTERM while the journal cannot grow: it still stops (and loads what it has)
            assert time.monotonic() - started < 30
    finally:
        server.stop()
    con = open_store(ws, read_only=True)
    stored = {r[0] for r in con.execute("SELECT message_id FROM events").fetchall()}
    con.close()
    assert set(acked) <= stored and len(acked) >= 6


@pytest.mark.parametrize("fault", FAULTS)
def test_a_journal_that_cannot_be_written_at_start_up_is_one_line(tmp_path, fault):
    ws, _ = quick_workspace(tmp_path / "ws")
    journal = ws / "journal"
    journal.mkdir()
    (journal / "last-segment").write_text("0")
    with Fault(journal, fault):
        proc = run_cli("serve", "--workspace", str(ws), "--port", str(free_port()), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:") and "the journal cannot be written" in lines[0] and str(journal) in lines[0]


def test_serving_beyond_loopback_warns_that_traffic_is_unencrypted(tmp_path):
    ws, _ = quick_workspace(tmp_path / "ws")
    for host, warned in (("127.0.0.1", False), ("0.0.0.0", True)):
        server = Server(ws, "--host", host).start()
        server.stop()
        log = server.log.read_text()
        assert ("traffic is not encrypted" in log) is warned, log
        assert ("TLS-terminating proxy" in log) is warned
