"""A metric split by a column's values: `per=(column, values)`.

The metrics that take `per` (engine.metrics, engine.stages.funnel) return {value: result}, each value's result
what the metric gives on that value's rows alone (a value with no rows included), from one query grouped by the
column: the map's persona views (a persona is a unit's, so each unit's rows stay in one group).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ibis.expr.types as ir

Per = tuple[str, Sequence[str]] | None
"""(column, values), or None: one result for all rows."""


def group_keys(per: Per) -> list[str]:
    """The columns to group by: the split's, or none."""
    return [per[0]] if per else []


def aggregate(t: ir.Table, per: Per, **metrics) -> ir.Table:
    """`t.aggregate(**metrics)`, grouped by the split's column when there is one."""
    return t.aggregate(by=group_keys(per), **metrics) if per else t.aggregate(**metrics)


def split(rows: list[dict], per: Per, result: Callable[[dict], Any], empty: dict) -> Any:
    """One result per value of `per` from rows grouped by its column (a value without rows: `result(empty)`),
    or the single row's result without `per`."""
    if not per:
        return result(rows[0] if rows else empty)
    got = {r[per[0]]: r for r in rows}
    return {value: result(got.get(value, empty)) for value in per[1]}
