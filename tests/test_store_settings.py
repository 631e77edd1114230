"""Store settings (docs/store.md): journeymap.yml `store:` and JOURNEYMAP_* environment variables, SET on
every connection the store opens. Real DuckDB files, read back with current_setting()."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from journeymap.ingest.journal import Journal
from journeymap.ingest.store import ENV, StoreSettingError, cursor, open_store, store_path
from journeymap.journey.load import DefinitionError, store_settings_for
from journeymap.server.runner import StoreRunner
from journeymap.workspace import Workspace

STORE_YML = """
store:
  memory_limit: 512MiB
  threads: 1
  temp_directory: .journeymap/tmp
  preserve_insertion_order: false
  checkpoint_threshold: 1GB
"""


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)


def setting(con, key: str):
    return con.execute(f"SELECT current_setting('{key}')").fetchone()[0]


def workspace(tmp_path: Path, store_yml: str = STORE_YML) -> Path:
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    with (ws.definition_path).open("a", encoding="utf-8") as f:
        f.write(store_yml)
    return ws.path


def test_yml_settings_take_effect(tmp_path):
    path = workspace(tmp_path)
    with Workspace(path) as ws:
        con = ws.con
        assert setting(con, "memory_limit") == "512.0 MiB"
        assert setting(con, "threads") == 1
        assert setting(con, "temp_directory") == str((path / ".journeymap" / "tmp").absolute())
        assert setting(con, "preserve_insertion_order") is False
        assert setting(con, "checkpoint_threshold") == "953.6 MiB"  # 1GB = 10^9 bytes
        assert (path / ".journeymap" / "tmp").is_dir()
        assert ws.definition.store.threads == 1  # the whole definition accepts the section too
    # read-only connections get them as well (open_store reads no journeymap.yml: the caller passes them)
    con = open_store(path, read_only=True, settings=store_settings_for(path))
    try:
        assert setting(con, "memory_limit") == "512.0 MiB" and setting(con, "threads") == 1
    finally:
        con.close()


def test_nothing_set_keeps_duckdb_defaults(tmp_path):
    ref = duckdb.connect()
    with Workspace.init(tmp_path / "ws") as ws:
        for key in ("memory_limit", "threads", "preserve_insertion_order"):
            assert setting(ws.con, key) == setting(ref, key), key
        assert setting(ws.con, "preserve_insertion_order") is True
        # but for journeymap's own default: 256MB, where DuckDB's is 16MB (ingest/store.py DEFAULTS)
        assert (setting(ws.con, "checkpoint_threshold"), setting(ref, "checkpoint_threshold")) == ("244.1 MiB", "16.0 MiB")


def test_environment_overrides_yml_key_by_key(tmp_path, monkeypatch):
    path = workspace(tmp_path)
    monkeypatch.setenv("JOURNEYMAP_MEMORY_LIMIT", "256MiB")
    monkeypatch.setenv("JOURNEYMAP_THREADS", "2")
    monkeypatch.setenv("JOURNEYMAP_TEMP_DIRECTORY", str(tmp_path / "spill"))
    monkeypatch.setenv("JOURNEYMAP_PRESERVE_INSERTION_ORDER", "")  # empty: not set
    monkeypatch.setenv("JOURNEYMAP_CHECKPOINT_THRESHOLD", "64MiB")
    with Workspace(path) as ws:
        assert setting(ws.con, "checkpoint_threshold") == "64.0 MiB"
        assert setting(ws.con, "memory_limit") == "256.0 MiB"
        assert setting(ws.con, "threads") == 2
        assert setting(ws.con, "temp_directory") == str(tmp_path / "spill")
        assert setting(ws.con, "preserve_insertion_order") is False  # from journeymap.yml


def test_the_server_runner_gets_them(tmp_path):
    path = workspace(tmp_path)
    runner = StoreRunner(path, Journal(path / "journal"))
    runner.open()
    try:
        assert setting(runner.con, "memory_limit") == "512.0 MiB" and setting(runner.con, "threads") == 1
    finally:
        runner.stop()


def test_a_cursor_of_the_store_runs_in_utc_on_a_machine_that_does_not(tmp_path):
    """A cursor (the server's requests, the sender, the fold's levels) shares the store's settings but not the
    session's: on a machine in another zone its now()::TIMESTAMP would be local time. store.cursor gives it the
    store's session."""
    import datetime as dt

    path = workspace(tmp_path)
    con = open_store(path, settings=store_settings_for(path))
    try:
        con.execute("SET GLOBAL TimeZone = 'Pacific/Kiritimati'")  # UTC+14: what a new connection starts with
        plain, ours = con.cursor(), cursor(con)
        assert setting(plain, "TimeZone") == "Pacific/Kiritimati"  # DuckDB's own cursor: why store.cursor exists
        assert setting(ours, "TimeZone") == "UTC" and setting(ours, "enable_progress_bar") is False
        utc = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert abs(ours.execute("SELECT now()::TIMESTAMP").fetchone()[0] - utc) < dt.timedelta(minutes=5)
        assert abs(plain.execute("SELECT now()::TIMESTAMP").fetchone()[0] - utc) > dt.timedelta(hours=13)
        assert setting(ours, "memory_limit") == "512.0 MiB"  # the database's settings it shares
    finally:
        con.close()


def test_environment_without_a_definition(tmp_path, monkeypatch):
    folder = tmp_path / "bare"
    folder.mkdir()  # a store with no journeymap.yml, as the server and `journeymap ingest` may open
    monkeypatch.setenv("JOURNEYMAP_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("JOURNEYMAP_THREADS", "1")
    monkeypatch.setenv("JOURNEYMAP_PRESERVE_INSERTION_ORDER", "false")
    con = open_store(folder)
    try:
        assert setting(con, "memory_limit") == "953.6 MiB"  # 1GB = 10^9 bytes
        assert setting(con, "threads") == 1
        assert setting(con, "preserve_insertion_order") is False
    finally:
        con.close()
    assert store_path(folder).exists()


@pytest.mark.parametrize("yml, key, value", [
    ("store:\n  memory_limit: lots\n", "store.memory_limit", "'lots'"),
    ("store:\n  memory_limit: 4XB\n", "store.memory_limit", "'4XB'"),
    ("store:\n  threads: 0\n", "store.threads", "0"),
    ("store:\n  threads: many\n", "store.threads", "'many'"),
    ("store:\n  preserve_insertion_order: maybe\n", "store.preserve_insertion_order", "'maybe'"),
    ("store:\n  checkpoint_threshold: 50%\n", "store.checkpoint_threshold", "'50%'"),
    ("store:\n  memory: 4GB\n", "store.memory", "Extra inputs are not permitted"),
])
def test_bad_yml_value_names_key_and_value(tmp_path, yml, key, value):
    path = workspace(tmp_path, yml)
    with pytest.raises(DefinitionError) as err:
        _ = Workspace(path).con
    assert f"{key}: " in str(err.value) and value in str(err.value) and "journeymap.yml" in str(err.value)
    with pytest.raises(DefinitionError) as err:  # the whole definition says the same
        _ = Workspace(path).definition
    assert key in str(err.value) and value in str(err.value)
    assert not (path / ".journeymap").exists()


@pytest.mark.parametrize("var, text", [
    ("JOURNEYMAP_MEMORY_LIMIT", "lots"), ("JOURNEYMAP_MEMORY_LIMIT", "4"), ("JOURNEYMAP_THREADS", "0"),
    ("JOURNEYMAP_THREADS", "two"), ("JOURNEYMAP_PRESERVE_INSERTION_ORDER", "maybe"),
    ("JOURNEYMAP_CHECKPOINT_THRESHOLD", "lots"),
])
def test_bad_environment_value_names_variable_and_value(tmp_path, monkeypatch, var, text):
    path = workspace(tmp_path)
    monkeypatch.setenv(var, text)
    with pytest.raises(StoreSettingError) as err:
        open_store(path)
    assert f"{var}={text!r}" in str(err.value)
    monkeypatch.delenv(var)
    open_store(path).close()  # the failed open left no lock behind


def test_an_unusable_value_names_the_key(tmp_path, monkeypatch):
    path = workspace(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JOURNEYMAP_TEMP_DIRECTORY", str(blocker / "tmp"))
    with pytest.raises(StoreSettingError) as err:
        open_store(path)
    assert f"environment variable JOURNEYMAP_TEMP_DIRECTORY: temp_directory = '{blocker / 'tmp'}'" in str(err.value)
    monkeypatch.delenv("JOURNEYMAP_TEMP_DIRECTORY")
    open_store(path).close()  # the failed open released the file


def test_other_definition_problems_do_not_stop_the_store(tmp_path):
    path = workspace(tmp_path, "")
    path.joinpath("journeymap.yml").write_text("stages: 3\nstore:\n  threads: 1\n")
    with Workspace(path) as ws:
        assert setting(ws.con, "threads") == 1  # the store opens; the definition is reported where it is used
        with pytest.raises(DefinitionError):
            _ = ws.definition


def test_settings_let_a_query_spill(tmp_path, monkeypatch):
    """A sort several times larger than memory_limit finishes by spilling to temp_directory (with
    temp_directory '' DuckDB fails it: "Out of Memory Error ... 61.0 MiB used")."""
    monkeypatch.setenv("JOURNEYMAP_MEMORY_LIMIT", "64MB")
    monkeypatch.setenv("JOURNEYMAP_THREADS", "1")
    path = workspace(tmp_path)
    with Workspace(path) as ws:
        n = ws.con.execute("""
            SELECT count(*) FROM (SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s
                                  FROM range(3000000) t(i) ORDER BY s)
        """).fetchone()[0]
        assert n == 3_000_000
        assert setting(ws.con, "memory_limit") == "61.0 MiB"


_CRASH = """
import os, sys
from journeymap.workspace import Workspace
ws = Workspace(sys.argv[1])
ws.ingest([sys.argv[2]])
os._exit(0)  # no close: as a crash leaves the store
"""


@pytest.mark.parametrize("threshold, checkpointed", [(None, False), ("1KB", True)])
def test_a_refresh_commits_to_the_log_and_a_crash_loses_nothing(tmp_path, monkeypatch, threshold, checkpointed):
    """With journeymap's checkpoint_threshold an ingest's commits stay in the write-ahead log (no checkpoint
    inside them); with a tiny one DuckDB checkpoints inside the commit and the log is emptied. Either way a
    process that dies without closing the store loses no committed event: the next open replays the log."""
    import subprocess
    import sys

    path = workspace(tmp_path, "")
    events = tmp_path / "events.csv"
    events.write_text("user_id,event,ts\n" + "".join(f"u{i % 7},e{i % 3},2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z\n"
                                                     for i in range(500)))
    if threshold:
        monkeypatch.setenv("JOURNEYMAP_CHECKPOINT_THRESHOLD", threshold)
    subprocess.run([sys.executable, "-c", _CRASH, str(path), str(events)], check=True, timeout=120)
    wal = path / "journeymap.duckdb.wal"
    logged = wal.stat().st_size if wal.exists() else 0
    assert (logged == 0) == checkpointed, logged
    with Workspace(path) as ws:
        assert ws.con.execute("SELECT count(*) FROM events").fetchone()[0] == 500
        assert ws.con.execute("SELECT count(*) FROM journey_events").fetchone()[0] == 500
