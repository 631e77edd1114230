"""journeymap against the alternatives on one synthetic log (run on demand, never by tests).

    .venv/bin/python benchmarks/bench_compare.py [--events 1000000] [--runs 3]
        [--jobs ingest,map,transitions,retention,funnel,funnel30,lifecycle,features]
        [--tools journeymap,journeymap+identity,journeymap-no-insights,journeymap+variants,sql,pandas,polars,pm4py]
        [--generator table|stream] [--alt-python /tmp/benchenv/bin/python]

The measurements of the issue (median of 3, every job, every tool, one run on one log):

    .venv/bin/python benchmarks/bench_compare.py --events 1000000 --runs 3 | tee compare-1m.txt
    .venv/bin/python benchmarks/bench_compare.py --events 10000000 --runs 3 | tee compare-10m.txt
    .venv/bin/python benchmarks/bench_scale.py --events 50000000 --set memory_limit=4GB --workdir /data/jm50  # 50M: RSS

The log is `events.event_table(n)` (or, with `--generator stream`, `events.write_events`: the same rows
up to 2M events), written to Parquet and loaded once through a real Workspace (Parquet ingest,
identity stitched) whose journeymap.yml is benchmarks/bench_definition.py's (stages from event names,
milestones, health signals). The tools then answer the same question on the same events:

- `journeymap`: the Python API on the DuckDB engine (Workspace opened once, the analysis timed);
- `sql`: hand-written DuckDB SQL on the same store (the floor);
- `pandas`, `polars`: as an analyst would write them (sort, then shift within each unit), on the
  store's events exported once to Parquet (unit_id, event, ts, seq; for `features` the accounts'
  events with person, source and properties) and read before timing;
- `pm4py`: its directly-follows discovery (`discover_dfg`), transitions only.

pandas, polars and pm4py run with `--alt-python`, a throwaway virtual environment that is never a
dependency of journeymap (pm4py is AGPL):

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install polars pandas pyarrow duckdb pm4py

Every (tool, job) runs in a fresh subprocess that loads its input, times `--runs` runs of the
analysis and reports its own peak RSS (VmHWM from /proc, load included). Before a time is
printed, the tool's numbers are checked against journeymap's (journeymap runs first, as the reference).
Jobs:

- `ingest`: the Parquet file into a fresh, empty store per run (emptied untimed). `journeymap` is
  `Workspace.ingest(refresh=False)` (projection, validation, de-duplication against the store, dead
  letters, commit: what bench_ingest.py times); `journeymap+identity` adds the identity rebuild
  (`refresh`, the default). `sql`: `CREATE TABLE events AS SELECT DISTINCT ON (message_id) ...` from
  `read_parquet` onto the store's columns, then CHECKPOINT. `pandas`/`polars`: read, drop duplicate
  message_ids, write Parquet (zstd). Checked: the row counts.
- `map`: the full journey map, `Workspace.journey_map()` (`journeymap`, insights placed: friction,
  moments of truth, themes, churn risk) and `journey_map(insights=False)` (`journeymap-no-insights`).
  Nothing else computes a journey map; the check is that both builds agree on events, units and every
  stage's reached / converted / dropped counts.
- `transitions`: event-level directly-follows edges (count, mean seconds), starts and ends, units =
  stitched persons, ordered by ts then seq. `journeymap` runs `transition_counts` (edges, starts and
  ends in one pass); `journeymap+variants` is the whole `transitions_result` (also the exact variant count).
  Checked: every edge count, start and end count (mean seconds to 1e-9 relative, where given).
- `retention`: weekly first-time retention, start `event_00`, return `event_01`, calendar weeks.
  Checked: every cohort's size and values.
- `funnel` / `funnel30`: a 4-step (`event_00..event_03`) and a 30-step (`event_00..event_29`) ordered
  funnel in 14 days (journeymap and SQL only: an attempt-by-attempt ordered funnel is not something an
  analyst writes in pandas). `sql` is the floor that computes what journeymap returns: each unit's
  furthest attempt (ties: the earliest), every step's count, mean and median seconds from the step
  before, and the time-to-convert histograms, in one statement; `sql-counts` only counts the units at
  each step (the earlier floor). Generated SQL, one join per step; the 30-step CTEs are MATERIALIZED.
  Checked: every step's count, mean and median (1e-9 relative) and histogram bins.
- `lifecycle`: `engine.lifecycle.lifecycle(interval="month")` (persons; new / returning / resurrecting /
  dormant per calendar month, docs/metrics/lifecycle.md). Checked: every month's five numbers and
  quick ratio.
- `features`: the churn model's point-in-time feature snapshot, `insights.risk.features.features_at` for every
  account at 2025-07-01 (what `snapshots` does once per scoring date). The floor (and pandas, polars)
  computes the features that are not constant on this log: FEATURE_COLS (recency, active days 30/90,
  activity trend, key features 90d, active users 30d, tickets 90d, failed payments 60d, adoption flags
  and share, tenure, current stage); journeymap computes every feature (surveys, effort, early
  touchpoints, ... are empty here). Checked: those columns of every account, floats to 1e-9 relative.

This module imports only the standard library at the top: the workers import what they need, so
the same file runs under both interpreters (bench_scale.py reuses `jm_jobs`). Results:
docs/benchmarks.md ("journeymap vs the alternatives").
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
FUNNEL30_STEPS = [f"event_{i:02d}" for i in range(30)]
LIFECYCLE_INTERVAL = "month"
FEATURES_AT = dt.datetime(2025, 7, 1)  # the scoring date of the feature snapshot (the log spans 2024-2025)
JOBS = ("ingest", "map", "transitions", "retention", "funnel", "funnel30", "lifecycle", "features")
TOOLS = {  # tool -> jobs it takes part in
    "journeymap": JOBS,
    "journeymap+identity": ("ingest",),
    "journeymap-no-insights": ("map",),
    "journeymap+variants": ("transitions",),
    "sql": ("ingest", "transitions", "retention", "funnel", "funnel30", "lifecycle", "features"),
    "sql-counts": ("funnel", "funnel30"),
    "pandas": ("ingest", "transitions", "retention", "lifecycle", "features"),
    "polars": ("ingest", "transitions", "retention", "lifecycle", "features"),
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


def month_start(idx: int) -> str:
    return dt.date(idx // 12, idx % 12 + 1, 1).isoformat()


def lifecycle_rows(got: dict[tuple[int, str], int], lo: int, hi: int) -> dict:
    """journeymap's lifecycle intervals from counts per (month index, label), months lo..hi."""
    out = []
    for i in range(lo, hi + 1):
        c = {k: int(got.get((i, k), 0)) for k in ("new", "returning", "resurrecting", "dormant")}
        out.append([month_start(i), c["new"], c["returning"], c["resurrecting"], -c["dormant"],
                    c["new"] + c["returning"] + c["resurrecting"],
                    round((c["new"] + c["resurrecting"]) / c["dormant"], 6) if c["dormant"] else None])
    return {"intervals": out}


# Features the floor computes: the ones that are not constant on the synthetic log (no surveys, effort
# scores, MRR or seats there; the early_* touchpoint flags are left out too). The check compares these
# columns of every account, floats to 1e-9 relative.
FEATURE_COLS = ["recency_days", "active_days_30d", "active_days_90d", "activity_trend", "key_features_90d",
                "active_users_30d", "tickets_90d", "failed_payments_60d", "adopted_f02", "adopted_f03", "adopted_f04",
                "key_feature_adoption", "tenure_days", "stage"]


def feature_rows(rows) -> dict:
    """rows: iterables of unit_id then FEATURE_COLS values; stage None when the account has no stage hit."""
    out = []
    for r in rows:
        r = list(r)
        vals = [None if v is None or (isinstance(v, float) and v != v) else (v if isinstance(v, str) else float(v))
                for v in r[1:]]
        out.append([str(r[0]), *vals])
    return {"columns": FEATURE_COLS, "rows": sorted(out, key=lambda r: r[0])}


def map_summary(m: dict) -> dict:
    """What the map's two builds (with and without insights) must agree on: units, reached, converted,
    dropped per stage and view."""
    return {"events": m["events"], "views": {p: {"units": v["units"], "stages": {
        s: [c["reached"], c["converted"], c["dropped"]] for s, c in v["stages"].items()}} for p, v in m["views"].items()}}


# -- journeymap and the SQL floor (the journeymap venv) ------------------------------------------------


def jm_jobs(work: Path, job: str) -> tuple[dict, str]:
    import duckdb
    import ibis

    from journeymap.engine.funnel_options import funnel_options
    from journeymap.engine.funnels import funnel
    from journeymap.engine.journey_paths import labelled_events
    from journeymap.engine.lifecycle import lifecycle
    from journeymap.engine.retention import retention
    from journeymap.engine.transitions import transition_counts, transitions_result
    from journeymap.insights.risk.features import features_at
    from journeymap.workspace import Workspace

    versions = f"duckdb {duckdb.__version__}, ibis {ibis.__version__}"
    if job == "ingest":  # a fresh workspace per run (setup, untimed), so every row is new
        target = work / "ingest-journeymap"

        def setup():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()

        def ingest(refresh: bool):
            w = Workspace(target)
            reports = w.ingest([str(work / "events.parquet")], refresh=refresh)
            w.close()
            assert sum(r.rejected for r in reports) == 0
            return {"rows": sum(r.accepted for r in reports)}

        plain, stitched = (lambda: ingest(False)), (lambda: ingest(True))
        plain.setup = stitched.setup = setup
        return {("journeymap", "ingest"): plain, ("journeymap+identity", "ingest"): stitched}, versions

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

    def fun(steps=FUNNEL_STEPS):
        r = funnel(engine, funnel_options(steps, window="14d", order="ordered"))
        return {"counts": [s["count"] for s in r["steps"]],
                "mean": [s["avg_seconds_from_previous"] for s in r["steps"][1:]],
                "median": [s["median_seconds_from_previous"] for s in r["steps"][1:]],
                "histograms": [[b["count"] for b in h["bins"]] for h in r["histograms"]]}

    def life():
        r = lifecycle(engine, interval=LIFECYCLE_INTERVAL)
        return {"intervals": [[i["start"], i["new"], i["returning"], i["resurrecting"], i["dormant"], i["active"],
                               i["quick_ratio"]] for i in r["intervals"]]}

    def feats():
        df = features_at(engine, ws.definition, FEATURES_AT)
        return feature_rows(df[["unit_id", *FEATURE_COLS]].itertuples(index=False, name=None))

    return {("journeymap", "transitions"): trans, ("journeymap+variants", "transitions"): trans_full,
            ("journeymap", "retention"): ret, ("journeymap", "funnel"): fun,
            ("journeymap", "funnel30"): lambda: fun(FUNNEL30_STEPS), ("journeymap", "lifecycle"): life,
            ("journeymap", "features"): feats,
            ("journeymap", "map"): lambda: map_summary(ws.journey_map()),
            ("journeymap-no-insights", "map"): lambda: map_summary(ws.journey_map(insights=False))}, versions


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
a AS (SELECT u, min(t) AS t, arg_min(s, (t, s)) AS s, {WEEK.format('min(t)', DAY_US)} AS cohort FROM ev
      WHERE l = '{START}' GROUP BY u),
r AS (SELECT u, t, s, {WEEK.format('t', DAY_US)} AS w FROM ev WHERE l = '{RETURN}'),
h AS (SELECT a.u, a.cohort, r.w - a.cohort AS p FROM a JOIN r ON a.u = r.u AND (r.t > a.t OR (r.t = a.t AND r.s > a.s)))
SELECT 'size' AS k, cohort, NULL AS p, count(*) AS n FROM a GROUP BY cohort
UNION ALL SELECT 'hit', cohort, p, count(DISTINCT u) FROM h GROUP BY cohort, p
UNION ALL SELECT 'end', {WEEK.format('max(t)', DAY_US)}, NULL, NULL FROM ev"""


def funnel_stats_sql(steps=FUNNEL_STEPS, materialized: bool = False) -> str:
    """The floor of what journeymap's funnel returns: the chain of `funnel_sql`, each attempt carrying its
    step times; each unit's furthest attempt (most steps, then the earliest entry); per step k >= 1 the
    count, mean and median seconds from step k-1 and the histogram bins (HISTOGRAM_EDGES, last edge
    reached). Rows (k, bin, n, mean, median): bin NULL for a step's totals."""
    m = " MATERIALIZED" if materialized else ""
    n = len(steps)
    names = ", ".join(f"'{x}'" for x in sorted(set(steps)))
    ctes = [f"ev AS{m} (SELECT * FROM ({EVENTS_SQL}) WHERE l IN ({names}))",
            f"f0 AS{m} (SELECT u, t AS t0, s AS s0, t AS lt, s AS ls FROM ev WHERE l = '{steps[0]}')"]
    for k in range(1, n):
        carried = "".join(f", any_value(p.t{j}) AS t{j}" for j in range(1, k))
        ctes.append(f"""f{k} AS{m} (SELECT p.u, p.t0, p.s0{carried}, min(e.t) AS t{k}, min(e.t) AS lt,
        arg_min(e.s, (e.t, e.s)) AS ls
    FROM f{k - 1} p JOIN ev e ON e.u = p.u AND e.l = '{steps[k]}'
      AND (e.t > p.lt OR (e.t = p.lt AND e.s > p.ls)) AND e.t <= p.t0 + INTERVAL {FUNNEL_WINDOW_S} SECOND
    GROUP BY p.u, p.t0, p.s0)""")
    def times(k):
        return ", ".join(["t0", *[f"t{j}" if j <= k else f"NULL::TIMESTAMP AS t{j}" for j in range(1, n)]])
    ctes.append("att AS (" + " UNION ALL ".join(f"SELECT u, {k} AS k, s0, {times(k)} FROM f{k}" for k in range(n)) + ")")
    fields = ", ".join(f"'t{j}': t{j}" for j in range(n))
    ctes.append(f"best AS (SELECT arg_min({{{fields}}}, (-k, t0, s0)) AS b FROM att GROUP BY u)")
    secs = ", ".join(f"(epoch_us(b.t{k}) - epoch_us(b.t{k - 1})) / 1e6 AS d{k}" for k in range(1, n))
    ctes.append(f"d AS (SELECT {secs} FROM best)")
    edges = HISTOGRAM_EDGES[1:]
    def bin_of(k):
        return "CASE " + " ".join(f"WHEN d{k} >= {e} THEN {i}" for i, e in reversed(list(enumerate(edges, start=1)))) + " ELSE 0 END"
    parts = ["SELECT 0 AS k, NULL::BIGINT AS bin, count(*) AS n, NULL::DOUBLE AS mean, NULL::DOUBLE AS median FROM best"]
    for k in range(1, n):
        parts.append(f"SELECT {k}, NULL, count(d{k}), avg(d{k}), quantile_cont(d{k}, 0.5) FROM d")
        parts.append(f"SELECT {k}, {bin_of(k)} AS bin, count(*), NULL, NULL FROM d WHERE d{k} IS NOT NULL GROUP BY bin")
    return "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL ".join(parts)


HISTOGRAM_EDGES = (0, 60, 300, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
"""journeymap.engine.funnels.HISTOGRAM_EDGES, written out: the floor imports nothing of journeymap's."""


def funnel_sql(steps=FUNNEL_STEPS, materialized: bool = False) -> str:
    """Ordered funnel: every event_00 starts an attempt (u, t0, s0); step k is the first event_0k strictly
    after step k-1 in (ts, seq) and within 14 days of the start; a unit counts at a step when any attempt
    reaches it. `materialized` (the 30-step floor) computes each CTE once: each step's attempts are read
    by the next step and by the counts, and inlining them would redo every earlier step."""
    m = " MATERIALIZED" if materialized else ""
    names = ", ".join(f"'{x}'" for x in sorted(set(steps)))
    ctes = [f"ev AS{m} (SELECT * FROM ({EVENTS_SQL}) WHERE l IN ({names}))" if materialized else f"ev AS ({EVENTS_SQL})",
            f"f0 AS{m} (SELECT u, t AS t0, s AS s0, t AS lt, s AS ls FROM ev WHERE l = '{steps[0]}')"]
    for k in range(1, len(steps)):
        ctes.append(f"""f{k} AS{m} (SELECT p.u, p.t0, p.s0, min(e.t) AS lt, arg_min(e.s, (e.t, e.s)) AS ls
    FROM f{k - 1} p JOIN ev e ON e.u = p.u AND e.l = '{steps[k]}'
      AND (e.t > p.lt OR (e.t = p.lt AND e.s > p.ls)) AND e.t <= p.t0 + INTERVAL {FUNNEL_WINDOW_S} SECOND
    GROUP BY p.u, p.t0, p.s0)""")
    counts = " UNION ALL ".join(f"SELECT {k} AS k, count(DISTINCT u) AS n FROM f{k}" for k in range(len(steps)))
    return "WITH " + ",\n".join(ctes) + "\n" + counts


MONTH = "(year({0}) * 12 + month({0}) - 1)::BIGINT"
LIFECYCLE_SQL = f"""
WITH ev AS ({EVENTS_SQL}),
a AS (SELECT DISTINCT u, {MONTH.format('t')} AS idx FROM ev),
b AS (SELECT idx, lag(idx) OVER w AS prev, lead(idx) OVER w AS nxt FROM a WINDOW w AS (PARTITION BY u ORDER BY idx)),
lab AS (SELECT idx, CASE WHEN prev IS NULL THEN 'new' WHEN prev = idx - 1 THEN 'returning' ELSE 'resurrecting' END AS label FROM b
        UNION ALL SELECT idx + 1, 'dormant' FROM b WHERE nxt IS NULL OR nxt > idx + 1)
SELECT idx, label, count(*) AS n FROM lab GROUP BY ALL
UNION ALL SELECT min(idx), 'lo', NULL FROM a
UNION ALL SELECT {MONTH.format('max(t)')}, 'hi', NULL FROM ev"""


def _in(names) -> str:
    return "(" + ", ".join(f"'{x}'" for x in names) + ")"


def features_sql() -> str:
    """The floor of the feature snapshot at FEATURES_AT: one pass over the accounts' events before it, one
    group by (bench_definition: usage = source product, tickets = source support, failed payments =
    event_08 from billing, key features event_02..04, stages first match in definition order)."""
    from bench_definition import KEY_FEATURES, STAGES

    at = f"TIMESTAMP '{FEATURES_AT:%Y-%m-%d %H:%M:%S}'"

    def since(days):
        return f"t >= {at} - INTERVAL {days} DAY"

    stage = "CASE " + " ".join(
        f"WHEN l IN {_in(names)}" + (" AND TRY_CAST(json_extract_string(properties, '$.n') AS DOUBLE) >= 50" if cond else "")
        + f" THEN '{sid}'" for sid, names, cond in STAGES) + " END"
    kf = list(KEY_FEATURES.values())
    adopted = ", ".join(f"(count(*) FILTER (WHERE l = '{e}') > 0)::DOUBLE AS adopted_{k}" for k, e in KEY_FEATURES.items())
    days = f"(epoch_us({at}) - epoch_us({{}})) / 86400e6"
    return f"""
WITH ev AS (SELECT account_id AS u, person_id AS p, event AS l, source = 'product' AS usage, source, ts AS t, seq AS s,
                   properties FROM journey_events
            WHERE account_id IS NOT NULL AND type NOT IN {IDENTITY_CALLS} AND ts < {at}),
g AS (SELECT u, min(t) AS first_ts, max(t) FILTER (WHERE usage) AS last_usage,
        count(DISTINCT t::DATE) FILTER (WHERE usage AND {since(30)}) AS ad30,
        count(DISTINCT t::DATE) FILTER (WHERE usage AND {since(90)}) AS ad90,
        count(*) FILTER (WHERE usage AND {since(30)}) AS u30,
        count(*) FILTER (WHERE usage AND {since(60)} AND NOT {since(30)}) AS up30,
        count(DISTINCT l) FILTER (WHERE l IN {_in(kf)} AND {since(90)}) AS kf90,
        count(DISTINCT p) FILTER (WHERE usage AND {since(30)}) AS au30,
        count(*) FILTER (WHERE source = 'support' AND {since(90)}) AS tickets,
        count(*) FILTER (WHERE l = 'event_08' AND source = 'billing' AND {since(60)}) AS failed,
        {adopted},
        arg_max({stage}, (t, s)) FILTER (WHERE ({stage}) IS NOT NULL) AS stage
      FROM ev GROUP BY u)
SELECT u, {days.format('coalesce(last_usage, first_ts)')}, ad30, ad90, (u30 + 1.0) / (up30 + 1.0), kf90, au30, tickets,
       failed, {", ".join(f"adopted_{k}" for k in KEY_FEATURES)}, ({" + ".join(f"adopted_{k}" for k in KEY_FEATURES)}) / {len(KEY_FEATURES)},
       {days.format('first_ts')}, stage
FROM g"""


def ingest_sql(src: Path) -> str:
    """The ingest floor: project the file onto the store's columns, de-duplicate on message_id, write."""
    return f"""CREATE TABLE events AS SELECT DISTINCT ON (message_id) message_id, ts::TIMESTAMP AS ts, event, 'track' AS type,
    source, channel, customer_id AS user_id, NULL::VARCHAR AS anonymous_id, NULL::VARCHAR AS email,
    NULL::VARCHAR AS previous_id, account_id, properties, NULL::VARCHAR AS traits, file_row_number AS seq
FROM read_parquet('{src}', file_row_number = true)"""


def sql_jobs(work: Path, job: str) -> tuple[dict, str]:
    import duckdb

    if job == "ingest":
        target = work / "ingest-sql"

        def setup():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()

        def ingest():
            c = duckdb.connect(str(target / "floor.duckdb"))
            c.execute("SET TimeZone = 'UTC'")
            c.execute(ingest_sql(work / "events.parquet"))
            rows = c.execute("SELECT count(*) FROM events").fetchone()[0]
            c.execute("CHECKPOINT")
            c.close()
            return {"rows": rows}

        ingest.setup = setup
        return {("sql", "ingest"): ingest}, f"duckdb {duckdb.__version__}"

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

    def fun(steps=FUNNEL_STEPS, materialized=False):
        totals, bins = {}, {}
        for k, b, n, mean, median in con.execute(funnel_stats_sql(steps, materialized)).fetchall():
            if b is None:
                totals[k] = (int(n), mean, median)
            else:
                bins[k, b] = int(n)
        return {"counts": [totals[k][0] for k in range(len(steps))],
                "mean": [totals[k][1] for k in range(1, len(steps))],
                "median": [totals[k][2] for k in range(1, len(steps))],
                "histograms": [[bins.get((k, b), 0) for b in range(len(HISTOGRAM_EDGES))]
                               for k in range(1, len(steps))]}

    def fun_counts(steps=FUNNEL_STEPS, materialized=False):
        rows = dict(con.execute(funnel_sql(steps, materialized)).fetchall())
        return {"counts": [int(rows[k]) for k in range(len(steps))]}

    def life():
        got, lo, hi = {}, None, None
        for idx, label, n in con.execute(LIFECYCLE_SQL).fetchall():
            if label == "lo":
                lo = idx
            elif label == "hi":
                hi = idx
            else:
                got[(idx, label)] = n
        return lifecycle_rows(got, lo, hi) if lo is not None else {"intervals": []}

    def feats():
        return feature_rows(con.execute(features_sql()).fetchall())

    return {("sql", "transitions"): trans, ("sql", "retention"): ret, ("sql", "funnel"): fun,
            ("sql", "funnel30"): lambda: fun(FUNNEL30_STEPS, True), ("sql-counts", "funnel"): fun_counts,
            ("sql-counts", "funnel30"): lambda: fun_counts(FUNNEL30_STEPS, True), ("sql", "lifecycle"): life,
            ("sql", "features"): feats}, f"duckdb {duckdb.__version__}"


# -- pandas, polars, pm4py (the throwaway venv) -------------------------------------------------------


def pandas_jobs(work: Path, job: str) -> tuple[dict, str]:
    import json as jsonlib

    import numpy as np
    import pandas as pd

    if job == "ingest":
        target = work / "ingest-pandas"

        def setup():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()

        def ingest():
            d = pd.read_parquet(work / "events.parquet").drop_duplicates("message_id")
            d.to_parquet(target / "events.parquet", compression="zstd")
            return {"rows": len(d)}

        ingest.setup = setup
        return {("pandas", "ingest"): ingest}, f"pandas {pd.__version__}"

    df = pd.read_parquet(work / ("accounts.parquet" if job == "features" else "flat.parquet"))
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

    def life():
        a = pd.DataFrame({"unit_id": df["unit_id"], "idx": (df["ts"].dt.year * 12 + df["ts"].dt.month - 1).astype("int64")})
        a = a.drop_duplicates().sort_values(["unit_id", "idx"])
        g = a.groupby("unit_id", sort=False)["idx"]
        prev, nxt = g.shift(1), g.shift(-1)
        label = np.select([prev.isna(), prev == a["idx"] - 1], ["new", "returning"], "resurrecting")
        got = pd.DataFrame({"idx": a["idx"].to_numpy(), "label": label}).value_counts().to_dict()
        dormant = (a.loc[nxt.isna() | (nxt > a["idx"] + 1), "idx"] + 1).value_counts()
        got.update({(i, "dormant"): n for i, n in dormant.items()})
        hi = df["ts"].max()
        return lifecycle_rows(got, int(a["idx"].min()), hi.year * 12 + hi.month - 1)

    def feats():
        from bench_definition import KEY_FEATURES, STAGES

        at = pd.Timestamp(FEATURES_AT)
        d = df[df["ts"] < at]
        t, usage = d["ts"], d["source"] == "product"

        def since(days):
            return t >= at - pd.Timedelta(days=days)

        def per(mask, col, how):
            sub = d.loc[mask]
            return getattr(sub[col].groupby(sub["unit_id"]), how)()

        out = pd.DataFrame({"first_ts": d.groupby("unit_id")["ts"].min()})
        out["last_usage"] = per(usage, "ts", "max")
        days = t.dt.floor("D")
        u30 = d.loc[usage & since(30)]
        out["ad30"] = days[u30.index].groupby(u30["unit_id"]).nunique()
        u90 = d.loc[usage & since(90)]
        out["ad90"] = days[u90.index].groupby(u90["unit_id"]).nunique()
        out["u30"] = per(usage & since(30), "ts", "size")
        out["up30"] = per(usage & since(60) & ~since(30), "ts", "size")
        out["kf90"] = per(d["event"].isin(list(KEY_FEATURES.values())) & since(90), "event", "nunique")
        out["au30"] = per(usage & since(30), "person_id", "nunique")
        out["tickets"] = per((d["source"] == "support") & since(90), "ts", "size")
        out["failed"] = per((d["event"] == "event_08") & (d["source"] == "billing") & since(60), "ts", "size")
        for k, e in KEY_FEATURES.items():
            out[f"adopted_{k}"] = per(d["event"] == e, "ts", "size")
        out = out.fillna({c: 0 for c in out.columns if c not in ("first_ts", "last_usage")})
        # The stage of each event (first matching stage in definition order), then each account's latest.
        n = pd.Series(np.nan, index=d.index)
        has = d["event"].eq("event_29") & d["properties"].notna()
        n[has] = d.loc[has, "properties"].map(lambda x: jsonlib.loads(x).get("n"))
        conds = [d["event"].isin(names) & ((n >= 50) if cond else True) for _, names, cond in STAGES]
        stage = pd.Series(np.select(conds, [sid for sid, _, _ in STAGES], default=""), index=d.index)
        hits = d.loc[stage != "", ["unit_id", "ts", "seq"]].assign(stage=stage[stage != ""])
        out["stage"] = hits.sort_values(["unit_id", "ts", "seq"]).groupby("unit_id")["stage"].last()
        res = pd.DataFrame(index=out.index)
        res["recency_days"] = (at - out["last_usage"].fillna(out["first_ts"])).dt.total_seconds() / 86400
        res["active_days_30d"], res["active_days_90d"] = out["ad30"], out["ad90"]
        res["activity_trend"] = (out["u30"] + 1.0) / (out["up30"] + 1.0)
        res["key_features_90d"], res["active_users_30d"] = out["kf90"], out["au30"]
        res["tickets_90d"], res["failed_payments_60d"] = out["tickets"], out["failed"]
        for k in KEY_FEATURES:
            res[f"adopted_{k}"] = (out[f"adopted_{k}"] > 0).astype(float)
        res["key_feature_adoption"] = res[[f"adopted_{k}" for k in KEY_FEATURES]].mean(axis=1)
        res["tenure_days"] = (at - out["first_ts"]).dt.total_seconds() / 86400
        res["stage"] = out["stage"].astype(object).where(out["stage"].notna(), None)
        return feature_rows(res[FEATURE_COLS].itertuples(name=None))

    return {("pandas", "transitions"): trans, ("pandas", "retention"): ret, ("pandas", "lifecycle"): life,
            ("pandas", "features"): feats}, f"pandas {pd.__version__}"


def polars_jobs(work: Path, job: str) -> tuple[dict, str]:
    import polars as pl

    if job == "ingest":
        target = work / "ingest-polars"

        def setup():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()

        def ingest():
            d = pl.read_parquet(work / "events.parquet").unique("message_id", keep="first", maintain_order=True)
            d.write_parquet(target / "events.parquet", compression="zstd")
            return {"rows": d.height}

        ingest.setup = setup
        return {("polars", "ingest"): ingest}, f"polars {pl.__version__}"

    df = pl.read_parquet(work / ("accounts.parquet" if job == "features" else "flat.parquet"))
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

    def life():
        month = (pl.col("ts").dt.year().cast(pl.Int64) * 12 + pl.col("ts").dt.month().cast(pl.Int64) - 1)
        a = (df.select("unit_id", idx=month).unique().sort("unit_id", "idx")
             .with_columns(prev=pl.col("idx").shift(1).over("unit_id"), nxt=pl.col("idx").shift(-1).over("unit_id")))
        idx, prev, nxt = pl.col("idx"), pl.col("prev"), pl.col("nxt")
        lab = a.select(idx, label=pl.when(prev.is_null()).then(pl.lit("new")).when(prev == idx - 1)
                       .then(pl.lit("returning")).otherwise(pl.lit("resurrecting")))
        dormant = a.filter(nxt.is_null() | (nxt > idx + 1)).select(idx=idx + 1, label=pl.lit("dormant"))
        got = {(i, lbl): n for i, lbl, n in pl.concat([lab, dormant]).group_by("idx", "label").len().iter_rows()}
        hi = df["ts"].max()
        return lifecycle_rows(got, a["idx"].min(), hi.year * 12 + hi.month - 1)

    def feats():
        from bench_definition import KEY_FEATURES, STAGES

        at = FEATURES_AT
        ts, ev = pl.col("ts"), pl.col("event")
        usage = pl.col("source") == "product"

        def since(days):
            return ts >= at - dt.timedelta(days=days)

        n = pl.col("properties").str.json_path_match("$.n").cast(pl.Float64, strict=False)
        stage = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
        for sid, names, cond in STAGES:
            stage = stage.when(ev.is_in(names) & ((n >= 50).fill_null(False) if cond else True)).then(pl.lit(sid))
        d = df.filter(ts < at).with_columns(stage=stage.otherwise(pl.lit(None, pl.String)))
        g = d.group_by("unit_id").agg(
            first_ts=ts.min(), last_usage=ts.filter(usage).max(),
            ad30=ts.dt.date().filter(usage & since(30)).n_unique(),
            ad90=ts.dt.date().filter(usage & since(90)).n_unique(),
            u30=(usage & since(30)).sum(), up30=(usage & since(60) & ~since(30)).sum(),
            kf90=ev.filter(ev.is_in(list(KEY_FEATURES.values())) & since(90)).n_unique(),
            au30=pl.col("person_id").filter(usage & since(30)).n_unique(),
            tickets=((pl.col("source") == "support") & since(90)).sum(),
            failed=((ev == "event_08") & (pl.col("source") == "billing") & since(60)).sum(),
            **{f"adopted_{k}": (ev == e).any().cast(pl.Float64) for k, e in KEY_FEATURES.items()},
            stage=pl.col("stage").sort_by("ts", "seq").drop_nulls().last(),
        )
        days = 86_400_000_000.0
        res = g.select(
            "unit_id",
            recency_days=(pl.lit(at) - pl.coalesce("last_usage", "first_ts")).dt.total_microseconds() / days,
            active_days_30d="ad30", active_days_90d="ad90",
            activity_trend=(pl.col("u30") + 1.0) / (pl.col("up30") + 1.0),
            key_features_90d="kf90", active_users_30d="au30", tickets_90d="tickets", failed_payments_60d="failed",
            **{f"adopted_{k}": f"adopted_{k}" for k in KEY_FEATURES},
            key_feature_adoption=pl.mean_horizontal(*[f"adopted_{k}" for k in KEY_FEATURES]),
            tenure_days=(pl.lit(at) - pl.col("first_ts")).dt.total_microseconds() / days,
            stage="stage",
        )
        return feature_rows(res.iter_rows())

    return {("polars", "transitions"): trans, ("polars", "retention"): ret, ("polars", "lifecycle"): life,
            ("polars", "features"): feats}, f"polars {pl.__version__}"


def pm4py_jobs(work: Path, job: str) -> tuple[dict, str]:
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
    make = {"journeymap": jm_jobs, "journeymap+variants": jm_jobs, "journeymap+identity": jm_jobs,
            "journeymap-no-insights": jm_jobs, "sql": sql_jobs, "sql-counts": sql_jobs, "pandas": pandas_jobs,
            "polars": polars_jobs, "pm4py": pm4py_jobs}[tool]
    sys.path.insert(0, str(HERE))  # bench_definition
    fns, versions = make(work, job)
    fn = fns[(tool, job)]
    times, result = [], None
    for _ in range(runs):
        if hasattr(fn, "setup"):  # untimed: e.g. a fresh, empty target for ingest
            fn.setup()
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
    if job == "features":
        if ref["columns"] != got["columns"] or len(ref["rows"]) != len(got["rows"]):
            return f"features: {len(got['rows'])} accounts vs {len(ref['rows'])}"
        for a, b in zip(ref["rows"], got["rows"]):
            for col, x, y in zip(["unit_id", *ref["columns"]], a, b):
                close = (x == y) if not (isinstance(x, float) and isinstance(y, float)) else \
                    abs(x - y) <= 1e-9 * max(1.0, abs(x))
                if not close:
                    return f"features differ: account {a[0]}, {col}: {y!r} vs {x!r}"
        return None
    if job in ("funnel", "funnel30"):
        for key in ref:
            if key not in got:  # sql-counts: the counts only
                continue
            for k, (x, y) in enumerate(zip(ref[key], got[key], strict=True)):
                close = (x == y) if not (isinstance(x, float) and isinstance(y, float)) else \
                    abs(x - y) <= 1e-9 * max(1.0, abs(x))
                if not close:
                    return f"funnel {key} differ at step {k + (key != 'counts')}: {y!r} vs {x!r}"
        return None
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
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {', '.join(JOBS)}")
    ap.add_argument("--generator", choices=("table", "stream"), default="table",
                    help="table: events.event_table(n) in memory (the log of the earlier figures); stream: "
                         "events.write_events (constant memory; the same rows up to 2M events, other rows above)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--alt-python", default="/tmp/benchenv/bin/python", help="interpreter for pandas, polars and pm4py")
    ap.add_argument("--workdir", help="keep the log and the loaded workspace here, and reuse them when they hold "
                                      "--events events (default: a temporary folder, removed at the end)")
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "JOB", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, job, work = args.worker
        worker(tool, job, Path(work), args.runs)
        return

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="jm-bench-compare-"))
    built = work / "built.json"  # what a kept workdir holds: written last, so a half-built one is built again
    wanted = {"events": args.events, "generator": args.generator}
    try:
        if args.workdir and built.exists() and json.loads(built.read_text()) == wanted:
            print(f"{args.events:,} events: the workspace in {work} is reused; median of {args.runs} runs; "
                  f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; python {platform.python_version()}", flush=True)
        else:
            build(work, args)
            built.write_text(json.dumps(wanted))
        run_jobs(work, args)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def build(work: Path, args) -> None:
    """The log as Parquet, loaded into `work/ws` (stitched), and the flat exports the other tools read."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from bench_definition import write_definition
    from events import event_table, write_events

    from journeymap.workspace import Workspace

    shutil.rmtree(work / "ws", ignore_errors=True)  # a kept workdir built for another --events
    for stale in ("events.parquet", "flat.parquet", "accounts.parquet"):
        (work / stale).unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if args.generator == "stream":
        write_events(work / "events.parquet", args.events)
    else:
        pq.write_table(event_table(args.events), work / "events.parquet", compression="zstd")
    ws = Workspace(work / "ws")
    ws.path.mkdir()
    write_definition(ws.path)  # stages, milestones and health signals for `map` and `features`
    t0 = time.perf_counter()
    ws.ingest([str(work / "events.parquet")])
    # What the other tools read: the store's events of stitched persons, exported once.
    ws.con.execute(f"COPY (SELECT person_id AS unit_id, event, ts, seq FROM journey_events WHERE person_id IS NOT NULL "
                   f"AND type NOT IN {IDENTITY_CALLS}) TO '{work / 'flat.parquet'}' (FORMAT parquet)")
    # ... and for `features`: the accounts' events with what the features read.
    ws.con.execute(f"COPY (SELECT account_id AS unit_id, person_id, event, source, ts, seq, properties FROM journey_events "
                   f"WHERE account_id IS NOT NULL AND type NOT IN {IDENTITY_CALLS}) TO '{work / 'accounts.parquet'}' "
                   f"(FORMAT parquet)")
    ws.con.execute("CHECKPOINT")
    ws.close()
    print(f"{args.events:,} events ingested in {time.perf_counter() - t0:.1f} s; median of {args.runs} runs; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; python {platform.python_version()}", flush=True)


def run_jobs(work: Path, args) -> None:
    """Every (job, tool) in a fresh subprocess, journeymap first (the reference); a table at the end."""
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
                print(f"{job:<12} {tool:<20} FAILED: {p.stderr.strip().splitlines()[-3:]}", flush=True)
                continue
            out = json.loads(p.stdout.strip().splitlines()[-1])
            versions[tool] = out["versions"]
            med = statistics.median(out["times"])
            if ref is None:
                if tool != "journeymap":
                    raise SystemExit(f"{job}: journeymap must run first: it is the reference")
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


if __name__ == "__main__":
    main()
