"""Lifecycle (new, returning, resurrecting, dormant per interval) and stickiness (active days per interval, DAU/MAU).

A unit is *active* in an interval when it did any event in it (or the `event` given). For each interval i:

- **new**: active in i, and i is the unit's first active interval ever (``new_by="first_event"``), or
  the interval of its creation date (``new_by="created_at"``: ``created_at`` of table ``persons``, or of
  ``accounts`` at account level, read from the profile's createdAt trait; without one, ``first_seen``,
  the unit's first event of any kind, identify calls included).
- **returning**: active in i and in i-1, and not new.
- **resurrecting**: active in i, not in i-1, and not new.
- **dormant**: active in i-1 and not in i. Counted once per gap, in the first inactive interval, and
  reported as a negative number.
- **quick ratio** = (new + resurrecting) / |dormant|; None when nothing went dormant.

The whole history decides the labels: a range set with `date_from` only chooses which intervals are
reported. docs/metrics/lifecycle.md has the worked example; tests/test_lifecycle.py proves it.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.intervals import INTERVALS, check, index_to_start, interval_index, parse_day, python_index
from journeymap.engine.unit_events import unit_events

NEW_BY = ("first_event", "created_at")
LABELS = ("new", "returning", "resurrecting", "dormant")


def _events(engine: Engine, level: str, event: str | None) -> tuple[ir.Table, ir.Table]:
    ev = unit_events(engine, level)
    return ev, (ev.filter(ev.event == event) if event else ev)


def _range(engine: Engine, ev: ir.Table, active_lo, interval: str, date_from, date_to) -> tuple[int, int]:
    d_from, d_to = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise ValueError("--from must not be after --to")
    span = engine.execute(ev.aggregate(lo=ev.ts.min(), hi=ev.ts.max())).to_pylist()[0]
    lo = python_index(d_from, interval) if d_from else active_lo
    hi = python_index(d_to, interval) if d_to else (python_index(span["hi"], interval) if span["hi"] else lo)
    return lo, hi


def lifecycle(engine: Engine, *, interval: str = "week", level: str = "person", event: str | None = None,
              new_by: str = "first_event", date_from=None, date_to=None) -> dict:
    """``{"intervals": [{"start", "new", "returning", "resurrecting", "dormant", "active", "quick_ratio"}]}``."""
    check(interval)
    if new_by not in NEW_BY:
        raise ValueError(f"--new-by must be one of {', '.join(NEW_BY)}, not {new_by!r}")
    ev, act = _events(engine, level, event)
    a = act.select(unit_id=act.unit_id, idx=interval_index(act.ts, interval)).distinct()
    w = ibis.window(group_by=a.unit_id, order_by=a.idx)
    a = a.mutate(prev=a.idx.lag().over(w), nxt=a.idx.lead().over(w), first=a.idx.min().over(group_by=a.unit_id))
    if new_by == "created_at":
        profiles = engine.table("persons" if level == "person" else "accounts")
        key = profiles.person_id if level == "person" else profiles.account_id
        # The created_at trait when the profile has a readable one, else its first event of any kind.
        born = ibis.coalesce(profiles.created_at, profiles.first_seen)
        created = profiles.select(c_unit=key, new_idx=interval_index(born, interval))
        a = a.left_join(created, a.unit_id == created.c_unit).drop("c_unit")
    else:
        a = a.mutate(new_idx=a.first)
    with engine.scope():
        a = engine.materialize(a)
        lo_row = engine.execute(a.aggregate(lo=a.idx.min())).to_pylist()[0]["lo"]
        if lo_row is None:
            return {"interval": interval, "by": level, "event": event, "new_by": new_by, "intervals": []}
        lo, hi = _range(engine, ev, lo_row, interval, date_from, date_to)
        label = ibis.cases((a.idx == a.new_idx, "new"), (a.prev == a.idx - 1, "returning"), else_="resurrecting")
        labelled = a.select(unit_id=a.unit_id, idx=a.idx, label=label)
        gone = a.filter(a.nxt.isnull() | (a.nxt > a.idx + 1))
        dormant = gone.select(unit_id=gone.unit_id, idx=(gone.idx + 1).cast("int64"), label=ibis.literal("dormant"))
        both = labelled.union(dormant)
        both = both.filter((both.idx >= lo) & (both.idx <= hi))
        rows = engine.execute(both.group_by(["idx", "label"]).aggregate(n=both.count())).to_pylist()
    got = {(r["idx"], r["label"]): r["n"] for r in rows}
    out = []
    for i in range(lo, hi + 1):
        c = {k: got.get((i, k), 0) for k in LABELS}
        out.append({"start": index_to_start(i, interval).isoformat(), "new": c["new"], "returning": c["returning"],
                    "resurrecting": c["resurrecting"], "dormant": -c["dormant"],
                    "active": c["new"] + c["returning"] + c["resurrecting"],
                    "quick_ratio": round((c["new"] + c["resurrecting"]) / c["dormant"], 6) if c["dormant"] else None})
    return {"interval": interval, "by": level, "event": event, "new_by": new_by, "intervals": out}


def stickiness(engine: Engine, *, interval: str = "week", level: str = "person", event: str | None = None,
               date_from=None, date_to=None) -> dict:
    """How many days units were active in each interval, and DAU/MAU per calendar month.

    ``distribution[k-1]`` is the number of units active on exactly k distinct days (UTC) of the
    interval. DAU/MAU for a month = (unit-days / days) / units active in the month, where days are the
    month's calendar days that lie within the data (first to last event day of any unit), so the partial
    months at both ends are not diluted."""
    check(interval)
    if interval == "day":
        raise ValueError("stickiness counts active days per interval: --interval must be week, month or quarter")
    ev, act = _events(engine, level, event)
    d = act.select(unit_id=act.unit_id, day=interval_index(act.ts, "day"), idx=interval_index(act.ts, interval),
                   month=interval_index(act.ts, "month")).distinct()
    per = d.group_by(["unit_id", "idx"]).aggregate(days=d.count())
    dist = per.group_by(["idx", "days"]).aggregate(n=per.count())
    monthly = d.group_by(["unit_id", "month"]).aggregate(days=d.count())
    mm = monthly.group_by("month").aggregate(mau=monthly.count(), unit_days=monthly.days.sum())
    span = engine.execute(ev.aggregate(lo=ev.ts.min(), hi=ev.ts.max())).to_pylist()[0]
    if span["lo"] is None:
        return {"interval": interval, "by": level, "event": event, "intervals": [], "dau_mau": []}
    d_from, d_to = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise ValueError("--from must not be after --to")
    lo, hi = (python_index(d_from, interval) if d_from else python_index(span["lo"], interval),
              python_index(d_to, interval) if d_to else python_index(span["hi"], interval))
    rows = engine.execute(dist.filter((dist.idx >= lo) & (dist.idx <= hi))).to_pylist()
    got: dict[int, dict[int, int]] = {}
    for r in rows:
        got.setdefault(r["idx"], {})[r["days"]] = r["n"]
    intervals = []
    for i in range(lo, hi + 1):
        first, nxt = index_to_start(i, interval), index_to_start(i + 1, interval)
        width = (nxt - first).days
        dist_i = [got.get(i, {}).get(k, 0) for k in range(1, width + 1)]
        intervals.append({"start": first.isoformat(), "units": sum(dist_i), "distribution": dist_i})
    first_day, last_day = span["lo"].date(), span["hi"].date()
    m_lo = python_index(d_from, "month") if d_from else python_index(first_day, "month")
    m_hi = python_index(d_to, "month") if d_to else python_index(last_day, "month")
    mrows = {r["month"]: r for r in engine.execute(mm.filter((mm.month >= m_lo) & (mm.month <= m_hi))).to_pylist()}
    dau_mau = []
    for m in range(m_lo, m_hi + 1):
        a, b = index_to_start(m, "month"), index_to_start(m + 1, "month") - dt.timedelta(days=1)
        days = max(0, (min(b, last_day) - max(a, first_day)).days + 1)
        r = mrows.get(m)
        mau, unit_days = (r["mau"], int(r["unit_days"])) if r else (0, 0)
        avg = unit_days / days if days else 0.0
        dau_mau.append({"month": a.isoformat(), "days": days, "avg_dau": round(avg, 6), "mau": mau,
                        "dau_mau": round(avg / mau, 6) if mau else None})
    return {"interval": interval, "by": level, "event": event, "intervals": intervals, "dau_mau": dau_mau}


__all__ = ["INTERVALS", "LABELS", "NEW_BY", "lifecycle", "stickiness"]
