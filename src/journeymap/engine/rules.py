"""Compile journey rules (journey.rules.Rule) into Ibis boolean expressions over events."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.journey.rules import Condition, Rule


def condition_expr(value: ir.StringValue, cond: Condition) -> ir.BooleanValue:
    """One condition on a property's text value. Numbers compare numerically; text compares as text."""
    op, arg = cond.operator
    if op == "exists":
        return value.notnull() if arg else value.isnull()
    if op in ("gt", "gte", "lt", "lte"):
        num = value.try_cast("float64")
        return {"gt": num > arg, "gte": num >= arg, "lt": num < arg, "lte": num <= arg}[op].fill_null(False)
    if op == "contains":
        return value.contains(str(arg)).fill_null(False)
    if op in ("eq", "ne"):
        expr = value == _text(arg)
        return expr.fill_null(False) if op == "eq" else (~expr).fill_null(True)
    values = [_text(v) for v in arg]
    expr = value.isin(values).fill_null(False)
    return expr if op == "in" else ~expr


def _text(v) -> str:
    # Properties are JSON text; true/false and numbers come back from JSON as their text form.
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _needs_key(cond: Condition) -> bool:
    """True when the condition is false for an event without the property (so a text search can skip it)."""
    op, arg = cond.operator
    return op in ("gt", "gte", "lt", "lte", "contains", "eq", "in") or (op == "exists" and bool(arg))


def _may_have_key(doc: ir.StringValue, path: str) -> ir.BooleanValue:
    """A cheap necessary condition for `path` being in the JSON text `doc`: the quoted last key occurs in it,
    or the text has a backslash (an escaped key would not match the plain search). Parsing JSON is the
    costly part of a rule; the engines evaluate this first and parse only the rows it lets through."""
    key = '"' + path.split(".")[-1] + '"'
    return (doc.contains(key) | doc.contains("\\")).fill_null(False)


def rule_parts(engine: Engine, t: ir.Table, rule: Rule, doc: str = "properties") -> list[tuple[str, ir.BooleanValue]]:
    """The rule's parts in order, each `(name, expression)`: `event`, `source`, `channel`, `where.PATH` per
    condition, `any`. The rule holds when all do (`rule_expr`); checks count them one by one."""
    parts: list[tuple[str, ir.BooleanValue]] = []
    if rule.event:
        parts.append(("event", t.event.isin(rule.event)))
    if rule.source:
        parts.append(("source", t.source.isin(rule.source)))
    if rule.channel:
        parts.append(("channel", t.channel.isin(rule.channel).fill_null(False)))
    for path, cond in rule.where.items():
        test = condition_expr(engine.json_get(t[doc], path), cond)
        if _needs_key(cond):
            test = _may_have_key(t[doc], path) & test
        parts.append((f"where.{path}", test))
    if rule.any:
        alts = [rule_expr(engine, t, sub, doc) for sub in rule.any]
        parts.append(("any", ibis.or_(*alts)))
    return parts


def rule_expr(engine: Engine, t: ir.Table, rule: Rule, doc: str = "properties") -> ir.BooleanValue:
    return ibis.and_(*[expr for _, expr in rule_parts(engine, t, rule, doc)])


def first_match(engine: Engine, t: ir.Table, named_rules: list[tuple[str, Rule]]) -> ir.StringValue:
    """The id of the first rule (in definition order) the event matches, else NULL."""
    if not named_rules:
        return ibis.null("string")
    case = ibis.cases(*[(rule_expr(engine, t, rule), ibis.literal(name)) for name, rule in named_rules], else_=ibis.null("string"))
    return case
