"""Per-unit tables of an experiment (journey.experiments.Experiment), in Ibis over the store.

`assignments` gives one row per exposed unit: its first exposure, the variants it was exposed to and the
one it is analysed in. `unit_metrics` gives one row per unit analysed: `variant`, and per metric its value
(`<id>`), its pre-exposure value (`<id>__pre`, the CUPED covariate) and for ratio metrics a denominator
(`<id>__n`). The statistics are insights.experiments'. Semantics:
docs/metrics/experiments.md.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from journeymap.engine.annotate import annotated_events
from journeymap.engine.backends import Engine
from journeymap.engine.personas import unit_traits
from journeymap.engine.rules import rule_expr
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.experiments import Experiment, ExperimentMetric

DAY = 86400.0
PRE_KINDS = ("conversion", "count", "retention", "mrr")
"""Kinds with a pre-exposure value of the same metric (CUPED's covariate); a funnel or a time to value
starts at the exposure, so it has none."""


def _seconds(s: float) -> ir.IntervalScalar:
    return ibis.interval(seconds=int(s))


def assignments(engine: Engine, definition: JourneyDefinition, exp: Experiment, level: str) -> ir.Table:
    """Per exposed unit: unit_id, exposed_at (first exposure), variants (how many distinct), variant."""
    ev = annotated_events(engine, definition, level)
    keep = [rule_expr(engine, ev, exp.exposure)] if exp.exposure is not None else []
    if exp.start:
        keep.append(ev.ts >= ibis.timestamp(dt.datetime.fromisoformat(exp.start)))
    if exp.end:
        keep.append(ev.ts < ibis.timestamp(dt.datetime.fromisoformat(exp.end) + dt.timedelta(days=1)))
    if exp.variant.property is not None:
        value = engine.json_get(ev.properties, exp.variant.property)
        x = ev.filter(*keep, value.notnull()).mutate(_v=value)
    else:
        base, trait = unit_traits(engine, level)
        tv = base.select(_u=base.unit_id, _v=trait(exp.variant.trait))
        tv = tv.filter(tv._v.notnull())
        x = ev.filter(*keep) if keep else ev
        x = x.inner_join(tv, x.unit_id == tv._u)
    return x.group_by("unit_id").aggregate(exposed_at=x.ts.min(), variants=x._v.nunique(), variant=x._v.min())


def _window_events(engine: Engine, definition: JourneyDefinition, m: ExperimentMetric, ev: ir.Table) -> ir.Table:
    """The events a conversion, count, retention or time-to-value metric reads: unit_id, ts."""
    if m.stage is not None:
        e = ev.filter(ev.stage_hit == m.stage)
    elif m.event is not None:
        e = ev.filter(rule_expr(engine, ev, m.event))
    elif m.kind == "time_to_value":
        e = ev.filter(rule_expr(engine, ev, definition.milestones.value_moment))
    else:
        e = ev
    return e.select(_u=e.unit_id, _ts=e.ts)


def _between(t: ir.TimestampColumn, start: ir.TimestampValue, lo: float, hi: float) -> ir.BooleanValue:
    return (t >= start + _seconds(lo)) & (t < start + _seconds(hi))


def _flag(expr: ir.BooleanValue) -> ir.IntegerValue:
    return expr.ifelse(1, 0)


def _metric(engine: Engine, definition: JourneyDefinition, m: ExperimentMetric, u: ir.Table,
            ev: ir.Table) -> ir.Table:
    """unit_id and the metric's columns (`v`, `pre`, `n`: NULL where a kind has none), one row per unit of u."""
    w = m.window_seconds
    if m.kind in ("conversion", "count", "retention"):
        e = _window_events(engine, definition, m, ev)
        j = u.inner_join(e, u.unit_id == e._u)
        lo, hi = (m.after_seconds, m.after_seconds + w) if m.kind == "retention" else (0.0, w)
        post, pre = _flag(_between(j._ts, j.exposed_at, lo, hi)), _flag(_between(j._ts, j.exposed_at, -w, 0.0))
        agg = (j.group_by(_k=j.unit_id).aggregate(v=post.sum(), pre=pre.sum()) if m.kind == "count" else
               j.group_by(_k=j.unit_id).aggregate(v=post.max(), pre=pre.max()))
        out = u.left_join(agg, u.unit_id == agg._k)
        return out.select(unit_id=out.unit_id, v=out.v.fill_null(0).cast("float64"),
                          pre=out.pre.fill_null(0).cast("float64"), n=ibis.literal(1.0))
    if m.kind == "time_to_value":
        e = _window_events(engine, definition, m, ev)
        j = u.inner_join(e, u.unit_id == e._u)
        j = j.filter(_between(j._ts, j.exposed_at, 0.0, w))
        agg = j.group_by(_k=j.unit_id).aggregate(first=j._ts.min(), at=j.exposed_at.min())
        out = u.left_join(agg, u.unit_id == agg._k)
        delay = (out.first.epoch_seconds() - out.at.epoch_seconds()).cast("float64") / DAY
        return out.select(unit_id=out.unit_id, v=delay.fill_null(0.0), pre=ibis.null("float64"),
                          n=out.first.notnull().ifelse(1.0, 0.0))
    if m.kind == "funnel":
        cur = u.select(_k=u.unit_id, _t=u.exposed_at, _end=u.exposed_at + _seconds(w))
        for step in m.steps or []:
            e = ev.filter(rule_expr(engine, ev, step))
            e = e.select(_u=e.unit_id, _ts=e.ts)
            j = cur.inner_join(e, cur._k == e._u)
            j = j.filter(j._ts >= j._t, j._ts < j._end)
            cur = j.group_by(["_k", "_end"]).aggregate(_t=j._ts.min())
        out = u.left_join(cur, u.unit_id == cur._k)
        return out.select(unit_id=out.unit_id, v=out._t.notnull().ifelse(1.0, 0.0), pre=ibis.null("float64"),
                          n=ibis.literal(1.0))
    if m.kind == "mrr":
        return _mrr(engine, definition, u, ev, w)
    raise ValueError(f"unknown metric kind {m.kind!r}")  # the definition's Literal keeps this unreachable


def _mrr_at(u: ir.Table, stated: ir.Table, churns: ir.Table, offset: float, strict: bool) -> ir.Table:
    """_k, mrr: the MRR the unit's last MRR event at exposure + offset stated, 0 if a churn event came after."""
    def before(t: ir.Table) -> ir.Table:
        j = u.inner_join(t, u.unit_id == t._u)
        at = j.exposed_at + _seconds(offset)
        return j.filter(j._ts < at if strict else j._ts <= at)

    s = before(stated)
    last = s.group_by(_k=s.unit_id).aggregate(_last=s._ts.max(), mrr=s._mrr.argmax(s._ts))
    c = before(churns)
    churned = c.group_by(_c=c.unit_id).aggregate(_churn=c._ts.max())
    j = last.left_join(churned, last._k == churned._c)
    gone = j._churn.notnull() & (j._churn >= j._last)
    return j.select(_k=j._k, mrr=gone.ifelse(0.0, j.mrr.fill_null(0.0)))


def _mrr(engine: Engine, definition: JourneyDefinition, u: ir.Table, ev: ir.Table, w: float) -> ir.Table:
    rev = definition.revenue
    stated = ev.filter(rule_expr(engine, ev, rev.match))
    stated = stated.select(_u=stated.unit_id, _ts=stated.ts,
                           _mrr=engine.json_get(stated.properties, rev.mrr).try_cast("float64") * rev.scale)
    churns = ev.filter(rule_expr(engine, ev, rev.churn))
    churns = churns.select(_u=churns.unit_id, _ts=churns.ts)
    post, pre = _mrr_at(u, stated, churns, w, strict=True), _mrr_at(u, stated, churns, 0.0, strict=True)
    pre = pre.rename(_p="_k", _pre="mrr")
    out = u.left_join(post, u.unit_id == post._k)
    out = out.left_join(pre, out.unit_id == pre._p)
    return out.select(unit_id=out.unit_id, v=out.mrr.fill_null(0.0), pre=out._pre.fill_null(0.0), n=ibis.literal(1.0))


def unit_metrics(engine: Engine, definition: JourneyDefinition, exp: Experiment, level: str,
                 assigned: ir.Table) -> ir.Table:
    """One row per unit of `assigned` (unit_id, variant, exposed_at): variant and per metric `<id>`, `<id>__pre`,
    `<id>__n`."""
    ev = annotated_events(engine, definition, level)
    u = assigned.select("unit_id", "variant", "exposed_at")
    out = u
    for _, m in exp.all_metrics:
        t = _metric(engine, definition, m, u, ev)
        t = t.select(_j=t.unit_id, **{m.id: t.v, f"{m.id}__pre": t.pre, f"{m.id}__n": t.n})
        out = out.left_join(t, out.unit_id == t._j).drop("_j")
    return out
