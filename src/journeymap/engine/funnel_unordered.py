"""Unordered funnels: step k counts the units that did any k of the steps within the window.

An attempt starts at any event of a step (the entry; the date range filters entries only). For
each step name E that the funnel names m_E times, the attempt takes m_E events of E: the entry when
it is an E, then the earliest other E events from the entry's time (less the tolerance) up to the
end of the window. Its steps are numbered in the order done: the entry first, then by time.

Cost is linear in attempts x steps, with no self-join on a time range: every event carries its
number q among the unit's events of its name and, per name, how many of them came before it (a
range window). The E events an attempt takes are then those numbered c_E + 1, c_E + 2, ..., found
by an equi-join.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.funnel_options import FunnelOptions

__all__ = ["in_entry_range", "unordered_paths"]

US = 1_000_000
EPOCH = dt.datetime(1970, 1, 1)


def in_entry_range(t: ir.Table, o: FunnelOptions) -> ir.Table:
    """Entries inside --from/--to: the date range filters entry only, so attempts convert after it ends."""
    if o.date_from is not None:
        t = t.filter(t.ts >= ibis.timestamp(dt.datetime.combine(o.date_from, dt.time())))
    if o.date_to is not None:
        t = t.filter(t.ts < ibis.timestamp(dt.datetime.combine(o.date_to + dt.timedelta(days=1), dt.time())))
    return t


def _best_entries(engine: Engine, entries: ir.Table, names: Counter) -> ir.Table:
    """Each unit's furthest-reaching entry (ties: the earliest), found before any slot is joined.

    An attempt does min(m_i, n_i - c_i) steps of name i: n_i - c_i counts the unit's events of that
    name from its entry's time less the tolerance to the end of the window, the entry included. In
    uniques mode without exclusions only this attempt can count, so only it is expanded."""
    reach = sum(ibis.least(ibis.literal(m), entries[f"n_{i}"] - entries[f"c_{i}"]) for i, m in enumerate(names.values()))
    w = ibis.window(group_by=entries.unit_id, order_by=[ibis.desc(reach), entries.ts, entries.r])
    t = entries.mutate(_best=ibis.row_number().over(w))
    return engine.materialize(t.filter(t._best == 0).drop("_best"))


def unordered_paths(engine: Engine, ev: ir.Table, o: FunnelOptions) -> ir.Table:
    """Every attempt: unit_id, then `t_k`, `r_k` of the k-th step done (NULL past the last)."""
    names = Counter(o.steps)
    tol, window = int(o.tolerance_seconds * US), int(o.window_seconds * US)
    fe = ev.filter(ev.event.isin(sorted(names)))
    fe = fe.mutate(_us=fe.ts.delta(ibis.timestamp(EPOCH), unit="microsecond"))
    fe = fe.mutate(q=ibis.row_number().over(ibis.window(group_by=[fe.unit_id, fe.event], order_by=[fe.ts, fe.r])) + 1)
    # c_i: the unit's events of name i more than `tol` before this one (RANGE frames include ties).
    before = ibis.window(group_by=fe.unit_id, order_by=fe._us, range=(None, -(tol + 1)))
    counts = {f"c_{i}": ibis.coalesce((fe.event == name).cast("int64").sum().over(before), 0) for i, name in enumerate(names)}
    prune = o.count == "uniques" and not o.exclusions
    if prune:  # n_i: the unit's events of name i up to the end of this one's window
        upto = ibis.window(group_by=fe.unit_id, order_by=fe._us, range=(None, window))
        counts |= {f"n_{i}": ibis.coalesce((fe.event == name).cast("int64").sum().over(upto), 0) for i, name in enumerate(names)}
    fe = engine.materialize(fe.mutate(**counts))

    entries = in_entry_range(fe, o)
    if prune:
        entries = _best_entries(engine, entries, names)
    wanted = []  # per entry and step slot: which event of which name it takes
    for i, (name, m) in enumerate(names.items()):
        for j in range(1, m + 1):
            part = entries.filter(entries.event != name) if j == m else entries  # an entry fills a slot of its name
            q = part[f"c_{i}"] + j
            q = q + ibis.ifelse((part.event == name) & (q >= part.q), 1, 0)  # skip past the entry itself
            wanted.append(part.select(unit_id=part.unit_id, r_0=part.r, t_0=part.ts, _name=ibis.literal(name), _q=q))
    slots = ibis.union(*wanted) if len(wanted) > 1 else wanted[0]
    hit = slots.join(fe, [slots.unit_id == fe.unit_id, slots._name == fe.event, slots._q == fe.q])
    hit = hit.filter(hit.ts.delta(hit.t_0, unit="microsecond") <= window)
    taken = hit.select(unit_id=hit.unit_id, r_0=hit.r_0, ts=hit.ts, r=hit.r, first=ibis.literal(0))
    firsts = entries.select(unit_id=entries.unit_id, r_0=entries.r, ts=entries.ts, r=entries.r, first=ibis.literal(1))
    steps = ibis.union(firsts, taken)
    w = ibis.window(group_by=[steps.unit_id, steps.r_0], order_by=[ibis.desc(steps.first), steps.ts, steps.r])
    steps = steps.mutate(pos=ibis.row_number().over(w))
    aggs = {}
    for k in range(len(o.steps)):
        aggs[f"t_{k}"] = steps.ts.max(where=steps.pos == k)
        aggs[f"r_{k}"] = steps.r.max(where=steps.pos == k)
    return engine.materialize(steps.group_by([steps.unit_id, steps.r_0.name("_entry")]).aggregate(**aggs).drop("_entry"))
