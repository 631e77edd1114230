"""The idempotent loader: raw batches -> canonical, validated, de-duplicated rows in `events`.

Each batch is projected and validated in DuckDB (vectorised; no per-row Python), then
  - a row without a message_id gets one derived from its content and its occurrence number among the
    file's identical rows (`_number_repeats`), so repeats inside a file are kept and a re-ingest adds nothing,
  - the first row per message_id (input order) is appended to `events`,
  - a repeat with the same content counts as a duplicate (re-ingesting a file adds nothing),
  - a repeat with different content goes to dead letters as a conflict (content without `ts` for the rows
    the caller names as timed by their arrival: `arrival_ts`),
  - rejected rows go to dead letters with file, line, field and reason.
Rows, dead letters and the load's counts commit together, every COMMIT_ROWS rows and at the end.
A bad row never stops the run; with `strict` it fails the file instead, and nothing of it is kept.

Before any row is loaded the file's dialect is read (`sniff`: delimiter and encoding) and every column
the mapping names is checked against the file (`checks`). A file that cannot be loaded raises
FileFailed, which carries the file's report and a message naming the file and what to do.
A load that replaces earlier ones (`replacing`) also commits once, at the end, with their removal.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from journeymap.errors import InputError
from journeymap.events.reasons import Reason
from journeymap.events.validate import is_json_object, rejection_columns, validation_sql
from journeymap.ingest.erased import has_erased, refused_sql
from journeymap.ingest.checks import check_canonical_columns, check_mapping_columns
from journeymap.ingest.files import InputFile
from journeymap.ingest.mapping import SourceMapping, mapping_hash
from journeymap.ingest.projection import projection_sql
from journeymap.ingest.readers import ReadState, columns, prefetch, read_batches
from journeymap.ingest.sniff import Dialect, first_bad_line, sniff

SCAN_CHUNK = 64 * 1024
COMMIT_ROWS = 2_000_000  # a crash loses at most this many uncommitted rows of a file, never committed ones
SEQ_PER_LOAD = 10_000_000_000  # seq = load_id * SEQ_PER_LOAD + line * 8 + spec: input order, globally (store.py's event_lineage)
_CONTENT = "event, type, source, channel, user_id, anonymous_id, email, previous_id, account_id, properties, traits, ts"
_LOOSE_CONTENT = _CONTENT.removesuffix(", ts")
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


LOADED, FAILED, TOO_MANY_REJECTS = "loaded", "failed", "too_many_rejects"
"""A file's status: loaded; failed (nothing of it, or only its rows committed before the failure, is
kept: `error` says why); too many of its rows rejected (what was accepted is loaded)."""


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
    status: str = LOADED
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    dialect: Dialect | None = None
    reasons: Counter = field(default_factory=Counter)  # (reason, field) -> rejected rows

    @property
    def reject_rate(self) -> float:
        """Rejected events over every event the file gave (accepted, duplicate or rejected), leaving out the
        events refused because they name an erased person: refusing them is the erase working, not a sign of
        a broken file or mapping, so a file of a customer who asked to be forgotten is not `too_many_rejects`."""
        erased = sum(n for (reason, _), n in self.reasons.items() if reason == Reason.ERASED.value)
        total = self.accepted + self.duplicate + self.rejected - erased
        return (self.rejected - erased) / total if total else 0.0

    def top_reason(self) -> str | None:
        """The most common rejection, as `reason on field (N rows)`."""
        if not self.reasons:
            return None
        (reason, fld), n = self.reasons.most_common(1)[0]
        return f"{reason} on {fld or '-'} ({n:,} row{'s' if n != 1 else ''})"

    @property
    def ok(self) -> bool:
        return self.status == LOADED
    replaced: list[dict] = field(default_factory=list)  # the earlier loads it replaced (ingest --replace)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("file", "load_id", "rows_read", "accepted", "duplicate", "rejected")}
        d["seconds"] = round(self.seconds, 3)
        d["rejections"] = [r.__dict__ for r in self.samples]
        d["status"], d["error"], d["warnings"] = self.status, self.error, self.warnings
        d["reject_rate"] = round(self.reject_rate, 4)
        d["reject_reasons"] = [{"reason": r, "field": f, "count": n} for (r, f), n in self.reasons.most_common()]
        if self.dialect is not None:
            d.update(self.dialect.describe())
        d["replaced"] = self.replaced
        return d


class StrictRejection(ValueError):
    """A row was rejected while loading with strict on; nothing of the file was kept."""


class FileFailed(InputError):
    """A file could not be loaded; `report` is its report (status failed), the message says why."""

    def __init__(self, report: LoadReport, message: str):
        super().__init__(message)
        self.report = report


def failure_message(f: InputFile, dialect: Dialect | None, exc: BaseException) -> str:
    """What went wrong with a file, for the user: the file, the line where known, and what to pass."""
    name = str(f.path)
    text = str(exc)
    if isinstance(exc, (InputError, StrictRejection)):
        return text if text.startswith(name) else f"{name}: {text}"
    if "invalid UTF8" in text or isinstance(exc, UnicodeDecodeError):
        encoding = dialect.encoding if dialect else "utf-8"
        bad = first_bad_line(f, encoding)
        where = f"line {bad[0]} has bytes that are not {encoding} ({bad[1].hex(' ')})" if bad else f"not {encoding} text"
        return (f"{name}: {where}; pass --encoding (e.g. --encoding cp1252 for a Windows or Latin-1 export) or set "
                "`encoding:` in the source mapping")
    if text.strip() == "Empty CSV file":
        return f"{name}: the file is empty (not even a header line)"
    if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
        return f"{name}: cannot be read: {exc.strerror or text}"
    return f"{name}: cannot be read as {f.format}{' (gzip)' if f.compression else ''}: {text}"


FILE_ERRORS = (InputError, StrictRejection, pa.ArrowException, OSError, UnicodeError, EOFError)
"""What fails one file (and not the others): the file or a row of it is bad, never the store."""


class Loader:
    def __init__(self, con: duckdb.DuckDBPyConnection, strict: bool = False, keep_samples: int = 20,
                 arrival_ts: str | None = None):
        """`arrival_ts` names a table whose `message_id` column lists the rows whose `ts` depends on when
        they arrived (the tracking API's clock-skew correction uses the server's receive time): a repeat
        of such a row compares its content without `ts`, so a client's retry is a duplicate, not a conflict."""
        self.con = con
        self.strict = strict
        self.keep_samples = keep_samples
        self.arrival_ts = arrival_ts
        # Events naming an erased person or account are refused (ingest/erased.py); None: nobody was erased.
        self.refused = refused_sql(con) if has_erased(con) else None

    def load(
        self,
        f: InputFile,
        mapping: SourceMapping | None = None,
        source_name: str | None = None,
        source_override: str | None = None,
        progress: Callable[[int], None] | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
        replacing: Callable[[int], None] | None = None,
    ) -> LoadReport:
        """Load one file. `delimiter` and `encoding` override the mapping's, which override what the file's
        first bytes say. Raises FileFailed (with the report) when the file cannot be loaded.

        `replacing(load_id)` removes the loads this one replaces (ingest/loads.py): it runs inside this
        load's transaction after the file's checks and before any row, and the load then commits once, at
        the end, so the earlier loads are gone exactly when this one is complete; a failure rolls both back."""
        con = self.con
        load_id = con.execute("SELECT nextval('load_ids')").fetchall()[0][0]
        con.execute(
            "INSERT INTO loads (load_id, source_name, file, started_at, status, mapping_hash) "
            "VALUES (?, ?, ?, now()::TIMESTAMP, 'started', ?)",
            [load_id, source_name, str(f.path), mapping_hash(mapping)],
        )
        report = LoadReport(str(f.path), load_id)
        t0 = time.perf_counter()
        con.execute("CREATE OR REPLACE TEMP TABLE _dl_pending AS SELECT * FROM dead_letters LIMIT 0")
        con.execute("CREATE OR REPLACE TEMP TABLE _occurrences (h UBIGINT, n BIGINT)")  # per file: _number_repeats
        state = ReadState()
        sql: str | None = None
        pending = 0  # rows written since the last commit
        self._committed = (0, 0, 0, 0, Counter())  # the counts as of the last commit: what a failure keeps
        con.execute("BEGIN TRANSACTION")
        try:
            if f.size == 0:
                raise InputError(f"{f.path}: the file is empty (0 bytes)")
            report.dialect = sniff(f, delimiter or (mapping.delimiter if mapping else None),
                                   encoding or (mapping.encoding if mapping else None))
            if f.format != "jsonl":
                self._check_columns(f, mapping, source_name, columns(f, report.dialect), None, report)
            if replacing is not None:
                replacing(load_id)
            for batch in prefetch(read_batches(f, state, report.dialect)):
                report.rows_read += batch.num_rows
                if sql is None:
                    if f.format == "jsonl":
                        self._check_columns(f, mapping, source_name, *self._json_keys(batch), report)
                    sql = projection_sql(mapping, None if f.format == "jsonl" else batch.schema, source_override,
                                         trim=f.format == "csv", file_name=f.path.name)
                self._load_batch(batch, sql, f.format == "jsonl", load_id, str(f.path), report)
                self._stage_malformed(state, load_id, str(f.path), report)
                pending += batch.num_rows
                if progress:
                    progress(state.bytes_read)
                if not self.strict and replacing is None and pending >= COMMIT_ROWS:
                    self._commit(report)
                    pending = 0
                    con.execute("BEGIN TRANSACTION")
            self._stage_malformed(state, load_id, str(f.path), report)
            self._commit(report)  # with strict, _dead_letter has already raised on the first rejection
        except BaseException as exc:
            con.execute("ROLLBACK")
            report.seconds = time.perf_counter() - t0
            # Rows committed before the failure (every COMMIT_ROWS) stay; the report counts only those.
            report.rows_read, report.accepted, report.duplicate, report.rejected, report.reasons = self._committed
            report.samples = report.samples[: report.rejected]
            self._finish(report, "failed")
            if isinstance(exc, FILE_ERRORS):
                report.status, report.error = FAILED, failure_message(f, report.dialect, exc)
                raise FileFailed(report, report.error) from exc
            raise
        report.seconds = time.perf_counter() - t0
        self._finish(report, "completed")
        return report

    def _check_columns(self, f: InputFile, mapping: SourceMapping | None, source_name: str | None,
                       cols: list[str] | None, records: int | None, report: LoadReport) -> None:
        if cols is None or records == 0:
            return
        if mapping is not None and mapping.mapped_columns():
            report.warnings += check_mapping_columns(str(f.path), mapping, source_name, cols, records)
        elif records is None:  # canonical CSV or Parquet: its header must name the canonical fields
            check_canonical_columns(str(f.path), cols, anonymous=bool(mapping and mapping.anonymous))

    def _json_keys(self, batch: pa.RecordBatch) -> tuple[list[str], int]:
        """The keys of the JSON objects in a batch of lines, and how many objects there were."""
        self.con.register("_keys_in", pa.Table.from_batches([batch]))
        try:
            ok = is_json_object("_line")
            keys, n = self.con.execute(
                f"SELECT list_sort(list_distinct(flatten(list(json_keys(_line))))), count(*) FROM _keys_in "
                f"WHERE trim(_line) <> '' AND {ok}"
            ).fetchall()[0]
        finally:
            self.con.unregister("_keys_in")
        return keys or [], n

    # -- one batch -------------------------------------------------------------------------------

    def _load_batch(self, batch: pa.RecordBatch, sql: str, is_json: bool, load_id: int, file: str, report: LoadReport) -> None:
        con = self.con
        # Chunks let DuckDB scan the batch on every thread; one big Arrow batch is read by one.
        con.register("_rawin", pa.Table.from_batches(pa.Table.from_batches([batch]).to_batches(max_chunksize=SCAN_CHUNK)))
        try:
            if is_json:
                # Lines that are not JSON objects are dead letters; the rest are parsed in SQL.
                ok = is_json_object("_line")
                self._dead_letter(
                    f"SELECT _row, 'line', '{Reason.BAD_JSON.value}', 'not a JSON object', NULL, _line FROM _rawin "
                    f"WHERE trim(_line) <> '' AND NOT {ok}", load_id, file, report,
                )
                con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _rawin WHERE trim(_line) <> '' AND {ok}")
            else:
                con.execute("CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _rawin")
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _batch AS
                SELECT * EXCLUDE (message_id),  -- kept once, as _message_id: every column copied costs
                       coalesce(message_id, 'jm-' || _fp) AS _message_id,
                       {load_id} * {SEQ_PER_LOAD} + _row * 8 + _spec AS seq
                FROM (SELECT *, CASE WHEN message_id IS NULL THEN md5({_FINGERPRINT}) END AS _fp
                      FROM ({validation_sql(f"({sql})")}))
            """)
            if self.refused is not None:
                self._refuse_erased(report)
            self._number_repeats()
            # The raw row is looked up only for rejected rows: serialising every row costs more than the rest.
            raw = "r._line" if is_json else "to_json(r)::VARCHAR"
            self._dead_letter(
                f"SELECT b._row, b.field, b.reason, b.detail, b._message_id, {raw} "
                f"FROM (SELECT *, {rejection_columns()} FROM (SELECT *, _message_id AS message_id FROM _batch) "
                f"WHERE _check IS NOT NULL) b "
                f"JOIN _rawin r ON r._row = b._row ORDER BY b._row, b._spec",
                load_id, file, report,
            )
            self._insert_new(load_id, report)
        finally:
            try:
                con.unregister("_rawin")
            except duckdb.TransactionException:
                pass  # the statement that failed aborted the transaction; its error is the one to see

    def _refuse_erased(self, report: LoadReport) -> None:
        """Drop the batch's events that name an erased identifier: counted as rejected (`erased`), never stored,
        not even as dead letters, which would keep their raw rows."""
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _erased AS SELECT seq, _row, {self.refused} AS field FROM _batch")
        found = con.execute("SELECT field, count(*), min(_row) FROM _erased WHERE field IS NOT NULL GROUP BY 1 ORDER BY 1"
                            ).fetchall()
        if not found:
            return
        con.execute("DELETE FROM _batch WHERE seq IN (SELECT seq FROM _erased WHERE field IS NOT NULL)")
        for fld, n, row in found:
            report.rejected += n
            report.reasons[Reason.ERASED.value, fld] += n
            if len(report.samples) < self.keep_samples:
                report.samples.append(Rejection(row, fld, Reason.ERASED.value, Reason.ERASED.description))
        if self.strict:
            raise StrictRejection(report.samples[0].describe(report.file))

    def _number_repeats(self) -> None:
        """Give the n-th of a file's identical rows without a message_id (n > 1) an id of its own.

        A derived id is md5 of the row's content (`_fp`) for its first occurrence in the file, as it was
        before occurrences were counted (so stores loaded earlier stay idempotent), and md5(content, n)
        for the n-th: repeats inside a file are separate events (a log repeats rows, two clicks fall in
        one second), while loading the same file again derives the same ids and adds nothing.
        Occurrences count across the file's batches: `_occurrences` holds the 64-bit hash of every
        fingerprint seen so far with its count. Most batches repeat nothing, and then only two small
        aggregates run; the window numbers just the rows whose content was seen more than once."""
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE _mine AS "
                    "SELECT hash(_fp) AS h, count(*) AS n FROM _batch WHERE _fp IS NOT NULL GROUP BY 1")
        repeats = con.execute("""
            CREATE OR REPLACE TEMP TABLE _repeats AS
            SELECT m.h, coalesce(o.before, 0) AS before
            FROM _mine m LEFT JOIN (SELECT h, sum(n) AS before FROM _occurrences SEMI JOIN _mine USING (h) GROUP BY h) o
              USING (h)
            WHERE m.n > 1 OR o.before IS NOT NULL
        """).fetchall()[0][0]
        con.execute("INSERT INTO _occurrences SELECT h, n FROM _mine")
        if repeats:
            con.execute("""
                UPDATE _batch SET _message_id = 'jm-' || md5(_batch._fp || '#' || r.nth)
                FROM (SELECT b.seq, row_number() OVER (PARTITION BY b._fp ORDER BY b._row, b._spec) + rp.before AS nth
                      FROM _batch b JOIN _repeats rp ON hash(b._fp) = rp.h) r
                WHERE _batch.seq = r.seq AND r.nth > 1
            """)

    def _insert_new(self, load_id: int, report: LoadReport) -> None:
        """Append the batch's valid rows whose message_id is new; count repeats, dead-letter conflicts."""
        con = self.con
        cols = """_message_id, ts, event, type, source, channel, user_id, anonymous_id, email, previous_id,
                   account_id, properties, traits, seq"""
        valid, repeats = con.execute(
            "SELECT count(*), count(*) - count(DISTINCT _message_id) FROM _batch WHERE _check IS NULL"
        ).fetchall()[0]
        # Probe the store with the batch's ids (the hash table is built on the small side).
        seen = con.execute(
            "SELECT count(*) FROM events WHERE message_id IN (SELECT _message_id FROM _batch WHERE _check IS NULL)"
        ).fetchall()[0][0]
        if not repeats and not seen:
            # The common case, fresh data: every valid row is new.
            con.execute(f"INSERT INTO events SELECT {cols} FROM _batch WHERE _check IS NULL")
            report.accepted += valid
            return
        # Repeats are rare: only now is the content compared, by hashing both sides in this query.
        # A row whose ts came from its arrival time (`arrival_ts`) is compared without ts (`loose`).
        loose = f"_message_id IN (SELECT message_id FROM {self.arrival_ts})" if self.arrival_ts else "false"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _resolved AS
            WITH b AS (SELECT *, hash({_CONTENT}) AS content_hash, hash({_LOOSE_CONTENT}) AS loose_hash,
                              {loose} AS _loose
                       FROM _batch WHERE _check IS NULL),
            firsts AS (
                SELECT _message_id, min(seq) AS first_seq, arg_min(content_hash, seq) AS first_hash,
                       arg_min(loose_hash, seq) AS first_loose
                FROM b GROUP BY _message_id
            ),
            stored AS (
                SELECT e.message_id AS _message_id, any_value(hash({_CONTENT})) AS stored_hash,
                       any_value(hash({_LOOSE_CONTENT})) AS stored_loose
                FROM events e SEMI JOIN firsts f ON e.message_id = f._message_id
                GROUP BY e.message_id
            )
            SELECT b.* EXCLUDE (loose_hash, _loose),
                   CASE
                     WHEN st.stored_hash IS NOT NULL THEN
                       CASE WHEN st.stored_hash = b.content_hash OR (b._loose AND st.stored_loose = b.loose_hash)
                            THEN 'duplicate' ELSE 'conflict' END
                     WHEN b.seq = f.first_seq THEN 'new'
                     WHEN b.content_hash = f.first_hash OR (b._loose AND b.loose_hash = f.first_loose) THEN 'duplicate'
                     ELSE 'conflict'
                   END AS _status
            FROM b JOIN firsts f USING (_message_id) LEFT JOIN stored st USING (_message_id)
        """)
        con.execute(f"INSERT INTO events SELECT {cols} FROM _resolved WHERE _status = 'new'")
        new, dup, conflict = con.execute("""
            SELECT count(*) FILTER (_status = 'new'), count(*) FILTER (_status = 'duplicate'),
                   count(*) FILTER (_status = 'conflict') FROM _resolved
        """).fetchall()[0]
        report.accepted += new
        report.duplicate += dup
        if conflict:
            self._dead_letter(
                f"SELECT _row, 'message_id', '{Reason.CONFLICT.value}', "
                "'message_id ' || _message_id || ' is already stored with different content', _message_id, "
                "json_object('message_id', _message_id, 'event', event, 'ts', ts, 'properties', properties)::VARCHAR "
                "FROM _resolved WHERE _status = 'conflict' ORDER BY _row",
                load_id, report.file, report,
            )

    def _stage_malformed(self, state: ReadState, load_id: int, file: str, report: LoadReport) -> None:
        rows = state.take_malformed()
        if not rows:
            return
        table = pa.table({
            "row": pa.array([m.line for m in rows], pa.int64()),
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
        before = con.execute("SELECT count(*) FROM _dl_pending").fetchall()[0][0]
        con.execute(f"""
            INSERT INTO _dl_pending
            SELECT {load_id}, {_sql_str(file)}, c0, c1, c2, c3, c4, c5, now()::TIMESTAMP
            FROM ({select}) AS x(c0, c1, c2, c3, c4, c5)
        """)
        added = con.execute("SELECT count(*) FROM _dl_pending").fetchall()[0][0] - before
        if added:
            report.rejected += added
            for reason, fld, n in con.execute(
                f"SELECT reason, field, count(*) FROM (SELECT * FROM _dl_pending ORDER BY rowid OFFSET {before}) "
                "GROUP BY ALL"
            ).fetchall():
                report.reasons[reason, fld] += n
            if len(report.samples) < self.keep_samples:
                rows = con.execute(
                    f"SELECT row_number, field, reason, detail FROM _dl_pending ORDER BY rowid "
                    f"OFFSET {before} LIMIT {self.keep_samples - len(report.samples)}"
                ).fetchall()
                report.samples.extend(Rejection(*r) for r in rows)
            if self.strict:
                raise StrictRejection(report.samples[0].describe(file))

    # -- commit ----------------------------------------------------------------------------------

    def _commit(self, report: LoadReport) -> None:
        """Dead letters and counts go in the same transaction as the rows they account for."""
        con = self.con
        # A row rejected again on re-ingest is reported again but stored once.
        con.execute("""
            INSERT INTO dead_letters SELECT * FROM _dl_pending p WHERE NOT EXISTS (
                SELECT 1 FROM dead_letters d
                WHERE d.file = p.file AND d.row_number IS NOT DISTINCT FROM p.row_number
                  AND d.reason = p.reason AND d.raw IS NOT DISTINCT FROM p.raw)
        """)
        con.execute(
            "UPDATE loads SET rows_read = ?, accepted = ?, duplicate = ?, rejected = ? WHERE load_id = ?",
            [report.rows_read, report.accepted, report.duplicate, report.rejected, report.load_id],
        )
        con.execute("COMMIT")
        con.execute("DELETE FROM _dl_pending")
        self._committed = (report.rows_read, report.accepted, report.duplicate, report.rejected, Counter(report.reasons))

    def _finish(self, report: LoadReport, status: str) -> None:
        self.con.execute(
            "UPDATE loads SET finished_at = now()::TIMESTAMP, status = ?, rows_read = ? WHERE load_id = ?",
            [status, report.rows_read, report.load_id],
        )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
