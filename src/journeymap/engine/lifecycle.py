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

from journeymap.errors import OptionError
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import INTERVALS, check, index_to_start, interval_index, parse_day, python_index
from journeymap.engine.unit_events import unit_events

NEW_BY = ("first_event", "created_at")
LABELS = ("new", "returning", "resurrecting", "dormant")
# Engine indexes: the interval indexes the engine computes equal `python_index` of the same timestamps, so
# its last active interval (or day) stands for the latest event. Months and quarters always do; days and
# weeks from the origin (1970-01-05) on, where integer division truncating (DuckDB) and flooring (Python)
# agree, and the store holds no event before events.schema.MIN_TS (1990).


def _events(engine: Engine, level: str, event: str | None) -> tuple[ir.Table, ir.Table]:
    ev = unit_events(engine, level)
    return ev, (ev.filter(ev.event == event) if event else ev)


def _check_range(date_from, date_to):
    d_from, d_to = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise OptionError("--from must not be after --to")
    return d_from, d_to


def _row(kind: str, types: dict, **values) -> dict:
    """One part of a one-statement union: the columns of `types` in order, typed, null where not given."""
    out = {"kind": ibis.literal(kind)}
    for name, typ in types.items():
        v = values.get(name)
        out[name] = ibis.null(typ) if v is None else (ibis.literal(v, typ) if isinstance(v, str) else v.cast(typ))
    return out


def lifecycle(engine: Engine, *, interval: str = "week", level: str = "person", event: str | None = None,
              new_by: str = "first_event", date_from=None, date_to=None) -> dict:
    """``{"intervals": [{"start", "new", "returning", "resurrecting", "dormant", "active", "quick_ratio"}]}``."""
    check(interval)
    if new_by not in NEW_BY:
        raise OptionError(f"--new-by must be one of {', '.join(NEW_BY)}, not {new_by!r}")
    ev, act = _events(engine, level, event)
    a = act.select(unit_id=act.unit_id, idx=interval_index(act.ts, interval)).distinct()
    w = ibis.window(group_by=a.unit_id, order_by=a.idx)
    a = a.mutate(prev=a.idx.lag().over(w), nxt=a.idx.lead().over(w))
    if new_by == "created_at":
        profiles = engine.table("persons" if level == "person" else "accounts")
        key = profiles.person_id if level == "person" else profiles.account_id
        # The created_at trait when the profile has a readable one, else its first event of any kind.
        born = ibis.coalesce(profiles.created_at, profiles.first_seen)
        created = profiles.select(c_unit=key, new_idx=interval_index(born, interval))
        a = a.left_join(created, a.unit_id == created.c_unit).drop("c_unit")
        is_new = a.idx == a.new_idx
    else:
        is_new = a.prev.isnull()  # the unit's first active interval: nothing active before it
    # One statement, one round trip (as retention): the active (unit, interval) rows are a named CTE read
    # three times, and the label counts, the first and last active interval (and with --event the latest
    # event of any kind) come back as one union (kind, idx, key, n, hi). A temp table and three more queries,
    # one of them a second full scan for the latest event, cost up to 3x the hand-written SQL.
    a = a.mutate(label=ibis.cases((is_new, "new"), (a.prev == a.idx - 1, "returning"), else_="resurrecting"))
    a = a.alias("jm_active")
    cols = {"idx": "int64", "key": "string", "n": "int64", "hi": ev.ts.type()}
    labelled = a.select(idx=a.idx, label=a.label)
    gone = a.filter(a.nxt.isnull() | (a.nxt > a.idx + 1))
    dormant = gone.select(idx=(gone.idx + 1).cast("int64"), label=ibis.literal("dormant"))
    both = labelled.union(dormant)
    counts = both.group_by(["idx", "label"]).aggregate(n=both.count())
    counts = counts.select(**_row("count", cols, idx=counts.idx, key=counts.label, n=counts.n))
    span = a.aggregate(lo=a.idx.min(), last=a.idx.max())
    if event:
        span = span.cross_join(ev.aggregate(hi=ev.ts.max()))
    span = span.select(**_row("span", cols, idx=span.lo, n=span["last"], hi=span.hi if event else None))
    got, lo_row, last_idx, hi_ts = {}, None, None, None
    for r in engine.execute(ibis.union(counts, span)).to_pylist():
        if r["kind"] == "span":
            lo_row, last_idx, hi_ts = r["idx"], r["n"], r["hi"]
        else:
            got[(r["idx"], r["key"])] = r["n"]
    if lo_row is None:
        return {"interval": interval, "by": level, "event": event, "new_by": new_by, "intervals": []}
    d_from, d_to = _check_range(date_from, date_to)
    lo = python_index(d_from, interval) if d_from else lo_row
    if d_to:
        hi = python_index(d_to, interval)
    elif event:
        hi = python_index(hi_ts, interval) if hi_ts else lo
    else:  # without --event the latest event is in the last active interval (see "Engine indexes" above)
        hi = last_idx
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
        raise OptionError("stickiness counts active days per interval: --interval must be week, month or quarter")
    ev, act = _events(engine, level, event)
    # One statement, one round trip, as lifecycle: the active unit-days a named CTE, read by both
    # distributions and, without --event (then they are all the events), for the first and last event day.
    d = act.select(unit_id=act.unit_id, day=interval_index(act.ts, "day"), idx=interval_index(act.ts, interval),
                   month=interval_index(act.ts, "month")).distinct()
    d = d.alias("jm_days")
    cols = {"idx": "int64", "key": "int64", "n": "int64", "lo": ev.ts.type(), "hi": ev.ts.type()}
    per = d.group_by(["unit_id", "idx"]).aggregate(days=d.count())
    dist = per.group_by(["idx", "days"]).aggregate(n=per.count())
    dist = dist.select(**_row("dist", cols, idx=dist.idx, key=dist.days, n=dist.n))
    monthly = d.group_by(["unit_id", "month"]).aggregate(days=d.count())
    mm = monthly.group_by("month").aggregate(mau=monthly.count(), unit_days=monthly.days.sum())
    mm = mm.select(**_row("month", cols, idx=mm.month, key=mm.mau, n=mm.unit_days))
    if event:
        span = ev.aggregate(lo=ev.ts.min(), hi=ev.ts.max())
        span = span.select(**_row("span", cols, lo=span.lo, hi=span.hi))
    else:
        span = d.aggregate(lo=d.day.min(), hi=d.day.max())
        span = span.select(**_row("span", cols, idx=span.lo, key=span.hi))
    got: dict[int, dict[int, int]] = {}
    mrows: dict[int, tuple[int, int]] = {}
    first_day = last_day = None
    for r in engine.execute(ibis.union(dist, mm, span)).to_pylist():
        if r["kind"] == "dist":
            got.setdefault(r["idx"], {})[r["key"]] = r["n"]
        elif r["kind"] == "month":
            mrows[r["idx"]] = (r["key"], r["n"])
        elif r["lo"] is not None:
            first_day, last_day = r["lo"].date(), r["hi"].date()
        elif r["idx"] is not None:  # the first and last event days (see "Engine indexes" above)
            first_day, last_day = index_to_start(r["idx"], "day"), index_to_start(r["key"], "day")
    if first_day is None:
        return {"interval": interval, "by": level, "event": event, "intervals": [], "dau_mau": []}
    d_from, d_to = _check_range(date_from, date_to)
    lo, hi = (python_index(d_from, interval) if d_from else python_index(first_day, interval),
              python_index(d_to, interval) if d_to else python_index(last_day, interval))
    intervals = []
    for i in range(lo, hi + 1):
        first, nxt = index_to_start(i, interval), index_to_start(i + 1, interval)
        width = (nxt - first).days
        dist_i = [got.get(i, {}).get(k, 0) for k in range(1, width + 1)]
        intervals.append({"start": first.isoformat(), "units": sum(dist_i), "distribution": dist_i})
    m_lo = python_index(d_from, "month") if d_from else python_index(first_day, "month")
    m_hi = python_index(d_to, "month") if d_to else python_index(last_day, "month")
    dau_mau = []
    for m in range(m_lo, m_hi + 1):
        a, b = index_to_start(m, "month"), index_to_start(m + 1, "month") - dt.timedelta(days=1)
        days = max(0, (min(b, last_day) - max(a, first_day)).days + 1)
        mau, unit_days = mrows.get(m, (0, 0))
        avg = unit_days / days if days else 0.0
        dau_mau.append({"month": a.isoformat(), "days": days, "avg_dau": round(avg, 6), "mau": mau,
                        "dau_mau": round(avg / mau, 6) if mau else None})
    return {"interval": interval, "by": level, "event": event, "intervals": intervals, "dau_mau": dau_mau}


__all__ = ["INTERVALS", "LABELS", "NEW_BY", "lifecycle", "stickiness"]
