"""Cohort retention: of the units that did a start event, how many did a return event in each later period.

Definitions (docs/metrics/retention.md has the worked example; tests/test_retention.py proves it):

- **Anchor.** ``first_time``: a unit's cohort is the interval of its first-ever start event, and that
  event is its anchor. ``recurring``: a unit belongs to every interval in which it did the start event;
  in each, its anchor is its first start event of that interval.
- **A return** is a return event strictly after the anchor in (ts, seq) order. The anchor itself never
  counts as its own return, also when start and return are the same event; so period 0 counts the units
  that came back later within the anchor's own period, and the cohort's size is reported apart.
- **Periods.** Calendar (default): period k is the k-th calendar interval after the cohort's
  (weeks start on Monday, UTC). Rolling: period k holds returns ``k*N <= t < (k+1)*N`` days after the
  anchor, N = 1, 7, 30, 90 for day, week, month, quarter. Brackets (``1-3,4-7``): bracket i holds
  returns whose whole days after the anchor fall in it (bounds inclusive); cohorts stay calendar intervals.
- ``on``: units that returned in exactly period k. ``on_or_after``: units that returned in period k or
  any later one (unbounded retention; for brackets, at day >= the bracket's lower bound).
- A cohort has periods 0..n where n is the last period the data reaches: the interval of the latest
  event minus the cohort's (calendar), or whole periods from the cohort's earliest anchor to the latest
  event (rolling).

>>> parse_brackets("1-3,4-7,8-14")
[(1, 3), (4, 7), (8, 14)]
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa

from journeymap.errors import OptionError
from journeymap.engine import statements
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import DAY_US, ROLLING_DAYS, check, index_to_start, interval_index, parse_day, python_index
from journeymap.engine.unit_events import earliest, unit_events

MODES = ("first_time", "recurring")
PERIODS = ("on", "on_or_after")


def parse_brackets(text: str | list | None) -> list[tuple[int, int]] | None:
    """`1-3,4-7,8-14` (days, bounds inclusive, ascending, not overlapping) or a list of pairs."""
    if text is None or text == "":
        return None
    pairs = []
    items = text.split(",") if isinstance(text, str) else text
    for item in items:
        try:
            lo, hi = (int(x) for x in item.split("-")) if isinstance(item, str) else (int(item[0]), int(item[1]))
        except (ValueError, TypeError, IndexError):
            raise OptionError(f"--brackets must look like 1-3,4-7,8-14 (days), not {text!r}") from None
        if lo < 0 or hi < lo or (pairs and lo <= pairs[-1][1]):
            raise OptionError(f"--brackets must be ascending, non-overlapping day ranges lo-hi with 0 <= lo <= hi: {text!r}")
        pairs.append((lo, hi))
    return pairs


def _anchors(ev: ir.Table, start: str, interval: str, mode: str) -> ir.Table:
    """(unit_id, ts, seq, cohort): each unit's first start event, of all time or of each interval, in (ts, seq)
    order. An aggregation, not a numbering of every start event: the window's sort took 25 of the 73 ms of
    the statement at 1M events (docs/benchmarks.md)."""
    s = ev.filter(ev.event == start)
    if mode == "first_time":
        g = s.group_by("unit_id").aggregate(ts=s.ts.min(), seq=earliest(s.ts, s.seq))
        return g.select("unit_id", "ts", "seq", cohort=interval_index(g.ts, interval))
    s = s.mutate(cohort=interval_index(s.ts, interval))
    g = s.group_by(["unit_id", "cohort"]).aggregate(ts=s.ts.min(), seq=earliest(s.ts, s.seq))
    return g.select("unit_id", "ts", "seq", "cohort")


def _hits(ev: ir.Table, anchors: ir.Table, return_event: str, interval: str, rolling: bool, brackets,
          mode: str) -> ir.Table:
    """(unit_id, cohort, p): p is the period of a return (calendar or rolling) or its whole days (brackets)."""
    r = ev.filter(ev.event == return_event)
    r = r.select(r_unit=r.unit_id, r_ts=r.ts, r_seq=r.seq, r_idx=interval_index(r.ts, interval))
    calendar = not rolling and not brackets
    if calendar and mode == "recurring":
        # Only the last return of each interval can decide anything. With one anchor per unit per interval
        # the join would otherwise grow as anchors x returns; with one anchor per unit (first_time) it
        # cannot, and the extra sort cost more than it saved (docs/benchmarks.md).
        ranked = r.mutate(rn=ibis.row_number().over(group_by=[r.r_unit, r.r_idx], order_by=[r.r_ts.desc(), r.r_seq.desc()]))
        r = ranked.filter(ranked.rn == 0).drop("rn")
    a = anchors
    j = a.join(r, [a.unit_id == r.r_unit, (r.r_ts > a.ts) | ((r.r_ts == a.ts) & (r.r_seq > a.seq))])
    if calendar:
        p = (j.r_idx - j.cohort).cast("int64")
    else:
        step = DAY_US * (1 if brackets else ROLLING_DAYS[interval])
        p = (j.r_ts.delta(j.ts, unit="microsecond") // step).cast("int64")
    return j.select(unit_id=j.unit_id, cohort=j.cohort, p=p)


SIZE, HIT, END = 0, 1, 2
"""The statement's `kind` of row: a cohort's size (and first anchor), a (cohort, period)'s hits, the latest event."""


def _cohorts(result: pa.Table, interval: str, period: str, rolling: bool, brackets) -> list[dict]:
    """The cohorts from the statement's rows (kind, cohort, p, n, at), read as numpy arrays: at 1M events the
    rows held about 100 cohorts and 5,000 hits, and a dict per row cost more than the counting after it."""
    kind, cohort, period_of, n_of = (result.column(c).to_numpy() for c in ("kind", "cohort", "p", "n"))
    order = np.lexsort((period_of, cohort, kind))  # by kind, then cohort, then period
    kind, cohort, period_of, n_of = kind[order], cohort[order], period_of[order], n_of[order]
    s0, h0, e0 = np.searchsorted(kind, [SIZE, HIT, END])
    at = result.column("at")
    end = at[int(order[e0])].as_py() if e0 < len(kind) else None
    firsts = at.take(order[s0:h0]).to_pylist()
    hit_cohort, hit_p, hit_n = cohort[h0:e0], period_of[h0:e0], n_of[h0:e0]
    starts, sizes, values_of = [], n_of[s0:h0].tolist(), []
    for c, first in zip(cohort[s0:h0].tolist(), firsts, strict=True):
        if brackets:
            n = len(brackets) - 1
        elif rolling:
            n = int((end - first) / dt.timedelta(days=ROLLING_DAYS[interval]))
        else:
            n = python_index(end, interval) - c
        begin, stop = np.searchsorted(hit_cohort, [c, c + 1])
        p, got = hit_p[begin:stop], hit_n[begin:stop]
        counts = np.zeros(max(n + 1, int(p[-1]) + 1 if len(p) else 0), dtype=np.int64)
        counts[p] = got  # p >= 0: a return is never before its anchor; (cohort, p) is a group, so unique
        if period == "on_or_after":  # units whose latest return is in period k or later (brackets: day >= lo)
            counts = np.cumsum(counts[::-1])[::-1]
        if brackets and period != "on":
            values = np.array([counts[lo] if lo < len(counts) else 0 for lo, _ in brackets], dtype=np.int64)
        else:
            values = counts[:max(n + 1, 0)]
        starts.append(index_to_start(c, interval).isoformat())
        values_of.append(values)
    # the rates of every cohort at once: one rounding per array costs as much as per cohort's
    lengths = [len(v) for v in values_of]
    flat = np.concatenate(values_of) if values_of else np.zeros(0, dtype=np.int64)
    every = rates(flat, np.repeat(np.array(sizes, dtype=np.int64), lengths))
    bounds = np.cumsum([0, *lengths]).tolist()
    return [{"start": start, "size": size, "values": values.tolist(), "rates": every[lo:hi]}
            for start, size, values, lo, hi in zip(starts, sizes, values_of, bounds[:-1], bounds[1:], strict=True)]


def rates(values: np.ndarray, size: int | np.ndarray) -> list[float]:
    """`[round(v / size, 6) for v in values]`, the same floats, computed for the array at once (`size` one
    number, or one per value).

    Both round the same double `v / size`. Python rounds its exact value half to even, then reads back the
    decimal; `rint(x * 1e6) / 1e6` reads back the same decimal (an integer over 10**6, divided exactly
    rounded) unless the product's rounding (under 1e-9 for a rate up to 1) moved it across a half: those, if
    any, are rounded by Python.

    >>> rates(np.array([0, 1, 2, 3]), 3)
    [0.0, 0.333333, 0.666667, 1.0]
    """
    x = values / size
    scaled = x * 1e6
    out = (np.rint(scaled) / 1e6).tolist()
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6):
        out[i] = round(float(x[i]), 6)
    return out


def retention(engine: Engine, start: str, return_event: str, *, interval: str = "week", mode: str = "first_time",
              period: str = "on", rolling: bool = False, brackets=None, level: str = "person",
              date_from=None, date_to=None) -> dict:
    """Retention cohorts: ``{"cohorts": [{"start", "size", "values", "rates"}], ...}``.

    `values[k]` is the number of units of the cohort retained in period k (or bracket k), `rates[k]`
    that number over the cohort's size. `date_from`/`date_to` (ISO dates, inclusive) keep the cohorts
    whose interval contains or lies between them; they never change who is first-time."""
    check(interval)
    if mode not in MODES:
        raise OptionError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if period not in PERIODS:
        raise OptionError(f"--period must be one of {', '.join(PERIODS)}, not {period!r}")
    brackets = parse_brackets(brackets)
    d_from, d_to = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise OptionError("--from must not be after --to")
    # the statement is built once a process for these options and journey_events' columns (engine.statements)
    key = ("retention", start, return_event, interval, mode, period, rolling, tuple(brackets or ()), level, d_from, d_to)
    result = statements.rows(engine, key, ("journey_events",), lambda: _statement(
        engine, start, return_event, interval, mode, period, rolling, brackets, level, d_from, d_to))
    cohorts = _cohorts(result, interval, period, rolling, brackets)
    return {"start_event": start, "return_event": return_event, "interval": interval, "mode": mode,
            "period": period, "rolling": rolling, "brackets": [f"{lo}-{hi}" for lo, hi in brackets or []],
            "by": level, "cohorts": cohorts}


def _statement(engine: Engine, start: str, return_event: str, interval: str, mode: str, period: str, rolling: bool,
               brackets, level: str, d_from, d_to) -> ir.Table:
    """The one statement retention runs: rows (kind, cohort, p, n, at) of SIZE, HIT and END (`_cohorts`)."""
    ev = unit_events(engine, level)
    anchors = _anchors(ev, start, interval, mode)
    if d_from:
        anchors = anchors.filter(anchors.cohort >= python_index(d_from, interval))
    if d_to:
        anchors = anchors.filter(anchors.cohort <= python_index(d_to, interval))
    # One statement, one round trip: cohort sizes, the latest event and the hit counts as one union
    # (kind, cohort, p, n, at), the integers never NULL so that they are read as numpy arrays. A temp table of
    # anchors and three queries cost twice the work (docs/benchmarks.md).
    anchors = anchors.alias("jm_anchors")  # a named CTE: read twice, computed once
    sizes = anchors.group_by("cohort").aggregate(n=anchors.count(), at=anchors.ts.min())
    sizes = sizes.select(kind=ibis.literal(SIZE, "int8"), cohort=sizes.cohort.cast("int64"), p=ibis.literal(0, "int64"),
                         n=sizes.n.cast("int64"), at=sizes.at)
    latest = ev.aggregate(at=ev.ts.max())
    latest = latest.select(kind=ibis.literal(END, "int8"), cohort=ibis.literal(0, "int64"), p=ibis.literal(0, "int64"),
                           n=ibis.literal(0, "int64"), at=latest.at)
    hits = _hits(ev, anchors, return_event, interval, rolling, brackets, mode)
    if period == "on" and not brackets:
        agg = hits.group_by(["cohort", "p"]).aggregate(n=hits.unit_id.nunique())
    elif period == "on":
        cases = [((hits.p >= lo) & (hits.p <= hi), i) for i, (lo, hi) in enumerate(brackets)]
        b = hits.mutate(p=ibis.cases(*cases, else_=-1)).filter(lambda t: t.p >= 0)
        agg = b.group_by(["cohort", "p"]).aggregate(n=b.unit_id.nunique())
    else:
        last = hits.group_by(["unit_id", "cohort"]).aggregate(p=hits.p.max())
        agg = last.group_by(["cohort", "p"]).aggregate(n=last.count())
    agg = agg.select(kind=ibis.literal(HIT, "int8"), cohort=agg.cohort.cast("int64"), p=agg.p.cast("int64"),
                     n=agg.n.cast("int64"), at=ibis.null(latest.at.type()))
    return ibis.union(sizes, latest, agg)
