"""Stage timelines and the stage funnel.

A unit enters a stage when one of its events matches the stage's entry rule (the first matching stage
in definition order wins). Consecutive hits of the same stage are one visit; a hit of another stage
ends the visit. Units may skip stages and come back to earlier ones; each return is a new visit.

Funnel, per non-terminal stage k (definition order):
  reached   units with at least one visit to k
  converted units that, after first entering k, entered a later non-terminal stage (or a later
            terminal stage of kind "won")
  dropped   reached - converted
  in_stage  units whose latest visit is to k (still there, a subset of dropped)
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from journeymap.engine.backends import Engine
from journeymap.journey.definition import JourneyDefinition


def stage_table(definition: JourneyDefinition) -> ir.Table:
    return ibis.memtable(
        {
            "stage": [s.id for s in definition.stages],
            "stage_order": list(range(len(definition.stages))),
            "terminal": [s.terminal for s in definition.stages],
            # Moving into a later non-terminal stage, or into a "won" outcome, is progress.
            "advances": [not s.terminal or s.kind == "won" for s in definition.stages],
        }
    )


def visits(a: ir.Table) -> ir.Table:
    """One row per stage visit: unit_id, stage, entered_at, entry_seq, visit_no (1-based), left_at, next_stage."""
    hits = a.filter(a.stage_hit.notnull())
    w = ibis.window(group_by=hits.unit_id, order_by=[hits.ts, hits.seq])
    hits = hits.mutate(_prev=hits.stage_hit.lag().over(w))
    starts = hits.filter(hits._prev.isnull() | (hits._prev != hits.stage_hit))
    w2 = ibis.window(group_by=starts.unit_id, order_by=[starts.ts, starts.seq])
    return starts.select(
        "unit_id",
        "persona",
        stage=starts.stage_hit,
        entered_at=starts.ts,
        entry_seq=starts.seq,
        visit_no=ibis.row_number().over(w2) + 1,
        left_at=starts.ts.lead().over(w2),
        next_stage=starts.stage_hit.lead().over(w2),
    )


def with_current_stage(a: ir.Table, v: ir.Table) -> ir.Table:
    """Each event labelled with the stage the unit was in when it happened (NULL before any stage)."""
    starts = v.select(_seq=v.entry_seq, _unit=v.unit_id, _new=ibis.literal(1))
    j = a.left_join(starts, [a.unit_id == starts._unit, a.seq == starts._seq])
    w = ibis.window(group_by=j.unit_id, order_by=[j.ts, j.seq], preceding=None, following=0)
    j = j.mutate(_visit_no=j._new.fill_null(0).sum().over(w))
    vv = v.select(_u=v.unit_id, _vn=v.visit_no, current_stage=v.stage)
    out = j.left_join(vv, [j.unit_id == vv._u, j._visit_no == vv._vn])
    return out.drop("_seq", "_unit", "_new", "_u", "_vn", "_visit_no")


def funnel(engine: Engine, v: ir.Table, definition: JourneyDefinition) -> dict[str, dict[str, int]]:
    """reached / converted / dropped / in_stage per stage id."""
    order = stage_table(definition)
    vo = v.join(order, "stage")
    first = vo.group_by(["unit_id", "stage", "stage_order"]).aggregate(first_at=vo.entered_at.min())
    later = vo.filter(vo.advances).select(_u=vo.unit_id, _o=vo.stage_order, _at=vo.entered_at)
    moved = first.join(later, [first.unit_id == later._u, later._o > first.stage_order, later._at >= first.first_at])
    converted = moved.group_by("stage").aggregate(converted=moved.unit_id.nunique())
    reached = first.group_by("stage").aggregate(reached=first.unit_id.nunique())
    last = v.mutate(_last=v.visit_no.max().over(ibis.window(group_by=v.unit_id)))
    current = last.filter(last.visit_no == last._last).group_by("stage").aggregate(in_stage=last.unit_id.nunique())
    out: dict[str, dict[str, int]] = {s.id: {"reached": 0, "converted": 0, "in_stage": 0} for s in definition.stages}
    for table, col in ((reached, "reached"), (converted, "converted"), (current, "in_stage")):
        for row in engine.execute(table).to_pylist():
            out[row["stage"]][col] = int(row[col])
    for s in definition.stages:
        row = out[s.id]
        if s.terminal:
            row["converted"] = 0
        row["dropped"] = row["reached"] - row["converted"]
    return out


def stage_durations(engine: Engine, v: ir.Table, definition: JourneyDefinition, observed_until) -> pa.Table:
    """Per visit to a non-terminal stage: seconds in stage and whether the exit was observed.

    A unit still in the stage is right-censored at `observed_until` (the end of the data)."""
    terminal = [s.id for s in definition.stages if s.terminal]
    vv = v.filter(~v.stage.isin(terminal)) if terminal else v
    end = ibis.coalesce(vv.left_at, ibis.literal(observed_until, type="timestamp"))
    return engine.execute(
        vv.select(
            "stage",
            "persona",
            seconds=end.delta(vv.entered_at, unit="microsecond").cast("float64") / 1e6,
            observed=vv.left_at.notnull(),
        )
    )
