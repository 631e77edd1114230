r"""A workspace: a folder with `journeymap.yml`, a `data/` folder and one DuckDB store.

This is the Python API (here on a three-event export in a temporary folder):

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = tempfile.TemporaryDirectory()
    >>> export = Path(folder.name, "events.csv")
    >>> _ = export.write_text("customer_id,event,ts\n"
    ...                       "ann,pricing_viewed,2025-03-01T09:00:00\n"
    ...                       "ann,signup_completed,2025-03-01T09:05:00\n"
    ...                       "bob,pricing_viewed,2025-03-02T10:00:00\n")
    >>> with Workspace.init(Path(folder.name, "acme")) as ws:    # journeymap.yml from the template
    ...     [(r.accepted, r.rejected) for r in ws.ingest([str(export)])]
    ...     ws.transitions(level="stage")
    ...     model = ws.journey_map(insights=False)                # the dict documented in docs/map-json.md
    [(3, 0)]
    {'edges': [{'from': 'evaluation', 'to': 'onboarding', 'count': 1, 'mean_seconds': 300.0}],
     'starts': {'evaluation': 2}, 'ends': {'evaluation': 1, 'onboarding': 1}, 'variants': 2}
    >>> model["events"], [stage["id"] for stage in model["stages"]]
    (3, ['discovery', 'evaluation', 'onboarding', 'adoption', 'churned'])
    >>> folder.cleanup()
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from journeymap.engine.backends import Engine, duckdb_engine
from journeymap.errors import DefinitionError, InputError, InternalError, NotEnoughData, OptionError, WorkspaceError
from journeymap.ingest.files import expand
from journeymap.ingest.loader import TOO_MANY_REJECTS, FileFailed, Loader, LoadReport
from journeymap.ingest.loads import UnknownLoad, earlier_loads, list_loads, unload, unload_in_transaction
from journeymap.ingest.mapping import mapping_hash, parse_delimiter, parse_encoding
from journeymap.ingest.store import STORE_FILE, open_store, table_names
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.load import load_definition, store_settings_for
from journeymap.state import RefreshResult, current_tables, refresh
from journeymap.state import status as state_status

DEFINITION_FILE = "journeymap.yml"
TEMPLATE = Path(__file__).parent / "journey" / "templates" / DEFINITION_FILE
DEFAULT_MAX_REJECT_RATE = 0.5
"""A file with more than this share of its rows rejected is reported as a failure (its good rows stay)."""


class IngestFailed(InputError):
    """Some files were not loaded, or had too many rows rejected; `reports` has every file's report."""

    def __init__(self, reports: list[LoadReport]):
        self.reports = reports
        bad = [r for r in reports if not r.ok]
        super().__init__(f"{len(bad)} of {len(reports)} files did not load cleanly: " + "; ".join(r.error for r in bad))


def _option(parse, value: str | None, name: str) -> str | None:
    try:
        return None if value is None else parse(value)
    except ValueError as exc:
        raise OptionError(f"--{name}: {exc}", option=name) from None


class Workspace:
    spark_tables: dict[str, list[str]] | None = None  # set by refresh() on a Spark workspace
    last_refresh: RefreshResult | None = None  # what the last refresh() did (journey state, churn model)

    def __init__(self, path: str | Path = "."):
        self.path = Path(path)
        self._con = None

    @classmethod
    def init(cls, path: str | Path, force: bool = False) -> Workspace:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "data").mkdir(exist_ok=True)
        target = path / DEFINITION_FILE
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; pass force to overwrite it")
        shutil.copyfile(TEMPLATE, target)
        ws = cls(path)
        ws.con.execute("CHECKPOINT")  # create the store file now
        return ws

    @property
    def definition_path(self) -> Path:
        return self.path / DEFINITION_FILE

    @cached_property
    def definition(self) -> JourneyDefinition:
        return load_definition(self.definition_path)

    @property
    def con(self):
        if self._con is None:
            self._con = open_store(self.path, settings=store_settings_for(self.path))
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- ingest ----------------------------------------------------------------------------------

    def ingest(
        self, paths: list[str], source: str | None = None, strict: bool = False,
        fmt: str | None = None, progress: Callable[[InputFileProgress], None] | None = None,
        refresh: bool = True, max_reject_rate: float | None = DEFAULT_MAX_REJECT_RATE,
        delimiter: str | None = None, encoding: str | None = None, raise_on_failure: bool = True,
        replace: bool = False,
    ) -> list[LoadReport]:
        """Load files; `source` names a mapping under `sources:` or a canonical source (product, crm, ...).

        Every file is tried and gets its report: a file that cannot be loaded is `failed` (its `error`
        says why) and the next one is loaded all the same; a file whose rejected share is over
        `max_reject_rate` (None: no limit) is `too_many_rejects` (its accepted rows stay loaded). Then,
        unless `raise_on_failure` is False, IngestFailed (with every report) is raised when a file is not
        `loaded`. `delimiter` and `encoding` override the mapping's and what the files' first bytes say.

        Identity is rebuilt afterwards; pass refresh=False when loading several batches of files and
        call `refresh()` once at the end. With replace=True each file replaces the earlier loads of the same
        file and source (after a mapping is fixed, say): they are unloaded in the new load's transaction, so
        they are gone only once it has committed (ingest/loads.py); `report.replaced` says what was removed."""
        mapping, override = self._mapping(source)
        delimiter = _option(parse_delimiter, delimiter, "delimiter")
        encoding = _option(parse_encoding, encoding, "encoding")
        if max_reject_rate is not None and not 0 <= max_reject_rate <= 1:
            raise OptionError(f"--max-reject-rate must be between 0 and 1 (or 0% and 100%), not {max_reject_rate}",
                              option="max_reject_rate")
        files = expand(paths, fmt or (mapping.format if mapping else None))
        loader = Loader(self.con, strict=strict)
        reports = []
        try:
            for f in files:
                cb = (lambda done, f=f: progress(InputFileProgress(f.path, done, f.size))) if progress else None
                replaced: list[dict] = []
                earlier = earlier_loads(self.con, f.path, source) if replace else []

                def replacing(new_id: int, earlier=earlier, replaced=replaced) -> None:
                    replaced.extend(unload_in_transaction(self.con, old, replaced_by=new_id) for old in earlier)

                try:
                    report = loader.load(f, mapping, source_name=source, source_override=override, progress=cb,
                                         delimiter=delimiter, encoding=encoding,
                                         replacing=replacing if earlier else None)
                except FileFailed as exc:
                    report = exc.report
                report.replaced = replaced if report.ok else []  # a failed load rolled its replacing back
                if report.ok and max_reject_rate is not None and report.reject_rate > max_reject_rate:
                    report.status = TOO_MANY_REJECTS
                    report.error = (
                        f"{report.file}: {report.reject_rate:.1%} of its rows were rejected, over --max-reject-rate "
                        f"{max_reject_rate:.0%}; most common: {report.top_reason()}. The {report.accepted:,} accepted "
                        f"rows are loaded; see `journeymap rejects --workspace {self.path}`"
                    )
                reports.append(report)
        finally:
            # also when a later file fails: the files loaded (or replaced) before it are in the journey
            if refresh and reports:
                self.refresh()
        if raise_on_failure and any(not r.ok for r in reports):
            raise IngestFailed(reports)
        return reports

    def _mapping(self, source: str | None):
        from journeymap.events.schema import SOURCES

        if source is None:
            return None, None
        if self.definition_path.exists() and source in self.definition.sources:
            return self.definition.sources[source], None
        if source in SOURCES:
            return None, source
        known = sorted(self.definition.sources) if self.definition_path.exists() else []
        raise ValueError(
            f"--source {source!r} is neither a mapping in {self.definition_path} ({', '.join(known) or 'none'}) "
            f"nor a canonical source ({', '.join(SOURCES)})"
        )

    def loads(self) -> list[dict]:
        """Every load of this workspace, oldest first (`journeymap loads`): load_id, file, source, mapping_hash,
        rows_read, accepted, duplicate, rejected, status (started, completed, failed, unloaded), started_at,
        finished_at, unloaded_at, replaced_by, and mapping_changed: whether the source's mapping in
        journeymap.yml now hashes differently (None when the load used no mapping, or it is gone)."""
        current = {}
        if self.definition_path.exists():
            try:
                current = {name: mapping_hash(m) for name, m in self.definition.sources.items()}
            except ValueError:  # an invalid journeymap.yml: `journeymap validate` says why; the list still shows
                current = {}
        out = list_loads(self.con)
        for d in out:
            now = current.get(d["source"]) if d["mapping_hash"] is not None else None
            d["mapping_changed"] = None if now is None else now != d["mapping_hash"]
        return out

    def rejects(self, limit: int = 50) -> dict:
        """The dead letters (`journeymap rejects`): {"total", "rejects": [{file, row, field, reason, detail}]}, the
        first `limit` by file and row. The server's damaged journal records are files, read beside it."""
        rows = self.con.execute("SELECT file, row_number, field, reason, detail FROM dead_letters "
                                "ORDER BY file, row_number LIMIT ?", [limit]).fetchall()
        total = self.con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
        cols = ("file", "row", "field", "reason", "detail")
        return {"total": total, "rejects": [dict(zip(cols, r, strict=True)) for r in rows]}

    def read_report(self, name: str, limit: int = 50, playbook: str | None = None, unit: str | None = None,
                    at: dt.datetime | None = None, start: dt.datetime | None = None,
                    end: dt.datetime | None = None) -> dict:
        """The store's answer to a read-only command outside the registry, as one dict: `state`, `loads`, `rejects`,
        `check` (`validate` against the data), and the playbooks' `act playbooks`, `act show`, `act backtest`,
        `explain`, `dry-run` (act.summary, act.backtest, act.explain). The server answers the same dict to those
        commands on this machine while it holds the store (server/admin.py, cli/forward.py)."""
        from journeymap.act.backtest import backtest
        from journeymap.act.explain import dry_run, explain
        from journeymap.act.summary import playbook_detail, playbook_list

        reports = {
            "state": lambda: {"levels": self.state(), "refreshed": self.refreshed()},
            "loads": lambda: {"loads": self.loads()},
            "rejects": lambda: self.rejects(limit),
            "check": lambda: {"warnings": self.check()},
            "playbooks": lambda: playbook_list(self.con, self.definition),
            "playbook": lambda: playbook_detail(self.con, self.definition, playbook),
            "backtest": lambda: backtest(self.con, self.definition, playbook, start, end),
            "explain": lambda: explain(self.con, self.definition, playbook, unit, at),
            "dry-run": lambda: dry_run(self.con, self.definition, playbook),
        }
        if name not in reports:
            raise OptionError(f"no read report {name!r}: one of {', '.join(reports)}")
        return reports[name]()

    def unload(self, load_id: int, refresh: bool = True) -> dict:
        """Remove one load's events and dead letters, mark it unloaded, and rebuild identity and the journey
        tables (`journeymap unload`). Returns {load_id, file, source, events, dead_letters, later}: `later` lists
        the loads after it that reported duplicates or rejections, whose rows identical to this load's were
        never stored twice and leave with it; re-ingesting their files restores them (ingest/loads.py)."""
        try:
            removed = unload(self.con, int(load_id))
        except UnknownLoad as exc:
            raise UnknownLoad(f"{self.path}: {exc}; `journeymap loads --workspace {self.path}` lists the loads") from None
        if refresh:
            self.refresh()
        return removed

    def draft_from_data(self, paths: list[str], **ingest_options):
        """Load `paths`, propose a journeymap.yml from what they hold (journey.draft), write it over this
        workspace's definition and fold the state under it; returns (the load reports, the Draft).

        InputError when nothing was loaded: the template stays, there is nothing to propose from."""
        from journeymap.identity import stitch
        from journeymap.journey.draft import propose

        reports = self.ingest(paths, refresh=False, raise_on_failure=False, **ingest_options)
        if not any(r.accepted for r in reports):
            said = "; ".join(f"{r.file}: {r.error or r.top_reason() or 'no rows'}" for r in reports) or "no files"
            raise InputError(f"no event was loaded from {', '.join(paths)} ({said}): there is nothing to propose a "
                             f"journeymap.yml from; the template is kept")
        stitch(self.con)
        draft = propose(self.con, [str(p) for p in paths])
        self.definition_path.write_text(draft.text)
        self.refresh()
        return reports, draft

    def refresh(self, rebuild: bool = False) -> RefreshResult:
        """Rebuild identity and fold the new events into the journey state (journeymap.state), after events
        changed (`rebuild`: the state from scratch); on a Spark engine, fold the state with Spark jobs instead,
        whose files the analyses read as the journey tables (state.spark_fold; `spark_state` and
        `spark_tables` of the result). First, with
        `retention.raw_events` in journeymap.yml, the raw events older than the latest event's time less that
        are dropped (`result.retention` counts them; docs/privacy.md). Then refit
        the churn model when due and score every paying account (insights.risk.stored); `risk` of the result
        says whether the model was refitted or reused, and why. Last, every playbook is evaluated (act.evaluate):
        `act` says what entered each (docs/playbooks.md). Kept as `last_refresh`."""
        from journeymap.act.evaluate import evaluate as evaluate_playbooks
        from journeymap.insights.risk.stored import refresh_risk

        self.__dict__.pop("definition", None)  # journeymap.yml as it is now
        invalid = None
        try:
            definition = self.definition if self.definition_path.exists() else None
        except DefinitionError as exc:  # identity is stitched all the same; the state waits for a valid definition
            definition, invalid = None, exc
        result = refresh(self.con, definition, rebuild=rebuild, workspace_path=self.path)
        if invalid is not None:
            raise invalid
        if result.spark_tables:  # table -> the Parquet paths that hold it now
            self.spark_tables = result.spark_tables
        # the churn model refitted when due and every paying account scored (insights.risk.stored)
        result.risk = refresh_risk(self.con, definition)
        # every playbook evaluated on the state just folded: new entries and their actions in one transaction
        # on Spark each playbook says it is not evaluated; the health bands read the features just scored
        result.act = evaluate_playbooks(self.con, definition,
                                        features=result.risk.features if result.risk is not None else None)
        self.last_refresh = result
        return result

    # -- privacy ---------------------------------------------------------------------------------

    def erase(self, person: str | None = None, email: str | None = None, account: str | None = None,
              journal_held=None) -> dict:
        """Remove every trace of a person (or of an account and its persons): `journeymap erase`, docs/privacy.md.

        Their events (with the survey texts they wrote), dead letters naming them and journal records naming
        them go; identity, persons, accounts, journey_events and the journey state are rebuilt without them
        (and the Spark Parquet written again); a salted hash of each identifier goes to the erase log, so that
        later loads refuse them; then the store is rewritten (`compact`) so no freed block keeps their bytes.
        Returns what was removed, per table and file, and `still_named_in`: the workspace's other files (exports
        under data/, a journey-map.html written before) that still name them, which are reported, never changed.
        `journal_held` (the server's: Journal.holding_rotation) keeps
        the journal from rotating while its files are rewritten and names the segment being written, which is left
        as it is: its records are refused by the erase log when they are loaded."""
        from journeymap.state.erase import erase_rows, erase_state, journal_scrub, resolve, still_named
        from journeymap.insights.risk import feature_state
        from journeymap.insights.voice import text_state
        from journeymap.state.fold import drop_state
        from journeymap.state.fold import stored as state_tables

        person_ids, accounts = resolve(self.con, person, email, account)
        from journeymap.act.privacy import erase_units, quoted_texts

        texts = quoted_texts(self.con, person_ids, accounts)  # read before their events go
        result = erase_rows(self.con, person_ids, accounts)
        needles, message_ids, seqs = result.pop("needles"), result.pop("message_ids"), result.pop("seqs")
        acted = erase_units(self.con, person_ids + accounts, needles + texts)  # playbook entries, outbox, tasks
        # the derived tables are still as they were: what of theirs is about to go
        derived_before = self._derived_counts(person_ids, accounts, seqs, state_tables)
        erase_state(self.con, person_ids, accounts)
        text_state.erase(self.con, {"person": person_ids, "account": accounts}, seqs)  # her events' scored texts
        feature_state.erase(self.con, accounts)  # the erased accounts' churn features (the refresh refolds the rest)
        if journal_held is None:
            files = journal_scrub(self.path / "journal", needles, message_ids)
        else:
            from journeymap.ingest.journal import segment_name

            with journal_held() as writing:
                skip = {segment_name(writing)} if writing is not None else set()
                files = journal_scrub(self.path / "journal", needles, message_ids, skip=skip)
        removed = {**result.pop("removed"), **derived_before, **acted}
        try:
            self.refresh()
            note = None
            if self.definition_path.exists() and self.definition.engine.backend == "spark":  # keeps what a fold replaced
                from journeymap.state.spark_fold import drop_replaced

                drop_replaced(self.path, self.definition)
        except DefinitionError as exc:  # identity is rebuilt; a state folded under the old definition still has them
            drop_state(self.con)
            note = (f"journeymap.yml is not valid ({exc}), so the journey state was dropped rather than folded: "
                    f"analyses compute from the events until `journeymap refresh` with a valid definition")
        left = self._derived_counts(person_ids, accounts, seqs, state_tables)
        if any(left.values()):
            raise InternalError(f"the erase left rows behind in {', '.join(k for k, v in left.items() if v)}")
        compacted = self.compact(needles)
        store = self.path / STORE_FILE
        elsewhere = still_named(self.path, needles, {store, Path(f"{store}.wal"), self.path / "journal"})
        return {**result, "removed": removed, "files": files, "compacted": compacted, "still_named_in": elsewhere,
                **({"note": note} if note else {})}

    def _derived_counts(self, person_ids: list[str], accounts: list[str], seqs: list[int],
                        state_tables) -> dict[str, int]:
        """Rows of the derived tables that belong to these persons and accounts, or are these events (a person's
        events in their account's state), per table."""
        from journeymap.insights.risk import feature_state
        from journeymap.insights.voice import text_state

        tables = table_names(self.con)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _erase_p AS SELECT unnest(?::VARCHAR[]) AS id", [person_ids])
        self.con.execute("CREATE OR REPLACE TEMP TABLE _erase_a AS SELECT unnest(?::VARCHAR[]) AS id", [accounts])
        self.con.execute("CREATE OR REPLACE TEMP TABLE _erase_s AS SELECT unnest(?::BIGINT[]) AS seq", [seqs])
        where = {"identity_map": "person_id IN (FROM _erase_p)", "persons": "person_id IN (FROM _erase_p)",
                 "identity_resolved": "person_id IN (FROM _erase_p)", "identity_traits": "person_id IN (FROM _erase_p)",
                 # raw identifier tuples: an erased tuple's events are all erased, its latest among them
                 "identity_activity": "last_seq IN (FROM _erase_s)",
                 "journey_moves": "unit_id IN (FROM _erase_p) OR unit_id IN (FROM _erase_a)",
                 "journey_events": "person_id IN (FROM _erase_p) OR account_id IN (FROM _erase_a) "
                                   "OR seq IN (FROM _erase_s)",
                 "accounts": "account_id IN (FROM _erase_a)"}
        for table in ("act_entries", "act_outbox", "act_health"):
            where[table] = "unit_id IN (FROM _erase_p) OR unit_id IN (FROM _erase_a)"
        where.update(text_state.erase_where({"person": "_erase_p", "account": "_erase_a"}, "_erase_s"))
        where.update(feature_state.erase_where("_erase_a"))
        for level, ids in (("person", "_erase_p"), ("account", "_erase_a")):
            for kind, table in state_tables(level).items():
                where[table] = f"unit_id IN (FROM {ids})"
                if kind == "events":
                    where[table] += " OR seq IN (FROM _erase_s)"
                elif kind == "closed":
                    where[table] += " OR entry_seq IN (FROM _erase_s)"
                else:  # the unit's last visit
                    where[table] += " OR last_entry_seq IN (FROM _erase_s)"
        out = {t: self.con.execute(f"SELECT count(*) FROM {t} WHERE {w}").fetchone()[0]
               for t, w in where.items() if t in tables}
        for t in ("_erase_p", "_erase_a", "_erase_s"):
            self.con.execute(f"DROP TABLE {t}")
        return out

    def compact(self, needles: list[str] | None = None) -> dict:
        """Rewrite the store into a fresh file and put it in place atomically: DuckDB keeps deleted rows in
        their row groups (and freed blocks in the file) after a CHECKPOINT, so only a rewrite is sure to drop
        their bytes. The fresh file is written beside the store and replaces it only once complete: a failure
        (a full disk) leaves the store as it was. Returns {bytes_before, bytes_after, checkpoint_left, left}:
        how many of `needles` a CHECKPOINT alone left in the file, and how many are left after the rewrite."""
        from journeymap.state.erase import remaining

        needles = needles or []
        store = self.path / STORE_FILE
        self.con.execute("CHECKPOINT")
        before = store.stat().st_size
        checkpoint_left = len(remaining(store, needles))
        fresh = store.with_name(STORE_FILE + ".compact")
        fresh.unlink(missing_ok=True)
        name = self.con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
        try:
            self.con.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS _fresh")
            try:
                self.con.execute(f'COPY FROM DATABASE "{name}" TO _fresh')
                self.con.execute("CHECKPOINT _fresh")
            finally:
                self.con.execute("DETACH _fresh")
            with open(fresh, "rb+") as f:
                os.fsync(f.fileno())
        except Exception as exc:
            fresh.unlink(missing_ok=True)
            Path(str(fresh) + ".wal").unlink(missing_ok=True)
            raise WorkspaceError(f"{store}: the store could not be rewritten ({exc}); it is unchanged, and the erased "
                                 "rows are deleted but their bytes may still be in its free space: free some disk space "
                                 f"and run `journeymap erase --compact-only --workspace {self.path}`") from None
        self.close()
        os.replace(fresh, store)
        Path(str(store) + ".wal").unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return {"bytes_before": before, "bytes_after": store.stat().st_size, "checkpoint_left": checkpoint_left,
                "left": len(remaining(store, needles))}

    def state(self) -> list[dict]:
        """Per level, whether the journey state is current and its size (`journeymap state`)."""
        definition = self.definition if self.definition_path.exists() else None
        if definition is not None and definition.engine.backend == "spark":  # the Spark state (state.spark_fold)
            from journeymap.state.spark_fold import status as spark_status

            return spark_status(self.con, self.path, definition)
        return state_status(self.con, definition)

    def refreshed(self) -> list[dict]:
        """What each refresh writes besides the journey state, whether current and its rows (`journeymap state`):
        the churn and health scores (insights.risk.stored), the churn features they were scored from
        (insights.risk.feature_state) and the scored customer texts (insights.voice.text_state)."""
        from journeymap.insights.risk.feature_state import status as features_status
        from journeymap.insights.risk.scores import status as scores_status
        from journeymap.insights.voice.text_state import status as texts_status

        definition = self.definition if self.definition_path.exists() else None
        return (scores_status(self.con, definition) + features_status(self.con, definition)
                + texts_status(self.con, definition))

    # -- analyses --------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        tables = table_names(self.con)
        if "journey_events" not in tables:
            raise NotEnoughData(f"{self.path}: no events yet",
                                add=f"events: run `journeymap ingest FILE --workspace {self.path}`")
        if self.definition_path.exists() and self.definition.engine.backend == "spark":
            # analyses on Spark over the Spark state's files (docs/spark.md), its state when current
            from journeymap.state.spark_tables import journey_engine

            return journey_engine(self.con, self.path, self.definition)
        engine = duckdb_engine(self.con)
        if self.definition_path.exists():  # the journey tables the state holds, when they are current
            engine.journey = current_tables(self.con, self.definition)
        return engine

    def has_events(self) -> bool:
        """Whether the store holds journey events (without creating a store where there is none)."""
        if self._con is None and not (self.path / STORE_FILE).exists():
            return False
        tables = table_names(self.con)
        return "journey_events" in tables and bool(
            self.con.execute("SELECT count(*) FROM (SELECT 1 FROM journey_events LIMIT 1)").fetchone()[0])

    def check(self, level: str | None = None) -> list[dict]:
        """journeymap.yml checked against the data (engine.checks.definition_findings): each warning as
        {"key", "message", "suggestion"}; none without events. Counted in the store's DuckDB whatever the
        engine: the checks are aggregates over the whole store."""
        from journeymap.engine.checks import definition_findings

        definition = self.definition  # a DefinitionError first
        if not self.has_events():
            return []
        found = [f.as_dict() for f in definition_findings(duckdb_engine(self.con), definition, level)]
        if any(p.entry.comment is not None for p in definition.playbooks):
            from journeymap.act.comments import theme_findings

            found += theme_findings(self.con, definition)
        return found

    def run(self, name: str, progress=None, /, **options) -> dict:
        """Run the analysis `name` of the registry (journeymap.analyses) with its options, as the CLI's
        `journeymap NAME --json` and the API's /api/v1/NAME do: the same defaults, checks and result.
        `name` and `progress` are positional only, so an analysis may have an option called `name`
        (`ws.run("experiment", name="pricing_page")`).

        >>> ws.run("funnel", steps="signed_up,report_created", window="30d")   # doctest: +SKIP
        """
        from journeymap.analyses import get

        return get(name)(self, options, progress)

    # One method per analysis of the registry; options and defaults are the registry's (`journeymap NAME --help`).

    def improvement_effect(self, improvement, level: str | None = None) -> dict:
        """The measured effect of a stored improvement (insights/improvements/effect.py, docs/improvements.md), or
        why there is none: not shipped, no events, a metric without a weekly series (`verdict` null, said)."""
        from journeymap.insights.improvements.effect import measure

        level = level or self.definition.analysis.level
        if level not in ("person", "account"):
            raise OptionError(f"--by must be person or account, not {level!r}", option="by")
        if improvement.status != "shipped":
            return measure(None, self.definition, level, improvement)
        try:
            engine = self.engine
            with engine.scope():
                return {**measure(engine, self.definition, level, improvement), "level": level}
        except NotEnoughData as exc:
            return {"metric": improvement.metric, "method": None, "verdict": None, "level": level,
                    "verdict_text": f"not measured: {exc}"}

    def journey_map(self, progress=None, **options) -> dict:
        return self.run("map", progress, **options)

    def transitions(self, **options) -> dict:
        return self.run("transitions", **options)

    def paths(self, **options) -> dict:
        return self.run("paths", **options)

    def variants(self, **options) -> dict:
        return self.run("variants", **options)

    def funnel(self, **options) -> dict:
        return self.run("funnel", **options)

    def retention(self, **options) -> dict:
        return self.run("retention", **options)

    def lifecycle(self, **options) -> dict:
        return self.run("lifecycle", **options)

    def stickiness(self, **options) -> dict:
        return self.run("stickiness", **options)

    def surveys(self, **options) -> dict:
        return self.run("surveys", **options)

    def revenue(self, **options) -> dict:
        return self.run("revenue", **options)

    def moments(self, **options) -> dict:
        return self.run("moments", **options)

    def risk(self, progress=None, **options) -> dict:
        return self.run("risk", progress, **options)

    def health(self, progress=None, **options) -> dict:
        return self.run("health", progress, **options)

    def clv(self, **options) -> dict:
        return self.run("clv", **options)

    def voice(self, **options) -> dict:
        return self.run("voice", **options)

    def friction(self, **options) -> dict:
        return self.run("friction", **options)

    def conformance(self, **options) -> dict:
        return self.run("conformance", **options)

    def experiment(self, name: str, **options) -> dict:
        """An A/B test declared under `experiments:` (docs/metrics/experiments.md)."""
        return self.run("experiment", name=name, **options)

    def add_interviews(self, directory: str | Path) -> dict:
        """Ingest a folder of interview transcripts (.txt with an `email:` / `date:` header) as events."""
        from journeymap.insights.voice.interviews import add_interviews

        return add_interviews(directory, self.path / "data" / "interviews", self.ingest)


class InputFileProgress:
    __slots__ = ("path", "done", "total")

    def __init__(self, path: Path, done: int, total: int):
        self.path, self.done, self.total = path, done, total
