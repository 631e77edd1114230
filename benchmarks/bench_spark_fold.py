"""The journey state folded by Spark jobs against the DuckDB fold, on the same store (run on demand).

    .venv/bin/python benchmarks/bench_spark_fold.py [--events 1000000] [--new-events K] [--runs 2] [--master local[2]]

The log is `events.event_table(n)` with benchmarks/bench_definition.py's journeymap.yml. All but the newest K
events (default 1%) are loaded and refreshed, and the Spark state is built from scratch (state.spark_fold, timed:
"rebuild"); then, per run, a copy of that store and of the Spark state gets the newest K events: the store
stitches and folds with DuckDB (timed), then Spark folds the same store (timed). Before a time is printed, the
Spark state's rows (read from its Parquet by DuckDB) are checked equal to the DuckDB state's, signature aside.
Spark's start is not timed. Medians of --runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def same_rows(con, root: Path) -> bool:
    """Whether the Spark state under `root` (read by DuckDB from the folders its manifest names) holds the DuckDB
    state's rows, every column but the signature."""
    from journeymap.state.spark_files import read_manifest

    manifest = read_manifest(root)
    for level, state in manifest["levels"].items():
        for name, buckets in state["tables"].items():
            files = [str(root / folder / "*.parquet") for folder in buckets.values()]
            columns = ", ".join(f'"{c}"' for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND column_name <> 'signature' "
                "ORDER BY column_index", [f"state_{name}_{level}"]).fetchall())
            theirs = f"SELECT {columns} FROM read_parquet({files})"
            ours = f"SELECT {columns} FROM state_{name}_{level}"
            differ = con.execute(f"SELECT count(*) FROM (({theirs}) EXCEPT ALL ({ours}) UNION ALL "
                                 f"({ours}) EXCEPT ALL ({theirs}))").fetchone()[0]
            if differ:
                print(f"MISMATCH: {level} {name}: {differ} rows differ", flush=True)
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--new-events", type=int, help="how many of the newest events arrive last (default: 1%%)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    from bench_definition import write_definition
    from events import write_newest_apart
    from stores import copy_store

    from journeymap.engine.spark_backend import spark_session_for
    from journeymap.journey.settings import EngineConfig
    from journeymap.state.spark_fold import spark_fold
    from journeymap.workspace import Workspace

    n_new = args.new_events or max(1, args.events // 100)
    work = Path(tempfile.mkdtemp(prefix="jm-bench-spark-fold-"))
    session = spark_session_for(EngineConfig(backend="spark", master=args.master))
    session.sparkContext.setLogLevel("ERROR")
    print(f"{args.events:,} events, the newest {n_new:,} arriving last; Spark {session.version} {args.master}; "
          f"median of {args.runs} runs; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        write_newest_apart(args.events, n_new, work)
        before = work / "before"
        before.mkdir()
        write_definition(before)
        with Workspace(before) as ws:
            ws.ingest([str(work / "old.parquet")])
            t = time.perf_counter()
            built = spark_fold(session, ws.con, ws.definition, before / "spark_state")
            rebuild = time.perf_counter() - t
            units = sum(lv.units for lv in built.levels)
            ws.con.execute("CHECKPOINT")
        print("| step | seconds | note |\n|---|---|---|")
        print(f"| Spark state rebuild, {args.events - n_new:,} events | {rebuild:.2f} | {units:,} units, both levels |",
              flush=True)
        duck, spark, checked = [], [], True
        for _ in range(args.runs):
            run = work / "run"
            copy_store(before, run)
            with Workspace(run) as ws:
                ws.ingest([str(work / "new.parquet")], refresh=False)
                t = time.perf_counter()
                result = ws.refresh()
                duck.append((time.perf_counter() - t, result.state.seconds))
                t = time.perf_counter()
                report = spark_fold(session, ws.con, ws.definition, run / "spark_state")
                spark.append(time.perf_counter() - t)
                checked = checked and same_rows(ws.con, run / "spark_state")
        changed = ", ".join(f"{lv.level}: {lv.changed_units:,} changed ({lv.appended_units:,} appended, "
                            f"{lv.late_units:,} late, {lv.new_units:,} new)" for lv in report.levels)
        refresh_s, fold_s = (statistics.median(x) for x in zip(*duck, strict=True))
        spark_s = statistics.median(spark)
        print(f"| DuckDB refresh of {n_new:,} new events (stitch + fold) | {refresh_s:.2f} | fold {fold_s:.2f} |")
        print(f"| Spark fold of the same store | {spark_s:.2f} | {spark_s / rebuild:.1%} of a Spark rebuild; "
              f"{changed} |")
        print(f"| Spark state equals the DuckDB state | {'yes' if checked else 'NO'} | every row, signature aside |",
              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
