"""Transitions at the three levels of the map: raw events, touchpoints, and stages."""

from __future__ import annotations

from journeymap.engine.annotate import annotated_events
from journeymap.engine.backends import Engine
from journeymap.engine.stages import visits
from journeymap.engine.transitions import transitions_result
from journeymap.engine.unit_events import unit_events
from journeymap.journey.definition import JourneyDefinition


def transitions_at(
    engine: Engine, definition: JourneyDefinition | None, level: str, unit_level: str, collapse_repeats: bool = False
) -> dict:
    if definition is None:
        # No journey defined yet: event-level paths need only the events.
        ev = unit_events(engine, unit_level)
        t = ev.select("unit_id", label=ev.event, ts=ev.ts, seq=ev.seq)
    else:
        a = annotated_events(engine, definition, unit_level)
        if level == "stage":
            v = visits(a)
            t = v.select("unit_id", label=v.stage, ts=v.entered_at, seq=v.entry_seq)
        elif level == "touchpoint":
            t = a.select("unit_id", label=a.touchpoint, ts=a.ts, seq=a.seq)
        else:
            t = a.select("unit_id", label=a.event, ts=a.ts, seq=a.seq)
    return transitions_result(t, unit="unit_id", label="label", ts="ts", seq="seq", collapse_repeats=collapse_repeats)
