"""Checking a journey definition, and an analysis's names, against the data: what matches nothing, with
"did you mean" (docs/journey-definition.md#checked-against-the-data).

A typo in journeymap.yml is valid YAML and a valid rule: `entry: deal_wonn` loads fine and the map shows
0 reached, silently. These checks say so. Each finding names the YAML key (or the option), the problem
and a suggestion: the closest event names, property keys or values, trait keys or values that occur.

- `definition_findings`: every stage, touchpoint, milestone, key feature and survey rule that matches no
  event; a survey whose score property is on none of its events; every persona that matches no unit, or
  whose units all match an earlier persona; stages no unit reaches although their entry matches events;
  personas whose units all reached a stage that most units without a persona never reach (the persona's
  traits exist only from that stage on, so its view converts 100% by construction).
- `name_findings`: event names (or stage or touchpoint ids) an analysis was given that never occur.
- `period_findings`: a --from/--to period in which no event occurs.

Counting is aggregated in the engine: one query for the vocabulary (event, source, channel), one that
counts every rule and each of its parts, one for the personas and one for the stages reached; a rule that
matches nothing costs one more query for its suggestion. No event is read into Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from journeymap import errors
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import inside, parse_day
from journeymap.engine.personas import UNASSIGNED, persona_expr, unit_traits
from journeymap.engine.rules import condition_expr, first_match, rule_expr, rule_parts
from journeymap.engine.unit_events import IDENTITY_CALLS, unit_events
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.playbooks import EmailAction
from journeymap.journey.rules import Condition, Rule

__all__ = ["Finding", "definition_findings", "did_you_mean", "name_findings", "period_findings"]

SHOWN = 8  # known values listed when none is close
MIN_UNITS = 5  # a persona or a group of units smaller than this says nothing about where traits are known


@dataclass(frozen=True)
class Finding:
    """One warning: `key` is the YAML path (`stages[3].entry`) or the option (`steps`), `message` the
    problem, `suggestion` what probably was meant ("did you mean 'deal_won'?") or what occurs instead."""

    key: str
    message: str
    suggestion: str | None = None

    def as_dict(self) -> dict:
        return {"key": self.key, "message": self.message, "suggestion": self.suggestion}

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" + (f" ({self.suggestion})" if self.suggestion else "")


def did_you_mean(given: str, known: Iterable[str], what: str = "known") -> str | None:
    """'did you mean 'x'?' for the closest known values (difflib), else the known values themselves."""
    known = [k for k in dict.fromkeys(str(k) for k in known if k is not None)]
    if not known:
        return None
    close = errors.did_you_mean(str(given), known, n=3)
    if close:
        return close
    shown = ", ".join(repr(k) for k in known[:SHOWN])
    return f"{what}: {shown}" + (f" and {len(known) - SHOWN} more" if len(known) > SHOWN else "")


# -- rules ------------------------------------------------------------------------------------------------


@dataclass
class _Probe:
    """A rule to count at `key`; `context` holds the rule parts that must also hold (for an `any`
    alternative: its parent's own parts) and `events` the event names those parts allow."""

    key: str
    rule: Rule
    context: list[ir.BooleanValue] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    check_names: bool = True
    lead: str = "matches no event: "


def _rules(definition: JourneyDefinition) -> list[tuple[str, Rule]]:
    out = [(f"stages[{i}].entry", s.entry) for i, s in enumerate(definition.stages)]
    out += [(f"touchpoints[{i}].match", t.match) for i, t in enumerate(definition.touchpoints)]
    m = definition.milestones
    out += [(f"milestones.{name}", rule) for name, rule in (("start", m.start), ("value_moment", m.value_moment))
            if rule is not None]
    out += [(f"milestones.key_features[{i}].match", f.match) for i, f in enumerate(m.key_features)]
    out += [(f"surveys[{i}].match", s.match) for i, s in enumerate(definition.surveys)]
    if definition.future_state is not None:  # the designed steps' event names and rules (touchpoints and stages
        for key, step in definition.future_state.all_steps():  # are checked at load)
            if step.rule is not None:
                out.append((f"{key}.{'event' if step.event is not None else 'match'}", step.rule))
    for i, e in enumerate(definition.experiments):
        if e.exposure is not None:
            out.append((f"experiments[{i}].exposure", e.exposure))
        for section, metrics in (("metrics", e.metrics), ("guardrails", e.guardrails)):
            for j, m in enumerate(metrics):
                if m.event is not None:
                    out.append((f"experiments[{i}].{section}[{j}].event", m.event))
                out += [(f"experiments[{i}].{section}[{j}].steps[{k}]", r) for k, r in enumerate(m.steps or [])]
    out += [(f"playbooks[{i}].{key}", rule) for i, p in enumerate(definition.playbooks) for key, rule in p.rules()]
    return out


def _probes(engine: Engine, ev: ir.Table, key: str, rule: Rule, context: list, events: list[str]) -> list[_Probe]:
    """The rule, and each `any` alternative in the context of the rule's own parts (recursively)."""
    out = [_Probe(key, rule, list(context), list(events))]
    if rule.any:
        own = [expr for name, expr in rule_parts(engine, ev, rule) if name != "any"]
        for j, sub in enumerate(rule.any):
            out += _probes(engine, ev, f"{key}.any[{j}]", sub, [*context, *own], rule.event or events)
    return out


def _count(expr: ir.BooleanValue) -> ir.IntegerValue:
    return expr.ifelse(1, 0).sum()


def _describe(path: str, cond: Condition) -> str:
    op, arg = cond.operator
    if op == "exists":
        return f"{path} present" if arg else f"{path} absent"
    symbol = {"eq": "=", "ne": "!=", "in": "in", "not_in": "not in", "gt": ">", "gte": ">=", "lt": "<",
              "lte": "<=", "contains": "containing"}[op]
    return f"{path} {symbol} {arg!r}"


def _events_phrase(names: list[str]) -> str:
    return "no " + (" or ".join(repr(n) for n in names[:3]) + " event" if names else "event")


def _values(engine: Engine, t: ir.Table, where: ir.BooleanValue, value: ir.Value) -> list[tuple]:
    """The most common values of `value` among rows where `where` holds (ties by value, so that a suggestion
    reads the same at every call): [(value, rows)], NULL included."""
    s = t.filter(where).select(v=value)
    top = s.group_by("v").aggregate(n=s.count()).order_by([ibis.desc("n"), "v"]).limit(200)
    return [(r["v"], r["n"]) for r in engine.execute(top).to_pylist()]


def _keys(engine: Engine, t: ir.Table, where: ir.BooleanValue, docs: list[ir.StringValue], path: str) -> list[str]:
    """The keys present (most common first, ties by name) in the JSON objects `docs` at the parent of `path`."""
    parent = path.rsplit(".", 1)[0] if "." in path else None
    found: dict[str, int] = {}
    for doc in docs:
        obj = engine.json_get(doc, parent) if parent else doc
        s = t.filter(where & obj.startswith("{").fill_null(False)).select(k=engine.json_keys(obj).unnest())
        top = s.group_by("k").aggregate(n=s.count()).order_by([ibis.desc("n"), "k"]).limit(200)
        for r in engine.execute(top).to_pylist():
            found[r["k"]] = found.get(r["k"], 0) + r["n"]
    keys = sorted(found, key=lambda k: (-found[k], k))
    return [f"{parent}.{k}" for k in keys] if parent else keys


def _why_condition(engine: Engine, t: ir.Table, before: ir.BooleanValue, value: ir.StringValue, path: str,
                   cond: Condition, docs: list[ir.StringValue], subject: str,
                   noun: str = "property") -> tuple[str, str | None]:
    """Why no row passes `cond` among the rows where `before` holds: the property is missing (suggest the
    keys present) or no value satisfies it (suggest the values present)."""
    values = [(v, n) for v, n in _values(engine, t, before, value) if v is not None]
    op, arg = cond.operator
    if not values:
        if op == "exists" and not arg:
            return f"every one has the {noun} {path!r}", None
        return f"{subject} has the {noun} {path!r}", did_you_mean(
            path, _keys(engine, t, before, docs, path), ("properties" if noun == "property" else "traits") + " present")
    if op in ("gt", "gte", "lt", "lte"):
        numbers = []
        for v, _ in values:
            try:
                numbers.append(float(v))
            except ValueError:
                pass
        seen = f"values seen: {min(numbers):g} to {max(numbers):g}" if numbers else "no value seen is a number"
        return f"{subject} has {_describe(path, cond)}", seen
    wanted = arg if op in ("in", "not_in") else [arg]
    known = [v for v, _ in values]
    hint = did_you_mean(str(wanted[0]), known, "values present") if op in ("eq", "in", "contains") else None
    if hint is None:
        hint = did_you_mean("", known, "values present")
    return f"{subject} has {_describe(path, cond)}", hint


def _rule_findings(engine: Engine, ev: ir.Table, probes: list[_Probe], known: dict[str, int],
                   combos: list[dict]) -> tuple[list[Finding], dict[str, int]]:
    """Count every probe and its parts in one query; explain those that match nothing. Also returns the
    events each probe matches, by key."""
    columns, layout = {}, []
    for i, p in enumerate(probes):
        parts = rule_parts(engine, ev, p.rule)
        columns[f"p{i}_0"] = _count(ibis.and_(*p.context)) if p.context else ev.count()
        running = list(p.context)
        for k, (_, expr) in enumerate(parts, start=1):
            running.append(expr)
            columns[f"p{i}_{k}"] = _count(ibis.and_(*running))
        layout.append(parts)
    counts = engine.execute(ev.aggregate(**columns)).to_pylist()[0] if columns else {}
    out: list[Finding] = []
    matches: dict[str, int] = {}
    for i, (p, parts) in enumerate(zip(probes, layout, strict=True)):
        n = [int(counts[f"p{i}_{k}"] or 0) for k in range(len(parts) + 1)]
        matches[p.key] = n[-1]
        matched = n[-1] > 0
        unknown = [e for e in (p.rule.event or []) if e not in known] if p.check_names else []
        for name in unknown:
            alone = not matched and len(unknown) == len(p.rule.event or [])
            out.append(Finding(p.key, f"no event named {name!r} occurs" + (", so this rule matches no event"
                                                                          if alone else ""),
                               did_you_mean(name, known, "events present")))
        if matched or n[0] == 0 or (unknown and len(unknown) == len(p.rule.event or [])):
            continue  # it matches, its context already matches nothing (said there), or said just above
        k = next(k for k in range(1, len(n)) if n[k] == 0)
        name = parts[k - 1][0]
        if name == "any":
            continue  # each alternative is a probe of its own and says why
        before = ibis.and_(*p.context, *[e for _, e in parts[:k - 1]]) if (p.context or k > 1) else ibis.literal(True)
        names = p.rule.event or p.events
        subject = _events_phrase(names if k > 1 or p.context else [])
        if name in ("source", "channel"):
            wanted = getattr(p.rule, name)
            seen = [r[name] for r in combos if not names or r["event"] in names]
            if k == 1 and not p.context:
                seen = [r[name] for r in combos]
            present = sorted({v for v in seen if v is not None})
            out.append(Finding(p.key, f"{p.lead}{subject} has {name} "
                                      + " or ".join(repr(w) for w in wanted),
                               did_you_mean(wanted[0], present, f"{name}s present")))
        elif name.startswith("where."):
            path = name[len("where."):]
            cond = p.rule.where[path]
            why, hint = _why_condition(engine, ev, before, engine.json_get(ev.properties, path), path, cond,
                                       [ev.properties], subject)
            out.append(Finding(p.key, f"{p.lead}{why}", hint))
        else:  # the event part, in the context of a parent rule
            out.append(Finding(p.key, f"{p.lead}none of {', '.join(map(repr, p.rule.event or []))} "
                                      "also satisfies the rest of the rule it is part of"))
    return out, matches


def _survey_score_findings(engine: Engine, ev: ir.Table, definition: JourneyDefinition) -> list[Finding]:
    probes = []
    for i, s in enumerate(definition.surveys):
        rule = Rule(where={s.score: {"exists": True}})
        probes.append(_Probe(f"surveys[{i}].score", rule, [rule_expr(engine, ev, s.match)], s.match.event or [],
                             check_names=False, lead="no score to read: "))
    return _rule_findings(engine, ev, probes, {}, [])[0] if probes else []


# -- personas ---------------------------------------------------------------------------------------------


def _playbook_trait_findings(engine: Engine, definition: JourneyDefinition) -> list[Finding]:
    """Playbooks' audience traits and owner traits that no unit of the playbook's level bears out."""
    out = []
    for i, p in enumerate(definition.playbooks):
        conds = [(f"playbooks[{i}].audience.traits.{k}", k, c) for k, c in p.audience.traits.items()]
        if p.owner.trait:
            conds.append((f"playbooks[{i}].owner.trait", p.owner.trait, Condition(exists=True)))
        if not conds:
            continue
        level = definition.playbook_level(p)
        base, trait = unit_traits(engine, level)
        counts = engine.execute(base.aggregate(**{f"c{j}": _count(condition_expr(trait(k), c))
                                                  for j, (_, k, c) in enumerate(conds)})).to_pylist()[0]
        for j, (key, name, cond) in enumerate(conds):
            if not counts[f"c{j}"]:
                why, hint = _why_condition(engine, base, ibis.literal(True), trait(name), name, cond,
                                           [base._own, base._fallback], f"no {level}", noun="trait")
                out.append(Finding(key, f"matches no {level}: {why}", hint))
    return out


def _playbook_owner_findings(engine: Engine, definition: JourneyDefinition) -> list[Finding]:
    """An `email` action `to: owner` whose playbook can name owners without an address: its fallback, the
    stages' owners, or values of its owner trait in the data that are names with no entry under `owners:`.
    The sender would refuse those emails one by one; validate says it once, before anything fires."""
    out = []
    for i, p in enumerate(definition.playbooks):
        to_owner = [j for j, a in enumerate(p.actions) if isinstance(a, EmailAction) and a.to == "owner"]
        if not to_owner:
            continue
        names = {p.owner.fallback}
        if p.owner.stage:
            stages = definition.stages if p.owner.stage == "current" else [definition.stage(p.owner.stage)]
            names |= {s.owner for s in stages if s.owner}
        if p.owner.trait:
            base, trait = unit_traits(engine, definition.playbook_level(p))
            t = base.select(owner=trait(p.owner.trait))
            t = t.filter(t.owner.notnull()).distinct().limit(10_000)
            names |= set(engine.execute(t)["owner"].to_pylist())
        missing = sorted(n for n in names if definition.owner_email(n) is None)
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            out.append(Finding(f"playbooks[{i}].actions[{to_owner[0]}].to",
                               f"emails the owner, but {len(missing)} of the {len(names)} owners it can name "
                               f"{'has' if len(missing) == 1 else 'have'} no email address: {shown}",
                               f"add them under `owners:` in journeymap.yml (owners: {{{missing[0]!r}: "
                               f"name@example.com}}), or send to a fixed address"))
    return out


def _persona_findings(engine: Engine, definition: JourneyDefinition, level: str) -> list[Finding]:
    if not definition.personas:
        return []
    base, trait = unit_traits(engine, level)
    assigned = ibis.cases(*[(persona_expr(p, trait), ibis.literal(p.id)) for p in definition.personas],
                          else_=ibis.literal(UNASSIGNED))
    columns = {}
    for i, p in enumerate(definition.personas):
        running = []
        columns[f"a{i}"] = _count(assigned == p.id)
        for k, (key, cond) in enumerate(p.traits.items(), start=1):
            running.append(condition_expr(trait(key), cond))
            columns[f"c{i}_{k}"] = _count(ibis.and_(*running))
    counts = engine.execute(base.aggregate(**columns)).to_pylist()[0]
    unit = level
    out = []
    for i, p in enumerate(definition.personas):
        conds = list(p.traits.items())
        n = [int(counts[f"c{i}_{k}"] or 0) for k in range(1, len(conds) + 1)]
        if conds and n[-1] == 0:
            k = next(k for k in range(len(n)) if n[k] == 0)
            key, cond = conds[k]
            before = ibis.and_(*[condition_expr(trait(c), x) for c, x in conds[:k]]) if k else ibis.literal(True)
            why, hint = _why_condition(engine, base, before, trait(key), key, cond, [base._own, base._fallback],
                                       f"no {unit}", noun="trait")
            out.append(Finding(f"personas[{i}].traits.{key}", f"matches no {unit}: {why}", hint))
        elif int(counts[f"a{i}"] or 0) == 0:
            matching = f" ({n[-1]:,})" if conds else ""
            out.append(Finding(f"personas[{i}]", f"no {unit} gets this persona: every {unit} it matches{matching} "
                                                 "matches an earlier persona first (first match wins)",
                               "order personas from the most specific to the most general"))
    return out


# -- stages reached, and where personas can be seen ---------------------------------------------------------


def _stage_findings(engine: Engine, definition: JourneyDefinition, level: str, rule_counts: dict[str, int]) -> list[Finding]:
    from journeymap.engine.personas import units

    ev = unit_events(engine, level)
    ev = ev.mutate(stage_hit=first_match(engine, ev, [(s.id, s.entry) for s in definition.stages]),
                   **{f"_m{i}": rule_expr(engine, ev, s.entry) for i, s in enumerate(definition.stages)})
    u = units(engine, definition, level)
    u = u.select(_unit=u.unit_id, persona=u.persona)
    a = ev.left_join(u, ev.unit_id == u._unit)
    a = a.mutate(persona=a.persona.fill_null(UNASSIGNED))
    reached = a.filter(a.stage_hit.notnull()).group_by(["persona", "stage_hit"]).aggregate(
        units=a.unit_id.nunique(), kind=ibis.literal("reached"))
    sizes = a.group_by("persona").aggregate(stage_hit=ibis.null("string"), units=a.unit_id.nunique(),
                                            kind=ibis.literal("size"))
    matched = a.aggregate(**{f"_m{i}": _count(a[f"_m{i}"]) for i in range(len(definition.stages))})
    rows = engine.execute(ibis.union(reached.select("persona", "stage_hit", "units", "kind"),
                                     sizes.select("persona", "stage_hit", "units", "kind"), distinct=False)).to_pylist()
    own = engine.execute(matched).to_pylist()[0]
    size = {r["persona"]: int(r["units"]) for r in rows if r["kind"] == "size"}
    reach: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["kind"] == "reached":
            reach.setdefault(r["stage_hit"], {})[r["persona"]] = int(r["units"])
    out = []
    for i, s in enumerate(definition.stages):
        if sum(reach.get(s.id, {}).values()):
            continue
        key = f"stages[{i}].entry"
        if not rule_counts.get(key):
            continue  # the rule matches no event: said by the rule check
        mine = int(own[f"_m{i}"] or 0)
        if mine == 0:
            out.append(Finding(key, f"no {level} reaches this stage: the {rule_counts[key]:,} events its entry "
                                    f"matches belong to no {level} (they carry no {level} id)",
                               "try --by person" if level == "account" else None))
        else:
            first = [r["h"] for r in engine.execute(
                a.filter(a[f"_m{i}"]).select(h=a.stage_hit).distinct().limit(5)).to_pylist() if r["h"]]
            out.append(Finding(key, f"no {level} reaches this stage: the {mine:,} events its entry matches all "
                                    "match an earlier stage's entry first (first match wins): "
                                    + ", ".join(repr(h) for h in first),
                               "make the entry rules of those stages narrower, or move this stage before them"))
    out += _visibility_findings(definition, level, size, reach)
    return out


def _visibility_findings(definition: JourneyDefinition, level: str, size: dict[str, int],
                         reach: dict[str, dict[str, int]]) -> list[Finding]:
    """Personas whose units all reached a stage that most units without a persona never reach: the traits
    that place a unit in the persona exist only from that stage on (Olist: lead types are known only on won
    deals), so the persona's view converts 100% up to it by construction."""
    none = size.get(UNASSIGNED, 0)
    if none < MIN_UNITS:
        return []
    out = []
    for i, p in enumerate(definition.personas):
        n = size.get(p.id, 0)
        if n < MIN_UNITS:
            continue
        stages = [s for s in definition.stages if reach.get(s.id, {}).get(p.id, 0) == n
                  and reach.get(s.id, {}).get(UNASSIGNED, 0) < none / 2]
        if not stages:
            continue
        s = stages[-1]
        share = reach.get(s.id, {}).get(UNASSIGNED, 0) / none
        out.append(Finding(f"personas[{i}]",
                           f"every one of its {n:,} {level}s reached stage {s.id!r}, against {share:.0%} of the "
                           f"{none:,} {level}s with no persona: the traits it reads seem to be known only from "
                           f"{s.id!r} on, so its view shows conversion up to {s.id!r} of 100% by construction",
                           "define personas on traits every unit has from its first stage (e.g. the acquisition "
                           "channel), or read this persona's view from that stage on"))
    return out


def _experiment_findings(engine: Engine, ev: ir.Table, definition: JourneyDefinition, level: str,
                         matches: dict[str, int]) -> list[Finding]:
    """Per experiment whose exposure matches events (a rule that matches none is said with the rules): its
    variant property on none of the exposure events, or its variant trait on no unit (with the keys that are
    there); variant values seen that the split does not declare; a declared variant or the control never seen."""
    out = []
    for i, e in enumerate(definition.experiments):
        key = f"experiments[{i}]"
        if e.exposure is not None and not matches.get(f"{key}.exposure"):
            continue
        exposed = rule_expr(engine, ev, e.exposure) if e.exposure is not None else ibis.literal(True)
        if e.variant.property is not None:
            path = e.variant.property
            value = engine.json_get(ev.properties, path)
            subject = "no exposure event" if e.exposure is not None else "no event"
            t, where, docs, noun = ev, exposed, [ev.properties], "property"
        else:
            path = e.variant.trait
            base, trait = unit_traits(engine, e.unit or level)
            value = trait(path)
            subject = f"no {e.unit or level}"
            t, where, docs, noun = base, ibis.literal(True), [base._own, base._fallback], "trait"
        seen = [(v, n) for v, n in _values(engine, t, where, value) if v is not None]
        vkey = f"{key}.variant.{noun}"
        if not seen:
            out.append(Finding(vkey, f"{subject} has the {noun} {path!r}, so the experiment has no units",
                               did_you_mean(path, _keys(engine, t, where, docs, path),
                                            ("properties" if noun == "property" else "traits") + " present")))
            continue
        values = [str(v) for v, _ in seen]
        declared = list(e.split or {})
        for v in values if declared else []:
            if v not in declared:
                out.append(Finding(f"{key}.split", f"variant {v!r} occurs but the split does not declare it: its "
                                                   "units are left out", did_you_mean(v, declared, "variants declared")))
        for v in declared or [e.control]:
            if v not in values:
                where_key = f"{key}.control" if v == e.control else f"{key}.split"
                out.append(Finding(where_key, f"variant {v!r} never occurs in the {noun} {path!r}",
                                   did_you_mean(v, values, "values present")))
    return out


# -- entry points -----------------------------------------------------------------------------------------


def _events(engine: Engine) -> ir.Table:
    ev = engine.table("journey_events")
    return ev.filter(~ev.type.isin(IDENTITY_CALLS))


def _vocabulary(engine: Engine, ev: ir.Table) -> tuple[dict[str, int], list[dict]]:
    """Every event name with its count, most common first and ties by name (a parallel aggregate returns its
    groups in any order, and "events present" must read the same everywhere), and the (event, source, channel)
    combinations."""
    combos = engine.execute(ev.group_by(["event", "source", "channel"]).aggregate(n=ev.count())).to_pylist()
    known: dict[str, int] = {}
    for r in combos:
        known[r["event"]] = known.get(r["event"], 0) + int(r["n"])
    return dict(sorted(known.items(), key=lambda kv: (-kv[1], kv[0]))), combos


def definition_findings(engine: Engine, definition: JourneyDefinition, level: str | None = None) -> list[Finding]:
    """Every part of `definition` that the data does not bear out (see the module's docstring), at the unit
    of analysis `level` (default: the definition's). Empty when the workspace has no events."""
    level = level or definition.analysis.level
    ev = _events(engine)
    known, combos = _vocabulary(engine, ev)
    if not known:
        return []
    probes = []
    for key, rule in _rules(definition):
        probes += _probes(engine, ev, key, rule, [], [])
    out, matches = _rule_findings(engine, ev, probes, known, combos)
    out += _survey_score_findings(engine, ev, definition)
    out += _persona_findings(engine, definition, level)
    out += _playbook_trait_findings(engine, definition)
    out += _playbook_owner_findings(engine, definition)
    out += _stage_findings(engine, definition, level, matches)
    out += _experiment_findings(engine, ev, definition, level, matches)
    return out


def name_findings(engine: Engine, names: dict[str, list[str]], labels: ir.Table | None = None,
                  what: str = "event") -> list[Finding]:
    """Names an analysis was given (`{"steps": [...], "exclude": [...]}`) that never occur: among the event
    names, or among `labels.label` (stage or touchpoint ids, `what` says which). One query."""
    wanted = {n for values in names.values() for n in values if n}
    if not wanted:
        return []
    if labels is None:
        ev = _events(engine)
        t = ev.group_by("event").aggregate(n=ev.count()).rename(label="event")
    else:
        t = labels.filter(labels.label.notnull())
        t = t.group_by("label").aggregate(n=t.count())
    present = [r["label"] for r in engine.execute(t.order_by([ibis.desc("n"), "label"])).to_pylist()]
    if not present:
        return []
    out = []
    for key, values in names.items():
        for v in dict.fromkeys(values):
            if v and v not in present:
                out.append(Finding(key, f"no {what} named {v!r} occurs", did_you_mean(v, present, f"{what}s present")))
    return out


def period_findings(engine: Engine, date_from, date_to) -> list[Finding]:
    """A --from/--to period in which no event occurs, with the days the data covers: every table of the
    analysis would be zeros or empty, which reads as a result. Nothing when the period holds an event or there
    are no events at all. One query."""
    if date_from is None and date_to is None:
        return []
    lo, hi = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    ev = _events(engine)
    found = engine.execute(ev.aggregate(first=ev.ts.min(), last=ev.ts.max(), n=ev.count(where=inside(ev.ts, (lo, hi))))
                           ).to_pylist()[0]
    if found["first"] is None or found["n"]:
        return []
    first, last = found["first"].date(), found["last"].date()
    # the side that is wrong: a period after the data names --from, one before it --to
    key = "to" if hi is not None and hi < first else "from"
    period = (f"from {lo} to {hi}" if lo and hi else f"from {lo} on" if lo else f"up to {hi}")
    return [Finding(key, f"no event occurs {period}, so there is nothing to count",
                    f"the data runs from {first} to {last}")]
