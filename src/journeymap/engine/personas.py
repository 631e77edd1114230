"""Units (persons or accounts) and the persona each belongs to: the first persona whose trait rules hold."""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.rules import condition_expr
from journeymap.journey.definition import JourneyDefinition, Persona

UNASSIGNED = "unassigned"


def unit_traits(engine: Engine, level: str) -> tuple[ir.Table, Callable[[str], ir.StringValue]]:
    """One row per unit (`unit_id`, `_own` and `_fallback` traits as JSON text) and `trait(key)`, a trait's
    value as text: the unit's own, else (for a person) their account's."""
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

    return base, trait


def persona_expr(persona: Persona, trait: Callable[[str], ir.StringValue]) -> ir.BooleanValue:
    """Whether a unit's traits satisfy every condition of `persona` (regardless of the personas before it)."""
    conds = [condition_expr(trait(k), c) for k, c in persona.traits.items()]
    return ibis.and_(*conds) if conds else ibis.literal(True)


def units(engine: Engine, definition: JourneyDefinition, level: str) -> ir.Table:
    """One row per unit: `unit_id`, `persona`. Person traits fall back to their account's traits."""
    base, trait = unit_traits(engine, level)
    cases = [(persona_expr(p, trait), ibis.literal(p.id)) for p in definition.personas]
    persona = ibis.cases(*cases, else_=ibis.literal(UNASSIGNED)) if cases else ibis.literal(UNASSIGNED)
    return base.select(base.unit_id, persona=persona)
