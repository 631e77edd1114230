"""MRR per account and month, the MRR bridge, revenue retention, and churn by reason and plan.

An account's MRR at the end of a month is the MRR stated by its last revenue event up to then
(`revenue.match`, ordered by ts then seq), or 0 when that last event is a churn event. Between
consecutive months, each account falls in one bridge category:

  new           0 (never paid before) -> > 0
  reactivation  0 (paid before)       -> > 0
  expansion     a > 0                 -> b > a
  contraction   a > 0                 -> 0 < b < a
  churned       a > 0                 -> 0

so that start + new + reactivation + expansion - contraction - churned = end, exactly, every month.
Monthly gross revenue retention = (start - contraction - churned) / start; net = (start + expansion
- contraction - churned) / start. Logo churn = accounts churned / accounts paying at the start.
Months are calendar months in UTC; the first month of the data has no start.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from journeymap.errors import NotEnoughData
from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.personas import UNASSIGNED, units
from journeymap.engine.rules import rule_expr
from journeymap.engine.unit_events import unit_events
from journeymap.journey.definition import JourneyDefinition, Revenue

CATEGORIES = ("new", "reactivation", "expansion", "contraction", "churned")


def _config(definition: JourneyDefinition) -> Revenue:
    if definition.revenue is None:
        raise NotEnoughData("journeymap.yml has no `revenue:` section, so MRR is unknown",
                            add="a `revenue:` section saying which events state MRR (docs/metrics/revenue.md)")
    return definition.revenue


def revenue_events(engine: Engine, definition: JourneyDefinition) -> ir.Table:
    """account (unit_id), ts, seq, mrr (0 after a churn event), churn flag, for each revenue event."""
    r = _config(definition)
    ev = unit_events(engine, "account")
    is_churn = rule_expr(engine, ev, r.churn)
    stated = engine.json_get(ev.properties, r.mrr).try_cast("float64") * r.scale
    ev = ev.filter(is_churn | (rule_expr(engine, ev, r.match) & stated.notnull()))
    return ev.select("unit_id", "ts", "seq", "properties", churn=is_churn,
                     mrr=ibis.ifelse(is_churn, ibis.literal(0.0), stated))


def month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month from `first`'s to `last`'s.

    >>> month_starts(dt.date(2024, 11, 5), dt.date(2025, 1, 2))
    [datetime.date(2024, 11, 1), datetime.date(2024, 12, 1), datetime.date(2025, 1, 1)]
    """
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def monthly_mrr(engine: Engine, rev: ir.Table) -> ir.Table:
    """unit_id, month (date), mrr at the month's end: one row per account per month from its first revenue event."""
    span = engine.execute(rev.aggregate(lo=rev.ts.min(), hi=rev.ts.max())).to_pylist()[0]
    if span["lo"] is None:
        return rev.select("unit_id", month=ibis.null("date"), mrr=rev.mrr).limit(0)
    months = month_starts(span["lo"].date(), span["hi"].date())
    ends = [(m + dt.timedelta(days=32)).replace(day=1) for m in months]
    grid = ibis.memtable({"month": months, "_end": [dt.datetime(e.year, e.month, 1) for e in ends]})
    j = rev.join(grid, rev.ts < grid._end)
    w = ibis.window(group_by=[j.unit_id, j.month], order_by=[ibis.desc(j.ts), ibis.desc(j.seq)])
    j = j.mutate(_rank=ibis.row_number().over(w))
    return j.filter(j._rank == 0).select("unit_id", "month", "mrr")


def mrr_bridge(engine: Engine, definition: JourneyDefinition) -> dict:
    """{"months": [{"month", "start", "new", "reactivation", "expansion", "contraction", "churned", "end",
    "paying_start", "logos_churned", "logo_churn", "revenue_churn", "grr", "nrr"}]}"""
    with engine.scope():
        rev = engine.materialize(revenue_events(engine, definition))
        m = monthly_mrr(engine, rev)
        w = ibis.window(group_by=m.unit_id, order_by=m.month)
        running = ibis.window(group_by=m.unit_id, order_by=m.month, preceding=None, following=0)
        m = m.mutate(prev=m.mrr.lag().over(w).fill_null(0.0), _peak=m.mrr.max().over(running))
        m = m.mutate(paid_before=m._peak.lag().over(w).fill_null(0.0) > 0)
        cur, prev = m.mrr, m.prev
        parts = {
            "new": ibis.ifelse((prev == 0) & (cur > 0) & ~m.paid_before, cur, 0.0),
            "reactivation": ibis.ifelse((prev == 0) & (cur > 0) & m.paid_before, cur, 0.0),
            "expansion": ibis.ifelse((prev > 0) & (cur > prev), cur - prev, 0.0),
            "contraction": ibis.ifelse((prev > 0) & (cur > 0) & (cur < prev), prev - cur, 0.0),
            "churned": ibis.ifelse((prev > 0) & (cur == 0), prev, 0.0),
        }
        agg = m.group_by("month").aggregate(
            start=prev.sum(), end=cur.sum(),
            paying_start=(prev > 0).ifelse(1, 0).sum(),
            logos_churned=((prev > 0) & (cur == 0)).ifelse(1, 0).sum(),
            **{k: v.sum() for k, v in parts.items()},
        ).order_by("month")
        rows = engine.execute(agg).to_pylist()
    out = []
    for i, r in enumerate(rows):
        start = r["start"] if i else None  # the first month has no month before it
        row = {"month": r["month"].isoformat(), "start": start, **{k: r[k] for k in CATEGORIES}, "end": r["end"]}
        if i == 0:
            row.update({k: None for k in CATEGORIES if k != "new"}, new=r["end"])
        paying = r["paying_start"] if i else 0
        row.update(
            paying_start=paying, logos_churned=r["logos_churned"] if i else 0,
            logo_churn=r["logos_churned"] / paying if paying else None,
            revenue_churn=r["churned"] / start if start else None,
            grr=(start - r["contraction"] - r["churned"]) / start if start else None,
            nrr=(start + r["expansion"] - r["contraction"] - r["churned"]) / start if start else None,
        )
        out.append(row)
    return {"months": out}


def churn_breakdown(engine: Engine, definition: JourneyDefinition) -> dict:
    """Churn events by voluntary vs involuntary, reason, plan, persona and the stage the account was in
    just before, each with the MRR in force before the churn event."""
    r = _config(definition)
    with engine.scope():
        rev = engine.materialize(revenue_events(engine, definition))
        w = ibis.window(group_by=rev.unit_id, order_by=[rev.ts, rev.seq])
        rev = rev.mutate(lost=rev.mrr.lag().over(w).fill_null(0.0))  # MRR in force before the churn event
        ch = rev.filter(rev.churn)
        involuntary = rule_expr(engine, ch, r.involuntary) if r.involuntary else ibis.literal(False)
        ch = ch.mutate(
            reason=engine.json_get(ch.properties, r.reason) if r.reason else ibis.null("string"),
            plan=engine.json_get(ch.properties, r.plan) if r.plan else ibis.null("string"),
            kind=ibis.ifelse(involuntary, "involuntary", "voluntary"),
        )
        # The account's persona, and the stage it was in just before the churn event.
        u = units(engine, definition, "account")
        u = u.select(_acct=u.unit_id, persona=u.persona)
        ac = journey_tables(engine, definition, "account")[2]
        before = ac.select(_u=ac.unit_id, _seq=ac.seq, stage=ac.stage_before)
        ch = ch.left_join(u, ch.unit_id == u._acct)
        ch = ch.left_join(before, [ch.unit_id == before._u, ch.seq == before._seq])
        ch = engine.materialize(ch.mutate(persona=ch.persona.fill_null(UNASSIGNED)))
        out = {}
        for key in ("kind", "reason", "plan", "persona", "stage"):
            g = ch.group_by(key).aggregate(churns=ch.count(), accounts=ch.unit_id.nunique(), mrr_lost=ch.lost.sum())
            rows = engine.execute(g).to_pylist()
            out[f"by_{key}"] = sorted(
                ({"value": x[key], "churns": int(x["churns"]), "accounts": int(x["accounts"]), "mrr_lost": x["mrr_lost"]}
                 for x in rows), key=lambda x: (-x["churns"], str(x["value"])))
    return out
