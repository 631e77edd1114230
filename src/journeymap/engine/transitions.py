"""Transitions: the directly-follows graph between consecutive labelled events of each unit.

Written once in Ibis; the same expressions run on DuckDB and PySpark. Definition and worked example:
`docs/metrics/transitions.md`.

>>> import datetime as dt, ibis
>>> t0 = dt.datetime(2024, 1, 1)
>>> events = ibis.memtable({
...     "unit_id": ["u1", "u1", "u1", "u2", "u2"],
...     "label": ["signup", "invite", "pay", "signup", "pay"],
...     "ts": [t0, t0 + dt.timedelta(hours=1), t0 + dt.timedelta(hours=3), t0, t0 + dt.timedelta(hours=4)],
...     "seq": [1, 2, 3, 4, 5],
... })
>>> result = transitions_result(events, con=ibis.duckdb.connect())
>>> result["edges"][0]
{'from': 'invite', 'to': 'pay', 'count': 1, 'mean_seconds': 7200.0}
>>> result["starts"], result["ends"], result["variants"]
({'signup': 2}, {'pay': 2}, 2)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ibis
import ibis.expr.types as ir

__all__ = ["Transitions", "transitions", "transitions_result"]


class Transitions(NamedTuple):
    """Unexecuted Ibis expressions; run them on any backend or compose them further."""

    edges: ir.Table  # from, to, count, mean_seconds (sorted by count desc, from, to)
    starts: ir.Table  # label, count: first label per unit
    ends: ir.Table  # label, count: last label per unit
    variants: ir.IntegerScalar  # distinct whole label sequences across units


def steps(events: ir.Table, unit: str, label: str, ts: str, seq: str, collapse_repeats: bool) -> ir.Table:
    """Labelled events of each unit in order, with the next one alongside.

    Columns: `_u`, `_l`, `_t`, `_s` (unit, label, ts, seq), `_next_l`, `_next_t` (NULL on a unit's
    last event) and `_pos` (0 on its first).
    """
    t = events.select(_u=events[unit], _l=events[label], _t=events[ts], _s=events[seq])
    # NULL labels are events outside the view; NULL ts/seq would sort first on Spark and last on DuckDB.
    t = t.filter(t._l.notnull(), t._t.notnull(), t._s.notnull())

    def window(tbl: ir.Table) -> Any:
        # The label breaks ties in (ts, seq), so the order is total and identical on every backend.
        return ibis.window(group_by=tbl._u, order_by=[tbl._t, tbl._s, tbl._l])

    if collapse_repeats:
        # Keep the first event of each run (A,A,B -> A,B): the A->B time runs from entering A.
        t = t.mutate(_prev=t._l.lag().over(window(t)))
        t = t.filter(t._prev.isnull() | (t._prev != t._l)).drop("_prev")
    w = window(t)
    return t.mutate(_next_l=t._l.lead().over(w), _next_t=t._t.lead().over(w), _pos=ibis.row_number().over(w))


def transitions(
    events: ir.Table,
    unit: str = "unit_id",
    label: str = "label",
    ts: str = "ts",
    seq: str = "seq",
    *,
    collapse_repeats: bool = False,
) -> Transitions:
    """Directly-follows edges, start and end labels, and the variant count, as Ibis expressions.

    Events of each unit are ordered by `ts`, then `seq` (input order), then `label`; rows whose
    label, ts or seq is NULL are dropped first. With `collapse_repeats`, consecutive equal labels of
    a unit count once (A,A,B -> A,B), in edges, starts, ends and variants alike.
    """
    o = steps(events, unit, label, ts, seq, collapse_repeats)
    pairs = o.filter(o._next_l.notnull())
    # delta(unit=...) is the one timestamp difference that is exact and portable (ENGINE_NOTES.md).
    micros = pairs._next_t.delta(pairs._t, unit="microsecond").cast("float64")
    edges = (
        pairs.group_by(**{"from": pairs._l, "to": pairs._next_l})
        .aggregate(count=pairs.count(), mean_seconds=micros.mean() / 1e6)
        .order_by([ibis.desc("count"), "from", "to"])
    )
    first, last = o.filter(o._pos == 0), o.filter(o._next_l.isnull())
    starts = first.group_by(label=first._l).aggregate(count=first.count())
    ends = last.group_by(label=last._l).aggregate(count=last.count())
    # A unit's whole sequence, exactly: Spark has no ordered aggregates in Ibis, so collect
    # (ts, seq, label) structs, sort the array, keep the labels. No hashing, hence no collisions.
    step = ibis.struct({"t": o._t, "s": o._s, "l": o._l})
    paths = o.group_by("_u").aggregate(path=step.collect().sort().map(lambda x: x.l))
    return Transitions(edges, starts, ends, paths.path.nunique())


def transitions_result(
    events: ir.Table,
    unit: str = "unit_id",
    label: str = "label",
    ts: str = "ts",
    seq: str = "seq",
    *,
    collapse_repeats: bool = False,
    con: Any = None,
) -> dict[str, Any]:
    """The JSON contract: `transition_counts` (one pass) plus the exact variant count of `transitions`.

    `{"edges": [{"from", "to", "count", "mean_seconds"}], "starts": {label: count},
    "ends": {label: count}, "variants": N}`. Only aggregates leave the engine. `con` is the backend
    to run on; by default the one `events` is bound to.
    """
    run = con.to_pyarrow if con is not None else (lambda e: e.to_pyarrow())
    result = transition_counts(events, unit, label, ts, seq, collapse_repeats=collapse_repeats, con=con)
    variants = run(transitions(events, unit, label, ts, seq, collapse_repeats=collapse_repeats).variants)
    return {**result, "variants": int(variants.as_py() if hasattr(variants, "as_py") else variants)}


def transition_counts(
    events: ir.Table,
    unit: str = "unit_id",
    label: str = "label",
    ts: str = "ts",
    seq: str = "seq",
    *,
    collapse_repeats: bool = False,
    con: Any = None,
) -> dict[str, Any]:
    """`{"edges", "starts", "ends"}` of `transitions_result` in one pass over the log: one group by
    (label, next label), where a NULL next label is a unit's last event and position 0 its first."""
    run = con.to_pyarrow if con is not None else (lambda e: e.to_pyarrow())
    o = steps(events, unit, label, ts, seq, collapse_repeats)
    micros = o._next_t.delta(o._t, unit="microsecond").cast("float64")
    rows = run(o.group_by(["_l", "_next_l"]).aggregate(n=o.count(), first=o.count(where=o._pos == 0),
                                                          mean_us=micros.mean())).to_pylist()
    edges = sorted(({"from": r["_l"], "to": r["_next_l"], "count": int(r["n"]), "mean_seconds": float(r["mean_us"]) / 1e6}
                    for r in rows if r["_next_l"] is not None), key=lambda e: (-e["count"], e["from"], e["to"]))
    starts: dict[str, int] = {}
    for r in rows:
        if r["first"]:
            starts[r["_l"]] = starts.get(r["_l"], 0) + int(r["first"])
    ends = {r["_l"]: int(r["n"]) for r in rows if r["_next_l"] is None}

    def ranked(counts: dict[str, int]) -> dict[str, int]:
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    return {"edges": edges, "starts": ranked(starts), "ends": ranked(ends)}
