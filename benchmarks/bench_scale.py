"""journeymap at scale: generate, ingest, stitch, map and analyse up to 50M events (run on demand).

    .venv/bin/python benchmarks/bench_scale.py --events 50000000 --workdir /data/jm-scale \\
        [--set memory_limit=4GB] [--phases generate,ingest,identity,map-no-insights,...] [--keep]

Target (the issue): 50M events with peak RSS under 6 GB, by streaming and spilling, never by
loading the log into Python. Every phase runs in a **fresh subprocess**, so each phase's peak RSS
(VmHWM of that process: Python, Arrow and DuckDB's buffers together) is its own; the phases share
the files in `--workdir`:

    generate         events.write_events(): Parquet written in 2M-row chunks, constant memory
    ingest           Workspace.ingest(events.parquet, refresh=False): validation, de-duplication against
                     the store, dead letters, commit (the loader reads 512k-row batches)
    identity         Workspace.refresh(): identity stitching, writes journey_events
    map-no-insights  Workspace.journey_map(insights=False)
    map              Workspace.journey_map() (placed insights: friction, moments, themes, churn risk)
    transitions, retention, funnel, funnel30, lifecycle, features
                     the analyses of bench_compare.py (same calls, same parameters)

The journey definition is benchmarks/bench_definition.py's, written into the workspace. `--set k=v`
(repeatable, comma-separated) runs `SET k = v` on the store connection of each phase before it starts
(e.g. memory_limit=4GB, threads=2, preserve_insertion_order=false, temp_directory='/big/disk/tmp'):
DuckDB's default memory_limit is 80 % of RAM, so without one it has no reason to spill before
~19 GB on a 24 GB machine. Spilling goes to `<store>.tmp` (DuckDB's default for a file database);
each phase also reports the most that folder held (sampled every 0.5 s).

Each phase is timed once by default (`--runs`, median of R runs for the analysis phases; ingest and
identity always once, since they change the store). A phase that fails is reported and the rest
still run; a phase over `--timeout` seconds is stopped. Smaller runs validate the harness:

    .venv/bin/python benchmarks/bench_scale.py --events 1000000                        # all phases
    .venv/bin/python benchmarks/bench_scale.py --events 10000000 --set memory_limit=4GB
    .venv/bin/python benchmarks/bench_scale.py --events 50000000 --set memory_limit=4GB --workdir /data/jm50

(`--workdir` must have room for the Parquet, about 13 bytes an event, the store (a few times that after
stitching; the 'store_mb' note says) and DuckDB's spill files; without it a temporary folder is used and
removed unless `--keep`.
With `--phases` leaving out generate and ingest, an existing workdir is reused.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("generate", "ingest", "identity", "map-no-insights", "map", "transitions", "retention", "funnel",
          "funnel30", "lifecycle", "features")
ANALYSES = {  # phase -> (tool, job) of bench_compare.jm_jobs
    "map-no-insights": ("journeymap-no-insights", "map"), "map": ("journeymap", "map"),
    "transitions": ("journeymap", "transitions"), "retention": ("journeymap", "retention"),
    "funnel": ("journeymap", "funnel"), "funnel30": ("journeymap", "funnel30"),
    "lifecycle": ("journeymap", "lifecycle"), "features": ("journeymap", "features"),
}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dir_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 2**20


class SpillWatch:
    """The most the store's temp folder held while the phase ran (DuckDB spills there)."""

    def __init__(self, folder: Path):
        self.folder, self.peak, self._stop = folder, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.5):
            if self.folder.exists():
                self.peak = max(self.peak, dir_mb(self.folder))

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak


APPLIED: dict = {}  # the settings a store connection of this process ran with


def apply_settings(settings: list[str]) -> None:
    """Make every store connection opened in this process run `SET k = v` first (benchmark-side: the
    store itself takes no settings yet)."""
    if not settings:
        return
    import journeymap.workspace as wsmod

    opener = wsmod.open_store

    def open_store(*a, **kw):
        con = opener(*a, **kw)
        for s in settings:
            k, v = s.split("=", 1)
            con.execute(f"SET {k.strip()} = {v.strip() if v.strip().startswith(chr(39)) else repr(v.strip())}")
        APPLIED.update(zip(("memory_limit", "threads", "temp_directory"), con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')").fetchone()))
        return con

    wsmod.open_store = open_store


def worker(phase: str, work: Path, events: int, runs: int, settings: list[str]) -> dict:
    sys.path.insert(0, str(HERE))
    apply_settings(settings)
    watch = SpillWatch(work / "ws" / "journeymap.duckdb.tmp")
    info: dict = {}
    times = []
    if phase == "generate":
        from events import write_events

        t = time.perf_counter()
        write_events(work / "events.parquet", events)
        times.append(time.perf_counter() - t)
        info["parquet_mb"] = round((work / "events.parquet").stat().st_size / 2**20)
    elif phase in ("ingest", "identity"):
        from bench_definition import write_definition

        from journeymap.workspace import Workspace

        if phase == "ingest":
            shutil.rmtree(work / "ws", ignore_errors=True)
            (work / "ws").mkdir()
            write_definition(work / "ws")
        ws = Workspace(work / "ws")
        t = time.perf_counter()
        if phase == "ingest":
            reports = ws.ingest([str(work / "events.parquet")], refresh=False)
            info.update(accepted=sum(r.accepted for r in reports), rejected=sum(r.rejected for r in reports),
                        duplicate=sum(r.duplicate for r in reports))
        else:
            r = ws.refresh()
            info.update(persons=getattr(r, "persons", None), accounts=getattr(r, "accounts", None))
        ws.con.execute("CHECKPOINT")
        ws.close()
        times.append(time.perf_counter() - t)
        info["store_mb"] = round((work / "ws" / "journeymap.duckdb").stat().st_size / 2**20)
    else:
        from bench_compare import jm_jobs

        tool, job = ANALYSES[phase]
        fns, _versions = jm_jobs(work, job)
        fn = fns[(tool, job)]
        for _ in range(runs):
            t = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t)
        info["result"] = str(result)[:160]
    spill = watch.stop()
    info.update(APPLIED)
    return {"times": times, "rss_mb": peak_rss_mb(), "spill_mb": spill, "info": info}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000_000)
    ap.add_argument("--workdir", help="where the Parquet and the store go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    ap.add_argument("--set", action="append", default=[], help="DuckDB setting k=v for every phase (repeatable)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each analysis phase (median reported)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a phase is stopped")
    ap.add_argument("--rss-target-mb", type=float, default=6 * 1024)
    ap.add_argument("--worker", nargs=2, metavar=("PHASE", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    settings = [kv for s in args.set for kv in s.split(",") if kv.strip()]
    if args.worker:
        phase, work = args.worker
        print(json.dumps(worker(phase, Path(work), args.events, args.runs, settings)))
        return

    temp = args.workdir is None
    work = Path(args.workdir or tempfile.mkdtemp(prefix="jm-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    print(f"{args.events:,} events in {work}; settings: {', '.join(settings) or 'DuckDB defaults'}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; one fresh process per phase, peak RSS = its VmHWM",
          flush=True)
    rows = []
    try:
        for phase in phases:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--events", str(args.events), "--runs", str(args.runs),
                   *[x for s in settings for x in ("--set", s)], "--worker", phase, str(work)]
            t0 = time.perf_counter()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"| {phase} | TIMEOUT after {args.timeout:.0f} s | | | |", flush=True)
                rows.append((phase, None, None, None, "timeout"))
                continue
            if p.returncode != 0:
                print(f"| {phase} | FAILED: {p.stderr.strip().splitlines()[-3:]} | | | |", flush=True)
                rows.append((phase, None, None, None, "failed"))
                continue
            out = json.loads(p.stdout.strip().splitlines()[-1])
            med = statistics.median(out["times"])
            verdict = "ok" if out["rss_mb"] <= args.rss_target_mb else f"OVER {args.rss_target_mb:.0f} MB"
            note = f"{verdict}; {json.dumps(out['info'])[:200]}"
            rows.append((phase, med, out["rss_mb"], out["spill_mb"], note))
            print(f"| {phase} | {med:.2f} | {out['rss_mb']:.0f} | {out['spill_mb']:.0f} | {note} |  "
                  f"(process {time.perf_counter() - t0:.1f} s)", flush=True)
        print(f"\n{args.events:,} events; load at the end {os.getloadavg()[0]:.2f}\n")
        print("| phase | seconds | peak RSS MB | peak spill MB | notes |\n|---|---|---|---|---|")
        for phase, med, rss, spill, note in rows:
            print(f"| {phase} | {'' if med is None else f'{med:.2f}'} | {'' if rss is None else f'{rss:.0f}'} | "
                  f"{'' if spill is None else f'{spill:.0f}'} | {note} |")
    finally:
        if temp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
