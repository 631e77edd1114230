"""Paths: what units do step by step from an anchor, as a Sankey-ready node-link structure.

Written once in Ibis; the same expressions run on DuckDB and PySpark. Definition, options and a
worked example: `docs/metrics/paths.md`.

>>> import datetime as dt, ibis
>>> t0 = dt.datetime(2024, 1, 1)
>>> events = ibis.memtable({
...     "unit_id": ["u1", "u1", "u1", "u2", "u2"],
...     "label": ["signup", "invite", "pay", "signup", "pay"],
...     "ts": [t0, t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=3), t0, t0 + dt.timedelta(hours=4)],
...     "seq": [1, 2, 3, 4, 5],
... })
>>> r = paths_result(events, depth=1, con=ibis.duckdb.connect())
>>> r["nodes"]
[{'depth': 0, 'label': 'signup', 'count': 2, 'share': 1.0}, {'depth': 1, 'label': 'invite', 'count': 1, 'share': 0.5}, {'depth': 1, 'label': 'pay', 'count': 1, 'share': 0.5}]
>>> r["links"]
[{'depth': 0, 'from': 'signup', 'to': 'invite', 'count': 1}, {'depth': 0, 'from': 'signup', 'to': 'pay', 'count': 1}]
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from journeymap.errors import OptionError
from journeymap.engine.journey_paths import LEVELS, labelled_events
from journeymap.engine.transitions import steps

__all__ = ["END", "LEVELS", "OTHER", "START", "labelled_events", "path_steps", "paths_result"]

END, START, OTHER = "end", "start", "other"


def _first(o: ir.Table, label: str, name: str, where: ir.BooleanValue | None = None) -> ir.Table:
    """Per unit, the first relative position (`_rel`) carrying `label` (optionally only where `where`)."""
    hit = o.filter(o._l == label) if where is None else o.filter(o._l == label, where)
    return hit.group_by(_au=hit._u).aggregate(**{name: hit._rel.min()})


def path_steps(
    events: ir.Table,
    *,
    start: str | None = None,
    end: str | None = None,
    before: str | None = None,
    depth: int | None = None,
    collapse_repeats: bool = False,
) -> ir.Table:
    """The steps each unit shows in the view: `_u`, `_d` (depth), `_l` (label), including the
    explicit `end` (and, with `before`, `start`) markers. See docs/metrics/paths.md."""
    if before is not None and (start is not None or end is not None):
        raise OptionError("--before cannot be combined with --start or --end")
    if depth is not None and depth < 0:
        raise OptionError("--depth must be 0 or more")
    o = steps(events, "unit_id", "label", "ts", "seq", collapse_repeats).select("_u", "_l", _rel=ibis._._pos)
    anchor = before if before is not None else start
    if anchor is not None:
        a = _first(o, anchor, "_a")
        o = o.join(a, o._u == a._au).select("_u", "_l", _rel=ibis._._rel - ibis._._a)
        if before is None:
            o = o.filter(o._rel >= 0)
    if end is not None:
        e = _first(o, end, "_e", o._rel >= 0)
        o = o.join(e, o._u == e._au)
        o = o.filter(o._rel <= o._e).select("_u", "_l", "_rel")
    if before is not None:
        # Depths -N..0 end at the anchor; a unit whose whole history fits shows a `start` marker.
        o = o.filter(o._rel <= 0)
        first = o.group_by(_au=o._u).aggregate(_lo=o._rel.min())
        marks = first.filter(first._lo - 1 >= -depth) if depth is not None else first
        marks = marks.select(_u=marks._au, _l=ibis.literal(START), _rel=marks._lo - 1)
        if depth is not None:
            o = o.filter(o._rel >= -depth)
        o = o.union(marks)
        return o.select("_u", _d=o._rel, _l=o._l)
    last = o.group_by(_au=o._u).aggregate(_hi=o._rel.max())
    marks = last.filter(last._hi + 1 <= depth) if depth is not None else last
    marks = marks.select(_u=marks._au, _l=ibis.literal(END), _rel=marks._hi + 1)
    if depth is not None:
        o = o.filter(o._rel <= depth)
    o = o.union(marks)
    return o.select("_u", _d=o._rel, _l=o._l)


def with_other(s: ir.Table, top: int) -> ir.Table:
    """Relabel the steps of units outside the `top` most common paths as `other` (markers stay), and
    add `_other`. Paths rank by units (most first), then by their labels, compared lexicographically."""
    step = ibis.struct({"d": s._d, "l": s._l})
    per_unit = s.group_by(_pu=s._u).aggregate(_path=step.collect().sort().map(lambda x: x.l))
    per_unit = per_unit.mutate(_n=per_unit._pu.count().over(ibis.window(group_by=per_unit._path)))
    rank = ibis.dense_rank().over(ibis.window(order_by=[ibis.desc(per_unit._n), per_unit._path]))
    ranked = per_unit.select("_pu", _other=rank >= top)
    s = s.join(ranked, s._u == ranked._pu)
    marker = s._l.isin([END, START])
    return s.select("_u", "_d", "_other", _l=ibis.ifelse(s._other & ~marker, ibis.literal(OTHER), s._l))


def paths_result(
    events: ir.Table,
    *,
    start: str | None = None,
    end: str | None = None,
    before: str | None = None,
    depth: int | None = None,
    top: int | None = None,
    collapse_repeats: bool = False,
    con: Any = None,
) -> dict[str, Any]:
    """Run the paths view and return its JSON contract (docs/metrics/paths.md).

    `events` has unit_id, label, ts, seq. Only aggregates leave the engine.
    """
    if top is not None and top < 0:
        raise OptionError("--top must be 0 or more")
    run = con.to_pyarrow if con is not None else (lambda e: e.to_pyarrow())
    s = path_steps(events, start=start, end=end, before=before, depth=depth, collapse_repeats=collapse_repeats)
    labelled = events.filter(events.label.notnull(), events.ts.notnull(), events.seq.notnull())
    total = _scalar(run(labelled.unit_id.nunique()))
    s = with_other(s, top) if top is not None else s.mutate(_other=ibis.literal(False))
    share = (lambda n: n / total) if total else (lambda n: 0.0)

    nodes = s.group_by(depth=s._d, label=s._l).aggregate(count=s.count())
    node_rows = sorted(run(nodes).to_pylist(), key=lambda r: (r["depth"], -r["count"], r["label"]))
    w = ibis.window(group_by=s._u, order_by=s._d)
    pairs = s.mutate(_to=s._l.lead().over(w))
    pairs = pairs.filter(pairs._to.notnull())
    links = pairs.group_by(depth=pairs._d, **{"from": pairs._l, "to": pairs._to}).aggregate(count=pairs.count())
    link_rows = sorted(run(links).to_pylist(), key=lambda r: (r["depth"], -r["count"], r["from"], r["to"]))

    step = ibis.struct({"d": s._d, "l": s._l})
    per_unit = s.group_by(_pu=s._u).aggregate(path=step.collect().sort().map(lambda x: x.l), other=s._other.max())
    by_path = per_unit.group_by("path").aggregate(count=per_unit.count(), other=per_unit.other.max())
    path_rows = []
    other_units = 0
    for r in run(by_path).to_pylist():
        if r["other"]:
            other_units += int(r["count"])
        else:
            path_rows.append({"path": list(r["path"]), "count": int(r["count"]), "share": share(int(r["count"]))})
    path_rows.sort(key=lambda r: (-r["count"], r["path"]))
    if top is not None:
        path_rows.append({"path": [OTHER], "count": other_units, "share": share(other_units), "other": True})
    reached: dict[int, int] = {}
    for r in node_rows:
        reached[int(r["depth"])] = reached.get(int(r["depth"]), 0) + int(r["count"])
    return {
        "units_total": total,
        "units": sum(r["count"] for r in path_rows),  # the other row included
        "options": {"start": start, "end": end, "before": before, "depth": depth, "top": top,
                    "collapse_repeats": collapse_repeats},
        "nodes": [{"depth": int(r["depth"]), "label": r["label"], "count": int(r["count"]),
                   "share": share(int(r["count"]))} for r in node_rows],
        "links": [{"depth": int(r["depth"]), "from": r["from"], "to": r["to"], "count": int(r["count"])}
                  for r in link_rows],
        "reached": [{"depth": d, "units": n} for d, n in sorted(reached.items())],
        "paths": path_rows,
    }


def _scalar(value: Any) -> int:
    return int(value.as_py() if hasattr(value, "as_py") else value)
