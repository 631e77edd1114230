"""The loader thread: the one owner of the store's writer connection while the server runs.

It moves closed journal segments into `events` through the same Loader as `journeymap ingest` (a
segment is a JSON Lines file of canonical rows; it is handed to the Loader as a Parquet copy with the
canonical columns, `journal/seg-N.parquet`, so the same SQL validation, dead letters and message_id
idempotency apply, and a dead letter's row is the segment's line), logs each in `journal_segments`, then deletes the segment (or moves it
to `journal/loaded/`, keeping the last `keep_segments`). Identity is re-stitched at most every
`stitch_seconds`, and only when new events arrived; the first load after start is stitched at once.
Because the server holds the writer connection, `journeymap ingest` on the same workspace fails with
"workspace is locked by pid N" (read-only commands are answered by the server: cli/forward.py).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import duckdb

from journeymap.events.schema import CANONICAL_FIELDS
from journeymap.identity import stitch
from journeymap.ingest.files import InputFile
from journeymap.ingest.journal import Journal
from journeymap.ingest.loader import Loader
from journeymap.ingest.store import open_store
from journeymap.journey.load import store_settings_for

log = logging.getLogger("journeymap.server")

SOURCE_NAME = "http"
DDL = """
CREATE TABLE IF NOT EXISTS journal_segments (
    segment    VARCHAR NOT NULL,     -- the segment's file name
    load_id    BIGINT NOT NULL,      -- loads.load_id (event_lineage shows segment and line of each event)
    rows_read  BIGINT NOT NULL,
    accepted   BIGINT NOT NULL,
    duplicate  BIGINT NOT NULL,
    rejected   BIGINT NOT NULL,
    loaded_at  TIMESTAMP NOT NULL
)
"""


_COLUMNS = "{" + ", ".join(
    f"{c}: '{'JSON' if c in ('properties', 'traits') else 'VARCHAR'}'" for c in CANONICAL_FIELDS
) + "}"


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class StoreRunner:
    def __init__(self, workspace: str | Path, journal: Journal, stitch_seconds: float = 30.0, keep_segments: int = 0,
                 poll_seconds: float = 0.25, duckdb_threads: int | None = None):
        self.workspace = Path(workspace)
        self.journal = journal
        self.stitch_seconds = stitch_seconds
        self.keep_segments = keep_segments
        self.poll_seconds = poll_seconds
        self.duckdb_threads = duckdb_threads
        self.con: duckdb.DuckDBPyConnection | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirty = False  # events arrived since the last stitch
        self._last_stitch = 0.0
        self.error: BaseException | None = None
        self.stats = {"segments_loaded": 0, "rows_read": 0, "accepted": 0, "duplicate": 0, "rejected": 0, "stitches": 0}

    def open(self) -> duckdb.DuckDBPyConnection:
        """Take the store's writer lock (raises StoreLocked) before anything is accepted."""
        self.con = open_store(self.workspace, settings=store_settings_for(self.workspace))
        if self.duckdb_threads:
            # A database-wide setting: it also limits the queries other routers run on cursors of this store.
            self.con.execute(f"SET threads = {int(self.duckdb_threads)}")
        self.con.execute(DDL)
        for leftover in (self.workspace / "journal").glob("seg-*.parquet"):
            leftover.unlink()  # a columnar copy from a run that died mid-load; its segment is still there
        return self.con

    def start(self) -> None:
        # The first load after start is stitched at once: a new workspace's journey tables (and the JSON API and
        # web app, which read them) exist from the first events on, not only --stitch-seconds later.
        self._last_stitch = float("-inf")
        self._thread = threading.Thread(target=self._run, name="journeymap-loader", daemon=True)
        self._thread.start()

    def wake(self, _segment: Path | None = None) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Load every remaining segment (close the journal first), stitch if needed, close the store."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.con is not None:
            try:
                self.load_pending()
                if self._dirty:
                    self._stitch()
            finally:
                self.con.close()
                self.con = None

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.load_pending()
                if self._dirty and time.monotonic() - self._last_stitch >= self.stitch_seconds:
                    self._stitch()
                self.error = None
            except Exception as exc:  # keep serving: the segments stay in the journal and are retried
                self.error = exc
                log.exception("loading the journal failed; retrying")
                self._stop.wait(1.0)

    def load_pending(self) -> int:
        """Load every closed segment, oldest first; returns how many."""
        segments = self.journal.closed_segments()
        for path in segments:
            self.load_segment(path)
        return len(segments)

    def load_segment(self, path: Path) -> None:
        columnar = self._columnar(path)
        try:
            report = Loader(self.con).load(columnar or InputFile(path, "jsonl", None), source_name=SOURCE_NAME)
        finally:
            if columnar is not None:
                columnar.path.unlink(missing_ok=True)
        self.con.execute(
            "INSERT INTO journal_segments VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [path.name, report.load_id, report.rows_read, report.accepted, report.duplicate, report.rejected],
        )
        for k in ("rows_read", "accepted", "duplicate", "rejected"):
            self.stats[k] += getattr(report, k)
        self.stats["segments_loaded"] += 1
        self._dirty = self._dirty or report.accepted > 0
        self._retire(path)

    def _columnar(self, path: Path) -> InputFile | None:
        """The segment as Parquet with the canonical columns: DuckDB's JSON reader parses each line once,
        where the generic JSON Lines projection extracts every field (and its aliases) separately, which
        costs several times more. Row i of the Parquet file is line i of the segment. None when a line
        does not parse (not expected: lines are written whole, a torn tail is cut on startup); the
        JSON Lines path then dead-letters it."""
        out = path.with_suffix(".parquet")
        try:
            self.con.execute(
                f"COPY (SELECT * REPLACE (properties::VARCHAR AS properties, traits::VARCHAR AS traits) FROM read_json({_lit(path)}, format = 'newline_delimited', columns = {_COLUMNS})) "
                f"TO {_lit(out)} (FORMAT parquet)"
            )
        except duckdb.Error:
            out.unlink(missing_ok=True)
            log.warning("%s: not every line parses as JSON; loading it line by line", path.name)
            return None
        return InputFile(out, "parquet", None)

    def _retire(self, path: Path) -> None:
        if self.keep_segments <= 0:
            path.unlink(missing_ok=True)
            return
        kept = path.parent / "loaded"
        kept.mkdir(exist_ok=True)
        path.replace(kept / path.name)
        for old in sorted(kept.glob("seg-*.jsonl"))[: -self.keep_segments]:
            old.unlink(missing_ok=True)

    def _stitch(self) -> None:
        stitch(self.con)
        self._dirty = False
        self._last_stitch = time.monotonic()
        self.stats["stitches"] += 1
