"""Exact event funnels: how many units complete steps 1..k in order within a window.

Written once in Ibis; runs on DuckDB and PySpark. Definition, rules and worked example:
`docs/metrics/funnels.md`.

The cost grows linearly with the number of steps: the events of the funnel are filtered and
numbered once (`materialize`), every step-1 event starts an attempt, and each later step is one
join of the attempts still alive with the events of that step, keeping the earliest match
("greedy earliest next match"), materialized before the next step. No k-way self-join.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.funnel_options import FunnelOptions
from journeymap.engine.funnel_unordered import in_entry_range, unordered_paths
from journeymap.engine.unit_events import unit_events

__all__ = ["HISTOGRAM_EDGES", "funnel", "funnel_attempts"]

# Time-to-convert histogram bins, in seconds: [0, 1m), [1m, 5m), ... [30d, inf). Negative times
# (possible only with a tolerance) fall in the first bin.
HISTOGRAM_EDGES = (0, 60, 300, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
US = 1_000_000


def _numbered_events(engine: Engine, level: str, o: FunnelOptions) -> ir.Table:
    """The unit's events, numbered `r` in the unit's order (ts, seq, event). Ordered funnels keep
    only the events they name; strict funnels keep every event, since any event breaks a sequence."""
    ev = unit_events(engine, level)
    ev = ev.filter(ev.ts.notnull())
    if o.order != "strict":
        ev = ev.filter(ev.event.isin(sorted(set(o.steps) | {x.event for x in o.exclusions})))
    w = ibis.window(group_by=ev.unit_id, order_by=[ev.ts, ev.seq, ev.event])
    return ev.select("unit_id", "ts", "event", "properties", r=ibis.row_number().over(w))


def _entries(ev: ir.Table, o: FunnelOptions) -> ir.Table:
    first = in_entry_range(ev.filter(ev.event == o.steps[0]), o)
    return first.select("unit_id", t_0=first.ts, r_0=first.r)


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
    preds = [alive.unit_id == cand.unit_id, cand.ts.delta(anchor, unit="microsecond") <= int(o.window_seconds * US)]
    if o.order == "strict":
        return [*preds, cand.r == last_r + 1]
    tol = -int(o.tolerance_seconds * US)
    preds += [cand.ts.delta(last_t, unit="microsecond") >= tol, cand.ts.delta(alive.t_0, unit="microsecond") >= tol]
    # Each step consumes a distinct event: skip events other steps of the same name already use.
    used = [alive[f"r_{j}"] for j in range(len(o.steps)) if j != k and o.steps[j] == o.steps[k] and f"r_{j}" in alive.columns]
    return preds + [r.isnull() | (cand.r != r) for r in used]


def _earliest(engine: Engine, pairs: ir.Table, k: int) -> ir.Table:
    w = ibis.window(group_by=[pairs.unit_id, pairs.r_0], order_by=[pairs[f"t_{k}"], pairs[f"r_{k}"]])
    pairs = pairs.mutate(_n=ibis.row_number().over(w))
    return engine.materialize(pairs.filter(pairs._n == 0).drop("_n"))


def _next_step(engine: Engine, alive: ir.Table, ev: ir.Table, o: FunnelOptions, k: int) -> ir.Table:
    """The attempts that reached the required step before k, extended by `t_k`, `r_k`: the earliest
    event of step k that may follow. Attempts with no such event drop out, so the table shrinks."""
    cand = ev.filter(ev.event == o.steps[k])
    pairs = alive.join(cand, _step_predicates(alive, cand, o, k))
    return _earliest(engine, pairs.select(*[alive[c] for c in alive.columns], **{f"t_{k}": cand.ts, f"r_{k}": cand.r}), k)


def _fill_optional(engine: Engine, a: ir.Table, ev: ir.Table, o: FunnelOptions, k: int) -> ir.Table:
    """Add `t_k`, `r_k` for optional step k: the earliest event of it after the latest step done and,
    in ordered funnels, before the next required step's event. NULL when the unit skipped it."""
    p = o.previous_required(k)
    base = a.filter(a[f"r_{p}"].notnull())
    cand = ev.filter(ev.event == o.steps[k])
    preds = _step_predicates(base, cand, o, k)
    nxt = o.next_required(k)
    if o.order != "strict" and nxt is not None and f"r_{nxt}" in base.columns:
        preds.append(base[f"r_{nxt}"].isnull() | (cand.r < base[f"r_{nxt}"]))
    pairs = base.join(cand, preds).select(unit_id=base.unit_id, r_0=base.r_0, **{f"t_{k}": cand.ts, f"r_{k}": cand.r})
    hit = _earliest(engine, pairs, k).rename(_u="unit_id", _a="r_0")
    j = a.left_join(hit, [a.unit_id == hit._u, a.r_0 == hit._a])
    return engine.materialize(j.select(*[a[c] for c in a.columns], hit[f"t_{k}"], hit[f"r_{k}"]))


def _paths(engine: Engine, ev: ir.Table, o: FunnelOptions) -> ir.Table:
    """Every attempt with its path: `t_k`, `r_k` for each step, NULL for steps not done.

    Required steps are matched first, as if the optional steps were not there (so skipping an
    optional step never costs a conversion); optional steps are then filled in between. Strict
    funnels need the optional steps in the chain, since the next step must be the very next event."""
    n, req = len(o.steps), o.required
    layers = [engine.materialize(_entries(ev, o))]  # layer i: attempts that reached required step req[i]
    for i in range(1, len(req)):
        if o.order == "strict":
            for k in range(req[i - 1] + 1, req[i]):
                layers[-1] = _fill_optional(engine, layers[-1], ev, o, k)
        layers.append(_next_step(engine, layers[-1], ev, o, req[i]))
    if o.order == "strict":
        for k in range(req[-1] + 1, n):
            layers[-1] = _fill_optional(engine, layers[-1], ev, o, k)
    types = {"t": ev.ts.type(), "r": ev.r.type()}
    cols = ["unit_id"] + [f"{x}_{k}" for k in range(n) for x in ("t", "r")]
    parts = []
    for i, layer in enumerate(layers):
        if i + 1 < len(layers):  # attempts whose furthest required step is req[i]
            nxt = layers[i + 1]
            layer = layer.anti_join(nxt, [layer.unit_id == nxt.unit_id, layer.r_0 == nxt.r_0])
        parts.append(layer.select(*[layer[c] if c in layer.columns else ibis.null(types[c[0]]).name(c) for c in cols]))
    a = ibis.union(*parts) if len(parts) > 1 else parts[0]
    if o.order != "strict" and o.optional:
        a = engine.materialize(a)
        for k in sorted(o.optional):
            a = _fill_optional(engine, a.drop(f"t_{k}", f"r_{k}"), ev, o, k)
        a = a.select(*cols)
    return a


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
        in_window = xe.ts.delta(anchor, unit="microsecond") <= int(o.window_seconds * US)
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
    ev = engine.materialize(_numbered_events(engine, level, o))
    a = unordered_paths(engine, ev, o) if o.order == "unordered" else _paths(engine, ev, o)
    removed = _excluded(a, ev, o)
    if removed is not None:
        a = a.anti_join(removed, [a.unit_id == removed._u, a.r_0 == removed._a])
    n = len(o.steps)
    a = a.mutate(reached=sum(a[f"r_{k}"].notnull().cast("int64") for k in range(n)),
                 _req=sum(a[f"r_{k}"].notnull().cast("int64") for k in o.required))
    if o.count == "uniques":
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
        result["histograms"] = _histograms(engine, a, secs, o.steps)
        if o.breakdown is not None:
            rows = engine.execute(a.group_by("value").aggregate(**aggs)).to_pylist()
            rows.sort(key=lambda r: (-int(r["c_0"]), r["value"] is None, r["value"] or ""))
            result["breakdown"] = o.breakdown
            result["groups"] = [{"value": r["value"], "steps": _step_rows(o, r)} for r in rows]
    return result


def _histograms(engine: Engine, a: ir.Table, secs: dict[int, ir.Expr], names: tuple[str, ...]) -> list[dict]:
    if not secs:
        return []
    parts = []
    for k, s in secs.items():
        b = ibis.literal(0)
        for i, edge in enumerate(HISTOGRAM_EDGES[1:], start=1):
            b = ibis.ifelse(s >= edge, i, b)
        sub = a.filter(a[f"r_{k}"].notnull())
        parts.append(sub.select(step=ibis.literal(k), bin=b.cast("int64").name("bin")))
    u = ibis.union(*parts) if len(parts) > 1 else parts[0]
    counts = {(r["step"], r["bin"]): int(r["n"]) for r in engine.execute(u.group_by(["step", "bin"]).aggregate(n=u.count())).to_pylist()}
    edges = [*HISTOGRAM_EDGES, None]
    return [{"step": k, "name": names[k], "bins": [
        {"from_seconds": edges[i], "to_seconds": edges[i + 1], "count": counts.get((k, i), 0)}
        for i in range(len(HISTOGRAM_EDGES))]} for k in secs]
