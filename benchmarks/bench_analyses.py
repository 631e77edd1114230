"""Paths, variants, retention and lifecycle on one synthetic log (run on demand).

    .venv/bin/python benchmarks/bench_analyses.py [--events 1000000] [--runs 3]

The events come from `events.event_table(n)` (30 names, skewed customers, two years) and are loaded
through a real Workspace (Parquet ingest, identity stitched). Each job is timed end to end through
the same Python API the CLI calls; the table prints the median of `--runs` runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from events import event_table  # noqa: E402

from journeymap.engine.journey_paths import labelled_events  # noqa: E402
from journeymap.engine.lifecycle import lifecycle, stickiness  # noqa: E402
from journeymap.engine.paths import paths_result  # noqa: E402
from journeymap.engine.retention import retention  # noqa: E402
from journeymap.engine.variants import variants_result  # noqa: E402
from journeymap.workspace import Workspace  # noqa: E402


def jobs(ws: Workspace) -> dict:
    def events():
        return labelled_events(ws.engine, None, "event", "person")

    return {
        "paths: start event_00, depth 5, top 20": lambda: paths_result(events(), start="event_00", depth=5, top=20),
        "paths: before event_05, depth 4": lambda: paths_result(events(), before="event_05", depth=4, top=20),
        "paths: all edges, collapse repeats": lambda: paths_result(events(), collapse_repeats=True),
        "variants: top 20, converted event_10": lambda: variants_result(events(), converted="event_10", top=20),
        "retention: weekly, first time": lambda: retention(ws.engine, "event_00", "event_01", interval="week"),
        "retention: monthly, recurring, on or after": lambda: retention(
            ws.engine, "event_00", "event_01", interval="month", mode="recurring", period="on_or_after"),
        "retention: day brackets 1-3, 4-7, 8-14": lambda: retention(ws.engine, "event_00", "event_01", interval="day",
                                                                     brackets="1-3,4-7,8-14"),
        "lifecycle: weekly": lambda: lifecycle(ws.engine, interval="week"),
        "stickiness: monthly, DAU/MAU": lambda: stickiness(ws.engine, interval="month"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jm-bench-analyses-"))
    try:
        pq.write_table(event_table(args.events), work / "events.parquet", compression="zstd")
        ws = Workspace(work / "ws")
        ws.path.mkdir()
        t0 = time.perf_counter()
        ws.ingest([str(work / "events.parquet")])
        print(f"{args.events:,} events ingested and stitched in {time.perf_counter() - t0:.1f} s; "
              f"median of {args.runs} runs")
        for name, job in jobs(ws).items():
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                job()
                times.append(time.perf_counter() - t)
            print(f"| {name} | {statistics.median(times):.2f} s |", flush=True)
        ws.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
