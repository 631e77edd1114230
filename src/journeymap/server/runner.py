"""The loader thread: the one owner of the store's writer connection while the server runs.

It moves closed journal segments into `events` through the same Loader as `journeymap ingest`. A
segment's records are checked first (`journal.scan_segment`: each record's CRC32): damaged ones go to
`journal/quarantine.jsonl` with their segment, line, byte offset and reason, and the rest are loaded,
so one damaged byte costs one record, never the segment or the ones after it. The good records (a
JSON Lines copy, `journal/seg-N.verified.jsonl`, line-aligned with the segment) are handed to the
Loader as a Parquet copy with the canonical columns, `journal/seg-N.parquet`, so the same SQL
validation, dead letters and message_id idempotency apply, and a dead letter's row is the segment's
line. Each load is logged in `journal_segments`, then the segment is deleted (or moved
to `journal/loaded/`, keeping the last `keep_segments`). Identity is re-stitched, the journey state folded
(journeymap.state) and churn risk scored (the model refitted when due: insights.risk.stored), at most every
`stitch_seconds`, and only when new events arrived; the first load after start is stitched at once.
Because the server holds the writer connection, `journeymap ingest` on the same workspace fails with
"workspace is locked by pid N" (read-only commands are answered by the server: cli/forward.py).

Beside it runs the sender thread (act.deliver.Sender on a cursor of the same store, its writes under the same
lock): it delivers the outbox's due rows, so a served workspace sends what its playbooks fire without anything
else running (`journeymap act send` cannot run beside it: the store is locked). It stops with the loader,
after recording the answers of the rows in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from journeymap.act.evaluate import evaluate as evaluate_playbooks
from journeymap.engine.unit_events import LEVELS
from journeymap.errors import JourneymapError
from journeymap.events.schema import CANONICAL_FIELDS
from journeymap.ingest.files import InputFile
from journeymap.ingest.journal import Journal, append_quarantine, read_quarantine, scan_segment
from journeymap.ingest.loader import Loader
from journeymap.ingest.segment import ARRIVAL_TIMED
from journeymap.ingest.store import cursor as store_cursor
from journeymap.ingest.store import has_table, open_store
from journeymap.insights.risk.stored import refresh_risk
from journeymap.journey.load import load_definition, store_settings_for
from journeymap.server.cache import definition_stamp
from journeymap.state import current_tables, refresh
from journeymap.state.spark_tables import refresh_on_spark
from journeymap.state.spark_fold import status as spark_status

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
);
-- Records of the segment set aside in journal/quarantine.jsonl (a bad checksum, not UTF-8 JSON).
ALTER TABLE journal_segments ADD COLUMN IF NOT EXISTS quarantined BIGINT DEFAULT 0;
"""


_ARRIVAL = '"' + ARRIVAL_TIMED + '"'
_COLUMNS = "{" + ", ".join(
    f"{c}: '{'JSON' if c in ('properties', 'traits') else 'VARCHAR'}'" for c in CANONICAL_FIELDS
) + f", {_ARRIVAL}: 'BOOLEAN'" + "}"


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class StoreRunner:
    def __init__(self, workspace: str | Path, journal: Journal, stitch_seconds: float = 30.0, keep_segments: int = 0,
                 poll_seconds: float = 0.25, duckdb_threads: int | None = None, deliver: bool = True,
                 send_poll_seconds: float = 1.0):
        self.workspace = Path(workspace)
        self.journal = journal
        self.stitch_seconds = stitch_seconds
        self.keep_segments = keep_segments
        self.poll_seconds = poll_seconds
        self.duckdb_threads = duckdb_threads
        self.con: duckdb.DuckDBPyConnection | None = None
        self.lock = threading.RLock()
        """Held while the loader writes the store (a segment's load and retirement, a stitch): a backup taken
        under it sees every segment either loaded (in the store) or still in the journal, never half of it."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.deliver = deliver
        self.send_poll_seconds = send_poll_seconds
        self._sender_thread: threading.Thread | None = None
        self.sender = None  # the act.deliver.Sender while it runs
        self.sender_error: BaseException | None = None
        self._dirty = False  # events arrived since the last stitch
        self._last_stitch = 0.0
        self._definition_seen: tuple | None | bool = False  # journeymap.yml's stamp when last compared; False: never
        self.error: BaseException | None = None
        self.last_refresh = None  # what the last stitch did (journey state, churn model)
        self.warm = None
        """server/warm.py's Warmer: computes pages ahead of their first view, at start and after each refresh
        (published once the stitch count has moved)."""
        self._refreshing, self._refreshing_lock = 0, threading.Lock()
        self.stats = {"segments_loaded": 0, "rows_read": 0, "accepted": 0, "duplicate": 0, "rejected": 0, "stitches": 0,
                      "quarantined": 0, "risk": None, "retention_dropped": 0}

    def open(self) -> duckdb.DuckDBPyConnection:
        """Take the store's writer lock (raises StoreLocked) before anything is accepted."""
        self.con = open_store(self.workspace, settings=store_settings_for(self.workspace))
        if self.duckdb_threads:
            # A database-wide setting: it also limits the queries other routers run on cursors of this store.
            self.con.execute(f"SET threads = {int(self.duckdb_threads)}")
        self.con.execute(DDL)
        for pattern in ("seg-*.parquet", "seg-*.verified.jsonl"):
            for leftover in (self.workspace / "journal").glob(pattern):
                leftover.unlink()  # a copy from a run that died mid-load; its segment is still there
        self.stats["quarantined"] = len(read_quarantine(self.journal.dir))  # every record ever set aside
        return self.con

    def start(self) -> None:
        # The first load after start is stitched at once: a new workspace's journey tables (and the JSON API and
        # web app, which read them) exist from the first events on, not only --stitch-seconds later.
        self._last_stitch = float("-inf")
        self._thread = threading.Thread(target=self._run, name="journeymap-loader", daemon=True)
        self._thread.start()
        if self.deliver:
            self._sender_thread = threading.Thread(target=self._send, name="journeymap-sender", daemon=True)
            self._sender_thread.start()

    def wake(self, _segment: Path | None = None) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Load the closed segments, stitch if needed and close the store, leaving the journal accepting: the
        store is then free for one exclusive change (`journeymap erase` rewrites the file); `resume` reopens it."""
        self.stop()

    def resume(self) -> None:
        self._stop.clear()
        self.open()
        self.start()

    def stop(self) -> None:
        """Load every remaining segment (close the journal first), stitch if needed, close the store."""
        self._stop.set()
        self._wake.set()
        self.wake_sender()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._sender_thread is not None:
            self._sender_thread.join()  # the rows in flight are answered (at most the send timeout) and recorded
            self._sender_thread = None
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
        warm_at_start = self.warm is not None
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.load_pending()
                due = self._dirty and time.monotonic() - self._last_stitch >= self.stitch_seconds
                if due or self._definition_changed():
                    self._stitch()
                if warm_at_start:  # the map of what the store held at start, unless a refresh computed it since
                    warm_at_start = False
                    if self.stats["stitches"] == 0 and has_table(self.con, "journey_events"):
                        self.warm.at_start()
                self.error = None
            except Exception as exc:  # keep serving: the segments stay in the journal and are retried
                self.error = exc
                log.exception("loading the journal failed; retrying")
                self._stop.wait(1.0)

    def _send(self) -> None:
        """The sender thread: deliver the outbox until stopped; a failure is logged and the sender started again
        (the rows it was sending are still pending)."""
        from journeymap.act.deliver import Sender

        while not self._stop.is_set():
            cursor = store_cursor(self.con)
            try:
                with Sender(cursor, lock=self.lock) as sender:
                    self.sender = sender
                    sender.run(self._stop, poll=self.send_poll_seconds)
                self.sender_error = None
            except Exception as exc:  # keep serving: a bad setting or a store error is said in /-/health
                self.sender_error = exc
                log.exception("delivering the outbox failed; retrying")
                self._stop.wait(5.0)
            finally:
                cursor.close()

    def wake_sender(self) -> None:
        """Have the sender look at the outbox now (rows were re-queued), not at its next poll."""
        sender = self.sender
        if sender is not None:
            sender.wakeup.set()

    def sender_stats(self) -> dict:
        s = self.sender.summary if self.sender is not None else None
        return {"running": self._sender_thread is not None and self._sender_thread.is_alive(),
                **({k: getattr(s, k) for k in ("delivered", "retried", "dead", "refused")} if s else {}),
                "error": None if self.sender_error is None else str(self.sender_error)}

    def load_pending(self) -> int:
        """Load every closed segment, oldest first; returns how many."""
        segments = self.journal.closed_segments()
        for path in segments:
            with self.lock:
                self.load_segment(path)
        return len(segments)

    def load_segment(self, path: Path) -> None:
        scan = scan_segment(path.read_bytes())
        if scan.damaged:
            # Durable before the segment can be retired: the quarantine is then the only copy of these bytes.
            new = append_quarantine(path.parent, path.name, scan.damaged)
            self.stats["quarantined"] += new
            for d in scan.damaged:
                log.error("%s line %d (byte %d): %s (%s); set aside in %s", path.name, d.line, d.offset, d.reason,
                          d.detail, path.parent / "quarantine.jsonl")
        if scan.records:
            verified = path.with_name(f"{path.stem}.verified.jsonl")
            verified.write_bytes(b"\n".join(scan.lines) + b"\n")  # line i is the segment's line i (blank: damaged)
            columnar = self._columnar(verified, path.with_suffix(".parquet"), scan)
            try:
                # _arrival_timed (from _columnar): events timed by their arrival, whose retries differ only in ts.
                report = Loader(self.con, arrival_ts="_arrival_timed" if columnar else None).load(
                    columnar or InputFile(verified, "jsonl", None), source_name=SOURCE_NAME)
            finally:
                verified.unlink(missing_ok=True)
                if columnar is not None:
                    columnar.path.unlink(missing_ok=True)
            self.con.execute(
                "INSERT INTO journal_segments (segment, load_id, rows_read, accepted, duplicate, rejected, loaded_at, quarantined) "
                "VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                [path.name, report.load_id, scan.records, report.accepted, report.duplicate, report.rejected, len(scan.damaged)],
            )
            self.stats["rows_read"] += scan.records
            for k in ("accepted", "duplicate", "rejected"):
                self.stats[k] += getattr(report, k)
            self._dirty = self._dirty or report.accepted > 0
        self.stats["segments_loaded"] += 1
        self._retire(path)

    def _columnar(self, verified: Path, out: Path, scan) -> InputFile | None:
        """The verified records as Parquet with the canonical columns: DuckDB's JSON reader parses each line
        once, where the generic JSON Lines projection extracts every field (and its aliases) separately,
        which costs several times more. Row i of the Parquet file is line i of the segment; when records
        were set aside, a `_row` column says which line each row is. None when DuckDB cannot read a record
        (not expected: checksummed records are the writer's JSON); the JSON Lines path then dead-letters it."""
        try:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _segment AS SELECT * FROM read_json({_lit(verified)}, "
                f"format = 'newline_delimited', columns = {_COLUMNS})"
            )
            self.con.execute(
                f"COPY (SELECT * EXCLUDE ({_ARRIVAL}) REPLACE (properties::VARCHAR AS properties, traits::VARCHAR AS traits) "
                f"FROM _segment) TO {_lit(out)} (FORMAT parquet)"
            )
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _arrival_timed AS SELECT DISTINCT message_id FROM _segment "
                             f"WHERE {_ARRIVAL} AND message_id IS NOT NULL")
            self.con.execute("DROP TABLE _segment")
        except duckdb.Error:
            out.unlink(missing_ok=True)
            log.warning("%s: not every line parses as JSON; loading it line by line", out.with_suffix(".jsonl").name)
            return None
        if scan.records != len(scan.lines):  # blank lines (damaged records) were skipped: say each row's line
            rows = [i for i, line in enumerate(scan.lines, 1) if line]
            table = pq.read_table(out)
            if table.num_rows != len(rows):  # not expected: then line numbers would be wrong, so go line by line
                out.unlink(missing_ok=True)
                return None
            pq.write_table(table.append_column("_row", pa.array(rows, pa.int64())), out)
        return InputFile(out, "parquet", None)

    def _definition(self):
        """journeymap.yml as it is now (it may be edited while serving); None when absent or invalid: then
        identity is stitched and the journey state waits for a valid definition (views compute meanwhile)."""
        path = self.workspace / "journeymap.yml"
        if not path.exists():
            return None
        try:
            return load_definition(path)
        except JourneymapError as exc:
            log.warning("the journey state is not folded: %s", exc)
            return None

    def _definition_changed(self) -> bool:
        """Whether journeymap.yml was edited (or the server started) and the journey state is not the one it
        defines: then the state is refolded now, not at the next load, so an edited definition never leaves
        the views computing from the events until someone sends an event. Reads the file's stamp on every
        turn of the loop; the definition and the state's meta keys only when the stamp changed."""
        stamp = definition_stamp(self.workspace / "journeymap.yml")
        if stamp == self._definition_seen:
            return False
        self._definition_seen = stamp
        definition = self._definition()
        if definition is None:
            return False
        with self.lock:
            if not has_table(self.con, "journey_events"):
                return False  # nothing stitched yet: the first load folds
            if definition.engine.backend == "spark":
                return not all(row["current"] for row in spark_status(self.con, self.workspace, definition))
            return len(current_tables(self.con, definition)) < len(LEVELS)

    def _retire(self, path: Path) -> None:
        if self.keep_segments <= 0:
            path.unlink(missing_ok=True)
            return
        kept = path.parent / "loaded"
        kept.mkdir(exist_ok=True)
        path.replace(kept / path.name)
        for old in sorted(kept.glob("seg-*.jsonl"))[: -self.keep_segments]:
            old.unlink(missing_ok=True)

    def settled(self) -> bool:
        """Whether no refresh is under way: between a stitch's commit and the publication of its version, the store
        holds data newer than the version readers are told (server/cache.py)."""
        return self._refreshing == 0

    def _stitch(self) -> None:
        with self._refreshing_lock:
            self._refreshing += 1
        try:
            self._refresh_and_publish()
        finally:
            with self._refreshing_lock:
                self._refreshing -= 1

    def _refresh_and_publish(self) -> None:
        with self.lock:  # a backup copies the store between refreshes, never during one
            definition = self._definition()
            # journeymap.yml's retention.raw_events applies here too; on Spark the state is folded by Spark jobs,
            # below, where a failed export is logged and the loader keeps loading
            result = refresh(self.con, definition)
            if definition is not None and definition.engine.backend == "spark":
                try:
                    _, result.spark_state, result.spark_state_note = refresh_on_spark(self.con, self.workspace,
                                                                                      definition)
                except Exception:  # noqa: BLE001 - the loader keeps loading; the next stitch writes them again
                    log.exception("writing the journey tables for Spark failed")
                if result.spark_state_note:
                    log.warning("%s", result.spark_state_note)
            # the churn model refitted when due and every paying account scored (insights.risk.stored); its
            # failures are reported, never raised: the events and the journey state are in
            result.risk = refresh_risk(self.con, definition)
            # every playbook evaluated on the state just folded (act.evaluate); a failure is logged, never raised
            try:
                result.act = evaluate_playbooks(self.con, definition)
            except Exception:  # noqa: BLE001 - the loader keeps loading; the next stitch evaluates again
                log.exception("evaluating the playbooks failed")
        if result.act is not None and result.act.playbooks:
            self.stats["act"] = result.act.to_dict()
            log.info("playbooks: %s", result.act.describe())
        self.stats["retention_dropped"] += result.retention.get("dropped", 0)
        if result.risk is not None:
            self.stats["risk"] = result.risk.to_dict()
            (log.warning if result.risk.model == "failed" else log.info)("%s", result.risk.describe())
        # not while stopping: nobody will view the pages of a server shutting down
        publish = self.warm.after_refresh() if self.warm is not None and not self._stop.is_set() else None
        self.last_refresh = result
        self._dirty = False
        self._last_stitch = time.monotonic()
        self.stats["stitches"] += 1
        if publish is not None:
            publish()
