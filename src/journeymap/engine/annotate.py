"""The analysis table: journey events at one level, each labelled with its stage hit, touchpoint and persona.

Built once per analysis and cached; every metric reads it. Identity calls (identify, group, alias) are
left out: they say who someone is, not what they did.

`annotate` is the one definition of it. The journey state (journeymap.state) keeps it, with the stage
visits and each event's current stage, folded in as events arrive; `journey_tables` reads the state's
tables when the engine was given them and computes them otherwise, so both give the same rows.
"""

from __future__ import annotations

import hashlib
import json

import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.intervals import Period, in_period
from journeymap.engine.personas import UNASSIGNED, units
from journeymap.engine.rules import first_match
from journeymap.engine.stages import visits, with_current_stage
from journeymap.engine.unit_events import unit_events
from journeymap.journey.definition import JourneyDefinition

ANNOTATED_COLUMNS = ("unit_id", "ts", "seq", "event", "source", "channel", "stage_hit", "touchpoint", "properties",
                     "persona")


def annotation_key(definition: JourneyDefinition) -> str:
    """A digest of what the annotation reads from the definition (stage entries, touchpoints, personas):
    journey tables computed under another key are stale."""
    parts = {name: [item.model_dump(mode="json") for item in getattr(definition, name)]
             for name in ("stages", "touchpoints", "personas")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def annotate(engine: Engine, definition: JourneyDefinition, level: str, only: ir.Table | None = None,
             after_seq: ir.IntegerScalar | None = None, personas: ir.Table | None = None,
             events: str = "journey_events") -> ir.Table:
    """The annotated events as an expression (not computed); `only` (a table with `unit_id`) keeps
    the events of those units alone, and `after_seq` those with a higher seq (the journey state's
    appended events), filtered before anything else reads them. `personas` (unit_id, persona: what
    engine.personas.units gives, UNASSIGNED included) stands for the persona rules when the caller has
    just computed them for these units: the journey state's fold, which would otherwise evaluate the rules
    for every unit of the level again to label a few. `events` names the journey events read (unit_events)."""
    ev = unit_events(engine, level, events)
    if only is not None:
        ev = ev.filter(ev.unit_id.isin(only.unit_id))
    if after_seq is not None:
        ev = ev.filter(ev.seq > after_seq)
    ev = ev.mutate(
        stage_hit=first_match(engine, ev, [(s.id, s.entry) for s in definition.stages]),
        touchpoint=first_match(engine, ev, [(t.id, t.match) for t in definition.touchpoints]),
    )
    u = units(engine, definition, level) if personas is None else personas
    u = u.select(_unit=u.unit_id, persona=u.persona)
    ev = ev.left_join(u, ev.unit_id == u._unit)
    return ev.select(*ANNOTATED_COLUMNS[:-1], persona=ev.persona.fill_null(UNASSIGNED))


def annotated_events(engine: Engine, definition: JourneyDefinition, level: str) -> ir.Table:
    """The annotated events, computed once (or read from the journey state)."""
    state = engine.journey.get((level, annotation_key(definition)))
    if state is not None:
        return engine.table(state["events"]).select(*ANNOTATED_COLUMNS)
    return engine.materialize(annotate(engine, definition, level))


def journey_visits(engine: Engine, definition: JourneyDefinition, level: str) -> ir.Table:
    """The stage visits (engine.stages.visits of the annotated events), from the journey state when current."""
    state = engine.journey.get((level, annotation_key(definition)))
    if state is not None:
        return engine.table(state["visits"])
    return visits(annotated_events(engine, definition, level))


def journey_tables(engine: Engine, definition: JourneyDefinition, level: str,
                   period: Period = (None, None)) -> tuple[ir.Table, ir.Table, ir.Table]:
    """(annotated events, stage visits, events with current_stage and stage_before): from the journey
    state when the engine has it for this level and definition, else computed and kept for the scope.
    With a period, only its events count: visits start inside it, so they are computed from them."""
    state = engine.journey.get((level, annotation_key(definition)))
    if state is not None and period == (None, None):
        ac = engine.table(state["events"])
        return ac.select(*ANNOTATED_COLUMNS), engine.table(state["visits"]), ac
    a = in_period(annotated_events(engine, definition, level), period)
    if period != (None, None):
        a = engine.materialize(a)
    v = engine.materialize(visits(a))
    return a, v, engine.materialize(with_current_stage(a, v))
