"""Stage timelines, the stage funnel and time in stage.

A unit enters a stage when one of its events matches the stage's entry rule (the first matching stage
in definition order wins). Consecutive hits of the same stage are one visit; a hit of another stage
ends the visit. Units may skip stages and come back to earlier ones; each return is a new visit.
Events are ordered by (ts, seq), seq being input order; this module is the one definition of a visit
(`visits`), used by the funnel, time in stage, stage transitions and every per-stage breakdown.

Funnel, per stage k (definition order):
  reached   units with at least one visit to k
  converted units that, after their first visit to k, visited a later non-terminal stage (or a later
            terminal stage of kind "won"); "after" in event order, so ties in ts follow seq;
            always 0 for terminal stages
  dropped   reached - converted
  in_stage  units whose latest visit is to k. A unit that moved on and came back to k counts in
            both converted and in_stage, so in_stage is not always a part of dropped.

Definitions with worked examples: docs/metrics/stages.md, funnel.md, time-in-stage.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.engine.backends import Engine
from journeymap.engine.personas import UNASSIGNED
from journeymap.engine.split import Per, aggregate, group_keys, split
from journeymap.engine.survival import time_in_stage_summary
from journeymap.journey.definition import JourneyDefinition


def stage_order(definition: JourneyDefinition, stage: ir.StringValue) -> ir.IntegerValue:
    """The stage's position in the definition (a CASE expression: no in-memory table to ship)."""
    return ibis.cases(*[(stage == s.id, i) for i, s in enumerate(definition.stages)], else_=ibis.null("int64"))


def advancing_ids(definition: JourneyDefinition) -> list[str]:
    """The stages whose entry is progress, in definition order: every non-terminal stage and "won" outcomes."""
    return [s.id for s in definition.stages if not s.terminal or s.kind == "won"]


def visits(a: ir.Table) -> ir.Table:
    """One row per stage visit: unit_id, stage, entered_at, entry_seq, visit_no (1-based), left_at, next_stage.

    `a` needs unit_id, ts, seq and stage_hit (NULL: the event enters no stage); `persona` is carried
    along when present. Events are ordered by ts, then seq, then the stage id, so the order is total
    and the same on every backend even where seq repeats.
    """
    hits = a.filter(a.stage_hit.notnull())

    def order(t: ir.Table) -> list:
        return [t.ts, t.seq, t.stage_hit]

    hits = hits.mutate(_prev=hits.stage_hit.lag().over(ibis.window(group_by=hits.unit_id, order_by=order(hits))))
    starts = hits.filter(hits._prev.isnull() | (hits._prev != hits.stage_hit))
    w = ibis.window(group_by=starts.unit_id, order_by=order(starts))
    carried = ["persona"] if "persona" in a.columns else []
    return starts.select(
        "unit_id",
        *carried,
        stage=starts.stage_hit,
        entered_at=starts.ts,
        entry_seq=starts.seq,
        visit_no=ibis.row_number().over(w) + 1,
        left_at=starts.ts.lead().over(w),
        next_stage=starts.stage_hit.lead().over(w),
    )


def with_current_stage(a: ir.Table, v: ir.Table) -> ir.Table:
    """Each event labelled with `current_stage`, the stage the unit is in once the event happened
    (NULL before any stage), and `stage_before`, the stage in effect just before it.

    They differ only for an event that itself enters a stage. Survey answers are counted in
    `stage_before`: an NPS answer that makes a promoter enter advocacy rates the journey so far,
    not advocacy."""
    starts = v.select(_seq=v.entry_seq, _unit=v.unit_id, _new=ibis.literal(1))
    j = a.left_join(starts, [a.unit_id == starts._unit, a.seq == starts._seq])
    j = j.mutate(_new=j._new.fill_null(0))
    w = ibis.window(group_by=j.unit_id, order_by=[j.ts, j.seq], preceding=None, following=0)
    # visits are numbered 1, 2, ... in (ts, seq) order, so the running count of entries is the visit an event is
    # in (0: none yet), and the event before it was in that visit less its own entry: stage_before without a
    # second window (a lag) over every event
    j = j.mutate(_visit_no=j._new.sum().over(w))
    now = v.select(_u=v.unit_id, _vn=v.visit_no, current_stage=v.stage)
    before = v.select(_ub=v.unit_id, _vb=v.visit_no, stage_before=v.stage)
    out = j.left_join(now, [j.unit_id == now._u, j._visit_no == now._vn])
    out = out.left_join(before, [out.unit_id == before._ub, (out._visit_no - out._new) == before._vb])
    return out.drop("_seq", "_unit", "_new", "_u", "_vn", "_ub", "_vb", "_visit_no")


def progress(v: ir.Table, definition: JourneyDefinition, keep: Sequence[str] = ()) -> ir.Table:
    """One row per unit: for the stage at position i of the definition, `first_i` (the number of the unit's
    first visit to it; NULL: never reached), `entered_i` (when that visit began) and `moved_i` (whether a later
    visit went to a later advancing stage: the funnel's "converted"), and `last`, the stage of its latest visit.

    One aggregation over the visits grouped by unit and no join: a unit moved on from stage i when the largest
    visit number among its visits to advancing stages after i exceeds its first visit to i. The inequality
    join of first visits with later visits this replaces took 1.6-2.1 s of the 10M-event map; this 0.4-0.7 s.
    `keep`: columns of the unit's (its persona) carried along."""
    stages, ahead = definition.stages, set(advancing_ids(definition))
    cols: dict[str, ir.Value] = {"last": v.stage.argmax(v.visit_no)}  # visit numbers are unique per unit
    for i, s in enumerate(stages):
        at = v.stage == s.id
        cols[f"first_{i}"] = v.visit_no.min(where=at)
        cols[f"entered_{i}"] = v.entered_at.min(where=at)  # visits are numbered in (ts, seq) order
        if s.id in ahead:
            cols[f"_ahead_{i}"] = v.visit_no.max(where=at)
    per = v.group_by(["unit_id", *keep]).aggregate(**cols)
    moved = {}
    for i in range(len(stages)):
        later = [per[f"_ahead_{j}"].fill_null(0) for j in range(i + 1, len(stages)) if f"_ahead_{j}" in per.columns]
        reach = later[0] if len(later) == 1 else ibis.greatest(*later) if later else None
        # NULL first (never reached) makes the comparison NULL and the conjunction false
        moved[f"moved_{i}"] = ibis.literal(False) if reach is None else per[f"first_{i}"].notnull() & (per[f"first_{i}"] < reach)
    return per.mutate(**moved).drop(*[c for c in per.columns if c.startswith("_ahead_")])


def funnel(engine: Engine, v: ir.Table, definition: JourneyDefinition, per: Per = None) -> dict:
    """reached / converted / dropped / in_stage per stage id, in one query over `progress`. `per`: split by a
    column of the unit's (engine.split: {value: funnel})."""
    units = progress(v, definition, group_keys(per))
    counts = {}
    for i, s in enumerate(definition.stages):
        counts[f"reached_{i}"] = units[f"first_{i}"].count()
        counts[f"converted_{i}"] = units.unit_id.count(where=units[f"moved_{i}"])
        counts[f"in_stage_{i}"] = units.unit_id.count(where=units["last"] == s.id)
    rows = engine.execute(aggregate(units, per, **counts)).to_pylist()

    def result(row: dict) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for i, s in enumerate(definition.stages):
            reached = int(row.get(f"reached_{i}") or 0)
            converted = 0 if s.terminal else int(row.get(f"converted_{i}") or 0)
            out[s.id] = {"reached": reached, "converted": converted, "in_stage": int(row.get(f"in_stage_{i}") or 0),
                         "dropped": reached - converted}
        return out

    return split(rows, per, result, {})


def visit_durations(v: ir.Table, observed_until: dt.datetime) -> ir.Table:
    """Per visit: its columns plus `seconds` in the stage (`micros`: the same in whole microseconds) and whether
    the exit was `observed`.

    Observation ends at `observed_until` (for the map: the latest event in the data). A visit still
    open then is right-censored there; visits entered after it are unseen and dropped.
    """
    until = ibis.literal(observed_until, type=v.entered_at.type())
    v = v.filter(v.entered_at <= until)
    observed = v.left_at.notnull() & (v.left_at <= until)
    micros = observed.ifelse(v.left_at, until).delta(v.entered_at, unit="microsecond")
    return v.mutate(micros=micros, seconds=micros.cast("float64") / 1e6, observed=observed)


def stay_durations(v: ir.Table, definition: JourneyDefinition, observed_until) -> tuple[ir.Table, list[str]]:
    """Visits to non-terminal stages with seconds and observed, and the columns the estimate reads: the visits
    whose time in stage the map shows (and insights.friction's stuck and fast visits are cut from).

    Terminal stages are outcomes: nobody leaves them, so they have no time in stage."""
    terminal = [s.id for s in definition.stages if s.terminal]
    d = visit_durations(v.filter(~v.stage.isin(terminal)) if terminal else v, observed_until)
    return d, ["stage", *(["persona"] if "persona" in d.columns else []), "seconds", "observed"]


def stage_duration_counts(engine: Engine, v: ir.Table, definition: JourneyDefinition, observed_until) -> pa.Table:
    """`stage_durations` grouped: stage, persona, seconds, observed and `n`, the visits alike in all four.

    What Kaplan-Meier needs, in as many rows as there are distinct durations rather than visits: the
    visits of 50M events would not fit in Python, their distinct durations per stage are far fewer. In no
    order: the estimate does not depend on it, and sorting millions of rows took two thirds of the query (10M
    synthetic events, 5.1M rows: 1.9 s sorted, 0.6 s not)."""
    d, keys = stay_durations(v, definition, observed_until)
    return engine.execute(d.group_by(keys).aggregate(n=d.count()))


def time_in_stage_summaries(engine: Engine, v: ir.Table, definition: JourneyDefinition, observed_until,
                            everyone: str, by_persona: bool = True) -> dict:
    """Kaplan-Meier summaries (survival.time_in_stage_summary) keyed by (stage, `everyone`) and, `by_persona`,
    (stage, persona id): the map's time in stage, and the medians friction's stuck and fast visits are measured
    against. Read as numpy, never as row objects: from `stage_duration_keys`, one sortable number per visit, or
    where a duration does not fit one, from `stage_duration_counts`."""
    personas = [p.id for p in definition.personas] if "persona" in v.columns else []
    packed = stage_duration_keys(engine, v, definition, observed_until, personas)
    if packed is not None:
        return _summaries_of_keys(packed, definition, personas, everyone, by_persona)
    return _summaries_of_counts(stage_duration_counts(engine, v, definition, observed_until), everyone, by_persona)


KEY_BITS = 62
"""The bits of a `DurationKeys` key other than the observed bit (63 in all: an int64 without its sign): the stage
index, the microseconds and the persona index."""


class DurationKeys(NamedTuple):
    """Visits packed as int64 sort keys: (stage index, microseconds, observed, persona index) from the highest bits
    down, so that sorting the numbers sorts each stage's visits by duration."""
    keys: np.ndarray
    persona_bits: int
    micros_bits: int


def stage_duration_keys(engine: Engine, v: ir.Table, definition: JourneyDefinition, observed_until,
                        personas: list[str]) -> DurationKeys | None:
    """Every visit to a non-terminal stage as one int64 (`DurationKeys`), or None where some duration does not fit
    the bits the stage and persona indices leave (2^52 microseconds, 142 years, with 32 stages and 31 personas):
    then `stage_duration_counts` serves.

    Why: one column of plain numbers, computed by the engine without grouping and sorted by numpy without an
    index (`np.sort`). On the 10M-event store (7.5M visits) the summaries took 1.2-1.3 s this way, the fetch 0.15 s
    of it, against 3.6-3.8 s from the grouped rows (a 0.9 s fetch, an argsort of the durations, a sort by group)."""
    d, _ = stay_durations(v, definition, observed_until)
    stage_bits = max(1, (len(definition.stages) - 1).bit_length())
    persona_bits = len(personas).bit_length()  # personas by index, and len(personas) for every other unit
    micros_bits = KEY_BITS - stage_bits - persona_bits
    if micros_bits < 1:
        return None
    stage = stage_order(definition, d.stage).cast("int64")
    persona = (ibis.cases(*[(d.persona == p, i) for i, p in enumerate(personas)], else_=len(personas)).cast("int64")
               if personas else ibis.literal(0, type="int64"))
    key = (stage * 2 ** (micros_bits + 1 + persona_bits) + d.micros * 2 ** (1 + persona_bits)
           + d.observed.cast("int64") * 2 ** persona_bits + persona)
    column = engine.execute(d.select(key=d.micros.between(0, 2 ** micros_bits - 1).ifelse(key, ibis.null("int64")))).column("key")
    if column.null_count:
        return None
    return DurationKeys(column.to_numpy(), persona_bits, micros_bits)


def _summaries_of_keys(packed: DurationKeys, definition: JourneyDefinition, personas: list[str], everyone: str,
                       by_persona: bool) -> dict:
    keys = np.sort(packed.keys)
    if not keys.size:
        return {}
    pb, mb = packed.persona_bits, packed.micros_bits
    persona = (keys & ((1 << pb) - 1)).astype(np.int16)
    seen = ((keys >> pb) & 1).astype(bool)
    secs = ((keys >> (pb + 1)) & ((1 << mb) - 1)).astype(np.float64) / 1e6  # the engine's seconds, bit for bit
    stage = (keys >> (mb + 1 + pb)).astype(np.int16)
    names = [s.id for s in definition.stages]
    persona_names = [*personas, UNASSIGNED]
    out = {}
    for a, b in _runs(stage):
        out[(names[stage[a]], everyone)] = time_in_stage_summary(secs[a:b], seen[a:b], ascending=True)
    present = np.unique(persona) if by_persona else []
    if len(present) > 1:
        group = stage * (len(personas) + 1) + persona
        # stable: each (stage, persona) keeps its stage's order by duration
        order = np.argsort(group, kind="stable")
        group, secs, seen = group[order], secs[order], seen[order]
        for a, b in _runs(group):
            s, p = divmod(int(group[a]), len(personas) + 1)
            out[(names[s], persona_names[p])] = time_in_stage_summary(secs[a:b], seen[a:b], ascending=True)
    elif len(present) == 1:  # every visit is of one persona: the same visits
        p = persona_names[present[0]]
        out |= {(stage_id, p): dict(summary) for (stage_id, _), summary in list(out.items())}
    return out


def _runs(codes: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of equal values in `codes`."""
    starts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist()]
    return list(zip(starts, [*starts[1:], codes.size], strict=True))


def _summaries_of_counts(t: pa.Table, everyone: str, by_persona: bool) -> dict:
    """time_in_stage_summaries from `stage_duration_counts`' rows."""
    if t.num_rows == 0:
        return {}
    stage = pc.dictionary_encode(t.column("stage")).combine_chunks()
    persona = pc.dictionary_encode(t.column("persona").fill_null(UNASSIGNED)).combine_chunks()
    s_code, p_code = stage.indices.to_numpy(), persona.indices.to_numpy()
    s_name, p_name = stage.dictionary.to_pylist(), persona.dictionary.to_pylist()
    secs = t.column("seconds").to_numpy()
    seen = t.column("observed").to_numpy(zero_copy_only=False).astype(bool)
    n = t.column("n").to_numpy()
    groupings = [(s_code, lambda c: (s_name[c], everyone))]
    if by_persona and len(p_name) > 1:
        groupings.append((s_code * len(p_name) + p_code, lambda c: (s_name[c // len(p_name)], p_name[c % len(p_name)])))
    out = {}
    # The durations sorted once; a stable sort by group keeps each group's rows in that order, so no fit sorts
    # its durations again. The group codes are small: as int16 numpy sorts them stably by radix, in one pass.
    by_seconds = np.argsort(secs)
    for code, key in groupings:
        small = code.astype(np.int16) if code.size and code.max() < np.iinfo(np.int16).max else code
        order = by_seconds[np.argsort(small[by_seconds], kind="stable")]
        grouped, s_, e_, n_ = code[order], secs[order], seen[order], n[order]
        for a, b in _runs(grouped):
            out[key(int(grouped[a]))] = time_in_stage_summary(s_[a:b], e_[a:b], n_[a:b], ascending=True)
    if by_persona and len(p_name) == 1:  # every visit is of one persona (no personas defined): the same visits
        out |= {(stage_id, p_name[0]): dict(summary) for (stage_id, _), summary in list(out.items())}
    return out


def stage_durations(engine: Engine, v: ir.Table, definition: JourneyDefinition, observed_until) -> pa.Table:
    """Per visit to a non-terminal stage: stage, persona, seconds in stage and whether the exit was observed."""
    d, keys = stay_durations(v, definition, observed_until)
    return engine.execute(d.select(*keys))
