"""Events keyed by the unit of analysis, for analyses that need no journey definition (funnels,
retention, lifecycle, event-level paths).

Columns: unit_id, ts, seq, event, type, source, channel, properties, traits. Identity calls
(identify, group, alias) are left out: they say who someone is, not what they did.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from journeymap.errors import OptionError
from journeymap.engine.backends import Engine

IDENTITY_CALLS = ("identify", "group", "alias")
LEVELS = ("person", "account")


def unit_events(engine: Engine, level: str = "person", table: str = "journey_events") -> ir.Table:
    """At person level a unit is a stitched person; at account level an account converts, retains
    or churns when any of its persons does, because their events all carry its account_id. `table` is
    another name for journey_events, or for some of its rows (the Spark fold's dates past its mark)."""
    if level not in LEVELS:
        raise OptionError(f"--by must be one of {', '.join(LEVELS)}, not {level!r}")
    ev = engine.table(table)
    unit = ev.person_id if level == "person" else ev.account_id
    ev = ev.filter(unit.notnull(), ~ev.type.isin(IDENTITY_CALLS))
    return ev.select(unit_id=unit, ts=ev.ts, seq=ev.seq, event=ev.event, type=ev.type, source=ev.source,
                     channel=ev.channel, properties=ev.properties, traits=ev.traits)


def earliest(ts: ir.Column, r: ir.Column) -> ir.Scalar:
    """The `r` of a group's earliest event, in (ts, r) order: an aggregate, where numbering the events with a
    window to keep the first would sort them all (funnels' steps, retention's anchors)."""
    return r.argmin(ibis.struct({"t": ts, "r": r}))
