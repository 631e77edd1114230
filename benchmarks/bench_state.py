"""The journey state: a fold of 1% new events against a rebuild, and the map from warm state (run on demand).

    .venv/bin/python benchmarks/bench_state.py [--events 1000000] [--runs 3] [--insights]
        [--new-events K] [--picks latest,random] [--memory-limit 8GB] [--no-maps]

The log is `events.event_table(n)` with benchmarks/bench_definition.py's journeymap.yml. 99% of it is
loaded and refreshed (identity stitched, state rebuilt: the "before" store, copied once); then, per run,
a copy of that store gets the other 1% and a refresh, which is timed in its two parts: identity stitching
(only the new and moved journey events written, docs/identity.md) and the state fold (units appended,
late or recomputed, docs/state.md); then the CHECKPOINT of what the refresh left in the write-ahead log is
timed apart (a small refresh's log stays under checkpoint_threshold: docs/store.md), less the checkpoint of the
load's own log, timed on copies that only load the 1%. Two ways to pick the 1%:

- `latest`: the newest 1% of events by time (a day's events arriving);
- `random`: 1% of rows drawn at random (late events for many units: the fold's worst case).

On the final data it also times a rebuild of the state from scratch, and the map (`insights` off unless
--insights) read from the state against the map computed from the events with no state; both maps are
checked equal (apart from generated_at) before a time is printed. Medians of --runs.

`--new-events K` loads K new events instead of 1% (with the same K on logs of different sizes, what a
refresh costs as the history grows and the new events do not: docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--insights", action="store_true", help="time the map with its insights placed (slow)")
    ap.add_argument("--new-events", type=int, help="how many events arrive after the store is built (default: 1%%)")
    ap.add_argument("--picks", default="latest,random", help="which new events: latest, random or both")
    ap.add_argument("--memory-limit", help="the store's memory_limit (JOURNEYMAP_MEMORY_LIMIT), e.g. 8GB (DuckDB's default is 80%% of RAM, "
                    "which with this process's copy of the log leaves a 24 GB machine short at 50M)")
    ap.add_argument("--no-maps", action="store_true",
                    help="skip the maps (at 50M the map computed from the events alone takes minutes)")
    args = ap.parse_args()
    if args.memory_limit:
        os.environ["JOURNEYMAP_MEMORY_LIMIT"] = args.memory_limit

    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from bench_definition import write_definition
    from events import event_table
    from stores import copy_store

    from journeymap.analyses.map import panels
    from journeymap.engine.backends import duckdb_engine
    from journeymap.insights.map import build_map
    from journeymap.state.fold import fold
    from journeymap.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="jm-bench-state-"))
    print(f"{args.events:,} events; median of {args.runs} runs; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    n_new = args.new_events or max(1, args.events // 100)
    share = f"{n_new / args.events:.2%}".replace(".00%", "%")
    print(f"| step | {share} picked | seconds | of a full refresh |\n|---|---|---|---|", flush=True)
    try:
        table = event_table(args.events)
        rng = np.random.default_rng(1)
        picks = {
            "latest": lambda: np.argsort(table.column("ts").to_numpy(), kind="stable")[-n_new:],
            "random": lambda: rng.choice(args.events, n_new, replace=False),
        }
        picks = {how: picks[how]() for how in args.picks.split(",")}
        for how, new_rows in picks.items():
            is_new = np.zeros(args.events, dtype=bool)
            is_new[new_rows] = True
            pq.write_table(table.filter(pc.invert(is_new)), work / f"old-{how}.parquet")
            pq.write_table(table.filter(is_new), work / f"new-{how}.parquet")
        table = None  # the log is in Parquet now; at 50M its Arrow copy is several GB the store needs
        results, run_order = {}, []
        for how in picks:
            before = work / f"before-{how}"
            before.mkdir()
            write_definition(before)
            with Workspace(before) as ws:
                ws.ingest([str(work / f"old-{how}.parquet")])
                ws.con.execute("CHECKPOINT")

            def one_run(how=how, before=before, refresh=True):
                """A copy of the before-store loads the new events and refreshes, then checkpoints what that left in
                the write-ahead log (docs/store.md); with `refresh` false it only loads: the checkpoint of the
                load's own log, taken out of the refresh's row."""
                run = work / "run"
                copy_store(before, run)
                with Workspace(run) as ws:
                    ws.ingest([str(work / f"new-{how}.parquet")], refresh=False)
                    t = time.perf_counter()
                    result = ws.refresh() if refresh else None
                    total = time.perf_counter() - t
                    t = time.perf_counter()
                    ws.con.execute("CHECKPOINT")
                    checkpoint = time.perf_counter() - t
                return result, total, checkpoint

            fold_times, stitch_times, totals, checkpoints, changed = [], [], [], [], []
            for _ in range(args.runs):
                result, total, checkpoint = one_run()
                fold_times.append(result.state.seconds)
                stitch_times.append(result.stitch.seconds)
                totals.append(total)
                checkpoints.append(checkpoint)
                changed.append((sum(lv.changed_units for lv in result.state.levels),
                                sum(lv.appended_units for lv in result.state.levels),
                                sum(lv.late_units for lv in result.state.levels)))
            loads = [one_run(refresh=False)[2] for _ in range(args.runs)]
            results[how] = (statistics.median(stitch_times), statistics.median(fold_times), statistics.median(totals),
                            changed[0], sum(lv.units for lv in result.state.levels), statistics.median(checkpoints),
                            statistics.median(loads))
            # the first run in this process also compiles the fold's SQL (state.fold._statements), as a CLI
            # command does; later ones read it compiled, as the server's loader does
            levels = "the levels folded at once" if result.state.at_once else "the levels folded one after the other"
            run_order.append(f"refreshes, {how}, in run order ({levels}): " + ", ".join(
                f"{t:.3f} s (stitch {s_:.3f}, fold {f:.3f})" for t, s_, f in zip(totals, stitch_times, fold_times)))

        run = work / "run"  # the final data (the last pick's): rebuild the state, then the maps
        with Workspace(run) as ws:
            rebuild, _ = timed(lambda: fold(ws.con, ws.definition, rebuild=True), args.runs)
            from journeymap.identity import stitch

            def stitch_whole():
                ws.con.execute("DELETE FROM meta WHERE key LIKE 'identity.%'")  # no mark: journey_events written whole
                assert stitch(ws.con).journey_events == "rebuilt"

            stitch_full, _ = timed(stitch_whole, 1)
            fold(ws.con, ws.definition)  # the stitch above moved the journey version on
            full = stitch_full + rebuild
            for how, (stitch_s, fold_s, total_s, n_changed, n_units, checkpoint_s, load_s) in results.items():
                print(f"| fold of {n_new:,} new events ({n_changed[0]:,} of {n_units:,} units changed: {n_changed[1]:,} "
                      f"appended, {n_changed[2]:,} late) | {how} | "
                      f"{fold_s:.3f} | {fold_s / rebuild:.1%} of a state rebuild |", flush=True)
                print(f"| refresh: stitch + fold | {how} | {total_s:.3f} (stitch {stitch_s:.3f}) | "
                      f"{total_s / full:.1%} |", flush=True)
                # the full refresh's commits checkpoint inside (their logs pass checkpoint_threshold); a small
                # refresh's log waits for a later checkpoint, which this row charges to it, less the checkpoint of
                # the load's log that the same checkpoint wrote (timed apart on copies that only loaded)
                own = max(0.0, checkpoint_s - load_s)
                print(f"| refresh and the checkpoint of its log | {how} | {total_s + own:.3f} (checkpoint "
                      f"{checkpoint_s:.3f}, of which the load's log {load_s:.3f}) | {(total_s + own) / full:.1%} |",
                      flush=True)
            print(f"| state rebuild from scratch (both levels) | | {rebuild:.3f} | |", flush=True)
            print(f"| identity stitch writing the journey events whole | | {stitch_full:.3f} | |", flush=True)
            print("\n".join(run_order), flush=True)

            if args.no_maps:
                return

            def build(engine):
                with engine.scope():
                    m = build_map(engine, ws.definition, None, insights=args.insights, panels=panels())
                m.pop("generated_at")
                return json.dumps(m, sort_keys=True, default=str)

            warm, from_state = timed(lambda: build(ws.engine), args.runs)
            cold, direct = timed(lambda: build(duckdb_engine(ws.con)), args.runs)
            check = "equal" if from_state == direct else "MISMATCH"
            label = "with insights" if args.insights else "without insights"
            print(f"| map {label}, from warm state | | {warm:.3f} | maps {check} |", flush=True)
            print(f"| map {label}, computed from the events | | {cold:.3f} | |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
