"""The store's checkpoint_threshold: a run of small refreshes with DuckDB's 16MB against journeymap's 256MB.

    .venv/bin/python benchmarks/bench_checkpoint.py [--events 10000000] [--batches 10] [--runs 2]
        [--thresholds 16MB,256MB,1GB]

The log is `events.event_table(n)` with benchmarks/bench_definition.py's journeymap.yml. All but its newest 1%
is loaded and refreshed once (the "before" store); the newest 1% is cut into --batches batches by time. Per
threshold and run, a copy of the before store loads the batches one by one with a refresh after each (as the
server's loader does), then runs a CHECKPOINT, so every row counts the same work: each refresh's time, their
sum, the final checkpoint, and all of it with the loads. Last, the same batches with the largest threshold and
no checkpoint at all (a crash: the process exits without closing the store) leave the write-ahead log that the
next open replays: its size and the open's time. Both stores must hold the same events and units at the end.
docs/store.md shows the results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--thresholds", default="16MB,256MB,1GB")
    ap.add_argument("--crash", nargs="+", help=argparse.SUPPRESS)  # internal: the crashing child: STORE BATCH...
    args = ap.parse_args()
    if args.crash:
        return crash(Path(args.crash[0]), args.thresholds, [Path(b) for b in args.crash[1:]])

    sys.path.insert(0, str(HERE))
    from bench_definition import write_definition
    from events import write_newest_apart
    from stores import copy_store

    from journeymap.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="jm-bench-checkpoint-"))
    print(f"{args.events:,} events, the newest 1% in {args.batches} batches; {args.runs} runs; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    try:
        write_newest_apart(args.events, max(args.batches, args.events // 100), work, args.batches)
        before = work / "before"
        before.mkdir()
        write_definition(before)
        with Workspace(before) as ws:
            ws.ingest([str(work / "old.parquet")])
            ws.con.execute("CHECKPOINT")
        batches = [work / f"new-{k}.parquet" for k in range(args.batches)]

        print("| checkpoint_threshold | each refresh | refreshes | final checkpoint | all, loads included |\n"
              "|---|---|---|---|---|", flush=True)
        ends = set()
        for threshold in args.thresholds.split(","):
            rows = []
            for _ in range(args.runs):
                run = work / "run"
                copy_store(before, run)
                with Workspace(run) as ws:
                    started = time.perf_counter()
                    each = load_and_refresh(ws, threshold, batches)
                    t = time.perf_counter()
                    ws.con.execute("CHECKPOINT")
                    final = time.perf_counter() - t
                    rows.append((min(each), max(each), sum(each), final, time.perf_counter() - started))
                    ends.add(ws.con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM "
                                            "state_units_person), (SELECT count(*) FROM state_units_account)").fetchone())
            span = lambda i, rows=rows: f"{min(r[i] for r in rows):.2f}-{max(r[i] for r in rows):.2f} s"  # noqa: E731
            print(f"| {threshold} | {min(r[0] for r in rows):.2f}-{max(r[1] for r in rows):.2f} s | {span(2)} | "
                  f"{span(3)} | {span(4)} |", flush=True)
        assert len(ends) == 1, ends  # every threshold and run ends with the same events and units

        largest = args.thresholds.split(",")[-1]
        crashed = work / "crashed"
        copy_store(before, crashed)
        subprocess.run([sys.executable, __file__, "--thresholds", largest, "--crash", str(crashed),
                        *map(str, batches)], check=True)
        wal = crashed / "journeymap.duckdb.wal"
        size = wal.stat().st_size if wal.exists() else 0
        t = time.perf_counter()
        with Workspace(crashed) as ws:
            n = ws.con.execute("SELECT count(*) FROM events").fetchone()[0]
            opened = time.perf_counter() - t
        (events, _, _), = ends
        assert n == events, (n, events)
        print(f"\nAfter the {args.batches} refreshes with {largest} and no close (a crash): {size / 1e6:.1f} MB of "
              f"write-ahead log, replayed by the next open in {opened:.2f} s ({n:,} events).", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_and_refresh(ws, threshold: str, batches: list[Path]) -> list[float]:
    """Each batch loaded, then a refresh, as the server's loader does; returns the refreshes' seconds."""
    ws.con.execute(f"SET checkpoint_threshold = '{threshold}'")
    seconds = []
    for path in batches:
        ws.ingest([str(path)], refresh=False)
        t = time.perf_counter()
        ws.refresh()
        seconds.append(time.perf_counter() - t)
    return seconds


def crash(store: Path, threshold: str, batches: list[Path]) -> None:
    """Load and refresh the batches, then exit without closing the store: its log stays as a crash leaves it."""
    from journeymap.workspace import Workspace

    ws = Workspace(store)  # held to the end: a collected Workspace closes its store, which checkpoints
    load_and_refresh(ws, threshold, batches)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
