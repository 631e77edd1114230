"""Point-in-time account features for health scores and churn risk.

Every feature of an account at a scoring date `at` reads only events with `ts < at`, so the same
features can be computed for past dates and used to train a model on what happened next
(`tests/test_features.py` proves it: features at `at` do not change when every event at or after
`at` is deleted). The work is done in the engine with Ibis expressions (DuckDB or Spark); only the
aggregated table, one row per account, comes back to Python.

Features (days are 86,400 s; "usage" is `health.signals.usage`, default `source: product`):

=========================  ==================================================================
recency_days               days since the last usage event (since the first event when none)
active_days_30d / _90d     distinct UTC days with usage in the last 30 / 90 days
activity_trend             (usage events last 30 days + 1) / (usage events the 30 days before + 1)
key_features_90d           distinct key features (milestones.key_features) used in the last 90 days
key_feature_adoption       share of key features ever used
adopted_<feature>          1 when the key feature was ever used
active_users_30d           distinct persons with usage in the last 30 days
seats                      licensed seats on the last MRR event (`revenue.seats`; missing without it)
seat_utilisation           active_users_30d / seats (missing without seats)
tickets_90d                tickets opened in the last 90 days (`signals.ticket`)
max_effort_90d / mean_…    max / mean effort score of tickets solved in the last 90 days
high_effort_tickets_60d    tickets solved with effort >= `signals.high_effort` in the last 60 days
high_effort_days_ago       days since the last such ticket was solved, capped at 90 (90 when none)
last_nps / _csat / _ces    the latest answer of each survey kind (missing when none)
sentiment                  mean VADER compound of the account's texts in the last 90 days (`text_sentiment`;
                           risk passes it in, missing without texts)
negative_texts_90d         of those texts, how many are negative (compound <= -0.05)
failed_payments_60d        failed payments in the last 60 days (`signals.failed_payment`)
downgrades_90d             MRR events in the last 90 days that lowered a non-zero MRR
mrr                        MRR in force (0 after a churn event); `paying` is mrr > 0
tenure_days                days since the first MRR event that stated a positive MRR
stage_<id>                 1 for the stage the account is in (its last stage hit), one-hot
early_<touchpoint>         1 when the touchpoint happened within `signals.early_window` of the
                           account's first milestones.start event (and before `at`)
=========================  ==================================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from journeymap.engine.backends import Engine
from journeymap.engine.rules import first_match, rule_expr
from journeymap.engine.unit_events import IDENTITY_CALLS
from journeymap.journey.definition import Health, HealthSignals, JourneyDefinition, Rule
from journeymap.journey.durations import parse_duration

DAY = dt.timedelta(days=1)
HIGH_EFFORT_CAP = 90.0
ExtraFeatures = Callable[[Engine, ir.Table], ir.Table]
"""A feature hook: (engine, the scoring dates: `_d`, `_at`, `_a30`, `_a60`, `_a90` as `_cutoffs` gives them) ->
a table with `_d`, `unit_id` and more columns, each date's from what came before its `_at`. Sentiment scores of
comments plug in here; the columns join the feature table by date and account. The dates are a table, not
literals, so that the SQL is the same whatever the dates (engine.compile_cache)."""


def signals(definition: JourneyDefinition) -> HealthSignals:
    return (definition.health or Health()).signals


def early_touchpoints(definition: JourneyDefinition) -> list[str]:
    """Touchpoints that count in the first week: configured, or those of the stages between the start
    milestone's stage and the value moment's stage (onboarding, in the demo)."""
    configured = signals(definition).early_touchpoints
    if configured is not None:
        return list(configured)
    ms = definition.milestones

    def stage_of(rule: Rule | None) -> int | None:
        names = set(_events(rule))
        for i, s in enumerate(definition.stages):
            if names & set(_events(s.entry)):
                return i
        return None

    lo, hi = stage_of(ms.start), stage_of(ms.value_moment)
    if lo is None or hi is None or hi <= lo + 1:
        return []
    between = {s.id for s in definition.stages[lo + 1:hi]}
    return [t.id for t in definition.touchpoints if t.stage in between]


def _events(rule: Rule | None) -> list[str]:
    if rule is None:
        return []
    return list(rule.event or []) + [e for sub in rule.any or [] for e in _events(sub)]


class FeatureBuilder:
    """Holds the prepared (materialized) events of one store and computes features at any date.

    Use inside `engine.scope()`: the prepared tables are released when the scope closes."""

    def __init__(self, engine: Engine, definition: JourneyDefinition, extra: Iterable[ExtraFeatures] = (),
                 materialize: bool = True, units: ir.Table | None = None, since: dt.datetime | None = None,
                 revenue: bool = True):
        """`units` (a table with `unit_id`) keeps those accounts' events only; `since` keeps the events at or after
        it (the derived columns are then computed for those rows only); `revenue` false leaves the billing
        features out. All three serve the features folded at refresh (insights.risk.feature_state)."""
        self.engine, self.definition, self.extra = engine, definition, list(extra)
        self.signals = signals(definition)
        self.key_features = [f.id for f in definition.milestones.key_features]
        self.early = early_touchpoints(definition)
        self.stage_ids = [s.id for s in definition.stages]
        self.units, self.since = units, since
        # Materialized when read many times (snapshots: every date's labels); a single `at` reads the events
        # once, and writing ~15 derived columns of every event to a temp table cost more than the query.
        keep = engine.materialize if materialize else (lambda t: t)
        self.events = keep(self._events())
        self.revenue = keep(self._revenue()) if definition.revenue and revenue else None

    def _kept(self, ev: ir.Table, unit: ir.Column) -> ir.Table:
        if self.units is not None:
            ev = ev.filter(unit.isin(self.units.unit_id))
        if self.since is not None:
            ev = ev.filter(ev.ts >= _lit(self.since))
        return ev

    # -- prepared tables ---------------------------------------------------------------------------

    def _events(self) -> ir.Table:
        e, d, sig = self.engine, self.definition, self.signals
        ev = e.table("journey_events")
        ev = self._kept(ev.filter(ev.account_id.notnull(), ~ev.type.isin(IDENTITY_CALLS)), ev.account_id)
        solved = rule_expr(e, ev, sig.ticket_solved)
        effort = e.json_get(ev.properties, sig.effort).try_cast("float64")
        survey_score = ibis.cases(
            *[(rule_expr(e, ev, s.match), e.json_get(ev.properties, s.score).try_cast("float64")) for s in d.surveys],
            else_=ibis.null("float64")) if d.surveys else ibis.null("float64")
        survey_kind = first_match(e, ev, [(s.kind, s.match) for s in d.surveys])
        churn_stages = [(s.id, s.entry) for s in d.stages if s.kind == "churn"]
        churn = rule_expr(e, ev, d.revenue.churn) if d.revenue else (
            first_match(e, ev, churn_stages).notnull() if churn_stages else ibis.literal(False))
        tps = {t.id: t for t in d.touchpoints}
        return ev.select(
            unit_id=ev.account_id, person_id=ev.person_id, ts=ev.ts, seq=ev.seq, day=ev.ts.date(),
            usage=rule_expr(e, ev, sig.usage),
            key_feature=first_match(e, ev, [(f.id, f.match) for f in d.milestones.key_features]),
            ticket=rule_expr(e, ev, sig.ticket),
            effort=ibis.ifelse(solved, effort, ibis.null("float64")),
            survey_kind=survey_kind, survey_score=survey_score,
            failed=rule_expr(e, ev, sig.failed_payment),
            start=rule_expr(e, ev, d.milestones.start) if d.milestones.start else ibis.literal(False),
            early_tp=first_match(e, ev, [(t, tps[t].match) for t in self.early if t in tps]),
            stage_hit=first_match(e, ev, [(s.id, s.entry) for s in d.stages]),
            churn=churn,
        )

    def _revenue(self) -> ir.Table:
        from journeymap.engine.revenue import revenue_events

        r = self.definition.revenue
        rev = revenue_events(self.engine, self.definition)
        if self.units is not None:
            rev = rev.filter(rev.unit_id.isin(self.units.unit_id))
        w = ibis.window(group_by=rev.unit_id, order_by=[rev.ts, rev.seq])
        seats = self.engine.json_get(rev.properties, r.seats).try_cast("float64") if r.seats else ibis.null("float64")
        return rev.select("unit_id", "ts", "seq", "churn", "mrr", prev_mrr=rev.mrr.lag().over(w), seats=seats)

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        """The first and last event time in the store."""
        row = self.engine.execute(self.events.aggregate(lo=self.events.ts.min(), hi=self.events.ts.max())).to_pylist()[0]
        return row["lo"], row["hi"]

    # -- features ----------------------------------------------------------------------------------

    def at(self, at: dt.datetime) -> pd.DataFrame:
        """One row per account with any event before `at`: unit_id and the features (module docstring)."""
        return self.at_dates([at])[0]

    def at_dates(self, dates: list[dt.datetime]) -> list[pd.DataFrame]:
        """`at(d)` for each date, computed in one query: the events are joined to a small table of the dates
        (`_d`, the date's position, and its cut-offs), every aggregate and window is per (`_d`, unit_id), and
        the result is split per date in Python. The same rows and values as one `at` per date; on Spark one
        query instead of one per date (each costs seconds of job overhead however small the data)."""
        dates = [as_datetime(d) for d in dates]
        if not dates:
            return []
        df = self.engine.execute(self.raw(_cutoffs(self.engine, dates))).to_pandas()
        return [self.finish(df[df["_d"] == i].drop(columns="_d").reset_index(drop=True), at) for i, at in enumerate(dates)]

    def raw(self, cut: ir.Table, parts: tuple[str, ...] = ("lifetime", "window")) -> ir.Table:
        """The aggregates `finish` turns into features, per (`_d`, unit_id) of the dates in `cut` (`_cutoffs`).
        "lifetime" are those an account's later events alone can change (first and last times, adoption, the
        latest survey answers, stage and billing, the early touchpoints); "window" those that read the 90 days
        before the date (activity, tickets, effort, failed payments, downgrades, the `extra` hooks)."""
        ev = self.events.cross_join(cut).filter(self.events.ts < cut._at)
        keys = ["_d", "unit_id"]
        aggs = {**(self._lifetime_aggs(ev) if "lifetime" in parts else {}),
                **(self._window_aggs(ev) if "window" in parts else {})}
        out = ev.group_by(keys).aggregate(**aggs)
        joined = [self._last_surveys(ev), self._current_stage(ev), self._early(ev)] if "lifetime" in parts else []
        if self.revenue is not None:
            joined.append(self._billing(cut, parts))
        if "window" in parts:
            joined += [f(self.engine, cut) for f in self.extra]
        for i, p in enumerate(joined):
            p = p.rename({f"_j{i}": "_d", f"_k{i}": "unit_id"})
            out = out.left_join(p, [out._d == p[f"_j{i}"], out.unit_id == p[f"_k{i}"]]).drop(f"_j{i}", f"_k{i}")
        return out

    def _lifetime_aggs(self, ev: ir.Table) -> dict:
        aggs = {"first_ts": ev.ts.min(),
                "last_usage_ts": ev.ts.max(where=ev.usage),
                "last_high_effort_ts": ev.ts.max(where=ev.effort >= self.signals.high_effort),
                "start_ts": ev.ts.min(where=ev.start)}
        return aggs | {f"adopted_{k}": ev.count(where=ev.key_feature == k) for k in self.key_features}

    def _window_aggs(self, ev: ir.Table) -> dict:
        def since(days: int) -> ir.BooleanValue:
            return ev.ts >= ev[f"_a{days}"]

        u = ev.usage
        return {
            "active_days_30d": ev.day.nunique(where=u & since(30)),
            "active_days_90d": ev.day.nunique(where=u & since(90)),
            "usage_30d": ev.count(where=u & since(30)),
            "usage_prev_30d": ev.count(where=u & since(60) & ~since(30)),
            "key_features_90d": ev.key_feature.nunique(where=since(90)),
            "active_users_30d": ev.person_id.nunique(where=u & since(30)),
            "tickets_90d": ev.count(where=ev.ticket & since(90)),
            "max_effort_90d": ev.effort.max(where=since(90)),
            "mean_effort_90d": ev.effort.mean(where=since(90)),
            "high_effort_tickets_60d": ev.count(where=(ev.effort >= self.signals.high_effort) & since(60)),
            "failed_payments_60d": ev.count(where=ev.failed & since(60)),
        }

    def _last_surveys(self, ev: ir.Table) -> ir.Table:
        s = ev.filter(ev.survey_kind.notnull() & ev.survey_score.notnull())
        s = s.mutate(_r=ibis.row_number().over(ibis.window(group_by=[s._d, s.unit_id, s.survey_kind],
                                                           order_by=[ibis.desc(s.ts), ibis.desc(s.seq)])))
        s = s.filter(s._r == 0)
        kinds = ("nps", "csat", "ces")
        return s.group_by(["_d", "unit_id"]).aggregate(
            **{f"last_{k}": s.survey_score.max(where=s.survey_kind == k) for k in kinds})

    def _current_stage(self, ev: ir.Table) -> ir.Table:
        h = ev.filter(ev.stage_hit.notnull())
        h = h.mutate(_r=ibis.row_number().over(ibis.window(group_by=[h._d, h.unit_id],
                                                           order_by=[ibis.desc(h.ts), ibis.desc(h.seq)])))
        return h.filter(h._r == 0).select("_d", "unit_id", stage=h.stage_hit)

    def _early(self, ev: ir.Table) -> ir.Table:
        window = dt.timedelta(seconds=parse_duration(self.signals.early_window))
        starts = ev.filter(ev.start).group_by(["_d", "unit_id"]).aggregate(_t0=ev.ts.min())
        starts = starts.rename(_sd="_d", _u="unit_id")
        tp = ev.filter(ev.early_tp.notnull())
        j = tp.join(starts, [tp._d == starts._sd, tp.unit_id == starts._u])
        j = j.filter((j.ts >= j._t0) & (j.ts < j._t0 + ibis.interval(seconds=int(window.total_seconds()))))
        aggs = {f"early_{t}": j.count(where=j.early_tp == t) for t in self.early} or {"_none": j.count()}
        return j.group_by(["_d", "unit_id"]).aggregate(**aggs)

    def _billing(self, cut: ir.Table, parts: tuple[str, ...] = ("lifetime", "window")) -> ir.Table:
        r = self.revenue.cross_join(cut).filter(self.revenue.ts < cut._at)
        by = [r._d, r.unit_id]
        aggs = {}
        if "lifetime" in parts:
            aggs["customer_since"] = r.ts.min(where=r.mrr > 0)
        if "window" in parts:
            aggs["downgrades_90d"] = r.count(where=downgrade(r) & (r.ts >= r._a90))
        g = r.group_by(["_d", "unit_id"]).aggregate(**aggs)
        if "lifetime" not in parts:
            return g
        last = r.mutate(_r=ibis.row_number().over(ibis.window(group_by=by, order_by=[ibis.desc(r.ts), ibis.desc(r.seq)])))
        last = last.filter(last._r == 0).select(_ld=last._d, _lu=last.unit_id, mrr=last.mrr)
        seated = r.filter(r.seats.notnull())
        seated = seated.mutate(_r=ibis.row_number().over(
            ibis.window(group_by=[seated._d, seated.unit_id], order_by=[ibis.desc(seated.ts), ibis.desc(seated.seq)])))
        seated = seated.filter(seated._r == 0).select(_sd=seated._d, _su=seated.unit_id, seats=seated.seats)
        g = g.left_join(last, [g._d == last._ld, g.unit_id == last._lu]).drop("_ld", "_lu")
        g = g.left_join(seated, [g._d == seated._sd, g.unit_id == seated._su]).drop("_sd", "_su")
        return g

    def downgrades(self) -> ir.Table:
        """unit_id, ts of every revenue event that lowered a non-zero MRR to a non-zero one (`downgrades_90d`
        counts those in the 90 days before the date)."""
        r = self.revenue
        return r.filter(downgrade(r)).select("unit_id", "ts")

    def finish(self, df: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
        """The features at `at` from `raw`'s aggregates of that date (without `_d`)."""

        def days(col: str) -> pd.Series:
            return (pd.Timestamp(at) - pd.to_datetime(df[col])).dt.total_seconds() / 86400.0

        out = pd.DataFrame({"unit_id": df["unit_id"].astype(str)})
        out["recency_days"] = days("last_usage_ts").fillna(days("first_ts"))
        for c in ("active_days_30d", "active_days_90d", "key_features_90d", "active_users_30d", "tickets_90d",
                  "high_effort_tickets_60d", "failed_payments_60d"):
            out[c] = df[c].fillna(0).astype(float)
        out["activity_trend"] = (df["usage_30d"].fillna(0) + 1.0) / (df["usage_prev_30d"].fillna(0) + 1.0)
        adopted = [f"adopted_{k}" for k in self.key_features]
        for c in adopted:
            out[c] = (df[c].fillna(0) > 0).astype(float)
        out["key_feature_adoption"] = out[adopted].mean(axis=1) if adopted else np.nan
        seats = df["seats"].astype(float) if "seats" in df else pd.Series(np.nan, index=df.index)
        out["seats"] = seats
        out["seat_utilisation"] = out["active_users_30d"] / seats.where(seats > 0)
        out["high_effort_days_ago"] = days("last_high_effort_ts").fillna(HIGH_EFFORT_CAP).clip(upper=HIGH_EFFORT_CAP)
        out["max_effort_90d"] = df["max_effort_90d"].astype(float)
        out["mean_effort_90d"] = df["mean_effort_90d"].astype(float)
        for k in ("nps", "csat", "ces"):
            out[f"last_{k}"] = df[f"last_{k}"].astype(float)
        out["sentiment"] = df["sentiment"].astype(float) if "sentiment" in df else np.nan
        if "negative_texts_90d" in df:
            out["negative_texts_90d"] = df["negative_texts_90d"].fillna(0).astype(float)
        billing = "mrr" in df
        out["downgrades_90d"] = df["downgrades_90d"].fillna(0).astype(float) if billing else 0.0
        out["mrr"] = df["mrr"].fillna(0).astype(float) if billing else np.nan
        out["tenure_days"] = days("customer_since") if billing else days("first_ts")
        for s in self.stage_ids:
            out[f"stage_{s}"] = (df["stage"] == s).astype(float)
        for t in self.early:
            out[f"early_{t}"] = (df[f"early_{t}"].fillna(0) > 0).astype(float)
        for c in df.columns:  # columns from `extra` hooks
            if c not in out and c not in _INTERNAL and not c.startswith(("adopted_", "early_", "last_")):
                out[c] = df[c]
        out["stage"] = df["stage"]
        out["paying"] = out["mrr"] > 0 if billing else df["stage"].notna() & ~df["stage"].isin(self._terminal())
        return out.sort_values("unit_id", ignore_index=True)

    def _terminal(self) -> list[str]:
        return [s.id for s in self.definition.stages if s.terminal]

    # -- labels ------------------------------------------------------------------------------------

    def churned_between(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """unit_id, churn_at: the first churn event in [start, end) per account (the revenue section's churn
        event, or an event entering a terminal churn stage)."""
        ev = self.events.filter(self.events.churn & (self.events.ts >= _lit(start)) & (self.events.ts < _lit(end)))
        df = self.engine.execute(ev.group_by("unit_id").aggregate(churn_at=ev.ts.min())).to_pandas()
        return df.assign(unit_id=df["unit_id"].astype(str))

    def churned_within(self, dates: list[dt.datetime], horizon_days: int) -> list[pd.DataFrame]:
        """`churned_between(d, d + horizon)` for each date, in one query."""
        dates = [as_datetime(d) for d in dates]
        if not dates:
            return []
        cut = _cutoffs(self.engine, dates, horizon_days)
        ch = self.events.filter(self.events.churn)
        ev = ch.cross_join(cut).filter((ch.ts >= cut._at) & (ch.ts < cut._end))
        df = self.engine.execute(ev.group_by(["_d", "unit_id"]).aggregate(churn_at=ev.ts.min())).to_pandas()
        out = []
        for i in range(len(dates)):
            part = df[df["_d"] == i].drop(columns="_d").reset_index(drop=True)
            out.append(part.assign(unit_id=part["unit_id"].astype(str)))
        return out


def downgrade(r: ir.Table) -> ir.BooleanValue:
    """A revenue event (FeatureBuilder._revenue) that lowered a non-zero MRR to a non-zero one."""
    return (r.prev_mrr > 0) & (r.mrr > 0) & (r.mrr < r.prev_mrr)


_INTERNAL = {"last_high_effort_ts", "first_ts", "last_usage_ts", "usage_30d", "usage_prev_30d", "start_ts", "customer_since", "stage", "_none"}
NON_FEATURES = ("unit_id", "at", "stage", "paying", "churned", "churn_at")


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The model inputs of a feature table: every column but ids, the stage label and outcomes."""
    return [c for c in df.columns if c not in NON_FEATURES]


def features_at(engine: Engine, definition: JourneyDefinition, at: dt.datetime | dt.date | str,
                extra: Iterable[ExtraFeatures] = ()) -> pd.DataFrame:
    """Features of every account with events before `at` (see the module docstring).

    Two accounts: `a` pays 100 a month and creates reports; `b` paid 50 and cancelled.

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from journeymap.workspace import Workspace
    >>> folder = tempfile.TemporaryDirectory()
    >>> ws = Workspace(folder.name)
    >>> _ = ws.definition_path.write_text(json.dumps({
    ...     "analysis": {"level": "account"},
    ...     "stages": [{"id": "trial", "name": "Trial", "entry": "signed_up"},
    ...                {"id": "paying", "name": "Paying", "entry": "plan_changed"},
    ...                {"id": "churned", "name": "Churned", "entry": "cancelled", "terminal": True, "kind": "churn"}],
    ...     "milestones": {"key_features": [{"id": "reports", "name": "Reports", "match": "report_created"}]},
    ...     "revenue": {"match": {"event": "plan_changed"}, "mrr": "mrr", "churn": "cancelled"}}))
    >>> _ = Path(folder.name, "events.csv").write_text('''user_id,account_id,event,ts,source,properties
    ... a1,a,signed_up,2026-03-01T12:00:00,product,{}
    ... a1,a,plan_changed,2026-03-02T12:00:00,billing,"{""mrr"": 100}"
    ... a1,a,report_created,2026-05-20T12:00:00,product,{}
    ... b1,b,signed_up,2026-03-01T12:00:00,product,{}
    ... b1,b,plan_changed,2026-03-02T12:00:00,billing,"{""mrr"": 50}"
    ... b1,b,cancelled,2026-04-15T12:00:00,billing,{}
    ... ''')
    >>> _ = ws.ingest([str(Path(folder.name, "events.csv"))])
    >>> f = features_at(ws.engine, ws.definition, "2026-06-01").set_index("unit_id")
    >>> f.loc["a", ["recency_days", "active_days_30d", "adopted_reports", "mrr", "paying", "tenure_days", "stage"]].to_dict()
    {'recency_days': 11.5, 'active_days_30d': 1.0, 'adopted_reports': 1.0, 'mrr': 100.0, 'paying': True,
     'tenure_days': 90.5, 'stage': 'paying'}
    >>> f.loc["b", ["recency_days", "mrr", "paying", "stage"]].to_dict()      # its last usage is the sign-up
    {'recency_days': 91.5, 'mrr': 0.0, 'paying': False, 'stage': 'churned'}
    >>> ws.close(); folder.cleanup()
    """
    with engine.scope():
        return FeatureBuilder(engine, definition, extra, materialize=False).at(as_datetime(at))


def monthly_dates(first: dt.datetime, last: dt.datetime, horizon_days: int, warmup_days: int = 60) -> list[dt.datetime]:
    """Scoring dates: the 1st of each month from `warmup_days` after the first event, while the label
    window [date, date + horizon) still closes before the last event.

    >>> [d.date().isoformat() for d in monthly_dates(dt.datetime(2025, 1, 10), dt.datetime(2025, 8, 2), 90)]
    ['2025-04-01', '2025-05-01']
    """
    out: list[dt.datetime] = []
    earliest = first + dt.timedelta(days=warmup_days)
    y, m = earliest.year, earliest.month
    d = dt.datetime(y, m, 1)
    if d < earliest:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        d = dt.datetime(y, m, 1)
    while d + dt.timedelta(days=horizon_days) <= last:
        out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        d = dt.datetime(y, m, 1)
    return out


def snapshots(engine: Engine, definition: JourneyDefinition, horizon_days: int = 90,
              dates: list[dt.datetime] | None = None, extra: Iterable[ExtraFeatures] = (),
              progress: Callable[[str, float], None] | None = None) -> pd.DataFrame:
    """Training rows: features of every account paying (active) at each scoring date, with `churned`
    (a churn event in [at, at + horizon)) and `churn_at`. Default dates: `monthly_dates`."""
    say = progress or (lambda _m, _f: None)
    with engine.scope():
        fb = FeatureBuilder(engine, definition, extra)
        lo, hi = fb.span()
        if lo is None:
            raise ValueError("the store has no account events: churn risk needs accounts (analysis level account)")
        dates = dates if dates is not None else monthly_dates(lo, hi, horizon_days)
        if not dates:
            raise ValueError(f"the data spans {lo:%Y-%m-%d} to {hi:%Y-%m-%d}: too short for a {horizon_days}-day horizon")
        frames = []
        say(f"features at {len(dates)} dates, {dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}", 0.0)
        features, churned = fb.at_dates(dates), fb.churned_within(dates, horizon_days)  # one query each
        for at, f, ch in zip(dates, features, churned, strict=True):
            f = f[f["paying"]].copy()
            f = f.merge(ch, on="unit_id", how="left")
            f["churned"] = f["churn_at"].notna().astype(int)
            f.insert(1, "at", pd.Timestamp(at))
            frames.append(f)
        say("features done", 1.0)
    return pd.concat(frames, ignore_index=True)


def _lit(value: dt.datetime) -> ir.TimestampValue:
    return ibis.literal(value, type="timestamp")


def _cutoffs(engine: Engine, dates: list[dt.datetime], horizon_days: int | None = None) -> ir.Table:
    """One row per scoring date: `_d` (its position), `_at`, `_a30` / `_a60` / `_a90` (30, 60, 90 days
    before) and, with a horizon, `_end` (`_at` + horizon). Computed here, so no engine does date arithmetic."""
    rows = {"_at": dates, **{f"_a{n}": [d - n * DAY for d in dates] for n in (30, 60, 90)}}
    if horizon_days is not None:
        rows["_end"] = [d + horizon_days * DAY for d in dates]
    return engine.in_memory(pa.table({"_d": pa.array(range(len(dates)), pa.int64()),
                                      **{k: pa.array(v, pa.timestamp("us")) for k, v in rows.items()}}))


def as_datetime(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise TypeError(f"not a date: {value!r}")


def text_sentiment(engine: Engine, definition: JourneyDefinition) -> ExtraFeatures | None:
    """The `sentiment` features: VADER over every customer text (docs/metrics/voice-of-customer.md),
    scored once (at refresh, when the stored texts are current); per scoring date only texts before it count.
    None when the workspace has no text.

    sentiment            mean compound of the account's texts in the 90 days before the date (missing: none)
    negative_texts_90d   of those, how many are negative (compound <= -0.05); 0 without texts
    """
    from journeymap.insights.voice.text_state import scored_rows, stored_texts

    kept = stored_texts(engine, definition)  # scored at refresh, folded per account (insights.voice.text_state)
    if kept is None:  # not current: read from the events and scored now, as a refresh would
        rows = scored_rows(engine, definition, "account")
        if rows.num_rows == 0:
            return None
        kept = engine.in_memory(rows.select(["unit_id", "ts", "compound"]))
    elif engine.execute(kept.count()).as_py() == 0:
        return None
    scored = kept.select(_u=kept.unit_id, _ts=kept.ts, _c=kept.compound)
    scored = scored.filter(scored._u.notnull() & scored._ts.notnull() & scored._c.notnull())

    def features(engine: Engine, cut: ir.Table) -> ir.Table:
        t = scored.cross_join(cut).filter((scored._ts < cut._at) & (scored._ts >= cut._a90))
        return t.group_by(["_d", t._u.name("unit_id")]).aggregate(sentiment=t._c.mean(),
                                                                  negative_texts_90d=t.count(where=t._c <= -0.05))

    return features
