"""journeymap against the alternatives on one synthetic log (run on demand, never by tests).

    .venv/bin/python benchmarks/bench_compare.py [--events 1000000] [--runs 3] [--jobs transitions,retention]
        [--tools journeymap,sql,pandas,polars,pm4py] [--alt-python /tmp/benchenv/bin/python]

The log is `events.event_table(n)`, loaded once through a real Workspace (Parquet ingest, identity
stitched). The tools then answer the same question on the same events:

- `journeymap`: the Python API on the DuckDB engine (Workspace opened once, the analysis timed);
- `sql`: hand-written DuckDB SQL on the same store (the floor);
- `pandas`, `polars`: as an analyst would write them (sort, then shift within each unit), on the
  store's events exported once to Parquet (unit_id, event, ts, seq) and read before timing;
- `pm4py`: its directly-follows discovery (`discover_dfg`), transitions only.

pandas, polars and pm4py run with `--alt-python`, a throwaway virtual environment that is never a
dependency of journeymap (pm4py is AGPL):

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install polars pandas pyarrow duckdb pm4py

Every (tool, job) runs in a fresh subprocess that loads its input, times `--runs` runs of the
analysis and reports its own peak RSS (VmHWM from /proc, load included). Before a time is
printed, the tool's numbers are checked against journeymap's: every edge count, start and end count
(and mean seconds to 1e-9 relative, where the tool gives them); every retention cohort's size and
values. Jobs:

- `transitions`: event-level directly-follows edges (count, mean seconds), starts and ends, units =
  stitched persons, ordered by ts then seq. `journeymap` runs `transition_counts` (edges, starts and
  ends in one pass); `journeymap+variants` is the whole `transitions_result` (also the exact variant count).
- `retention`: weekly first-time retention, start `event_00`, return `event_01`, calendar weeks.
- `funnel`: a 4-step ordered funnel `event_00..event_03` in 14 days (journeymap and SQL only).

This module imports only the standard library at the top: the workers import what they need, so
the same file runs under both interpreters. Results: docs/benchmarks.md ("journeymap vs the alternatives").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IDENTITY_CALLS = "('identify', 'group', 'alias')"
ORIGIN = dt.date(1970, 1, 5)  # a Monday: journeymap's week origin (engine/intervals.py)
DAY_US = 86_400_000_000
START, RETURN = "event_00", "event_01"
FUNNEL_STEPS = ["event_00", "event_01", "event_02", "event_03"]
FUNNEL_WINDOW_S = 14 * 86400
TOOLS = {  # tool -> jobs it takes part in
    "journeymap": ("transitions", "retention", "funnel"),
    "journeymap+variants": ("transitions",),
    "sql": ("transitions", "retention", "funnel"),
    "pandas": ("transitions", "retention"),
    "polars": ("transitions", "retention"),
    "pm4py": ("transitions",),
}
ALT_TOOLS = ("pandas", "polars", "pm4py")


# -- shared shapes of the answers -------------------------------------------------------------------------


def cohorts(sizes: dict[int, int], counts: dict[tuple[int, int], int], end_week: int) -> list:
    """[[cohort start, size, values per week 0..n]], n = the week of the latest event minus the cohort's."""
    return [[(ORIGIN + dt.timedelta(days=7 * c)).isoformat(), int(sizes[c]),
             [int(counts.get((c, k), 0)) for k in range(end_week - c + 1)]] for c in sorted(sizes)]


def week_of(d: dt.datetime) -> int:
    return (d.date() - ORIGIN).days // 7


def dfg(edges, starts, ends) -> dict:
    """edges: iterable of (from, to, count, mean_seconds or None)."""
    return {"edges": sorted([str(f), str(t), int(c), None if m is None else float(m)] for f, t, c, m in edges),
            "starts": {str(k): int(v) for k, v in sorted(starts.items())},
            "ends": {str(k): int(v) for k, v in sorted(ends.items())}}


# -- journeymap and the SQL floor (the journeymap venv) ------------------------------------------------


def jm_jobs(work: Path) -> tuple[dict, str]:
    import duckdb
    import ibis

    from journeymap.engine.funnel_options import funnel_options
    from journeymap.engine.funnels import funnel
    from journeymap.engine.journey_paths import labelled_events
    from journeymap.engine.retention import retention
    from journeymap.engine.transitions import transition_counts, transitions_result
    from journeymap.workspace import Workspace

    ws = Workspace(work / "ws")
    engine = ws.engine

    def trans():
        r = transition_counts(labelled_events(engine, None, "event", "person"))
        return dfg([(e["from"], e["to"], e["count"], e["mean_seconds"]) for e in r["edges"]], r["starts"], r["ends"])

    def trans_full():
        r = transitions_result(labelled_events(engine, None, "event", "person"))
        out = dfg([(e["from"], e["to"], e["count"], e["mean_seconds"]) for e in r["edges"]], r["starts"], r["ends"])
        out["variants"] = r["variants"]
        return out

    def ret():
        r = retention(engine, START, RETURN, interval="week")
        return {"cohorts": [[c["start"], c["size"], c["values"]] for c in r["cohorts"]]}

    def fun():
        r = funnel(engine, funnel_options(FUNNEL_STEPS, window="14d", order="ordered"))
        return {"counts": [s["count"] for s in r["steps"]]}

    versions = f"duckdb {duckdb.__version__}, ibis {ibis.__version__}"
    return {("journeymap", "transitions"): trans, ("journeymap+variants", "transitions"): trans_full,
            ("journeymap", "retention"): ret, ("journeymap", "funnel"): fun}, versions


EVENTS_SQL = f"""SELECT person_id AS u, event AS l, ts AS t, seq AS s FROM journey_events
    WHERE person_id IS NOT NULL AND type NOT IN {IDENTITY_CALLS}"""

TRANSITIONS_SQL = f"""
WITH o AS (
    SELECT l, lead(l) OVER w AS nl, epoch_us(lead(t) OVER w) - epoch_us(t) AS dus, row_number() OVER w AS rn
    FROM ({EVENTS_SQL}) WHERE l IS NOT NULL AND t IS NOT NULL AND s IS NOT NULL
    WINDOW w AS (PARTITION BY u ORDER BY t, s, l))
SELECT l, nl, count(*) AS c, avg(dus::DOUBLE) / 1e6 AS m, count(*) FILTER (WHERE rn = 1) AS first
FROM o GROUP BY ALL"""

WEEK = "((epoch_us({0}) - epoch_us(TIMESTAMP '1970-01-05')) // {1} // 7)"
RETENTION_SQL = f"""
WITH ev AS ({EVENTS_SQL}),
a AS (SELECT u, t, s, {WEEK.format('t', DAY_US)} AS cohort FROM ev WHERE l = '{START}'
      QUALIFY row_number() OVER (PARTITION BY u ORDER BY t, s) = 1),
r AS (SELECT u, t, s, {WEEK.format('t', DAY_US)} AS w FROM ev WHERE l = '{RETURN}'),
h AS (SELECT a.u, a.cohort, r.w - a.cohort AS p FROM a JOIN r ON a.u = r.u AND (r.t > a.t OR (r.t = a.t AND r.s > a.s)))
SELECT 'size' AS k, cohort, NULL AS p, count(*) AS n FROM a GROUP BY cohort
UNION ALL SELECT 'hit', cohort, p, count(DISTINCT u) FROM h GROUP BY cohort, p
UNION ALL SELECT 'end', {WEEK.format('max(t)', DAY_US)}, NULL, NULL FROM ev"""


def funnel_sql() -> str:
    """Ordered funnel: every event_00 starts an attempt (u, t0, s0); step k is the first event_0k strictly
    after step k-1 in (ts, seq) and within 14 days of the start; a unit counts at a step when any attempt
    reaches it."""
    ctes = [f"ev AS ({EVENTS_SQL})",
            f"f0 AS (SELECT u, t AS t0, s AS s0, t AS lt, s AS ls FROM ev WHERE l = '{FUNNEL_STEPS[0]}')"]
    for k in range(1, len(FUNNEL_STEPS)):
        ctes.append(f"""f{k} AS (SELECT p.u, p.t0, p.s0, min(e.t) AS lt, arg_min(e.s, (e.t, e.s)) AS ls
    FROM f{k - 1} p JOIN ev e ON e.u = p.u AND e.l = '{FUNNEL_STEPS[k]}'
      AND (e.t > p.lt OR (e.t = p.lt AND e.s > p.ls)) AND e.t <= p.t0 + INTERVAL {FUNNEL_WINDOW_S} SECOND
    GROUP BY p.u, p.t0, p.s0)""")
    counts = " UNION ALL ".join(f"SELECT {k} AS k, count(DISTINCT u) AS n FROM f{k}" for k in range(len(FUNNEL_STEPS)))
    return "WITH " + ",\n".join(ctes) + "\n" + counts


def sql_jobs(work: Path) -> tuple[dict, str]:
    import duckdb

    con = duckdb.connect(str(work / "ws" / "journeymap.duckdb"), read_only=True)

    def trans():
        edges, starts, ends = [], {}, {}
        for l, nl, c, m, first in con.execute(TRANSITIONS_SQL).fetchall():
            if nl is None:
                ends[l] = c
            else:
                edges.append((l, nl, c, m))
            if first:
                starts[l] = starts.get(l, 0) + first
        return dfg(edges, starts, ends)

    def ret():
        sizes, counts, end = {}, {}, None
        for k, c, p, n in con.execute(RETENTION_SQL).fetchall():
            if k == "size":
                sizes[c] = n
            elif k == "hit":
                counts[(c, p)] = n
            else:
                end = c
        return {"cohorts": cohorts(sizes, counts, end)}

    def fun():
        rows = dict(con.execute(funnel_sql()).fetchall())
        return {"counts": [int(rows[k]) for k in range(len(FUNNEL_STEPS))]}

    return {("sql", "transitions"): trans, ("sql", "retention"): ret, ("sql", "funnel"): fun}, f"duckdb {duckdb.__version__}"


# -- pandas, polars, pm4py (the throwaway venv) -------------------------------------------------------


def pandas_jobs(work: Path) -> tuple[dict, str]:
    import pandas as pd

    df = pd.read_parquet(work / "flat.parquet")
    origin = pd.Timestamp(ORIGIN)

    def week(ts):
        return ((ts - origin) // pd.Timedelta(days=1)) // 7

    def trans():
        d = df.sort_values(["unit_id", "ts", "seq", "event"])
        g = d.groupby("unit_id", sort=False)
        d = d.assign(nxt=g["event"].shift(-1), nxt_ts=g["ts"].shift(-1))
        pairs = d[d["nxt"].notna()]
        secs = (pairs["nxt_ts"] - pairs["ts"]).dt.total_seconds()
        e = secs.groupby([pairs["event"], pairs["nxt"]]).agg(["count", "mean"])
        starts = d.groupby("unit_id", sort=False)["event"].first().value_counts()
        ends = d.loc[d["nxt"].isna(), "event"].value_counts()
        return dfg([(f, t, r["count"], r["mean"]) for (f, t), r in e.iterrows()], starts.to_dict(), ends.to_dict())

    def ret():
        s = df[df["event"] == START].sort_values(["unit_id", "ts", "seq"]).drop_duplicates("unit_id")
        s = s.assign(cohort=week(s["ts"]))
        r = df.loc[df["event"] == RETURN, ["unit_id", "ts", "seq"]]
        j = s.merge(r, on="unit_id", suffixes=("", "_r"))
        j = j[(j["ts_r"] > j["ts"]) | ((j["ts_r"] == j["ts"]) & (j["seq_r"] > j["seq"]))]
        j = j.assign(p=week(j["ts_r"]) - j["cohort"])
        counts = j.groupby(["cohort", "p"])["unit_id"].nunique().to_dict()
        sizes = s.groupby("cohort").size().to_dict()
        return {"cohorts": cohorts(sizes, counts, week_of(df["ts"].max().to_pydatetime()))}

    return {("pandas", "transitions"): trans, ("pandas", "retention"): ret}, f"pandas {pd.__version__}"


def polars_jobs(work: Path) -> tuple[dict, str]:
    import polars as pl

    df = pl.read_parquet(work / "flat.parquet")
    origin = dt.datetime(1970, 1, 5)

    def week(col):
        return ((col - origin).dt.total_days() // 7).cast(pl.Int64)

    def trans():
        d = df.sort(["unit_id", "ts", "seq", "event"]).with_columns(
            nxt=pl.col("event").shift(-1).over("unit_id"),
            nxt_ts=pl.col("ts").shift(-1).over("unit_id"),
            first=pl.int_range(pl.len()).over("unit_id") == 0,
        )
        e = (d.filter(pl.col("nxt").is_not_null()).group_by("event", "nxt")
             .agg(c=pl.len(), m=(pl.col("nxt_ts") - pl.col("ts")).dt.total_microseconds().cast(pl.Float64).mean() / 1e6))
        starts = d.filter(pl.col("first")).group_by("event").len()
        ends = d.filter(pl.col("nxt").is_null()).group_by("event").len()
        return dfg(e.iter_rows(), dict(starts.iter_rows()), dict(ends.iter_rows()))

    def ret():
        s = (df.filter(pl.col("event") == START).sort(["unit_id", "ts", "seq"]).unique("unit_id", keep="first", maintain_order=True)
             .select("unit_id", "ts", "seq", cohort=week(pl.col("ts"))))
        r = df.filter(pl.col("event") == RETURN).select("unit_id", ts_r="ts", seq_r="seq")
        j = (s.join(r, on="unit_id")
             .filter((pl.col("ts_r") > pl.col("ts")) | ((pl.col("ts_r") == pl.col("ts")) & (pl.col("seq_r") > pl.col("seq"))))
             .with_columns(p=week(pl.col("ts_r")) - pl.col("cohort")))
        counts = {(c, p): n for c, p, n in j.group_by("cohort", "p").agg(pl.col("unit_id").n_unique()).iter_rows()}
        sizes = dict(s.group_by("cohort").len().iter_rows())
        return {"cohorts": cohorts(sizes, counts, week_of(df["ts"].max()))}

    return {("polars", "transitions"): trans, ("polars", "retention"): ret}, f"polars {pl.__version__}"


def pm4py_jobs(work: Path) -> tuple[dict, str]:
    import pandas as pd
    import pm4py

    df = pd.read_parquet(work / "flat.parquet")

    def trans():
        # pm4py orders each case by timestamp; sort by (ts, seq) first so same-second ties keep input order.
        d = df.sort_values(["unit_id", "ts", "seq"])
        graph, starts, ends = pm4py.discover_dfg(d, case_id_key="unit_id", activity_key="event", timestamp_key="ts")
        return dfg([(f, t, c, None) for (f, t), c in graph.items()], dict(starts), dict(ends))

    return {("pm4py", "transitions"): trans}, f"pm4py {pm4py.__version__}"


# -- driver ---------------------------------------------------------------------------------------------


def worker(tool: str, job: str, work: Path, runs: int) -> None:
    make = {"journeymap": jm_jobs, "journeymap+variants": jm_jobs, "sql": sql_jobs, "pandas": pandas_jobs,
            "polars": polars_jobs, "pm4py": pm4py_jobs}[tool]
    fns, versions = make(work)
    fn = fns[(tool, job)]
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "rss_mb": peak_rss_mb(), "result": result, "versions": versions}))


def peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM belongs to the process image, so it starts afresh at exec;
    getrusage's ru_maxrss is carried over exec on Linux (it would report the parent's peak when larger)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def same(job: str, ref: dict, got: dict) -> str | None:
    """None when `got` gives journeymap's numbers, else what differs."""
    if job != "transitions":
        return None if ref == got else f"{job} differs: {str(got)[:200]} vs {str(ref)[:200]}"
    for key in ("starts", "ends"):
        if ref[key] != got[key]:
            return f"{key} differ"
    if [e[:3] for e in ref["edges"]] != [e[:3] for e in got["edges"]]:
        bad = [(a, b) for a, b in zip(ref["edges"], got["edges"]) if a[:3] != b[:3]][:3]
        return f"edge counts differ ({len(ref['edges'])} vs {len(got['edges'])} edges; e.g. {bad})"
    for a, b in zip(ref["edges"], got["edges"]):
        if a[3] is not None and b[3] is not None and abs(a[3] - b[3]) > 1e-9 * max(1.0, abs(a[3])):
            return f"mean_seconds differ on {a[:2]}: {b[3]} vs {a[3]}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", default="transitions,retention,funnel")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--alt-python", default="/tmp/benchenv/bin/python", help="interpreter for pandas, polars and pm4py")
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "JOB", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, job, work = args.worker
        worker(tool, job, Path(work), args.runs)
        return

    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from events import event_table

    from journeymap.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="jm-bench-compare-"))
    try:
        pq.write_table(event_table(args.events), work / "events.parquet", compression="zstd")
        ws = Workspace(work / "ws")
        ws.path.mkdir()
        t0 = time.perf_counter()
        ws.ingest([str(work / "events.parquet")])
        # What the other tools read: the store's events of stitched persons, exported once.
        ws.con.execute(f"COPY (SELECT person_id AS unit_id, event, ts, seq FROM journey_events WHERE person_id IS NOT NULL "
                       f"AND type NOT IN {IDENTITY_CALLS}) TO '{work / 'flat.parquet'}' (FORMAT parquet)")
        ws.con.execute("CHECKPOINT")
        ws.close()
        print(f"{args.events:,} events ingested in {time.perf_counter() - t0:.1f} s; median of {args.runs} runs; "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; python {platform.python_version()}", flush=True)
        rows, versions = [], {}
        for job in args.jobs.split(","):
            ref, base = None, None
            for tool in args.tools.split(","):
                if job not in TOOLS[tool]:
                    continue
                py = args.alt_python if tool in ALT_TOOLS else sys.executable
                if tool in ALT_TOOLS and not Path(py).exists():
                    print(f"{job:<12} {tool:<20} skipped: {py} not found", flush=True)
                    continue
                p = subprocess.run([py, str(Path(__file__).resolve()), "--runs", str(args.runs), "--worker", tool, job, str(work)],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"{job:<12} {tool:<20} FAILED: {p.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                out = json.loads(p.stdout.strip().splitlines()[-1])
                versions[tool] = out["versions"]
                med = statistics.median(out["times"])
                if ref is None:
                    if tool != "journeymap":
                        raise SystemExit("journeymap must run first: it is the reference")
                    ref, base, check = out["result"], med, "reference"
                else:
                    diff = same(job, ref, out["result"])
                    check = "matches journeymap" if diff is None else f"MISMATCH: {diff}"
                rows.append((job, tool, med, out["rss_mb"], med / base, check))
                print(f"| {job} | {tool} | {med:.3f} | {out['rss_mb']:.0f} | {med / base:.2f}x | {check} |", flush=True)
        print(f"\nload at the end {os.getloadavg()[0]:.2f}; versions: "
              + "; ".join(f"{k}: {v}" for k, v in versions.items()))
        print("\n| job | tool | median s | peak RSS MB | / journeymap | numbers |\n|---|---|---|---|---|---|")
        for job, tool, med, rss, ratio, check in rows:
            print(f"| {job} | {tool} | {med:.3f} | {rss:.0f} | {ratio:.2f}x | {check} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
