"""Engine backends: the one place that knows which engine runs the metric definitions.

Metrics are Ibis expressions written once. The few functions Ibis does not translate the same way
everywhere (reading a property out of JSON text) are declared here per backend, as builtins of that
engine, so no Python UDF ever runs per row.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from journeymap.engine import compile_cache
from journeymap.engine.duckdb_tables import duckdb_table


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duckdb_json_get(doc: str, path: str) -> str: ...


@ibis.udf.scalar.builtin(name="get_json_object")
def _spark_json_get(doc: str, path: str) -> str: ...


@ibis.udf.scalar.builtin(name="json_keys")
def _duckdb_json_keys(doc: str, path: str) -> list[str]: ...


@ibis.udf.scalar.builtin(name="json_object_keys")
def _spark_json_keys(doc: str) -> list[str]: ...


_SHARES = itertools.count(1)


@dataclass
class Engine:
    """An Ibis backend plus the builtins that differ between engines."""

    backend: Any
    name: str  # duckdb | pyspark
    _cached: list = field(default_factory=list, repr=False)
    journey: dict = field(default_factory=dict, repr=False)
    """Journey tables already computed, by (level, annotation key): {"events": table, "visits": table}.
    The workspace sets it from the journey state when the state is current (journeymap.state); the
    engine reads them instead of annotating the events again (engine.annotate.journey_tables)."""

    def __post_init__(self) -> None:
        if not getattr(self.backend.compile, "cached", False):
            self.backend.compile = compile_cache.cached(self.backend.compile, self.name)

    def table(self, name: str) -> ir.Table:
        if self.name == "duckdb":
            return duckdb_table(self.backend, name)
        return self.backend.table(name)

    def json_get(self, doc: ir.StringValue, path: str) -> ir.StringValue:
        """The value at a dotted property path as text (NULL when absent), e.g. `plan` or `billing.plan`.

        Keys that are not identifiers are quoted the way each engine's JSON path wants them:
        `$."first name"` on DuckDB, `$['first name']` on Spark."""
        keys = path.split(".")
        if self.name == "duckdb":
            return _duckdb_json_get(doc, "$" + "".join(f".{k}" if k.isidentifier() else f'."{k}"' for k in keys))
        return _spark_json_get(doc, "$" + "".join(f".{k}" if k.isidentifier() else f"['{k}']" for k in keys))

    def json_keys(self, doc: ir.StringValue, path: str | None = None) -> ir.ArrayValue:
        """The keys of the JSON object in `doc` (at the dotted `path`, when given): NULL or empty otherwise."""
        if path:
            doc = self.json_get(doc, path)  # an object's value comes back as its JSON text
        if self.name == "duckdb":
            return _duckdb_json_keys(doc, "$")
        return _spark_json_keys(doc)

    def execute(self, expr: ir.Expr) -> pa.Table:
        return expr.to_pyarrow()

    def materialize(self, expr: ir.Table) -> ir.Table:
        """Compute once and reuse: every metric reads the annotated events many times.

        Each call gets its own name, so releasing an inner scope never drops what an outer one still
        reads (Ibis's `cache()` shares one view between equal expressions). DuckDB gets a temp table
        written with plain SQL (Ibis 12's cache and create_table emit a DROP that DuckDB 2.0 cannot
        parse); Spark a cached DataFrame behind a temp view. `release` frees both."""
        name = self._next_name()
        if self.name != "duckdb":
            session = self.backend._session
            df = session.sql(self.backend.compile(expr)).cache()
            df.createOrReplaceTempView(name)
            self._cached.append((name, df))
            return self.backend.table(name)
        return self._temp_table(name, self.backend.compile(expr))

    def _next_name(self) -> str:
        """The name of the next table this engine keeps (engine.compile_cache.SCOPED matches it)."""
        return f"_jm_cache_{id(self)}_{len(self._cached) + 1}"

    def _temp_table(self, name: str, sql: str) -> ir.Table:
        """DuckDB: `sql`'s rows kept as temp table `name`, dropped by `release`."""
        self.backend.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')
        self._cached.append(name)
        return duckdb_table(self.backend, name)

    def in_memory(self, table: pa.Table) -> ir.Table:
        """A small table made in Python (scoring dates, scored texts) as a table the engine reads.

        On DuckDB a temp table under a name of this engine's (released with the scope, as `materialize`'s),
        so that what reads it compiles once (engine.compile_cache keys a table by name; an ibis.memtable is
        new at every call and compiled each time: about a second for the churn features). Elsewhere an
        ibis.memtable."""
        if self.name != "duckdb":
            return ibis.memtable(table)
        name, arrow = self._next_name(), f"_jm_arrow_{id(self)}"
        self.backend.con.register(arrow, table)
        try:
            return self._temp_table(name, f'SELECT * FROM "{arrow}"')
        finally:
            self.backend.con.unregister(arrow)

    @property
    def lazy_shares(self) -> bool:
        """Whether `share` defers the work to the statement that reads the table (DuckDB)."""
        return self.name == "duckdb"

    def share(self, expr: ir.Table) -> ir.Table:
        """A table that later expressions of one statement read more than once: on DuckDB a named CTE, which
        DuckDB computes once per statement that reads it twice, with no temp table written (each write costs
        more than a short funnel's joins); on Spark `materialize`d, since Spark inlines a CTE at every read."""
        if not self.lazy_shares:
            return self.materialize(expr)
        return expr.alias(f"_jm_share_{id(self)}_{next(_SHARES)}")

    def release(self, keep: int = 0) -> None:
        """Drop what `materialize` kept (all but the first `keep`): a server maps many times on one connection."""
        while len(self._cached) > keep:
            item = self._cached.pop()
            if isinstance(item, str):
                self.backend.con.execute(f'DROP TABLE IF EXISTS "{item}"')
            else:
                name, df = item
                self.backend._session.catalog.dropTempView(name)
                df.unpersist()

    @contextmanager
    def scope(self) -> Iterator[Engine]:
        """Release, on exit, whatever was materialized inside the block."""
        mark = len(self._cached)
        try:
            yield self
        finally:
            self.release(mark)


def duckdb_engine(con) -> Engine:
    """Wrap an open DuckDB connection (the workspace store)."""
    return Engine(ibis.duckdb.from_connection(con), "duckdb")


def spark_engine(session, tables: dict[str, str | list[str]] | None = None) -> Engine:
    """Wrap a SparkSession. `tables` maps table names (journey_events, persons, accounts) to a Parquet path, or
    to the paths that together hold the table (a Spark state's month folders), registered as temporary
    views so that `Engine.table(name)` finds them."""
    for name, paths in (tables or {}).items():
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        session.read.parquet(*map(str, paths)).createOrReplaceTempView(name)
    return Engine(ibis.pyspark.connect(session), "pyspark")
