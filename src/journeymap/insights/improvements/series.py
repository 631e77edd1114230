"""The weekly series of an improvement's metric, computed by the engine on the store (Ibis).

One value per calendar week (Monday to Sunday, UTC), in the metric's unit as targets compare it
(insights/map/targets.py): rates in percent, NPS in points, CES on its scale, durations in seconds.

  nps, csat, ces       the survey answers given in the week (`engine.metrics.surveys_by`, the map's own score;
                       with the improvement's stage: answers given while in that stage, `stage_before`)
  conversion           units entering the stage for the first time in the week: the share that move on to a later
                       stage (the funnel's rule, engine.stages) within HORIZON of entering
  reached              units whose journey starts in the week: the share that reach the stage within HORIZON
  ttv_p50, ttv_p90     units whose journey starts in the week (the start milestone): the median (90th percentile)
                       time to the first value moment, among those reaching it within HORIZON

A cohort metric (conversion, reached, time to value) counts a week only once HORIZON has passed after it in
the data: a week still being observed would read as a drop. `n` is the week's units (or answers); weeks with
fewer than MIN_WEEK_N are left out, and the series says how many.

churn_rate, adoption and time in stage have no weekly series yet (`Unsupported`): their map values are
whole-period counts, and a weekly version needs a definition of its own (at risk that week) to be honest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import ibis

from journeymap.engine import metrics as M
from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.rules import rule_expr
from journeymap.engine.stages import advancing_ids
from journeymap.errors import NotEnoughData
from journeymap.journey.definition import JourneyDefinition

HORIZON = dt.timedelta(days=30)
MIN_WEEK_N = 20
WEEKLY = ("nps", "csat", "ces", "conversion", "reached", "ttv_p50", "ttv_p90")


class Unsupported(NotEnoughData):
    """The metric has no weekly series (see the module's docstring)."""


@dataclass
class Series:
    """Weekly values: `weeks` (Mondays), `values` and `n`, oldest first; `label` says what it is."""

    label: str
    weeks: list[dt.date] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    dropped_weeks: int = 0  # weeks with fewer than MIN_WEEK_N units or answers

    def as_dict(self) -> dict:
        return {"label": self.label, "dropped_weeks": self.dropped_weeks, "min_week_n": MIN_WEEK_N,
                "weeks": [{"week": w.isoformat(), "value": v, "n": n}
                          for w, v, n in zip(self.weeks, self.values, self.n, strict=True)]}


def _week(ts):
    return ts.truncate("W").cast("date")


def weekly(engine: Engine, definition: JourneyDefinition, level: str, metric: str, stage: str | None,
           persona: str | None = None, feature: str | None = None, label: str = "") -> Series:
    """The metric's weekly series; `persona` is a persona id, "!ID" for every unit not in it, or None (all)."""
    if metric not in WEEKLY:
        raise Unsupported(f"{metric} has no weekly series yet, so its effect cannot be measured; weekly series "
                          f"exist for {', '.join(WEEKLY)}",
                          add="the improvement a metric among those (`journeymap improvements set ID --metric ...`)")
    a, v, ac = journey_tables(engine, definition, level)
    if persona is not None:
        keep = (lambda t: t.persona != persona[1:]) if persona.startswith("!") else (lambda t: t.persona == persona)
        a, v, ac = a.filter(keep(a)), v.filter(keep(v)), ac.filter(keep(ac))
    hi = engine.execute(a.aggregate(hi=a.ts.max())).to_pylist()[0]["hi"]
    if hi is None:
        raise NotEnoughData("no events yet", add="events: run `journeymap ingest FILE`")
    if metric in ("nps", "csat", "ces"):
        rows = _surveys(engine, definition, ac, metric, stage)
    elif metric == "conversion":
        rows = _conversion(engine, definition, v, stage, hi)
    elif metric == "reached":
        rows = _reached(engine, a, v, stage, hi)
    else:
        rows = _ttv(engine, definition, a, metric, hi)
    out = Series(label=label or metric)
    for week, value, n in sorted(rows):
        if n < MIN_WEEK_N or value is None:
            out.dropped_weeks += 1
            continue
        out.weeks.append(week)
        out.values.append(float(value))
        out.n.append(int(n))
    return out


def _surveys(engine, definition, ac, metric, stage):
    if stage is not None:
        ac = ac.filter(ac.stage_before == stage)
    scores = M.surveys_by(engine, ac.mutate(_week=_week(ac.ts)), definition, "_week")
    rows = []
    for week, kinds in scores.items():
        s = kinds.get(metric)
        if s is not None and s["score"] is not None:
            rows.append((week, 100.0 * s["score"] if metric == "csat" else s["score"], s["n"]))
    return rows


def _complete(hi) -> dt.date:
    """The first week that is not yet complete as a cohort: it started less than 7 days + HORIZON before `hi`."""
    return (hi - HORIZON - dt.timedelta(days=7)).date()


def _conversion(engine, definition, v, stage, hi):
    ids = [s.id for s in definition.stages]
    later = [s for s in advancing_ids(definition) if ids.index(s) > ids.index(stage)]
    first = v.filter(v.stage == stage).group_by("unit_id").aggregate(_no=v.visit_no.min(), _at=v.entered_at.min())
    nxt = v.filter(v.stage.isin(later) if later else ibis.literal(False)).select(
        _u=v.unit_id, _vn=v.visit_no, _nat=v.entered_at)
    j = first.left_join(nxt, [first.unit_id == nxt._u, nxt._vn > first._no,
                              nxt._nat <= first._at + ibis.interval(seconds=int(HORIZON.total_seconds()))])
    per_unit = j.group_by(["unit_id", "_at"]).aggregate(_moved=j._u.count() > 0)
    per_unit = per_unit.filter(_week(per_unit._at) < ibis.literal(_complete(hi)))
    weeks = per_unit.group_by(week=_week(per_unit._at)).aggregate(
        n=per_unit.count(), k=per_unit._moved.ifelse(1, 0).sum())
    return [(r["week"], 100.0 * r["k"] / r["n"], r["n"]) for r in engine.execute(weeks).to_pylist()]


def _reached(engine, a, v, stage, hi):
    start = a.group_by("unit_id").aggregate(_start=a.ts.min())
    got = v.filter(v.stage == stage).group_by(_u=v.unit_id).aggregate(_at=v.entered_at.min())
    j = start.left_join(got, [start.unit_id == got._u,
                              got._at <= start._start + ibis.interval(seconds=int(HORIZON.total_seconds()))])
    j = j.filter(_week(j._start) < ibis.literal(_complete(hi)))
    weeks = j.group_by(week=_week(j._start)).aggregate(n=j.count(), k=j._u.count())
    return [(r["week"], 100.0 * r["k"] / r["n"], r["n"]) for r in engine.execute(weeks).to_pylist()]


def _ttv(engine, definition, a, metric, hi):
    m = definition.milestones
    if m.value_moment is None:
        raise NotEnoughData("time to value needs a value moment", add="milestones.value_moment in journeymap.yml")
    starts = a.filter(rule_expr(engine, a, m.start)) if m.start else a
    start = starts.group_by("unit_id").aggregate(start_at=starts.ts.min())
    values = a.filter(rule_expr(engine, a, m.value_moment)).select(_u="unit_id", _ts="ts")
    j = start.left_join(values, [start.unit_id == values._u, values._ts >= start.start_at,
                                 values._ts <= start.start_at + ibis.interval(seconds=int(HORIZON.total_seconds()))])
    first = j.group_by(["unit_id", "start_at"]).aggregate(value_at=j._ts.min())
    first = first.filter(_week(first.start_at) < ibis.literal(_complete(hi)))
    secs = first.value_at.delta(first.start_at, unit="microsecond").cast("float64") / 1e6
    q = 0.5 if metric == "ttv_p50" else 0.9
    weeks = first.group_by(week=_week(first.start_at)).aggregate(n=first.value_at.count(), value=secs.quantile(q))
    return [(r["week"], r["value"], r["n"]) for r in engine.execute(weeks).to_pylist()]
