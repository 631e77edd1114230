"""The labels of the map's three levels (raw events, touchpoints, stages), and transitions between them."""

from __future__ import annotations

import ibis.expr.types as ir

from journeymap.errors import NotEnoughData, OptionError
from journeymap.engine.annotate import annotated_events, journey_visits
from journeymap.engine.backends import Engine
from journeymap.engine.transitions import transitions_result
from journeymap.engine.unit_events import unit_events
from journeymap.journey.definition import JourneyDefinition

LEVELS = ("event", "stage", "touchpoint")


def labelled_events(engine: Engine, definition: JourneyDefinition | None, level: str, unit_level: str) -> ir.Table:
    """unit_id, label, ts, seq at one level of the map. Stage labels are stage visits (entries);
    touchpoint labels are NULL for events that map to no touchpoint."""
    if level not in LEVELS:
        raise OptionError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    if definition is None:
        if level != "event":
            raise NotEnoughData(f"--level {level} needs a journey definition (journeymap.yml)",
                                add="one with stages and touchpoints: `journeymap init DIR` writes an example")
        # No journey defined yet: event-level paths need only the events.
        ev = unit_events(engine, unit_level)
        return ev.select("unit_id", label=ev.event, ts=ev.ts, seq=ev.seq)
    if level == "stage":
        v = journey_visits(engine, definition, unit_level)
        return v.select("unit_id", label=v.stage, ts=v.entered_at, seq=v.entry_seq)
    a = annotated_events(engine, definition, unit_level)
    if level == "touchpoint":
        return a.select("unit_id", label=a.touchpoint, ts=a.ts, seq=a.seq)
    return a.select("unit_id", label=a.event, ts=a.ts, seq=a.seq)


def transitions_at(
    engine: Engine, definition: JourneyDefinition | None, level: str, unit_level: str, collapse_repeats: bool = False
) -> dict:
    t = labelled_events(engine, definition, level, unit_level)
    return transitions_result(t, unit="unit_id", label="label", ts="ts", seq="seq", collapse_repeats=collapse_repeats)
