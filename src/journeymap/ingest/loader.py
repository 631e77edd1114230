"""The idempotent loader: raw batches -> canonical, validated, de-duplicated rows in `events`.

Each batch is projected and validated in DuckDB (vectorised; no per-row Python). Valid rows collect in
a temporary staging table; at each flush one transaction
  - keeps the first row per message_id (input order),
  - counts a repeat with the same content as a duplicate (re-ingesting a file adds nothing),
  - sends a repeat with different content to dead letters as a conflict,
  - appends the new rows to `events` and the rejected ones to `dead_letters`.
A bad row never stops the run; with `strict` it fails the file instead, and nothing of it is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from journeymap.events.reasons import Reason
from journeymap.events.schema import EVENTS_SCHEMA
from journeymap.events.validate import validation_sql
from journeymap.ingest.files import InputFile
from journeymap.ingest.mapping import SourceMapping
from journeymap.ingest.projection import projection_sql
from journeymap.ingest.readers import ReadState, read_batches

FLUSH_ROWS = 2_000_000
SEQ_PER_LOAD = 10_000_000_000  # seq = load_id * SEQ_PER_LOAD + row * 8 + spec: input order, globally
_CONTENT = "event, type, source, channel, user_id, anonymous_id, email, previous_id, account_id, properties, traits, ts"
_FINGERPRINT = " || chr(31) || ".join(f"coalesce({c}::VARCHAR, chr(0))" for c in _CONTENT.split(", "))


@dataclass
class Rejection:
    row: int | None
    field: str | None
    reason: str
    detail: str | None

    def describe(self, file: str) -> str:
        where = f"line {self.row}" if self.row is not None else "a row"
        return f"{file}, {where}, field {self.field or '-'}: {self.reason} ({self.detail or Reason(self.reason).description})"


@dataclass
class LoadReport:
    file: str
    load_id: int
    rows_read: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    seconds: float = 0.0
    samples: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("file", "load_id", "rows_read", "accepted", "duplicate", "rejected")}
        d["seconds"] = round(self.seconds, 3)
        d["rejections"] = [r.__dict__ for r in self.samples]
        return d


class StrictRejection(ValueError):
    """A row was rejected while loading with strict on; nothing of the file was kept."""


class Loader:
    def __init__(self, con: duckdb.DuckDBPyConnection, strict: bool = False, keep_samples: int = 20):
        self.con = con
        self.strict = strict
        self.keep_samples = keep_samples

    def load(
        self,
        f: InputFile,
        mapping: SourceMapping | None = None,
        source_name: str | None = None,
        source_override: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> LoadReport:
        con = self.con
        load_id = con.execute("SELECT nextval('load_ids')").fetchone()[0]
        con.execute(
            "INSERT INTO loads (load_id, source_name, file, started_at, status) VALUES (?, ?, ?, now()::TIMESTAMP, 'started')",
            [load_id, source_name, str(f.path)],
        )
        report = LoadReport(str(f.path), load_id)
        t0 = time.perf_counter()
        self._reset_staging()
        state = ReadState()
        sql: str | None = None
        try:
            for batch in read_batches(f, state, mapping.delimiter if mapping else ","):
                report.rows_read += batch.num_rows
                if sql is None:
                    sql = projection_sql(mapping, None if f.format == "jsonl" else batch.schema, source_override)
                self._stage_batch(batch, sql, f.format == "jsonl", load_id, str(f.path), report)
                self._stage_malformed(state, load_id, str(f.path), report)
                if progress:
                    progress(state.bytes_read)
                if not self.strict and self._staged() >= FLUSH_ROWS:
                    self._flush(load_id, report)
            self._stage_malformed(state, load_id, str(f.path), report)
            if self.strict and report.rejected:
                raise StrictRejection(report.samples[0].describe(str(f.path)))
            self._flush(load_id, report)
            report.seconds = time.perf_counter() - t0
            self._finish(report, "completed")
        except Exception:
            self._reset_staging()
            report.seconds = time.perf_counter() - t0
            self._finish(report, "failed")
            raise
        return report

    # -- staging ---------------------------------------------------------------------------------

    def _reset_staging(self) -> None:
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _staging AS SELECT * FROM events LIMIT 0;
            CREATE OR REPLACE TEMP TABLE _dl_pending AS SELECT * FROM dead_letters LIMIT 0;
        """)

    def _staged(self) -> int:
        return self.con.execute("SELECT count(*) FROM _staging").fetchone()[0]

    def _stage_batch(self, batch: pa.RecordBatch, sql: str, is_json: bool, load_id: int, file: str, report: LoadReport) -> None:
        con = self.con
        con.register("_rawin", batch)
        try:
            if is_json:
                # Lines that are not JSON objects are dead letters; the rest are parsed in SQL.
                ok = "(json_valid(_line) AND json_type(_line) = 'OBJECT')"
                self._dead_letter(
                    f"SELECT _row, 'line', '{Reason.BAD_JSON.value}', 'not a JSON object', NULL, _line FROM _rawin "
                    f"WHERE trim(_line) <> '' AND NOT {ok}", load_id, file, report,
                )
                con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _rawin WHERE trim(_line) <> '' AND {ok}")
            else:
                con.execute("CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _rawin")
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _batch AS
                SELECT *,
                       hash({_CONTENT}) AS content_hash,
                       coalesce(message_id, 'jm-' || md5({_FINGERPRINT})) AS _message_id,
                       {load_id} * {SEQ_PER_LOAD} + _row * 8 + _spec AS seq
                FROM ({validation_sql(f"({sql})")})
            """)
            self._dead_letter(
                "SELECT _row, _field, _reason, _detail, _message_id, _raw_json FROM _batch WHERE _reason IS NOT NULL",
                load_id, file, report,
            )
            con.execute(f"""
                INSERT INTO _staging
                SELECT _message_id, ts, event, type, source, channel, user_id, anonymous_id, email, previous_id,
                       account_id, properties, traits, content_hash, seq, {load_id}, _row, now()::TIMESTAMP
                FROM _batch WHERE _reason IS NULL
            """)
        finally:
            con.unregister("_rawin")

    def _stage_malformed(self, state: ReadState, load_id: int, file: str, report: LoadReport) -> None:
        if not state.malformed:
            return
        rows = state.malformed
        state.malformed = []
        table = pa.table({
            "row": [m.line for m in rows],
            "detail": [m.detail for m in rows],
            "raw": [json.dumps(m.text) for m in rows],
        })
        self.con.register("_malformed", table)
        try:
            self._dead_letter(
                f"SELECT row, NULL, '{Reason.MALFORMED_ROW.value}', detail, NULL, raw FROM _malformed",
                load_id, file, report,
            )
        finally:
            self.con.unregister("_malformed")

    def _dead_letter(self, select: str, load_id: int, file: str, report: LoadReport) -> None:
        """Stage rejected rows. `select` yields (row, field, reason, detail, message_id, raw)."""
        con = self.con
        before = con.execute("SELECT count(*) FROM _dl_pending").fetchone()[0]
        con.execute(f"""
            INSERT INTO _dl_pending
            SELECT {load_id}, {_sql_str(file)}, c0, c1, c2, c3, c4, c5, now()::TIMESTAMP
            FROM ({select}) AS x(c0, c1, c2, c3, c4, c5)
        """)
        added = con.execute("SELECT count(*) FROM _dl_pending").fetchone()[0] - before
        if added:
            report.rejected += added
            if len(report.samples) < self.keep_samples:
                rows = con.execute(
                    f"SELECT row_number, field, reason, detail FROM _dl_pending ORDER BY rowid "
                    f"OFFSET {before} LIMIT {self.keep_samples - len(report.samples)}"
                ).fetchall()
                report.samples.extend(Rejection(*r) for r in rows)

    # -- flush -----------------------------------------------------------------------------------

    def _flush(self, load_id: int, report: LoadReport) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("""
                CREATE OR REPLACE TEMP TABLE _resolved AS
                WITH firsts AS (
                    SELECT message_id, min(seq) AS first_seq, arg_min(content_hash, seq) AS first_hash
                    FROM _staging GROUP BY message_id
                ),
                stored AS (
                    SELECT e.message_id, any_value(e.content_hash) AS stored_hash
                    FROM events e SEMI JOIN firsts f ON e.message_id = f.message_id
                    GROUP BY e.message_id
                )
                SELECT s.*,
                       CASE
                         WHEN st.stored_hash IS NOT NULL THEN
                           CASE WHEN st.stored_hash = s.content_hash THEN 'duplicate' ELSE 'conflict' END
                         WHEN s.seq = f.first_seq THEN 'new'
                         WHEN s.content_hash = f.first_hash THEN 'duplicate'
                         ELSE 'conflict'
                       END AS _status
                FROM _staging s JOIN firsts f USING (message_id) LEFT JOIN stored st USING (message_id)
            """)
            cols = ", ".join(EVENTS_SCHEMA.names)
            con.execute(f"INSERT INTO events SELECT {cols} FROM _resolved WHERE _status = 'new'")
            new, dup, conflict = con.execute("""
                SELECT count(*) FILTER (_status = 'new'), count(*) FILTER (_status = 'duplicate'),
                       count(*) FILTER (_status = 'conflict') FROM _resolved
            """).fetchone()
            if conflict:
                self._dead_letter(
                    f"SELECT source_row, 'message_id', '{Reason.CONFLICT.value}', "
                    "'message_id ' || message_id || ' is already stored with different content', message_id, "
                    "json_object('message_id', message_id, 'event', event, 'ts', ts, 'properties', properties)::VARCHAR "
                    "FROM _resolved WHERE _status = 'conflict'",
                    load_id, report.file, report,
                )
                if self.strict:
                    raise StrictRejection(report.samples[-1].describe(report.file))
            # A row rejected again on re-ingest is reported again but stored once.
            con.execute("""
                INSERT INTO dead_letters SELECT * FROM _dl_pending p WHERE NOT EXISTS (
                    SELECT 1 FROM dead_letters d
                    WHERE d.file = p.file AND d.row_number IS NOT DISTINCT FROM p.row_number
                      AND d.reason = p.reason AND d.raw IS NOT DISTINCT FROM p.raw)
            """)
            con.execute(
                "UPDATE loads SET rows_read = ?, accepted = accepted + ?, duplicate = duplicate + ?, rejected = ? "
                "WHERE load_id = ?",
                [report.rows_read, new, dup, report.rejected, load_id],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        report.accepted += new
        report.duplicate += dup
        con.execute("DELETE FROM _staging; DELETE FROM _dl_pending; DROP TABLE IF EXISTS _resolved")

    def _finish(self, report: LoadReport, status: str) -> None:
        self.con.execute(
            "UPDATE loads SET finished_at = now()::TIMESTAMP, status = ?, rows_read = ? WHERE load_id = ?",
            [status, report.rows_read, report.load_id],
        )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
