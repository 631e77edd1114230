"""Exact event funnels: how many units complete steps 1..k in order within a window.

Written once in Ibis; runs on DuckDB and PySpark. Definition, rules and worked example:
`docs/metrics/funnels.md`.

The cost grows linearly with the number of steps: the events of the funnel are filtered once
(`Engine.share`; numbered too in strict funnels), every step-1 event starts an attempt, and each
later step is one join of the attempts still alive with the events of that step, keeping the
earliest match ("greedy earliest next match"). No k-way self-join. The window and the order are
comparisons of timestamps, never differences, so that the engine can join on a range.

The attempts carry only what the next step reads (entry, latest step, a few event numbers), not
every earlier step's columns; each step's (ts, r) is pivoted into one row per attempt at the end,
after the furthest attempt of each unit is picked on the narrow per-step rows where it can be.
Where a step's attempts are written to a table (every step on Spark and of strict funnels, every
STEPS_PER_STATEMENT-th otherwise on DuckDB) and none is alive, the remaining steps are not run (their
columns are NULL, their counts 0).
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.funnel_options import FunnelOptions
from journeymap.engine.funnel_unordered import in_entry_range, unordered_paths
from journeymap.engine.unit_events import earliest, unit_events

__all__ = ["HISTOGRAM_EDGES", "funnel", "funnel_attempts"]

# Time-to-convert histogram bins, in seconds: [0, 1m), [1m, 5m), ... [30d, inf). Negative times
# (possible only with a tolerance) fall in the first bin.
HISTOGRAM_EDGES = (0, 60, 300, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
US = 1_000_000
STEPS_PER_STATEMENT = 4
"""On DuckDB the chain's steps are named CTEs of the statement that reads them, and every 4th step is written
to a temp table: a statement per step costs a round trip and a table write each (most of a short funnel's
time), one statement for a long chain an expression that grows with every step (building and compiling it
grew faster than the steps: the 30-step funnel at 1M took 1.3 s as one statement, 0.65 s in fours, 0.71 s in
twos; docs/benchmarks.md)."""


def _numbered_events(engine: Engine, level: str, o: FunnelOptions) -> ir.Table:
    """The unit's events with `r`, which names an event and breaks ties on ts: (ts, r) is the unit's
    order (ts, seq). Strict funnels keep every event (any event breaks a sequence) and number them
    0, 1, 2, ... in that order, since a step must be the very next event. Other funnels keep only the
    events they name, and `r` is the event's seq (unique): numbering them was a sort of every event of
    the funnel, the most expensive step of a short funnel."""
    ev = unit_events(engine, level)
    ev = ev.filter(ev.ts.notnull())
    props = ["properties"] if o.breakdown is not None else []  # only a breakdown reads them: a narrower sort
    if o.order != "strict":
        ev = ev.filter(ev.event.isin(sorted(set(o.steps) | {x.event for x in o.exclusions})))
        return ev.select("unit_id", "ts", "event", *props, r=ev.seq)
    w = ibis.window(group_by=ev.unit_id, order_by=[ev.ts, ev.seq, ev.event])
    return ev.select("unit_id", "ts", "event", *props, r=ibis.row_number().over(w))


def _entries(ev: ir.Table, o: FunnelOptions) -> ir.Table:
    first = in_entry_range(ev.filter(ev.event == o.steps[0]), o)
    return first.select("unit_id", t_0=first.ts, r_0=first.r)


def _within(ts: ir.Column, anchor: ir.Column, seconds: float) -> ir.BooleanColumn:
    """ts - anchor <= seconds. A comparison of the columns, not of their difference: the engine can then
    join on a range instead of computing a difference for every pair (a short funnel ran 1.6x faster)."""
    return ts <= anchor + ibis.interval(microseconds=int(seconds * US))


def _not_before(ts: ir.Column, anchor: ir.Column, tolerance: float) -> ir.BooleanColumn:
    """ts - anchor >= -tolerance (see `_within`)."""
    return ts >= (anchor - ibis.interval(microseconds=int(tolerance * US)) if tolerance else anchor)


def _latest(a: ir.Table, k: int, p: int) -> tuple[ir.Expr, ir.Expr]:
    """(ts, r) of the latest step done among p..k-1: optional steps between may have been skipped."""
    done = [j for j in range(k - 1, p - 1, -1) if f"t_{j}" in a.columns]  # ordered: optional steps come later
    ts, rs = [a[f"t_{j}"] for j in done], [a[f"r_{j}"] for j in done]
    return (ibis.coalesce(*ts), ibis.coalesce(*rs)) if len(ts) > 1 else (ts[0], rs[0])


def _step_predicates(alive: ir.Table, cand: ir.Table, o: FunnelOptions, k: int) -> list:
    """Join conditions for an event of step k after the steps `alive` has done (see the rules)."""
    p = o.previous_required(k)
    last_t, last_r = _latest(alive, k, p)
    anchor = alive.t_0 if o.window_from == "entry" else alive[f"t_{p}"]
    preds = [alive.unit_id == cand.unit_id, _within(cand.ts, anchor, o.window_seconds)]
    if o.order == "strict":
        return [*preds, cand.r == last_r + 1]
    preds += [_not_before(cand.ts, last_t, o.tolerance_seconds), _not_before(cand.ts, alive.t_0, o.tolerance_seconds)]
    # Each step consumes a distinct event: skip events other steps of the same name already use.
    used = [alive[f"r_{j}"] for j in range(len(o.steps)) if j != k and o.steps[j] == o.steps[k] and f"r_{j}" in alive.columns]
    return preds + [r.isnull() | (cand.r != r) for r in used]


def _earliest(pairs: ir.Table, k: int) -> ir.Table:
    """Per attempt (unit_id, r_0), the earliest candidate event in (ts, r) order."""
    return pairs.group_by(["unit_id", "r_0"]).aggregate(
        **{f"t_{k}": pairs[f"t_{k}"].min(), f"r_{k}": earliest(pairs[f"t_{k}"], pairs[f"r_{k}"])})


def _fill_optional(engine: Engine, a: ir.Table, ev: ir.Table, o: FunnelOptions, k: int) -> ir.Table:
    """Add `t_k`, `r_k` for optional step k of an ordered funnel: the earliest event of it after the
    latest step done and before the next required step's event. NULL when the unit skipped it."""
    p = o.previous_required(k)
    base = a.filter(a[f"r_{p}"].notnull())
    cand = ev.filter(ev.event == o.steps[k])
    preds = _step_predicates(base, cand, o, k)
    nxt = o.next_required(k)
    if o.order != "strict" and nxt is not None and f"r_{nxt}" in base.columns:
        t_nxt, r_nxt = base[f"t_{nxt}"], base[f"r_{nxt}"]
        preds.append(r_nxt.isnull() | (cand.ts < t_nxt) | ((cand.ts == t_nxt) & (cand.r < r_nxt)))
    pairs = base.join(cand, preds).select(unit_id=base.unit_id, r_0=base.r_0, **{f"t_{k}": cand.ts, f"r_{k}": cand.r})
    hit = _earliest(pairs, k).rename(_u="unit_id", _a="r_0")
    j = a.left_join(hit, [a.unit_id == hit._u, a.r_0 == hit._a])
    return engine.materialize(j.select(*[a[c] for c in a.columns], hit[f"t_{k}"], hit[f"r_{k}"]))


def _chain_step(s: ir.Table, ev: ir.Table, o: FunnelOptions, k: int, carry: set[int]) -> ir.Table:
    """The attempts `s` after step k of the chain (every step in strict funnels, the required ones
    otherwise). An attempt carries only what later steps read: unit_id, r_0, t_0, the latest step
    done (`lt`, `lr`), in strict funnels the previous required step's ts (`pt`), and `u_j` (= r_j)
    for the steps j whose event a later step of the same name must not reuse. Required steps keep the
    attempts with a match (the table shrinks); optional steps (strict only) keep every attempt and
    say in `hit` whether it took the step."""
    strict = o.order == "strict"
    cand = ev.filter(ev.event == o.steps[k])
    keep = [c for c in s.columns if c not in ("lt", "lr", "pt", "hit")]
    anchor = s.t_0 if o.window_from == "entry" else s.pt if strict else s.lt
    preds = [s.unit_id == cand.unit_id, _within(cand.ts, anchor, o.window_seconds)]
    if strict:  # the very next event of the unit: at most one candidate, no earliest to pick
        preds.append(cand.r == s.lr + 1)
        if k in o.optional:
            j = s.left_join(cand, preds)
            return j.select(*[s[c] for c in keep], lt=ibis.coalesce(cand.ts, s.lt), lr=ibis.coalesce(cand.r, s.lr),
                            pt=s.pt, hit=cand.r.notnull())
        j = s.join(cand, preds)
        return j.select(*[s[c] for c in keep], lt=cand.ts, lr=cand.r, pt=cand.ts)
    preds += [_not_before(cand.ts, s.lt, o.tolerance_seconds), _not_before(cand.ts, s.t_0, o.tolerance_seconds)]
    # Each step consumes a distinct event: skip events earlier steps of the same name use (all done).
    preds += [cand.r != s[f"u_{j}"] for j in range(k) if f"u_{j}" in s.columns and o.steps[j] == o.steps[k]]
    pairs = s.join(cand, preds).select(*[s[c] for c in keep], _t=cand.ts, _r=cand.r)
    nxt = pairs.group_by(keep).aggregate(lt=pairs._t.min(), lr=earliest(pairs._t, pairs._r))  # the earliest
    return nxt.mutate(**{f"u_{k}": nxt.lr}) if k in carry else nxt


def _paths(engine: Engine, ev: ir.Table, o: FunnelOptions) -> tuple[ir.Table, bool]:
    """Every attempt with its path: `t_k`, `r_k` for each step, NULL for steps not done.

    Required steps are matched first, as if the optional steps were not there (so skipping an
    optional step never costs a conversion); optional steps are then filled in between. Strict
    funnels need the optional steps in the chain, since the next step must be the very next event.

    The chain carries only a few columns per attempt; each step's (ts, r) is read back from its own
    table and pivoted into one row per attempt at the end. Once a step written to a table has no
    attempt alive, later steps are not run: their columns are NULL.

    Returns the table and whether it already holds only each unit's furthest attempt: with
    `count="uniques"`, no exclusion and no optional step, the attempt is chosen on the narrow per-step
    tables, before the pivot (same order as `funnel_attempts`: most steps, then the earliest)."""
    n, strict = len(o.steps), o.order == "strict"
    chain = list(range(n)) if strict else list(o.required)
    # u_j: required steps whose event a later required step of the same name must skip (ordered).
    carry = set() if strict else {j for i, j in enumerate(chain) if o.steps[j] in {o.steps[x] for x in chain[i + 1:]}}
    e = _entries(ev, o)
    s = e.select("unit_id", "r_0", "t_0", lt=e.t_0, lr=e.r_0, **({"pt": e.t_0} if strict else {}),
                 **({"u_0": e.r_0} if 0 in carry else {}))
    s = engine.share(s)
    done = [(0, s)]  # (step, table whose rows took the step: lt, lr are its ts, r)
    alive = engine.lazy_shares or engine.execute(s.count()).as_py() > 0
    for i, k in enumerate(chain[1:], start=1):
        if not alive:
            break
        step = _chain_step(s, ev, o, k, carry)
        # Strict steps each scan every event of the unit (a statement recomputing them costs more than a table).
        written = not engine.lazy_shares or strict or i % STEPS_PER_STATEMENT == 0
        s = engine.materialize(step) if written else engine.share(step)
        if k in o.optional:  # strict only: every attempt goes on
            done.append((k, s.filter(s.hit)))
        else:
            done.append((k, s))
            alive = not written or engine.execute(s.count()).as_py() > 0
    types = {"t": ev.ts.type(), "r": ev.r.type()}
    cols = ["unit_id"] + [f"{x}_{k}" for k in range(n) for x in ("t", "r")]
    got = {k for k, _ in done}
    chosen = o.count == "uniques" and not o.exclusions and not o.optional
    if len(done) == 1:  # entries only: one attempt per unit is picked later if need be
        chosen = False
        a = s.select("unit_id", t_0=s.t_0, r_0=s.r_0)
    else:
        parts = [t.select("unit_id", _a=t.r_0, _k=ibis.literal(k, "int64"), _t=t.lt, _r=t.lr, _t0=t.t_0)
                 for k, t in done]
        u = ibis.union(*parts)
        if chosen:
            # Every step is required, and each step's attempts are some of the step before's: an attempt
            # reached as many steps as its largest k says, and a unit's furthest attempt is the one with the
            # largest k (ties: the earliest entry, (t_0, r_0)). One aggregate, no window.
            g = u.group_by("unit_id").aggregate(_b=u._a.argmin(ibis.struct({"k": -u._k, "t": u._t0, "a": u._a})))
            g = g.select(_u=g.unit_id, _b=g._b)
            u = u.semi_join(g, [u.unit_id == g._u, u._a == g._b])
        aggs = {}
        for k in sorted(got):
            aggs[f"t_{k}"], aggs[f"r_{k}"] = u._t.max(where=u._k == k), u._r.max(where=u._k == k)
        a = u.group_by(["unit_id", "_a"]).aggregate(**aggs)
    a = a.select(*[a[c] if c in a.columns else ibis.null(types[c[0]]).name(c) for c in cols])
    if not strict and o.optional:
        a = engine.materialize(a)
        for k in sorted(o.optional):
            if o.previous_required(k) in got:  # else nobody reached the step before it: stays NULL
                a = _fill_optional(engine, a.drop(f"t_{k}", f"r_{k}"), ev, o, k)
        a = a.select(*cols)
    return a, chosen


def _excluded(a: ir.Table, ev: ir.Table, o: FunnelOptions) -> ir.Table | None:
    """(unit_id, r_0) of attempts with an excluded event between steps FROM and TO, inside the window.

    A skipped optional FROM starts the interval at the latest step done before it; a skipped
    optional TO ends it at the next required step. Unordered funnels number steps in the order done."""
    removed, n = [], len(o.steps)
    for x in o.exclusions:
        f, t = x.from_step, x.to_step
        p = f if o.order == "unordered" else o.previous_required(f) if f in o.optional else f
        tf, rf = _latest(a, f + 1, p)
        alive = a.filter(rf.notnull())
        tf, rf = _latest(alive, f + 1, p)
        ends = [t] if o.order == "unordered" or t not in o.optional else [t, *([o.next_required(t)] if o.next_required(t) else [])]
        tt = ibis.coalesce(*[alive[f"t_{j}"] for j in ends]) if len(ends) > 1 else alive[f"t_{t}"]
        rt = ibis.coalesce(*[alive[f"r_{j}"] for j in ends]) if len(ends) > 1 else alive[f"r_{t}"]
        xe = ev.filter(ev.event == x.event)
        after_from = (xe.ts > tf) | ((xe.ts == tf) & (xe.r > rf))
        before_to = (xe.ts < tt) | ((xe.ts == tt) & (xe.r < rt))
        # TO never reached: the exclusion counts up to the deadline of the attempt's next required step.
        req_before = [j for j in range(t - 1, p - 1, -1) if o.order == "unordered" or j in o.required] or [p]
        last_t = ibis.coalesce(*[alive[f"t_{j}"] for j in req_before]) if len(req_before) > 1 else alive[f"t_{req_before[0]}"]
        anchor = alive.t_0 if o.window_from == "entry" else last_t
        in_window = _within(xe.ts, anchor, o.window_seconds)
        preds = [alive.unit_id == xe.unit_id, after_from, ibis.ifelse(rt.notnull(), before_to, in_window)]
        used = [alive[f"r_{j}"] for j in range(n) if o.order == "unordered" or o.steps[j] == x.event]
        preds += [r.isnull() | (xe.r != r) for r in used]
        hit = alive.join(xe, preds)
        removed.append(hit.select(_u=alive.unit_id, _a=alive.r_0))
    if not removed:
        return None
    return ibis.union(*removed, distinct=True) if len(removed) > 1 else removed[0].distinct()


def funnel_attempts(engine: Engine, o: FunnelOptions, level: str = "person") -> ir.Table:
    """One row per counted attempt: unit_id, `t_k`, `r_k` for every step (NULL past the last step
    reached), `reached` (steps completed) and `value` (the breakdown value, when asked for).

    With `count="uniques"` only each unit's furthest-reaching attempt remains (ties: earliest)."""
    ev = _numbered_events(engine, level, o)
    # Read by every step: written to a table when it is numbered (strict: a sort of every event) or when
    # optional steps read it again, each in its own statement; otherwise a filter of the events that each
    # statement applies again more cheaply than a table is written.
    ev = engine.materialize(ev) if o.order == "strict" or o.optional else engine.share(ev)
    a, chosen = (unordered_paths(engine, ev, o), False) if o.order == "unordered" else _paths(engine, ev, o)
    removed = _excluded(a, ev, o)
    if removed is not None:
        a = a.anti_join(removed, [a.unit_id == removed._u, a.r_0 == removed._a])
    n = len(o.steps)
    a = a.mutate(reached=sum(a[f"r_{k}"].notnull().cast("int64") for k in range(n)),
                 _req=sum(a[f"r_{k}"].notnull().cast("int64") for k in o.required))
    if o.count == "uniques" and not chosen:
        # Furthest: most required steps, then most optional ones; ties go to the earliest attempt.
        w = ibis.window(group_by=a.unit_id, order_by=[ibis.desc(a._req), ibis.desc(a.reached), a.t_0, a.r_0])
        a = a.mutate(_best=ibis.row_number().over(w))
        a = a.filter(a._best == 0).drop("_best")
    a = a.drop("_req")
    if o.breakdown is not None:
        k = o.attribution_step
        r = a[f"r_{k}"] if k is not None else ibis.coalesce(*[a[f"r_{j}"] for j in range(n - 1, -1, -1)])
        a = a.mutate(_r=r)
        props = ev.select(_u=ev.unit_id, _pr=ev.r, value=engine.json_get(ev.properties, o.breakdown))
        j = a.left_join(props, [a.unit_id == props._u, a._r == props._pr])
        a = j.select(*[c for c in a.columns if c != "_r"], "value")
    return a


def _step_rows(o: FunnelOptions, row: dict[str, Any]) -> list[dict[str, Any]]:
    out, first = [], row["c_0"]
    for k, name in enumerate(o.steps):
        count = int(row[f"c_{k}"])
        prev = int(row[f"c_{o.previous_required(k)}"]) if k else None
        out.append({
            "name": name,
            "count": count,
            "conversion_from_previous": (count / prev if prev else None) if k else 1.0 if count else None,
            "conversion_from_first": count / first if first else None,
            "avg_seconds_from_previous": None if k == 0 or row[f"m_{k}"] is None else float(row[f"m_{k}"]),
            "median_seconds_from_previous": None if k == 0 or row[f"p_{k}"] is None else float(row[f"p_{k}"]),
            **({"optional": True} if k in o.optional else {}),
        })
    return out


def funnel(engine: Engine, o: FunnelOptions, level: str = "person") -> dict[str, Any]:
    """Run the funnel and return the JSON contract.

    `{"steps": [{"name", "count", "conversion_from_previous", "conversion_from_first",
    "avg_seconds_from_previous", "median_seconds_from_previous"}], "histograms": [...]}`; with a
    breakdown also `"breakdown": PROPERTY, "groups": [{"value", "steps"}]`. Histograms: one per step
    after the first, `{"step", "bins": [{"from_seconds", "to_seconds", "count"}]}`."""
    n = len(o.steps)
    with engine.scope():
        a = engine.materialize(funnel_attempts(engine, o, level))
        secs = {k: a[f"t_{k}"].delta(a[f"t_{o.previous_required(k)}"], unit="microsecond").cast("float64") / US
                for k in range(1, n)}
        aggs: dict[str, Any] = {f"c_{k}": a[f"r_{k}"].count() for k in range(n)}
        for k, s in secs.items():
            aggs[f"m_{k}"], aggs[f"p_{k}"] = s.mean(), s.median()
        (overall,) = engine.execute(a.aggregate(**aggs)).to_pylist()
        result: dict[str, Any] = {"steps": _step_rows(o, overall)}
        # A step nobody reached has only empty bins: no need to scan for it.
        result["histograms"] = _histograms(engine, a, secs, o.steps, {k for k in secs if overall[f"c_{k}"]})
        if o.breakdown is not None:
            rows = engine.execute(a.group_by("value").aggregate(**aggs)).to_pylist()
            rows.sort(key=lambda r: (-int(r["c_0"]), r["value"] is None, r["value"] or ""))
            result["breakdown"] = o.breakdown
            result["groups"] = [{"value": r["value"], "steps": _step_rows(o, r)} for r in rows]
    return result


def _histograms(engine: Engine, a: ir.Table, secs: dict[int, ir.Expr], names: tuple[str, ...],
                scan: set[int]) -> list[dict]:
    if not secs:
        return []
    parts = [a.filter(a[f"r_{k}"].notnull()).select(step=ibis.literal(k), s=s) for k, s in secs.items() if k in scan]
    counts = {}
    if parts:
        u = ibis.union(*parts) if len(parts) > 1 else parts[0]
        # The last edge reached, as one flat CASE over every step's times (one per step, or a nested one,
        # cost more to build and compile than the query takes to run).
        b = ibis.cases(*[(u.s >= edge, i) for i, edge in reversed(list(enumerate(HISTOGRAM_EDGES[1:], start=1)))], else_=0)
        u = u.select("step", bin=b.cast("int64"))
        rows = engine.execute(u.group_by(["step", "bin"]).aggregate(n=u.count())).to_pylist()
        counts = {(r["step"], r["bin"]): int(r["n"]) for r in rows}
    edges = [*HISTOGRAM_EDGES, None]
    return [{"step": k, "name": names[k], "bins": [
        {"from_seconds": edges[i], "to_seconds": edges[i + 1], "count": counts.get((k, i), 0)}
        for i in range(len(HISTOGRAM_EDGES))]} for k in secs]
