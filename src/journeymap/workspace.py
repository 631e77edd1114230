"""A workspace: a folder with `journeymap.yml`, a `data/` folder and one DuckDB store.

This is the Python API:

    >>> ws = Workspace.init("acme")                       # doctest: +SKIP
    >>> ws.ingest(["exports/*.csv"], source="crm")          # doctest: +SKIP
    >>> ws.transitions(level="stage")                       # doctest: +SKIP
    >>> ws.journey_map()                                    # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from journeymap.engine.backends import Engine, duckdb_engine
from journeymap.engine.spark_backend import export_workspace, spark_engine_for
from journeymap.identity import stitch
from journeymap.ingest.files import expand
from journeymap.ingest.loader import LoadReport, Loader
from journeymap.ingest.store import open_store
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
            raise FileNotFoundError(f"{self.path}: no events yet; run `journeymap ingest FILE --workspace {self.path}`")
        if self.definition_path.exists() and self.definition.engine.backend == "spark":
            # the journey tables as Parquet, analyses on Spark (docs/spark.md)
            return spark_engine_for(self.con, self.path, self.definition.engine)
        return duckdb_engine(self.con)

    def transitions(self, level: str = "event", by: str | None = None, collapse_repeats: bool = False) -> dict:
        from journeymap.engine.journey_paths import transitions_at

        definition = self.definition if level != "event" or self.definition_path.exists() else None
        unit_level = by or (definition.analysis.level if definition else "person")
        return transitions_at(self.engine, definition, level, unit_level, collapse_repeats)

    def surveys(self, group: str = "stage", interval: str = "month", by: str | None = None) -> dict:
        from journeymap.engine.survey_report import survey_report

        return survey_report(self.engine, self.definition, by or self.definition.analysis.level, group, interval)

    def revenue(self) -> dict:
        from journeymap.engine.revenue import churn_breakdown, mrr_bridge

        return {**mrr_bridge(self.engine, self.definition), "churn": churn_breakdown(self.engine, self.definition)}

    def journey_map(self, level: str | None = None, progress=None, insights: bool = True,
                    date_from=None, date_to=None) -> dict:
        from journeymap.insights.journey_map import build_map

        return build_map(self.engine, self.definition, level, progress, insights=insights, date_from=date_from,
                         date_to=date_to)

    def risk(self, at=None, horizon_days: int = 90, model: str = "gbm", top: int | None = None, seed: int = 0,
             progress=None) -> dict:
        """Churn risk per paying account at `at` with reasons, and the model's held-out evaluation
        (docs/metrics/health-and-risk.md)."""
        from journeymap.insights.churn_model import risk_report
        from journeymap.insights.features import as_datetime

        at = as_datetime(at) if at is not None else None
        return risk_report(self.engine, self.definition, at, horizon_days, model, top, seed, progress)

    def health(self, at=None, horizon_days: int = 90, weights: str = "auto", progress=None) -> dict:
        """Health score 0-100 per paying account, bands, the backtest and expansion signals."""
        from journeymap.insights.features import as_datetime
        from journeymap.insights.health import health_report

        at = as_datetime(at) if at is not None else None
        return health_report(self.engine, self.definition, at, horizon_days, weights, progress=progress)

    def voice(self, level: str | None = None, by=None, n_themes: int | None = None, seed: int = 0,
              method: str = "tfidf") -> dict:
        """Sentiment and themes of customer text per stage, touchpoint, persona, period and kind
        (docs/metrics/voice-of-customer.md)."""
        from journeymap.insights.voice import GROUPS, voice

        return voice(self.engine, self.definition, level, by or GROUPS, n_themes=n_themes, seed=seed, method=method)

    def add_interviews(self, directory: str | Path) -> dict:
        """Ingest a folder of interview transcripts (.txt with an `email:` / `date:` header) as events."""
        from journeymap.insights.interviews import add_interviews

        return add_interviews(directory, self.path / "data" / "interviews", self.ingest)

    def friction(self, level: str | None = None) -> dict:
        """Friction and delight moments ranked by units and MRR at stake (docs/metrics/friction.md)."""
        from journeymap.insights.friction import friction

        return friction(self.engine, self.definition, level)

    def moments(self, level: str | None = None, within_days: float = 14, horizon_days: float = 90, min_units: int = 30,
                population: str | None = None, exclude: list[str] | None = None, include: list[str] | None = None) -> dict:
        """Moments of truth: early behaviours ranked by the retention that goes with them, and a suggested
        activation definition (docs/metrics/moments-of-truth.md)."""
        from journeymap.insights.moments import moments_of_truth

        return moments_of_truth(self.engine, self.definition, level, within_days, horizon_days, min_units,
                                exclude=exclude, include=include, population=population)

    def clv(self, margin: float = 0.8, annual_discount: float = 0.10, spend=None,
            touch_sources=("marketing", "crm")) -> dict:
        """Lifetime value by persona and acquisition channel, and LTV:CAC with a spend file (docs/metrics/clv.md)."""
        from journeymap.insights.lifetime_value import lifetime_value

        return lifetime_value(self.engine, self.definition, margin=margin, annual_discount=annual_discount, spend=spend,
                              touch_sources=touch_sources)


class InputFileProgress:
    __slots__ = ("path", "done", "total")

    def __init__(self, path: Path, done: int, total: int):
        self.path, self.done, self.total = path, done, total
