"""engine.duckdb_tables: the table an engine reads is the expression Ibis's own lookup builds, for every table of
a refreshed demo store and for tables of every column type, and a table written again is read with its new columns."""

from __future__ import annotations

import duckdb
import ibis.common.exceptions as exc
import pytest

from journeymap.engine.backends import duckdb_engine
from journeymap.engine.duckdb_tables import duckdb_table
from journeymap.workspace import Workspace


@pytest.fixture()
def engine():
    con = duckdb.connect()
    yield duckdb_engine(con)
    con.close()


def test_every_table_of_a_demo_store_as_ibis_reads_it(ingested_demo):
    with Workspace(ingested_demo(300, 7).workspace) as ws:
        backend = ws.engine.backend
        names = [n for (n,) in ws.con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        assert {"journey_events", "persons", "accounts", "state_units_person"} <= set(names)
        for name in names:
            ours, theirs = duckdb_table(backend, name), backend.table(name)
            assert ours.op() == theirs.op(), name
            assert ws.engine.table(name).op() == theirs.op(), name
            assert backend.compile(ours.limit(3)) == backend.compile(theirs.limit(3))


def test_every_column_type_nulls_and_quoted_names(engine):
    backend, con = engine.backend, engine.backend.con
    con.execute('CREATE TABLE "odd ""name"""' + """ (
        a TINYINT NOT NULL, b SMALLINT, c INTEGER, d BIGINT, e HUGEINT, f UBIGINT, g FLOAT, h DOUBLE,
        i DECIMAL(18, 3), j VARCHAR, k BOOLEAN, l DATE, m TIMESTAMP, n TIMESTAMPTZ, o INTERVAL, p BLOB,
        q JSON, r UUID, s INTEGER[], t STRUCT(x INTEGER, "y z" VARCHAR), u MAP(VARCHAR, DOUBLE),
        v VARCHAR[3], w TIME, "x y" ENUM('p', 'q'))""")
    con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS one")
    for name in ('odd "name"', "scratch"):
        assert duckdb_table(backend, name).op() == backend.table(name).op()
    assert not duckdb_table(backend, 'odd "name"').schema()["a"].nullable


def test_a_table_written_again_is_read_with_its_new_columns(engine):
    con = engine.backend.con
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    assert list(engine.table("t").columns) == ["a"]
    con.execute("CREATE OR REPLACE TABLE t AS SELECT 1 AS a, 'x' AS adopted_reports")
    assert list(engine.table("t").columns) == ["a", "adopted_reports"]
    assert engine.execute(engine.table("t")).to_pylist() == [{"a": 1, "adopted_reports": "x"}]


def test_a_missing_table_is_ibis_table_not_found(engine):
    with pytest.raises(exc.TableNotFound, match="no_such"):
        duckdb_table(engine.backend, "no_such")
