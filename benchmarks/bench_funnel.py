"""Funnel cost versus funnel length: a 4-step and a 30-step funnel on the same log (run on demand).

    .venv/bin/python benchmarks/bench_funnel.py [--events 1000000] [--runs 3] [--window 14d]

The events come from `events.event_table(n)` and are loaded through a real Workspace (Parquet
ingest). Steps are event_00.. in popularity order; the 30-step funnel names every event, so its
filter keeps the whole log. Target: the 30-step funnel costs at most a few times the 4-step one.
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
from events import EVENT_NAMES, event_table  # noqa: E402

from journeymap.engine.funnel_options import funnel_options  # noqa: E402
from journeymap.engine.funnels import funnel  # noqa: E402
from journeymap.workspace import Workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", default="14d")
    ap.add_argument("--steps", default="4,30", help="comma-separated funnel lengths")
    ap.add_argument("--orders", default="ordered,strict,unordered,optional",
                    help="which modes to time; optional = ordered with every odd step optional")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jm-bench-funnel-"))
    try:
        pq.write_table(event_table(args.events), work / "events.parquet", compression="zstd")
        ws = Workspace(work / "ws")
        ws.path.mkdir()
        t0 = time.perf_counter()
        ws.ingest([str(work / "events.parquet")])
        print(f"{args.events:,} events ingested in {time.perf_counter() - t0:.1f} s; median of {args.runs} runs")
        base = None
        for n in (int(x) for x in args.steps.split(",")):
            for order in args.orders.split(","):
                opt = list(range(1, n, 2)) if order == "optional" else []
                o = funnel_options(EVENT_NAMES[:n], window=args.window, order="ordered" if opt else order, optional=opt)
                times, result = [], None
                for _ in range(args.runs):
                    t = time.perf_counter()
                    result = funnel(ws.engine, o)
                    times.append(time.perf_counter() - t)
                med = statistics.median(times)
                base = base if base is not None else med  # the first funnel timed is the yardstick
                counts = [s["count"] for s in result["steps"]]
                print(f"{n:>2} steps {order:<9} {med:7.2f} s  ({med / base:.1f}x the first)  "
                      f"counts {counts[:5]}{'...' if n > 5 else ''} last {counts[-1]}")
        ws.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
