"""An analysis's statement kept once per process, keyed by its options and the schemas of the tables it reads.

engine.compile_cache keeps the SQL of an expression, but the expression is still built at every call: for
retention at 1M events about 9 ms of Ibis beside 48 ms of SQL (docs/benchmarks.md). An analysis whose one
statement depends only on its options and on the tables it names (no table the engine keeps per call, no data
read into Python to build it) can skip the building: `rows` reads the tables' schemas (one DESCRIBE each,
engine.duckdb_tables) and, for options and schemas seen before, runs the SQL kept for them. The SQL names tables
and does not hold them, so every engine of the process shares the entries (a server builds one engine per
request); a table written again with other columns has another schema, so another entry. DuckDB only: on Spark
the expression is built and run at every call.

Both a first call and a later one run the SQL the same way (`con.sql(sql).to_arrow_table()`), so the caller reads
the same Arrow types whichever answered. `stats` counts the lookups; the latest `SIZE` entries are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import ibis.expr.types as ir
import pyarrow as pa

from journeymap.engine.recent import Recent

SIZE = 256
"""Entries kept (least recently used dropped); 0 builds every statement."""

stats = {"hits": 0, "misses": 0}
_entries = Recent(lambda: SIZE, stats)


def clear() -> None:
    _entries.clear()


def rows(engine, key: tuple, tables: tuple[str, ...], build: Callable[[], ir.Expr]) -> pa.Table:
    """What `engine.execute(build())` returns, `build` called only for a `key` (the analysis's name and every
    option its statement depends on) and schemas of `tables` not seen before (DuckDB)."""
    if engine.name != "duckdb" or SIZE <= 0:
        return engine.execute(build())
    full = (key, tuple((name, engine.table(name).schema()) for name in tables))
    sql = _entries.get(full)
    if sql is None:
        sql = engine.backend.compile(build())
        _entries.put(full, sql)
    return engine.backend.con.sql(sql).to_arrow_table()
