"""Engine backends: the one place that knows which engine runs the metric definitions.

Metrics are Ibis expressions written once. The few functions Ibis does not translate the same way
everywhere (reading a property out of JSON text) are declared here per backend, as builtins of that
engine, so no Python UDF ever runs per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duckdb_json_get(doc: str, path: str) -> str: ...


@ibis.udf.scalar.builtin(name="get_json_object")
def _spark_json_get(doc: str, path: str) -> str: ...


@dataclass
class Engine:
    """An Ibis backend plus the builtins that differ between engines."""

    backend: Any
    name: str  # duckdb | pyspark

    def table(self, name: str) -> ir.Table:
        return self.backend.table(name)

    def json_get(self, doc: ir.StringValue, path: str) -> ir.StringValue:
        """The value at a dotted property path as text (NULL when absent), e.g. `plan` or `billing.plan`."""
        json_path = "$." + ".".join(f'"{p}"' if not p.isidentifier() else p for p in path.split("."))
        fn = _duckdb_json_get if self.name == "duckdb" else _spark_json_get
        return fn(doc, json_path)

    def execute(self, expr: ir.Expr) -> pa.Table:
        return expr.to_pyarrow()

    def materialize(self, expr: ir.Table) -> ir.Table:
        """Compute once and reuse: every metric reads the annotated events many times.

        DuckDB gets a named temp table written with plain SQL (Ibis 12's cache and create_table
        emit a DROP that DuckDB 2.0 cannot parse); Spark caches the DataFrame."""
        if self.name != "duckdb":
            return expr.cache()
        self._n = getattr(self, "_n", 0) + 1
        name = f"_jm_cache_{id(self)}_{self._n}"
        sql = self.backend.compile(expr)
        self.backend.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')
        return self.backend.table(name)


def duckdb_engine(con) -> Engine:
    """Wrap an open DuckDB connection (the workspace store)."""
    return Engine(ibis.duckdb.from_connection(con), "duckdb")


def spark_engine(session) -> Engine:
    return Engine(ibis.pyspark.connect(session), "pyspark")
