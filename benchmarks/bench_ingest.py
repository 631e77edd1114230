"""Ingest throughput into a workspace's DuckDB file: canonical Parquet and CSV (run on demand).

    .venv/bin/python benchmarks/bench_ingest.py [--events 1000000] [--runs 3]

Targets on the 2-core reference machine: >= 1M events/s for Parquet, >= 300k events/s for CSV (with or
without message_id; without, each id is derived from the row's content and occurrence number).
Each run ingests into a fresh workspace (so every row is new and de-duplication does its full work).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from events import event_table  # noqa: E402

from journeymap.ingest.files import expand  # noqa: E402
from journeymap.ingest.loader import Loader  # noqa: E402
from journeymap.ingest.store import open_store  # noqa: E402


def ingest_once(path: Path, work: Path) -> tuple[float, int]:
    ws = work / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir()
    con = open_store(ws)
    t0 = time.perf_counter()
    (f,) = expand([str(path)])
    r = Loader(con).load(f)
    seconds = time.perf_counter() - t0
    con.close()
    assert r.rejected == 0, r.samples[:3]
    return seconds, r.accepted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jm-bench-"))
    try:
        table = event_table(args.events)
        pq.write_table(table, work / "events.parquet", compression="zstd")
        csv_table = table.set_column(3, "ts", table.column("ts").cast("string"))
        pacsv.write_csv(csv_table, work / "events.csv")
        # Without message_id every id is derived from the row's content and its occurrence number.
        pacsv.write_csv(csv_table.drop_columns(["message_id"]), work / "events-no-ids.csv")
        print(f"{args.events:,} events; median of {args.runs} runs")
        for name, target in (("events.parquet", 1_000_000), ("events.csv", 300_000), ("events-no-ids.csv", 300_000)):
            times = []
            for _ in range(args.runs):
                seconds, n = ingest_once(work / name, work)
                times.append(seconds)
            med = statistics.median(times)
            rate = n / med
            verdict = "meets" if rate >= target else "MISSES"
            print(f"{name:16s} {med:6.2f} s  {rate:12,.0f} events/s  ({verdict} target {target:,}/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
