"""Differential suite: the same journey on DuckDB and on Spark (issue 5, docs/spark.md).

One small simulated business (journeymap demo, 150 accounts) is ingested into a DuckDB workspace, its
journey tables are exported to Parquet with `export_journey_tables`, and every analysis runs on both
engines: counts must match exactly, percentiles exactly, means and rates within 1e-9 relative.
Spark starts once for the whole module (the session-scoped `spark_session` fixture).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from spark_compare import same

from journeymap.engine.backends import spark_engine
from journeymap.engine.spark_backend import (
    JOURNEY_TABLES,
    LOCAL_LISTING,
    SparkConfigError,
    export_journey_tables,
    spark_session_for,
)
from journeymap.journey.settings import EngineConfig
from journeymap.workspace import Workspace

pytestmark = pytest.mark.spark

ACCOUNTS, SEED = 150, 5


def test_same_helper_tolerances():
    same({"n": 3, "mean_seconds": 1.0, "p50_seconds": 2.5, "rows": [{"x": None}]},
         {"n": 3, "mean_seconds": 1.0 + 1e-12, "p50_seconds": 2.5, "rows": [{"x": None}]})
    for duck, spark in [({"n": 3}, {"n": 4}), ({"n": 3}, {"n": 3.0}), ({"p90": 2.5}, {"p90": 2.5 + 1e-12}),
                        ({"mean": 1.0}, {"mean": 1.001}), ({"n": 3}, {"n": 3, "extra": 1}), ([1, 2], [1])]:
        with pytest.raises(AssertionError):
            same(duck, spark)


# -- one small business, on both engines ---------------------------------------------------------

@pytest.fixture(scope="module")
def demo(ingested_demo):
    """The demo business ingested into a DuckDB workspace (closed, so tests may copy its folder)."""
    return Path(ingested_demo(ACCOUNTS, SEED).workspace)


@pytest.fixture(scope="module")
def duck(demo):
    ws = Workspace(demo)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def tables(duck, tmp_path_factory):
    return export_journey_tables(duck.con, tmp_path_factory.mktemp("parquet"))


@pytest.fixture(scope="module")
def spark(spark_session, tables):
    return spark_engine(spark_session, tables)


def test_export_is_parquet_with_plain_microsecond_timestamps_and_idempotent(duck, tables, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert set(tables) == set(JOURNEY_TABLES)
    for name, path in tables.items():
        schema = pq.read_schema(path)
        stamps = [f for f in schema if pa.types.is_timestamp(f.type)]
        assert all(f.type == pa.timestamp("us") for f in stamps), (name, schema)
        assert pq.read_metadata(path).num_rows == duck.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    assert any(pa.types.is_timestamp(f.type) for f in pq.read_schema(tables["journey_events"]))
    first = export_journey_tables(duck.con, tmp_path / "again")
    second = export_journey_tables(duck.con, tmp_path / "again")  # replaces, never appends
    assert first == second and sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(
        f"{t}.parquet" for t in JOURNEY_TABLES)
    assert pq.read_table(second["journey_events"]).equals(pq.read_table(tables["journey_events"]))


def test_session_config_errors_name_the_key():
    with pytest.raises(SparkConfigError, match="engine.master and engine.remote"):
        spark_session_for(EngineConfig(backend="spark", master="local[2]", remote="sc://h:15002"))
    with pytest.raises(SparkConfigError, match="neither engine.master .* nor engine.remote"):
        spark_session_for(EngineConfig(backend="spark"))
    with pytest.raises(SparkConfigError, match="engine.backend"):
        spark_session_for(EngineConfig(backend="duckdb", master="local[2]"))


def test_a_local_session_lists_folders_on_the_driver(spark_session):
    """A local master's session lists up to LOCAL_LISTING paths on the driver, not with a Spark job whose tasks
    would run on the same cores (the Spark fold reads one folder per event date), also when the session existed
    with Spark's default."""
    key = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    previous = spark_session.conf.get(key)
    spark_session.conf.set(key, "32")
    try:
        session = spark_session_for(EngineConfig(backend="spark", master="local[2]"))
        assert session is spark_session and session.conf.get(key) == str(LOCAL_LISTING)
    finally:
        spark_session.conf.set(key, previous)


def _analyses():
    from journeymap.engine.funnel_options import funnel_options
    from journeymap.engine.funnels import funnel
    from journeymap.engine.journey_paths import transitions_at
    from journeymap.engine.lifecycle import lifecycle
    from journeymap.engine.retention import retention
    from journeymap.engine.revenue import churn_breakdown, mrr_bridge
    from journeymap.engine.survey_report import survey_report

    steps = funnel_options("signed_up,onboarding_step_completed,report_created", window="30d")
    return {
        "transitions_stage": lambda e, d: transitions_at(e, d, "stage", d.analysis.level),
        "funnel_ordered_3_steps": lambda e, d: funnel(e, steps, "person"),
        "retention_weekly": lambda e, d: retention(e, "signed_up", "dashboard_viewed", interval="week"),
        "lifecycle_monthly": lambda e, d: lifecycle(e, interval="month", level="account"),
        "surveys": lambda e, d: survey_report(e, d, d.analysis.level, "stage", "month"),
        "revenue": lambda e, d: {**mrr_bridge(e, d), "churn": churn_breakdown(e, d)},
    }


@pytest.mark.parametrize("analysis", list(_analyses()))
def test_analysis_identical_on_spark(duck, spark, analysis):
    run = _analyses()[analysis]
    on_duck = run(duck.engine, duck.definition)
    on_spark = run(spark, duck.definition)
    assert on_duck, analysis
    same(on_duck, on_spark, analysis)


def test_analyses_have_numbers(duck):
    """The comparisons above mean something: every analysis has non-trivial output on this business."""
    a = _analyses()
    assert a["funnel_ordered_3_steps"](duck.engine, duck.definition)["steps"][2]["count"] > 0
    assert len(a["transitions_stage"](duck.engine, duck.definition)["edges"]) > 5
    assert a["retention_weekly"](duck.engine, duck.definition)["cohorts"]
    assert a["revenue"](duck.engine, duck.definition)["churn"]


# -- the engine from journeymap.yml ----------------------------------------------------------------

def test_workspace_with_spark_config_runs_on_spark(demo, duck, spark_session, tmp_path):
    """`engine: {backend: spark, master: "local[2]"}`: refresh folds the journey state with Spark jobs
    (state.spark_fold) and writes no journey table whole, `Workspace.engine` is Spark reading that state's files,
    and its transitions equal the DuckDB workspace's."""
    copy = tmp_path / "ws"
    shutil.copytree(demo, copy, ignore=shutil.ignore_patterns("*.wal"))
    config = yaml.safe_load((copy / "journeymap.yml").read_text())
    config["engine"] = {"backend": "spark", "master": "local[2]"}
    (copy / "journeymap.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    with Workspace(copy) as ws:
        assert not (copy / "data" / "spark").exists()
        ws.refresh()
        assert not list((copy / "data" / "spark").glob("*.parquet"))
        assert set(ws.spark_tables) == set(JOURNEY_TABLES) and all(
            p.startswith(str(copy / "data" / "spark" / "state")) for paths in ws.spark_tables.values() for p in paths)
        assert [(lv.level, lv.mode) for lv in ws.last_refresh.spark_state.levels] == [
            ("person", "rebuild"), ("account", "rebuild")]
        engine = ws.engine
        assert engine.name == "pyspark"
        assert {level for level, _ in engine.journey} == {"person", "account"}  # both read from the Spark state
        # `journeymap state` reads the Spark state's manifest
        assert [(r["level"], r["current"], r["units"]) for r in ws.state()] == [
            (lv.level, True, lv.units) for lv in ws.last_refresh.spark_state.levels]
        same(duck.transitions(level="stage"), ws.transitions(level="stage"), "transitions")
