"""`journeymap ingest` on a Spark workspace writes the journey tables through Spark (issue 5, docs/spark.md).

With `engine: {backend: spark, path: <URI>}` the store still validates, de-duplicates and stitches; the
journey tables then go to the URI through Spark's own Parquet writer. `file://` is a URI Spark writes
like any other (s3a://, hdfs://), so these tests exercise the same code path a cluster would.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from journeymap.cli.main import app
from journeymap.demo import simulate
from journeymap.engine.backends import duckdb_engine
from journeymap.engine.spark_backend import JOURNEY_TABLES, export_journey_tables, write_journey_tables_with_spark
from journeymap.workspace import Workspace
from spark_compare import same

pytestmark = pytest.mark.spark


def _rows_equal(spark, a: str, b: str) -> bool:
    x, y = spark.read.parquet(a), spark.read.parquet(b)
    return x.count() == y.count() and x.exceptAll(y).count() == 0 and y.exceptAll(x).count() == 0


@pytest.fixture(scope="module")
def lake_workspace(spark_session, tmp_path_factory):
    """A 40-account demo business whose journeymap.yml says Spark with a file:// lake; the last file is
    ingested through the CLI, which refreshes and so writes the lake."""
    folder = tmp_path_factory.mktemp("spark_ingest")
    sim = simulate(folder, accounts=40, seed=3)
    lake = f"file://{folder}/lake"
    config = yaml.safe_load((sim.workspace / "journeymap.yml").read_text())
    config["engine"] = {"backend": "spark", "master": "local[2]", "path": lake}
    (sim.workspace / "journeymap.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    *first, (last, source) = sim.files
    with Workspace(sim.workspace) as ws:
        for path, src in first:
            ws.ingest([str(path)], source=src, refresh=False)
    result = CliRunner().invoke(app, ["ingest", str(last), "--source", source, "--workspace", str(sim.workspace), "--json"])
    assert result.exit_code == 0, result.output
    return sim.workspace, lake, json.loads(result.stdout), (str(last), source)


def test_cli_ingest_writes_the_lake_through_spark(lake_workspace, spark_session):
    ws_path, lake, report, _ = lake_workspace
    assert report["spark_tables"] == {t: f"{lake}/{t}.parquet" for t in JOURNEY_TABLES}
    local = lake.removeprefix("file://")
    for table in JOURNEY_TABLES:
        written = f"{local}/{table}.parquet"
        # Spark's writer, not DuckDB's COPY: a folder of part files with Spark's _SUCCESS marker
        assert os.path.isfile(f"{written}/_SUCCESS"), written
    with Workspace(ws_path) as ws:
        for table in JOURNEY_TABLES:
            n = ws.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            assert spark_session.read.parquet(report["spark_tables"][table]).count() == n > 0, table


def test_lake_has_the_same_rows_and_schema_as_the_local_export(lake_workspace, spark_session, tmp_path):
    ws_path, lake, report, _ = lake_workspace
    with Workspace(ws_path) as ws:
        local = export_journey_tables(ws.con, tmp_path / "copy")
    for table in JOURNEY_TABLES:
        via_spark, via_duckdb = report["spark_tables"][table], local[table]
        assert spark_session.read.parquet(via_spark).schema == spark_session.read.parquet(via_duckdb).schema, table
        assert _rows_equal(spark_session, via_spark, via_duckdb), table


def test_analyses_over_the_lake_equal_duckdb(lake_workspace):
    """The workspace's engine is Spark over the lake: stage transitions, a funnel and weekly retention
    equal DuckDB's over the store."""
    from journeymap.engine.funnel_options import funnel_options
    from journeymap.engine.funnels import funnel
    from journeymap.engine.journey_paths import transitions_at
    from journeymap.engine.retention import retention

    ws_path, _, _, _ = lake_workspace
    steps = funnel_options("signed_up,onboarding_step_completed,report_created", window="30d")
    with Workspace(ws_path) as ws:
        spark, duck, d = ws.engine, duckdb_engine(ws.con), ws.definition
        assert spark.name == "pyspark"
        for name, run in {
            "transitions_stage": lambda e: transitions_at(e, d, "stage", d.analysis.level),
            "funnel": lambda e: funnel(e, steps, "person"),
            "retention": lambda e: retention(e, "signed_up", "dashboard_viewed", interval="week"),
        }.items():
            on_duck = run(duck)
            assert on_duck, name
            same(on_duck, run(spark), name)


def test_reingest_replaces_the_lake_never_appends(lake_workspace, spark_session):
    ws_path, lake, report, (last, source) = lake_workspace
    before = {t: spark_session.read.parquet(p).count() for t, p in report["spark_tables"].items()}
    result = CliRunner().invoke(app, ["ingest", last, "--source", source, "--workspace", str(ws_path), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["accepted"] == 0 and again["duplicate"] > 0  # the store de-duplicated the file
    assert {t: spark_session.read.parquet(p).count() for t, p in again["spark_tables"].items()} == before


def test_many_small_batches_append_to_one_table(lake_workspace, spark_session, tmp_path):
    """Batches after the first are appended: with 1,000-row batches the table is many part files and
    still exactly the store's rows."""
    ws_path, _, report, _ = lake_workspace
    target = f"file://{tmp_path}/small"
    with Workspace(ws_path) as ws:
        n = ws.con.execute("SELECT count(*) FROM journey_events").fetchall()[0][0]
        out = write_journey_tables_with_spark(spark_session, ws.con, target, batch_rows=1_000)
    assert n > 5_000
    parts = list((tmp_path / "small" / "journey_events.parquet").glob("part-*.parquet"))
    assert len(parts) >= n // 1_000
    assert _rows_equal(spark_session, out["journey_events"], report["spark_tables"]["journey_events"])


def test_store_only_tables_are_required(spark_session, tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    with pytest.raises(FileNotFoundError, match="journey_events"):
        write_journey_tables_with_spark(spark_session, con, f"file://{tmp_path}/lake")
    con.close()


