"""Variants: whole label sequences of units, with counts, share, exact median duration and conversion.

Written once in Ibis; the same expressions run on DuckDB and PySpark. Definition and worked example:
`docs/metrics/paths.md`.

>>> import datetime as dt, ibis
>>> t0 = dt.datetime(2024, 1, 1)
>>> events = ibis.memtable({
...     "unit_id": ["u1", "u1", "u2", "u2", "u3"],
...     "label": ["signup", "pay", "signup", "pay", "signup"],
...     "ts": [t0, t0 + dt.timedelta(hours=1), t0, t0 + dt.timedelta(hours=4), t0],
...     "seq": [1, 2, 3, 4, 5],
... })
>>> r = variants_result(events, converted="pay", con=ibis.duckdb.connect())
>>> r["variants"][0]
{'path': ['signup', 'pay'], 'count': 2, 'share': 0.6666666666666666, 'median_seconds': 9000.0, 'converted': 2, 'dropped': 0}
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from journeymap.errors import OptionError
from journeymap.engine.paths import OTHER
from journeymap.engine.transitions import steps

__all__ = ["per_unit", "variants_result"]


def per_unit(events: ir.Table, converted: str | None = None, collapse_repeats: bool = False) -> ir.Table:
    """One row per unit: `path` (array of labels), `seconds` (last minus
    first labelled event, float) and `converted` (the path contains the `converted` label)."""
    o = steps(events, "unit_id", "label", "ts", "seq", collapse_repeats)
    step = ibis.struct({"t": o._t, "s": o._s, "l": o._l})
    hit = (o._l == converted) if converted is not None else o._l.isnull()  # never true: NULL labels are gone
    u = o.group_by(unit_id=o._u).aggregate(path=step.collect().sort().map(lambda x: x.l), converted=hit.max())
    # The duration spans all labelled events, also those a collapsed run hides.
    e = steps(events, "unit_id", "label", "ts", "seq", False)
    span = e.group_by(_su=e._u).aggregate(_first=e._t.min(), _last=e._t.max())
    u = u.join(span, u.unit_id == span._su)
    # delta(unit=...) is the one timestamp difference that is exact and portable (ENGINE_NOTES.md).
    seconds = u._last.delta(u._first, unit="microsecond").cast("float64") / 1e6
    return u.select("unit_id", "path", "converted", seconds=seconds)


def variants_result(
    events: ir.Table,
    *,
    converted: str | None = None,
    top: int | None = None,
    collapse_repeats: bool = False,
    con: Any = None,
) -> dict[str, Any]:
    """Run the variants view and return its JSON contract (docs/metrics/paths.md).

    Variants are sorted by count (largest first), then by their labels (lexicographically); with `top`, the rest is one
    `other` row so that counts sum to the units and shares to 1.
    """
    if top is not None and top < 0:
        raise OptionError("--top must be 0 or more")
    run = con.to_pyarrow if con is not None else (lambda e: e.to_pyarrow())
    u = per_unit(events, converted, collapse_repeats)
    # Rank distinct paths by units (most first), then by the labels themselves (array order is
    # lexicographic on every backend); windows, not a self-join, which Ibis 12 turns into a cross join.
    u = u.mutate(_n=u.unit_id.count().over(ibis.window(group_by=u.path)))
    u = u.mutate(_rank=ibis.dense_rank().over(ibis.window(order_by=[ibis.desc(u._n), u.path])))
    is_other = (u._rank >= top) if top is not None else ibis.literal(False)
    # The other bucket is one group: its median is over its units, not a median of medians.
    u = u.mutate(_bucket=ibis.ifelse(is_other, ibis.literal(-1, "int64"), u._rank), _other=is_other)
    agg = u.group_by("_bucket").aggregate(
        path=u.path.first(),  # one path per bucket but the other's, which is replaced below
        other=u._other.max(),
        count=u.count(),
        median_seconds=u.seconds.median(),
        converted=u.converted.cast("int64").sum(),
    )
    rows = run(agg).to_pylist()
    total = sum(int(r["count"]) for r in rows)
    out, other = [], None
    for r in rows:
        n = int(r["count"])
        row = {
            "path": [OTHER] if r["other"] else list(r["path"]),
            "count": n,
            "share": n / total,
            "median_seconds": float(r["median_seconds"]),
            "converted": int(r["converted"]) if converted is not None else None,
            "dropped": n - int(r["converted"]) if converted is not None else None,
        }
        if r["other"]:
            other = {**row, "other": True}
        else:
            out.append(row)
    out.sort(key=lambda r: (-r["count"], r["path"]))
    if top is not None:
        out.append(other or {"path": [OTHER], "count": 0, "share": 0.0, "median_seconds": None,
                             "converted": 0 if converted is not None else None,
                             "dropped": 0 if converted is not None else None, "other": True})
    distinct = _scalar(run(u.path.nunique()))
    return {"units": total, "distinct": distinct, "converted_label": converted, "variants": out}


def _scalar(value: Any) -> int:
    return int(value.as_py() if hasattr(value, "as_py") else value)
