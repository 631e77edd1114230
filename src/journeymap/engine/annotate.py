"""The analysis table: journey events at one level, each labelled with its stage hit, touchpoint and persona.

Built once per analysis and cached; every metric reads it. Identity calls (identify, group, alias) are
left out: they say who someone is, not what they did.
"""

from __future__ import annotations

import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.personas import units
from journeymap.engine.rules import first_match
from journeymap.engine.unit_events import unit_events
from journeymap.journey.definition import JourneyDefinition


def annotated_events(engine: Engine, definition: JourneyDefinition, level: str) -> ir.Table:
    ev = unit_events(engine, level)
    ev = ev.mutate(
        stage_hit=first_match(engine, ev, [(s.id, s.entry) for s in definition.stages]),
        touchpoint=first_match(engine, ev, [(t.id, t.match) for t in definition.touchpoints]),
    )
    u = units(engine, definition, level)
    u = u.select(_unit=u.unit_id, persona=u.persona)
    ev = ev.left_join(u, ev.unit_id == u._unit)
    ev = ev.select(
        "unit_id", "ts", "seq", "event", "source", "channel", "stage_hit", "touchpoint", "properties",
        persona=ev.persona.fill_null("unassigned"),
    )
    return engine.materialize(ev)
