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

import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from journeymap.engine.backends import Engine, duckdb_engine
from journeymap.engine.spark_backend import export_workspace, spark_engine_for
from journeymap.errors import NotEnoughData
from journeymap.identity import stitch
from journeymap.ingest.files import expand
from journeymap.ingest.loader import LoadReport, Loader
from journeymap.ingest.store import STORE_FILE, open_store
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.load import load_definition, store_settings_for

DEFINITION_FILE = "journeymap.yml"
TEMPLATE = Path(__file__).parent / "journey" / "templates" / DEFINITION_FILE


class Workspace:
    spark_tables: dict[str, str] | None = None  # set by refresh() on a Spark workspace

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
        refresh: bool = True,
    ) -> list[LoadReport]:
        """Load files; `source` names a mapping under `sources:` or a canonical source (product, crm, ...).

        Identity is rebuilt afterwards; pass refresh=False when loading several batches of files and
        call `refresh()` once at the end."""
        mapping, override = self._mapping(source)
        files = expand(paths, fmt or (mapping.format if mapping else None))
        loader = Loader(self.con, strict=strict)
        reports = []
        for f in files:
            cb = (lambda done, f=f: progress(InputFileProgress(f.path, done, f.size))) if progress else None
            reports.append(loader.load(f, mapping, source_name=source, source_override=override, progress=cb))
        if refresh:
            self.refresh()
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

    def refresh(self):
        """Rebuild identity and the derived tables after events changed (and their Parquet, on a Spark engine)."""
        result = stitch(self.con)
        if self.definition_path.exists() and self.definition.engine.backend == "spark":
            # table -> where its Parquet now lives
            self.spark_tables = export_workspace(self.con, self.path, self.definition.engine)
        return result

    # -- analyses --------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "journey_events" not in tables:
            raise NotEnoughData(f"{self.path}: no events yet",
                                add=f"events: run `journeymap ingest FILE --workspace {self.path}`")
        if self.definition_path.exists() and self.definition.engine.backend == "spark":
            # the journey tables as Parquet, analyses on Spark (docs/spark.md)
            return spark_engine_for(self.con, self.path, self.definition.engine)
        return duckdb_engine(self.con)

    def has_events(self) -> bool:
        """Whether the store holds journey events (without creating a store where there is none)."""
        if self._con is None and not (self.path / STORE_FILE).exists():
            return False
        tables = {r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
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
        return [f.as_dict() for f in definition_findings(duckdb_engine(self.con), definition, level)]

    def run(self, name: str, progress=None, **options) -> dict:
        """Run the analysis `name` of the registry (journeymap.analyses) with its options, as the CLI's
        `journeymap NAME --json` and the API's /api/v1/NAME do: the same defaults, checks and result.

        >>> ws.run("funnel", steps="signed_up,report_created", window="30d")   # doctest: +SKIP
        """
        from journeymap.analyses import get

        return get(name)(self, options, progress)

    # One method per analysis of the registry; options and defaults are the registry's (`journeymap NAME --help`).

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

    def add_interviews(self, directory: str | Path) -> dict:
        """Ingest a folder of interview transcripts (.txt with an `email:` / `date:` header) as events."""
        from journeymap.insights.voice.interviews import add_interviews

        return add_interviews(directory, self.path / "data" / "interviews", self.ingest)


class InputFileProgress:
    __slots__ = ("path", "done", "total")

    def __init__(self, path: Path, done: int, total: int):
        self.path, self.done, self.total = path, done, total
