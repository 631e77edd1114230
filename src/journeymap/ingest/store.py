"""The workspace store: one DuckDB file holding events, dead letters, the load log and derived tables.

DuckDB allows one writer process per file. Every writer opens the store through `open_store`, which
takes the file lock DuckDB itself holds; a second writer gets `StoreLocked` naming the holder's pid.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb

STORE_FILE = "journeymap.duckdb"

DDL = """
CREATE TABLE IF NOT EXISTS events (
    message_id   VARCHAR NOT NULL,
    ts           TIMESTAMP NOT NULL,   -- always UTC
    event        VARCHAR NOT NULL,
    type         VARCHAR NOT NULL,
    source       VARCHAR NOT NULL,
    channel      VARCHAR,
    user_id      VARCHAR,
    anonymous_id VARCHAR,
    email        VARCHAR,
    previous_id  VARCHAR,
    account_id   VARCHAR,
    properties   VARCHAR,              -- JSON object text
    traits       VARCHAR,              -- JSON object text
    seq          BIGINT NOT NULL       -- input order; breaks ties on ts; encodes load and line (see lineage)
);
CREATE SEQUENCE IF NOT EXISTS load_ids START 1;
CREATE TABLE IF NOT EXISTS loads (
    load_id      BIGINT PRIMARY KEY,
    source_name  VARCHAR,
    file         VARCHAR NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    rows_read    BIGINT DEFAULT 0,
    accepted     BIGINT DEFAULT 0,
    duplicate    BIGINT DEFAULT 0,
    rejected     BIGINT DEFAULT 0,
    status       VARCHAR NOT NULL      -- started, completed, failed
);
CREATE TABLE IF NOT EXISTS dead_letters (
    load_id      BIGINT NOT NULL,
    file         VARCHAR,
    row_number   BIGINT,               -- 1-based data row in the file (header excluded)
    field        VARCHAR,
    reason       VARCHAR NOT NULL,
    detail       VARCHAR,
    message_id   VARCHAR,
    raw          VARCHAR,              -- the row as it arrived, JSON text
    received_at  TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
-- Where each event came from. Derived from seq, so the hot table carries no per-row lineage columns.
CREATE OR REPLACE VIEW event_lineage AS
SELECT e.message_id, e.seq // 10000000000 AS load_id, (e.seq % 10000000000) // 8 AS source_row,
       l.file, l.source_name, l.started_at AS received_at
FROM events e JOIN loads l ON l.load_id = e.seq // 10000000000;
"""


class StoreLocked(RuntimeError):
    """Another process holds the workspace's store for writing."""


def store_path(workspace: str | Path) -> Path:
    return Path(workspace) / STORE_FILE


def open_store(workspace: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and create) the store. Sessions run in UTC so naive timestamps mean UTC everywhere."""
    path = store_path(workspace)
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no store yet; run `journeymap ingest` first")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such workspace folder; create one with `journeymap init {path.parent}`")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StoreLocked(_lock_message(path, str(exc))) from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # our own progress bars speak for us
    if not read_only:
        con.execute(DDL)
    return con


def _lock_message(path: Path, detail: str) -> str:
    pid = re.search(r"PID (\d+)", detail)
    who = f"pid {pid.group(1)}" if pid else "another process"
    if pid and int(pid.group(1)) == os.getpid():
        who = "this process (another connection)"
    return f"workspace is locked by {who}: {path} is open for writing. Stop it, or send events through its server."
