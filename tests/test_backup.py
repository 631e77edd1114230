"""`journeymap backup` / `journeymap restore` (cli/backup.py, ingest/backup.py, server/admin.py `/-/backup`) and
the store's schema version (ingest/store.py: migrated on open with a copy first, a newer one refused).

The backup under load is taken of the real `journeymap serve` (test_tracking_api.Server) while a thread posts
`/v1/batch` requests to it; the CLI runs in this process (`invoke_cli`), finds the store locked by the server's
pid and asks the server. Every store is a real DuckDB file.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import duckdb
import httpx

from conftest import invoke_cli, invoke_json, run_cli, serve_in_process
from journeymap.ingest.store import SCHEMA_KEY, SCHEMA_VERSION, STORE_FILE, migration_backup_path, open_store
from test_tracking_api import Server, quick_workspace


def _event(i: int) -> dict:
    return {"type": "track", "userId": f"u{i % 37}", "event": "Song Played", "properties": {"n": i},
            "timestamp": "2024-05-02T10:00:00Z", "messageId": f"bk-{i}"}


class Poster(threading.Thread):
    """Posts batches of 20 events until stopped; `acked` holds the messageIds of every answered 200."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.acked: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        with httpx.Client(base_url=self.url, auth=(self.token, ""), timeout=30) as client:
            while not self.stopping.is_set():
                batch = [_event(i + k) for k in range(20)]
                i += 20
                r = client.post("/v1/batch", json={"batch": batch})
                if r.status_code == 200:
                    self.acked.extend(e["messageId"] for e in batch)  # after the answer: acknowledged
                else:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.01)


def _ids(workspace: Path) -> list[str]:
    con = duckdb.connect(str(workspace / STORE_FILE), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT message_id FROM events").fetchall()]
    finally:
        con.close()


def test_backup_while_serving_under_load_restores_every_acknowledged_event(tmp_path):
    workspace, token = quick_workspace(tmp_path / "ws")
    (workspace / "journeymap.yml").write_text("# the definition travels with the backup\n")
    server = Server(workspace).start()
    poster = Poster(server.url, token)
    try:
        poster.start()
        while len(poster.acked) < 400:  # some loaded into the store, the newest still in the journal
            time.sleep(0.05)
        time.sleep(1.5)
        before = list(poster.acked)  # acknowledged before the backup started
        got = invoke_json("backup", str(tmp_path / "bk"), "--workspace", str(workspace))
        after_backup = len(poster.acked)
        time.sleep(0.3)
    finally:
        poster.stopping.set()
        poster.join(30)
        server.stop()
    assert poster.errors == []
    assert len(poster.acked) > after_backup > len(before)  # events kept arriving during and after the backup
    manifest = json.loads((tmp_path / "bk" / "backup.json").read_text())
    assert manifest["events_in_store"] == got["events_in_store"] > 0
    assert manifest["journal_segments"], "the journal held acknowledged events not loaded yet"
    assert (tmp_path / "bk" / "journeymap.yml").read_text().startswith("# the definition")

    restored = tmp_path / "restored"
    out = invoke_json("restore", str(tmp_path / "bk"), "--workspace", str(restored))
    assert out["segments_loaded"] == len(manifest["journal_segments"])
    ids = _ids(restored)
    assert len(ids) == len(set(ids))  # no duplicates once the backup's segments are loaded
    missing = set(before) - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert len(ids) <= len(poster.acked)
    assert (restored / "journeymap.yml").exists()
    assert not list((restored / "journal").glob("seg-*.jsonl"))  # loaded and retired


def test_restore_refuses_a_non_empty_workspace_without_force_and_a_served_one(tmp_path):
    workspace, token = quick_workspace(tmp_path / "ws")
    invoke_cli("backup", str(tmp_path / "bk"), "--workspace", str(workspace))  # the server is not running: directly
    other, _ = quick_workspace(tmp_path / "other")
    refused = invoke_cli("restore", str(tmp_path / "bk"), "--workspace", str(other), check=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr

    server = Server(other).start()
    try:
        served = run_cli("restore", str(tmp_path / "bk"), "--workspace", str(other), "--force", check=False)
    finally:
        server.stop()
    assert served.returncode == 1 and "is served by pid" in served.stderr and "stop the server" in served.stderr
    assert "Traceback" not in served.stderr

    invoke_cli("restore", str(tmp_path / "bk"), "--workspace", str(other), "--force")
    assert invoke_json("keys", "list", "--workspace", str(other))["keys"][0]["name"] == "test"  # the backup's store
    again = invoke_cli("backup", str(tmp_path / "bk"), "--workspace", str(workspace), check=False)
    assert again.returncode == 1 and "not an empty folder" in again.stderr


def test_restore_refuses_a_backup_of_a_newer_journeymap_and_backup_needs_the_local_token(tmp_path):
    workspace, token = quick_workspace(tmp_path / "ws")
    invoke_cli("backup", str(tmp_path / "bk"), "--workspace", str(workspace))
    manifest = json.loads((tmp_path / "bk" / "backup.json").read_text())
    (tmp_path / "bk" / "backup.json").write_text(json.dumps({**manifest, "schema_version": SCHEMA_VERSION + 1}))
    got = invoke_cli("restore", str(tmp_path / "bk"), "--workspace", str(tmp_path / "new"), check=False)
    assert got.returncode == 1 and "Upgrade journeymap" in got.stderr and "Traceback" not in got.stderr
    assert not (tmp_path / "new").exists()
    with serve_in_process(workspace) as client:
        for auth in ({}, {"Authorization": f"Bearer {token}"}):  # no token, a write key: never the local admin
            r = client.post("/-/backup", json={"out": str(tmp_path / "bk2")}, headers=auth)
            assert r.status_code == 401, r.text
    assert not (tmp_path / "bk2").exists()


def test_an_older_store_is_migrated_on_open_with_a_copy_first(tmp_path):
    workspace, _ = quick_workspace(tmp_path / "ws")
    con = open_store(workspace)
    assert con.execute("SELECT value FROM meta WHERE key = ?", [SCHEMA_KEY]).fetchone() == (str(SCHEMA_VERSION),)
    con.execute("DELETE FROM meta WHERE key = ?", [SCHEMA_KEY])  # as a journeymap before versions left it
    con.close()
    got = invoke_cli("keys", "list", "--workspace", str(workspace))
    backup = migration_backup_path(workspace / STORE_FILE, 0)
    assert f"migrating {workspace / STORE_FILE} from store schema version 0 to {SCHEMA_VERSION}" in got.stderr
    assert str(backup) in got.stderr and backup.is_file()
    old = duckdb.connect(str(backup), read_only=True)
    assert old.execute("SELECT count(*) FROM meta WHERE key = ?", [SCHEMA_KEY]).fetchone() == (0,)  # as it was
    old.close()
    con = open_store(workspace)
    assert con.execute("SELECT value FROM meta WHERE key = ?", [SCHEMA_KEY]).fetchone() == (str(SCHEMA_VERSION),)
    con.close()
    assert "migrating" not in invoke_cli("keys", "list", "--workspace", str(workspace)).stderr  # once only


def test_a_lowered_version_is_migrated_and_named_in_the_copy(tmp_path):
    workspace, _ = quick_workspace(tmp_path / "ws")
    con = open_store(workspace)
    con.execute("UPDATE meta SET value = '0' WHERE key = ?", [SCHEMA_KEY])
    con.execute("CREATE OR REPLACE VIEW event_lineage AS SELECT 1 AS older")  # an older journeymap's view
    con.close()
    invoke_cli("keys", "list", "--workspace", str(workspace))
    assert migration_backup_path(workspace / STORE_FILE, 0).name == "journeymap.schema-v0.duckdb.bak"
    assert migration_backup_path(workspace / STORE_FILE, 0).is_file()
    con = open_store(workspace, read_only=True)
    columns = [c[0] for c in con.execute("DESCRIBE event_lineage").fetchall()]
    assert columns == ["message_id", "load_id", "source_row", "file", "source_name", "received_at"]  # replaced
    con.close()


def test_opening_a_store_of_this_version_writes_nothing(tmp_path):
    """An open that changed the catalog (the lineage view was replaced every time) left a log that the close then
    checkpointed: 5.8 s for a 50M-event store, on every CLI command (docs/store.md)."""
    workspace, _ = quick_workspace(tmp_path / "ws")
    wal = (workspace / STORE_FILE).with_name(STORE_FILE + ".wal")
    open_store(workspace).close()
    assert not wal.exists()
    con = open_store(workspace)
    assert not wal.exists() or wal.stat().st_size == 0
    # the view is there all the same, and reads every event
    assert con.execute("SELECT count(*) FROM event_lineage").fetchone() == con.execute("SELECT count(*) FROM events").fetchone()
    con.close()


def test_a_newer_store_is_refused_in_one_line(tmp_path):
    workspace, _ = quick_workspace(tmp_path / "ws")
    con = open_store(workspace)
    con.execute("UPDATE meta SET value = ? WHERE key = ?", [str(SCHEMA_VERSION + 1), SCHEMA_KEY])
    con.close()
    before = (workspace / STORE_FILE).read_bytes()
    got = run_cli("keys", "list", "--workspace", str(workspace), check=False)
    assert got.returncode == 1
    assert "Traceback" not in got.stderr and len(got.stderr.strip().splitlines()) == 1, got.stderr
    assert f"store schema version {SCHEMA_VERSION + 1}" in got.stderr
    assert f"reads schema version {SCHEMA_VERSION}" in got.stderr and "Upgrade journeymap" in got.stderr
    assert (workspace / STORE_FILE).read_bytes() == before  # not changed
