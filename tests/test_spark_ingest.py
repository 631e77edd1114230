"""`journeymap ingest` on a Spark workspace whose `engine.path` is a `file://` lake (issue 5, docs/spark.md).

The store still validates, de-duplicates and stitches. The refresh then folds the journey state on Spark into the
lake, and the analyses read the journey tables from the state's files (the events by month, which the store
writes for the months its new events fall on, persons and accounts), so no refresh writes every event again.
When a fold fails, the tables are written whole through Spark's own Parquet writer, the code path of an object
store (s3a://, hdfs://), which gets no Spark state: `file://` is a URI Spark writes like any other.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from journeymap.cli.main import app
from journeymap.demo import simulate
from journeymap.engine.backends import duckdb_engine
from journeymap.engine.spark_backend import JOURNEY_TABLES, export_journey_tables, write_journey_tables_with_spark
from journeymap.identity import stitch
from journeymap.workspace import Workspace
from spark_compare import same

pytestmark = pytest.mark.spark


def _rows_equal(spark, a: str | list[str], b: str | list[str]) -> bool:
    x, y = _read(spark, a), _read(spark, b)
    return x.count() == y.count() and x.exceptAll(y).count() == 0 and y.exceptAll(x).count() == 0


def _read(spark, paths: str | list[str]):
    return spark.read.parquet(*([paths] if isinstance(paths, str) else paths))


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


def test_cli_ingest_names_the_spark_states_files_in_the_lake(lake_workspace, spark_session):
    """The refresh folded the Spark state into the lake and names its files as the journey tables: one folder per
    month of the store's events, persons and accounts one file each; nothing is written whole beside them, and
    Spark reads each table's files with the store's rows."""
    ws_path, lake, report, _ = lake_workspace
    local = lake.removeprefix("file://")
    tables = report["spark_tables"]
    assert set(tables) == set(JOURNEY_TABLES)
    assert [lv["level"] for lv in report["spark_state"]["levels"]] == ["person", "account"]
    with Workspace(ws_path) as ws:
        months = ws.con.execute("SELECT DISTINCT strftime(ts, '%Y-%m') FROM journey_events").fetchall()
        assert sorted(p.rsplit("month=", 1)[1] for p in tables["journey_events"]) == sorted(m for (m,) in months)
        assert len(months) > 12 and all(p.startswith(f"{local}/state/months/v=") for p in tables["journey_events"])
        for table in ("persons", "accounts"):
            assert len(tables[table]) == 1 and tables[table][0].startswith(f"{local}/state/{table}/v="), tables[table]
        for table in JOURNEY_TABLES:
            assert not os.path.exists(f"{local}/{table}.parquet"), table
            n = ws.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            assert _read(spark_session, tables[table]).count() == n > 0, table


def test_lake_has_the_same_rows_and_schema_as_the_local_export(lake_workspace, spark_session, tmp_path):
    ws_path, lake, report, _ = lake_workspace
    with Workspace(ws_path) as ws:
        local = export_journey_tables(ws.con, tmp_path / "copy")
    for table in JOURNEY_TABLES:
        via_state, via_duckdb = report["spark_tables"][table], local[table]
        assert _read(spark_session, via_state).schema == spark_session.read.parquet(via_duckdb).schema, table
        assert _rows_equal(spark_session, via_state, via_duckdb), table


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
    before = {t: _read(spark_session, p).count() for t, p in report["spark_tables"].items()}
    result = CliRunner().invoke(app, ["ingest", last, "--source", source, "--workspace", str(ws_path), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["accepted"] == 0 and again["duplicate"] > 0  # the store de-duplicated the file
    assert {t: _read(spark_session, p).count() for t, p in again["spark_tables"].items()} == before


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




def test_a_failed_fold_writes_the_tables_whole_until_a_fold_succeeds(spark_session, tmp_path, monkeypatch):
    """The analyses always read every event the store has: from the Spark state's files after a fold; when a fold
    fails, from the tables the refresh then writes whole through Spark (read as they are until the next stitch,
    not written again by each read); when a refresh was killed between its stitch and its fold's commit, from
    the tables written whole when an engine is made. The next fold that succeeds removes the whole copies."""
    import journeymap.state.spark_fold as spark_fold_module

    base = dt.datetime(2025, 1, 1)
    ws_path, lake = tmp_path / "ws", f"file://{tmp_path}/lake"
    Workspace.init(ws_path)
    (ws_path / "journeymap.yml").write_text(json.dumps({
        "analysis": {"level": "person"}, "engine": {"backend": "spark", "master": "local[2]", "path": lake},
        "stages": [{"id": "trial", "name": "Trial", "entry": {"event": "signed_up"}},
                   {"id": "active", "name": "Active", "entry": {"event": "used"}}]}))

    def batch(name: str, rows: list[tuple[str, str, int]]) -> str:
        path = tmp_path / f"{name}.csv"
        path.write_text("customer_id,event,ts,source,message_id\n" + "".join(
            f"{who},{event},{(base + dt.timedelta(days=day)).isoformat()}Z,product,{name}{i}\n"
            for i, (who, event, day) in enumerate(rows)))
        return str(path)

    def ingest(path: str) -> dict:
        result = CliRunner().invoke(app, ["ingest", path, "--workspace", str(ws_path), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def store_rows(ws) -> dict[str, int]:
        return {t: ws.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in JOURNEY_TABLES}

    def engine_rows(ws) -> dict[str, int]:
        engine = ws.engine
        return {t: engine.table(t).count().execute() for t in JOURNEY_TABLES}

    local = tmp_path / "lake"
    first = ingest(batch("a", [("ann", "signed_up", 0), ("ann", "used", 1)]))
    assert [p.rsplit("/", 1)[1] for p in first["spark_tables"]["journey_events"]] == ["month=2025-01"]
    assert not list(local.glob("*.parquet"))

    def fail(*args, **kwargs):
        raise RuntimeError("the cluster is gone")

    monkeypatch.setattr(spark_fold_module, "spark_fold", fail)
    second = ingest(batch("b", [("bo", "signed_up", 3), ("ann", "used", 4)]))
    assert "the cluster is gone" in second["spark_state"]["note"]
    assert second["spark_tables"] == {t: [f"{lake}/{t}.parquet"] for t in JOURNEY_TABLES}
    for table in JOURNEY_TABLES:
        assert (local / f"{table}.parquet" / "_SUCCESS").is_file(), table  # Spark's writer: a folder of part files
    written = {t: (local / f"{t}.parquet" / "_SUCCESS").stat().st_mtime_ns for t in JOURNEY_TABLES}
    with Workspace(ws_path) as ws:
        assert store_rows(ws)["journey_events"] == 4
        assert engine_rows(ws) == store_rows(ws)
        assert {lv["level"]: lv["current"] for lv in ws.state()} == {"person": False, "account": False}
    assert {t: (local / f"{t}.parquet" / "_SUCCESS").stat().st_mtime_ns for t in JOURNEY_TABLES} == written

    # killed after its stitch, before its fold: the whole tables lag the store as well, and are written again
    with Workspace(ws_path) as ws:
        ws.ingest([batch("c", [("cy", "signed_up", 5)])], refresh=False)
        stitch(ws.con)
        assert engine_rows(ws) == store_rows(ws) and store_rows(ws)["journey_events"] == 5
    assert all((local / f"{t}.parquet" / "_SUCCESS").stat().st_mtime_ns > written[t] for t in JOURNEY_TABLES)

    monkeypatch.undo()
    with Workspace(ws_path) as ws:
        ws.refresh()
        assert ws.last_refresh.spark_state is not None and not ws.last_refresh.spark_state_note
        assert set(ws.spark_tables["journey_events"]) == {
            str(local / "state" / f) for f in json.loads((local / "state" / "manifest.json").read_text())["months"].values()}
        assert not list(local.glob("*.parquet"))
        assert engine_rows(ws) == store_rows(ws)
        assert {lv["level"]: lv["current"] for lv in ws.state()} == {"person": True, "account": True}
