"""Units (persons or accounts) and the persona each belongs to: the first persona whose trait rules hold."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.rules import condition_expr
from journeymap.journey.definition import JourneyDefinition

UNASSIGNED = "unassigned"


def units(engine: Engine, definition: JourneyDefinition, level: str) -> ir.Table:
    """One row per unit: `unit_id`, `persona`. Person traits fall back to their account's traits."""
    accounts = engine.table("accounts")
    if level == "account":
        base = accounts.select(unit_id=accounts.account_id, _own=accounts.traits, _fallback=ibis.null("string"))
    else:
        persons = engine.table("persons")
        acc = accounts.select(_acc_id=accounts.account_id, _acc_traits=accounts.traits)
        joined = persons.left_join(acc, persons.account_id == acc._acc_id)
        base = joined.select(unit_id=joined.person_id, _own=joined.traits, _fallback=joined._acc_traits)

    def trait(key: str) -> ir.StringValue:
        return ibis.coalesce(engine.json_get(base._own, key), engine.json_get(base._fallback, key))

    cases = []
    for persona in definition.personas:
        conds = [condition_expr(trait(k), c) for k, c in persona.traits.items()]
        cases.append((ibis.and_(*conds) if conds else ibis.literal(True), ibis.literal(persona.id)))
    persona = ibis.cases(*cases, else_=ibis.literal(UNASSIGNED)) if cases else ibis.literal(UNASSIGNED)
    return base.select(base.unit_id, persona=persona)
