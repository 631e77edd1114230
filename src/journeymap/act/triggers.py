"""The SQL of a playbook's conditions over the journey state (docs/playbooks.md): each a query the store runs.

  candidates  unit_id, ts, seq, detail (JSON text): every moment the entry condition became true, at or before
              `now` (data time), one row per moment; the re-entry rules then pick the entries among them
  audience    the candidates that pass the audience filters, each with its owner
  outcomes    unit_id, ts, reason: every moment a goal or exit holds (what closes a run)

Nothing here reads events into Python: every function returns SQL text (compiled from the engine's Ibis rules,
engine.rules) over `state_events_L`, `state_visits_L`, `state_units_L`, `state_risk` and the traits tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import ibis

from journeymap.act import comments
from journeymap.engine.backends import Engine
from journeymap.engine.personas import unit_traits
from journeymap.engine.rules import condition_expr, rule_expr
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import parse_duration
from journeymap.journey.playbooks import Outcome, Playbook
from journeymap.journey.rules import Condition, Rule
from journeymap.state.fold import tables


def q(value) -> str:
    """A SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return "'" + str(value).replace("'", "''") + "'"


def micros(seconds: float) -> str:
    return f"to_microseconds({int(seconds * 1e6)}::BIGINT)"


@dataclass
class Context:
    """What every query of one level needs: the engine over the store, the definition, `now` (data time:
    nothing after it is seen) and an optional unit (explain)."""

    engine: Engine
    definition: JourneyDefinition
    level: str
    now: datetime
    unit: str | None = None

    @property
    def t(self) -> dict[str, str]:
        return tables(self.level)

    def compile(self, expr) -> str:
        return self.engine.backend.compile(expr)

    def unit_filter(self, column: str = "unit_id") -> str:
        return f"{column} = {q(self.unit)}" if self.unit is not None else "TRUE"

    def rule_events(self, rule: Rule, extra: dict | None = None) -> str:
        """SQL: unit_id, ts, seq, event (and `extra` columns: name -> property path) of the events matching
        `rule`, at or before now."""
        t = self.engine.table(self.t["events"])
        cols = {name: self.engine.json_get(t.properties, path) for name, path in (extra or {}).items()}
        expr = t.filter(rule_expr(self.engine, t, rule), t.ts <= self.now)
        if self.unit is not None:
            expr = expr.filter(t.unit_id == self.unit)
        return self.compile(expr.select(t.unit_id, t.ts, t.seq, t.event, **cols))


def candidates(ctx: Context, playbook: Playbook) -> str:
    """SQL: unit_id, ts, seq, detail of each moment `playbook`'s entry condition became true."""
    e = playbook.entry
    now = q(ctx.now)
    if e.event is not None:
        return (f"SELECT unit_id, ts, seq, json_object('event', event, 'at', ts)::VARCHAR AS detail "
                f"FROM ({ctx.rule_events(e.event)})")
    if e.absence is not None:
        n = parse_duration(e.absence.within)
        return f"""
            SELECT x.unit_id, x.ts + {micros(n)} AS ts, x.seq,
                   json_object('did', x.event, 'did_at', x.ts, 'within', {q(e.absence.within)},
                               'not_did_by', x.ts + {micros(n)})::VARCHAR AS detail
            FROM ({ctx.rule_events(e.absence.did)}) x
            WHERE x.ts + {micros(n)} <= {now}
              AND NOT EXISTS (SELECT 1 FROM ({ctx.rule_events(e.absence.not_did)}) y
                              WHERE y.unit_id = x.unit_id AND y.ts > x.ts AND y.ts <= x.ts + {micros(n)})"""
    if e.stage_entered is not None:
        return f"""
            SELECT unit_id, entered_at AS ts, entry_seq AS seq,
                   json_object('stage', stage, 'entered_at', entered_at, 'visit', visit_no)::VARCHAR AS detail
            FROM {ctx.t['visits']} WHERE stage = {q(e.stage_entered)} AND entered_at <= {now} AND {ctx.unit_filter()}"""
    if e.stalled is not None:
        stage = q(e.stalled.stage)
        if e.stalled.beyond == "p90":
            limit = (f"(SELECT quantile_cont(epoch(left_at) - epoch(entered_at), 0.9) FROM {ctx.t['visits']} "
                     f"WHERE stage = {stage} AND left_at IS NOT NULL AND left_at <= {now})")
        else:
            limit = repr(parse_duration(e.stalled.beyond))
        return f"""
            SELECT unit_id, entered_at + to_microseconds((lim * 1e6)::BIGINT) AS ts, entry_seq AS seq,
                   json_object('stage', stage, 'entered_at', entered_at, 'beyond', {q(e.stalled.beyond)},
                               'beyond_seconds', lim, 'left_at', left_at)::VARCHAR AS detail
            FROM (SELECT *, {limit} AS lim FROM {ctx.t['visits']} WHERE stage = {stage} AND {ctx.unit_filter()})
            WHERE lim IS NOT NULL AND entered_at + to_microseconds((lim * 1e6)::BIGINT) <= {now}
              AND (left_at IS NULL OR left_at > entered_at + to_microseconds((lim * 1e6)::BIGINT))"""
    if e.risk_above is not None:
        if not _exists(ctx, "state_risk"):
            return "SELECT NULL::VARCHAR AS unit_id, NULL::TIMESTAMP AS ts, 0::BIGINT AS seq, NULL::VARCHAR AS detail LIMIT 0"
        unit = "r.unit_id" if ctx.level == "account" else "p.person_id"
        join = "" if ctx.level == "account" else "JOIN persons p ON p.account_id = r.unit_id"
        return f"""
            SELECT {unit} AS unit_id, least(r.scored_at, {now}) AS ts, 0::BIGINT AS seq,
                   json_object('risk', r.risk, 'above', {e.risk_above!r}, 'scored_at', r.scored_at,
                               'rank', r.rank)::VARCHAR AS detail
            FROM state_risk r {join}
            WHERE r.risk > {e.risk_above!r} AND r.scored_at - INTERVAL 1 DAY <= {now} AND {ctx.unit_filter(unit)}"""
    if e.comment is not None:  # act.comments.prepare folded the scored texts
        if not _exists(ctx, comments.table(ctx.level)):
            return "SELECT NULL::VARCHAR AS unit_id, NULL::TIMESTAMP AS ts, 0::BIGINT AS seq, NULL::VARCHAR AS detail LIMIT 0"
        return comments.candidates_sql(e.comment, ctx.level, now, ctx.unit_filter(), q)
    if e.health_band is not None:  # act.health.prepare wrote the bands now and the previous ones
        unit = "h.unit_id" if ctx.level == "account" else "p.person_id"
        join = "" if ctx.level == "account" else "JOIN persons p ON p.account_id = h.unit_id"
        bands = ", ".join(q(b) for b in e.health_band.to)
        return f"""
            SELECT {unit} AS unit_id, least(h.scored_at, {now}) AS ts, 0::BIGINT AS seq,
                   json_object('band', h.band, 'previous', h.previous, 'health', h.health, 'scored_at', h.scored_at)::VARCHAR
                   AS detail
            FROM _act_health_now h {join}
            WHERE h.band IN ({bands}) AND (h.previous IS NULL OR h.previous NOT IN ({bands}))
              AND h.scored_at - INTERVAL 1 DAY <= {now} AND {ctx.unit_filter(unit)}"""
    if e.survey is not None:
        survey = next(s for s in ctx.definition.surveys if s.id == e.survey.survey)
        rule = Rule(any=[survey.match], where={survey.score: _as_dict(_score_condition(survey, e.survey))})
        if e.survey.answer == "passive":  # two conditions on the score: above the detractors, below the promoters
            rule = Rule(any=[rule], where={survey.score: {"lt": survey.promoter_min}})
        return (f"SELECT unit_id, ts, seq, json_object('survey', {q(survey.id)}, 'event', event, 'score', "
                f"TRY_CAST(score AS DOUBLE), 'at', ts)::VARCHAR AS detail "
                f"FROM ({ctx.rule_events(rule, {'score': survey.score})})")
    if e.failed_payment:
        rule = ctx.definition.health.signals.failed_payment if ctx.definition.health else Rule(event=["payment_failed"])
        return (f"SELECT unit_id, ts, seq, json_object('event', event, 'at', ts)::VARCHAR AS detail "
                f"FROM ({ctx.rule_events(rule)})")
    if e.usage_drop is not None:
        d = e.usage_drop
        rule = d.usage or (ctx.definition.health.signals.usage if ctx.definition.health else Rule(source=["product"]))
        w = parse_duration(d.window)
        return f"""
            WITH u AS ({ctx.rule_events(rule)}),
            firsts AS (SELECT unit_id, min(ts) AS first FROM u GROUP BY unit_id),
            checks AS (SELECT unit_id, first + {micros(w)} * k AS c
                       FROM firsts, unnest(range(2, (floor((epoch({now}) - epoch(first)) / {w!r}) + 1)::BIGINT)) AS r(k)),
            counted AS (SELECT c.unit_id, c.c,
                               count(*) FILTER (WHERE u.ts > c.c - {micros(w)}) AS after,
                               count(*) FILTER (WHERE u.ts <= c.c - {micros(w)}) AS before
                        FROM checks c JOIN u ON u.unit_id = c.unit_id AND u.ts > c.c - {micros(2 * w)} AND u.ts <= c.c
                        GROUP BY ALL)
            SELECT unit_id, c AS ts, 0::BIGINT AS seq,
                   json_object('window', {q(d.window)}, 'before', before, 'after', after,
                               'fraction', {d.fraction!r})::VARCHAR AS detail
            FROM counted WHERE before >= {d.min_before} AND after <= (1 - {d.fraction!r}) * before"""
    if e.seats_drop is not None:
        rev = ctx.definition.revenue
        w = parse_duration(e.seats_drop.window)
        seats = (f"SELECT unit_id, ts, seq, TRY_CAST(seats AS DOUBLE) AS seats "
                 f"FROM ({ctx.rule_events(rev.match, {'seats': rev.seats})}) WHERE TRY_CAST(seats AS DOUBLE) IS NOT NULL")
        return f"""
            WITH s AS ({seats})
            SELECT a.unit_id, a.ts, a.seq,
                   json_object('seats', a.seats, 'seats_before', b.seats, 'before_at', b.ts,
                               'window', {q(e.seats_drop.window)}, 'fraction', {e.seats_drop.fraction!r})::VARCHAR AS detail
            FROM s a ASOF JOIN s b ON a.unit_id = b.unit_id AND a.ts - {micros(w)} >= b.ts
            WHERE b.seats > 0 AND a.seats <= (1 - {e.seats_drop.fraction!r}) * b.seats"""
    raise AssertionError(f"entry kind {e.kind}")


def _as_dict(cond: Condition) -> dict:
    """A condition as the rule language writes it (Rule wraps anything but a mapping as `eq`)."""
    return cond.model_dump(by_alias=True, exclude_none=True)


def _score_condition(survey, answer) -> Condition:
    if answer.score is not None:
        return answer.score
    if answer.answer == "detractor":
        return Condition(lte=survey.detractor_max)
    if answer.answer == "promoter":
        return Condition(gte=survey.promoter_min)
    return Condition(gt=survey.detractor_max)


def _exists(ctx: Context, table: str) -> bool:
    return has_table(ctx.engine.backend.con, table)


def owner_sql(ctx: Context, playbook: Playbook, cand: str) -> str:
    """SQL: the candidates with `owner`: the unit's trait, or a stage's owner (the stage the unit is in at the
    candidate's time for `stage: current`), else the fallback."""
    o = playbook.owner
    if o.trait:
        base, trait = unit_traits(ctx.engine, ctx.level)
        traits = ctx.compile(base.select(base.unit_id, owner_trait=trait(o.trait)))
        return (f"SELECT c.*, coalesce(NULLIF(t.owner_trait, ''), {q(o.fallback)}) AS owner "
                f"FROM ({cand}) c LEFT JOIN ({traits}) t ON t.unit_id = c.unit_id")
    owners = {s.id: s.owner for s in ctx.definition.stages if s.owner}
    if o.stage and o.stage != "current":
        return f"SELECT c.*, {q(owners.get(o.stage) or o.fallback)} AS owner FROM ({cand}) c"
    if o.stage == "current":
        cases = " ".join(f"WHEN {q(k)} THEN {q(v)}" for k, v in owners.items()) or "WHEN NULL THEN NULL"
        return f"""
            SELECT c.* EXCLUDE (_stage), coalesce(CASE c._stage {cases} END, {q(o.fallback)}) AS owner
            FROM (SELECT c.*, e.current_stage AS _stage FROM ({cand}) c
                  ASOF LEFT JOIN (SELECT unit_id, ts, current_stage FROM {ctx.t['events']}) e
                  ON c.unit_id = e.unit_id AND c.ts >= e.ts) c"""
    return f"SELECT c.*, {q(o.fallback)} AS owner FROM ({cand}) c"


def audience_base(ctx: Context, playbook: Playbook, cand: str) -> str:
    """SQL: the candidates with `owner`, and the unit's `persona`, `plan` and `mrr` (at the candidate's time)."""
    sql = owner_sql(ctx, playbook, cand)
    sql = (f"SELECT c.*, u.persona FROM ({sql}) c LEFT JOIN {ctx.t['units']} u ON u.unit_id = c.unit_id")
    revenue = revenue_sql(ctx)
    if revenue is None:
        return f"SELECT c.*, NULL::VARCHAR AS plan, NULL::DOUBLE AS mrr FROM ({sql}) c"
    return (f"SELECT c.*, r._plan AS plan, r._mrr AS mrr FROM ({sql}) c "
            f"ASOF LEFT JOIN ({revenue}) r ON c.unit_id = r.unit_id AND c.ts >= r.ts")


def revenue_sql(ctx: Context) -> str | None:
    """SQL: unit_id, ts, _mrr, _plan of every revenue event (a churn event: MRR 0); None without `revenue:`.
    The MRR at a time is the latest row at or before it (an ASOF join)."""
    rev = ctx.definition.revenue
    if rev is None:
        return None
    t = ctx.engine.table(ctx.t["events"])
    expr = t.filter(rule_expr(ctx.engine, t, rev.match) | rule_expr(ctx.engine, t, rev.churn))
    churned = rule_expr(ctx.engine, t, rev.churn)
    mrr = ibis.cases((churned, ibis.literal(0.0)),
                     else_=ctx.engine.json_get(t.properties, rev.mrr).try_cast("float64") * rev.scale)
    plan = ctx.engine.json_get(t.properties, rev.plan) if rev.plan else ibis.null("string")
    return ctx.compile(expr.select(t.unit_id, t.ts, _mrr=mrr, _plan=plan))


def audience_sql(ctx: Context, playbook: Playbook, cand: str) -> str:
    """SQL: the candidates (with owner, persona, plan, mrr) that pass every audience filter."""
    where = [test for _, test in audience_checks(ctx, playbook)]
    return f"SELECT * FROM ({audience_base(ctx, playbook, cand)}) WHERE {' AND '.join(where) or 'TRUE'}"


def audience_checks(ctx: Context, playbook: Playbook) -> list[tuple[str, str]]:
    """(name, SQL boolean over one candidate row) per audience filter: what `explain` reports one by one."""
    a = playbook.audience
    out = []
    if a.persona:
        out.append(("audience.persona", f"persona IN ({', '.join(q(p) for p in a.persona)})"))
    if a.plan:
        out.append(("audience.plan", f"plan IN ({', '.join(q(p) for p in a.plan)})"))
    for op, bound in (a.mrr or {}).items():
        out.append((f"audience.mrr.{op}", f"coalesce(mrr, 0) {dict(gt='>', gte='>=', lt='<', lte='<=')[op]} {bound!r}"))
    if a.owner:
        out.append(("audience.owner", f"owner IN ({', '.join(q(p) for p in a.owner)})"))
    for key, cond in a.traits.items():
        base, trait = unit_traits(ctx.engine, ctx.level)
        ok = ctx.compile(base.filter(condition_expr(trait(key), cond)).select(base.unit_id))
        out.append((f"audience.traits.{key}", f"unit_id IN ({ok})"))
    return out


def outcome_sql(ctx: Context, outcome: Outcome, reason: str) -> str:
    """SQL: unit_id, ts, reason of every moment `outcome` holds (a stage entered, or an event matching)."""
    if outcome.stage:
        return (f"SELECT unit_id, entered_at AS ts, {q(reason)} AS reason FROM {ctx.t['visits']} "
                f"WHERE stage = {q(outcome.stage)} AND entered_at <= {q(ctx.now)} AND {ctx.unit_filter()}")
    return f"SELECT unit_id, ts, {q(reason)} AS reason FROM ({ctx.rule_events(outcome.rule())})"


def outcomes(ctx: Context, playbook: Playbook) -> str | None:
    parts = [outcome_sql(ctx, o, name) for name, o in (("goal", playbook.goal), ("exit", playbook.exit)) if o]
    return " UNION ALL ".join(parts) if parts else None
