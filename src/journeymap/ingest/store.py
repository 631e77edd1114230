"""The workspace store: one DuckDB file holding events, dead letters, the load log and derived tables.

DuckDB allows one writer process per file. Every writer opens the store through `open_store`, which
takes the file lock DuckDB itself holds; a second writer gets `StoreLocked` naming the holder's pid.

Every connection `open_store` opens gets the store settings (memory_limit, threads, temp_directory,
preserve_insertion_order, checkpoint_threshold: docs/store.md): what the caller configured, each key overridden
by its environment variable (JOURNEYMAP_MEMORY_LIMIT, ...), and journeymap's own default where it has one
(DEFAULTS). The caller reads the configuration: the store sits
below the journey layer and never reads journeymap.yml itself (`journey.load.store_settings_for` does,
for a workspace). A bad value raises `StoreSettingError` naming the key, where it came from and the value.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import duckdb

from journeymap.errors import UserError, WorkspaceError

STORE_FILE = "journeymap.duckdb"
SCHEMA_VERSION = 1
"""The store's schema version, kept in `meta` under SCHEMA_KEY. 0: a store made before versions were recorded.
Raise it with every change of the DDL below that an older journeymap could not read, and say in `_migrate`
how a store of the previous version becomes this one (docs/store.md, "Schema version")."""
SCHEMA_KEY = "schema_version"
DEFINITION_FILE = "journeymap.yml"  # names where configured settings came from in error messages

SETTINGS = ("memory_limit", "threads", "temp_directory", "preserve_insertion_order", "checkpoint_threshold")
ENV = {key: f"JOURNEYMAP_{key.upper()}" for key in SETTINGS}
"""The environment variable that overrides each setting: JOURNEYMAP_MEMORY_LIMIT, JOURNEYMAP_THREADS, ..."""

DEFAULTS = {"checkpoint_threshold": "256MB"}
"""Settings journeymap sets when neither journeymap.yml nor the environment does (the others keep DuckDB's).
checkpoint_threshold: DuckDB checkpoints inside the commit that grows its write-ahead log past it. At DuckDB's
16MB every refresh of a large store checkpointed inside both its commits (the stitch's and the fold's): on 10M
events, ten refreshes of 10,000 new events each took 21.9-23.3 s with 16MB and 16.7-18.2 s with 256MB, the final
checkpoint included (benchmarks/bench_checkpoint.py, docs/store.md). The log is replayed when a store is opened
after a crash; a clean close checkpoints it."""

StoreSettings = dict[str, tuple[Any, str]]
"""What a store connection is SET to: setting -> (value, where it came from); `store_settings` makes one."""

_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*([kmgt]i?b|b|bytes|%)\s*$", re.IGNORECASE)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

LINEAGE = """event_lineage AS
SELECT e.message_id, e.seq // 10000000000 AS load_id, (e.seq % 10000000000) // 8 AS source_row,
       l.file, l.source_name, l.started_at AS received_at
FROM events e JOIN loads l ON l.load_id = e.seq // 10000000000"""
"""The lineage view, created by DDL when missing and replaced by a migration only: a store whose catalog changed
at every open was checkpointed at every close (5.8 s for a 50M-event store with nothing else done)."""

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
    status       VARCHAR NOT NULL,     -- started, completed, failed; unloaded once undone (ingest/loads.py)
    mapping_hash VARCHAR,              -- the source mapping the rows went through (mapping.mapping_hash); NULL: none
    unloaded_at  TIMESTAMP,            -- when `journeymap unload` (or ingest --replace) removed its rows
    replaced_by  BIGINT                -- the load that replaced it (ingest --replace)
);
-- Stores made before these columns existed get them when next opened for writing.
ALTER TABLE loads ADD COLUMN IF NOT EXISTS mapping_hash VARCHAR;
ALTER TABLE loads ADD COLUMN IF NOT EXISTS unloaded_at TIMESTAMP;
ALTER TABLE loads ADD COLUMN IF NOT EXISTS replaced_by BIGINT;
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
""" + f"CREATE VIEW IF NOT EXISTS {LINEAGE};\n"



class StoreTooNew(WorkspaceError):
    """The store was written by a newer journeymap (a higher schema version than this one reads)."""


class StoreLocked(WorkspaceError):
    """Another process holds the workspace's store for writing; `pid` is its pid when DuckDB names it."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def store_path(workspace: str | Path) -> Path:
    return Path(workspace) / STORE_FILE


class StoreSettingError(UserError):
    """A store setting (journeymap.yml `store:` or a JOURNEYMAP_* environment variable) is not valid."""


def check_setting(key: str, value: Any) -> Any:
    """`value` as the store setting `key` takes it; ValueError naming the key and the value when it is not valid.

    memory_limit: a size with its unit (`4GB`, `512MiB`, `1.5GB`) or a share of RAM (`50%`); threads: a
    whole number, at least 1; temp_directory: a folder; preserve_insertion_order: true or false;
    checkpoint_threshold: a size with its unit (`256MB`, `1GiB`)."""
    if key == "memory_limit":
        if isinstance(value, str) and _MEMORY.match(value):
            return value.strip()
        raise ValueError(f"memory_limit must be a size with its unit such as 4GB, 512MiB or 50%, not {value!r}")
    if key == "checkpoint_threshold":
        if isinstance(value, str) and _MEMORY.match(value) and not value.strip().endswith("%"):
            return value.strip()
        raise ValueError(f"checkpoint_threshold must be a size with its unit such as 256MB or 1GiB, not {value!r}")
    if key == "threads":
        number = value
        if isinstance(value, str) and value.strip().isdigit():
            number = int(value)
        if isinstance(number, int) and not isinstance(number, bool) and number >= 1:
            return number
        raise ValueError(f"threads must be a whole number of at least 1, not {value!r}")
    if key == "temp_directory":
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"temp_directory must be a folder path, not {value!r}")
    if key == "preserve_insertion_order":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"preserve_insertion_order must be true or false, not {value!r}")
    raise ValueError(f"unknown store setting {key!r}: one of {', '.join(SETTINGS)}")


def store_settings(workspace: str | Path, configured: dict | None = None) -> StoreSettings:
    """The settings the store opens with: setting -> (value, where it came from): those set, and DEFAULTS.

    `configured` is the workspace's journeymap.yml `store:` section as a dict of checked values (the
    caller reads it: `journey.load.store_settings_for`); None is none. Each JOURNEYMAP_* variable that is
    set and not empty overrides its key. A relative temp_directory is under the workspace when it comes
    from journeymap.yml and under the current folder when it comes from the environment."""
    workspace = Path(workspace)
    out: StoreSettings = {}
    for key, value in (configured or {}).items():
        if value is not None:
            if key == "temp_directory":
                value = str((workspace / value).absolute())  # an absolute path stays as it is
            out[key] = (value, f"{DEFINITION_FILE} store.{key}")
    for key, var in ENV.items():
        text = os.environ.get(var, "")
        if text.strip():
            try:
                value = check_setting(key, text)
            except ValueError as exc:
                raise StoreSettingError(f"environment variable {var}={text!r}: {exc}") from None
            out[key] = (str(Path(value).absolute()) if key == "temp_directory" else value, f"environment variable {var}")
    for key, value in DEFAULTS.items():
        out.setdefault(key, (value, "journeymap's default"))
    return out


def apply_settings(con: duckdb.DuckDBPyConnection, settings: StoreSettings) -> None:
    """SET each setting on the connection (they are database-wide in DuckDB)."""
    for key, (value, origin) in settings.items():
        try:
            if key == "temp_directory":
                Path(value).mkdir(parents=True, exist_ok=True)  # DuckDB would only find out when it spills
            con.execute(f"SET {key} = ?", [value])
        except (duckdb.Error, OSError) as exc:
            raise StoreSettingError(f"{origin}: {key} = {value!r} cannot be used: {exc}") from None


def open_store(workspace: str | Path, read_only: bool = False,
               settings: StoreSettings | None = None) -> duckdb.DuckDBPyConnection:
    """Open (and create) the store. Sessions run in UTC so naive timestamps mean UTC everywhere.

    `settings` (from `store_settings`, or `journey.load.store_settings_for` for a workspace's
    journeymap.yml) default to the environment's alone. They are checked before the file is opened,
    so a bad value never takes the lock."""
    if settings is None:
        settings = store_settings(workspace)
    path = store_path(workspace)
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no store yet; run `journeymap ingest FILE --workspace {path.parent}` first")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such workspace folder; create one with `journeymap init {path.parent}`")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        pid = re.search(r"PID (\d+)", str(exc))
        raise StoreLocked(_lock_message(path, str(exc)), int(pid.group(1)) if pid else None) from None
    _session(con)
    try:
        apply_settings(con, settings)
    except BaseException:
        con.close()
        raise
    try:
        _check_version(con, path, read_only)
    except BaseException:
        con.close()
        raise
    return con


def _session(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The settings DuckDB keeps per connection (the others are the database's: apply_settings)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # our own progress bars speak for us
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to the store `con` has open, for a thread of its own or a transaction beside con's.
    DuckDB's `con.cursor()` shares the database's settings but not the session's: its TimeZone would be the
    machine's, and `now()::TIMESTAMP` local time where the store keeps UTC."""
    return _session(con.cursor())


def table_names(con: duckdb.DuckDBPyConnection, like: str | None = None) -> set[str]:
    """The store's own tables: its main schema, not a database attached beside it (a backup, another store a
    test or a migration reads) nor the connection's temporary tables. `like` is a LIKE pattern (escape `\\`)."""
    return _names(con, "table", like)


def view_names(con: duckdb.DuckDBPyConnection, like: str | None = None) -> set[str]:
    """The store's own views, as `table_names` finds its tables (the journey state's visits are one)."""
    return _names(con, "view", like)


def _names(con: duckdb.DuckDBPyConnection, kind: str, like: str | None) -> set[str]:
    sql = (f"SELECT {kind}_name FROM duckdb_{kind}s() WHERE database_name = current_database() "
           "AND schema_name = 'main' AND NOT temporary")
    params: list = []
    if like is not None:
        sql += f" AND {kind}_name LIKE ? ESCAPE '\\'"
        params.append(like)
    return {r[0] for r in con.execute(sql, params).fetchall()}


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store itself has this table (see `table_names`)."""
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND schema_name = 'main' AND NOT temporary AND table_name = ?", [name]).fetchall())


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version the store records; 0 for a store with tables but no version (made before versions
    were recorded); None for a new, empty store."""
    tables = table_names(con)
    if "meta" in tables:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [SCHEMA_KEY]).fetchone()
        if row is not None:
            try:
                return int(row[0])
            except (TypeError, ValueError):
                raise WorkspaceError(f"meta.{SCHEMA_KEY} = {row[0]!r} is not a schema version (a whole number); "
                                     "the store was changed by hand") from None
    return 0 if tables else None


def _check_version(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    """Refuse a store of a newer journeymap; migrate one of an older journeymap (a copy of it first); create a
    new store at this version."""
    found = schema_version(con)
    if found is not None and found > SCHEMA_VERSION:
        raise StoreTooNew(
            f"{path} has store schema version {found}, made by a newer journeymap; this journeymap "
            f"({_own_version()}) reads schema version {SCHEMA_VERSION} and older. Upgrade journeymap "
            "(pip install -U journeymap) to open it; the store was not changed")
    if read_only:
        return
    if found is not None and found < SCHEMA_VERSION:
        backup = _migration_backup(con, path, found)
        print(f"journeymap: migrating {path} from store schema version {found} to {SCHEMA_VERSION}; "
              f"the store as it was is kept in {backup}", file=sys.stderr)
    con.execute(DDL)  # creates a new store; the ALTERs in it migrate version 0
    if found is not None and found < SCHEMA_VERSION:
        con.execute(f"CREATE OR REPLACE VIEW {LINEAGE}")
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [SCHEMA_KEY, str(SCHEMA_VERSION)])


def migration_backup_path(path: Path, version: int) -> Path:
    """Where the store of schema version `version` is kept before it is migrated: next to it."""
    return path.with_name(f"{path.stem}.schema-v{version}{path.suffix}.bak")


def _migration_backup(con: duckdb.DuckDBPyConnection, path: Path, version: int) -> Path:
    """Copy the store file before migrating it (its WAL checkpointed into it first). An earlier copy of the same
    version is kept: it is the store as the older journeymap left it."""
    backup = migration_backup_path(path, version)
    if not backup.exists():
        con.execute("CHECKPOINT")
        tmp = backup.with_name(backup.name + ".tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, backup)
    return backup


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"version {version('journeymap')}"
    except PackageNotFoundError:
        return "this source tree"


def _lock_message(path: Path, detail: str) -> str:
    pid = re.search(r"PID (\d+)", detail)
    who = f"pid {pid.group(1)}" if pid else "another process"
    if pid and int(pid.group(1)) == os.getpid():
        who = "this process (another connection)"
    return f"workspace is locked by {who}: {path} is open for writing. Stop it, or send events through its server."
