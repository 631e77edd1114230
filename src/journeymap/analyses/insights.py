"""`surveys`, `moments`, `voice` and `friction`: what customers say and do, tied to the journey
(docs/metrics/surveys.md, moments-of-truth.md, voice-of-customer.md, friction.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, model_validator

from journeymap.analyses.base import (MAX_INT, PERIOD_WARNINGS_HELP, Analysis, Day, Duration, Field, Output, Params, RowsView, UnitField, commas,
                                      days, unit_of)


class SurveysParams(Params):
    group: Literal["stage", "touchpoint", "persona", "period"] = Field(
        "stage", description="Group answers by stage, touchpoint, persona or period.")
    interval: Literal["day", "week", "month", "quarter", "year"] = Field(
        "month", description="With --group period: day, week, month, quarter or year.")
    by: Literal["person", "account"] | None = UnitField()


class SurveysOutput(Output):
    group: str = Field(description="--group.")
    interval: str | None = Field(description="--interval, with --group period.")
    rows: list[dict] = Field(description="Per group value: NPS, CSAT and CES with n and 95% intervals.")


def _surveys(ws, p: SurveysParams, progress=None) -> dict:
    from journeymap.engine.survey_report import survey_report

    return survey_report(ws.engine, ws.definition, unit_of(ws, p.by), p.group, p.interval)


def _positive(text: str) -> str:
    if days(text) <= 0:
        raise ValueError("must be positive")
    return text


Positive = Annotated[Duration, AfterValidator(_positive)]


class _Period(Params):
    """--from/--to: only the events inside the period count, as on the map of that period."""

    date_from: Day = Field(None, alias="from", description="First day (YYYY-MM-DD) whose events count.")
    date_to: Day = Field(None, alias="to", description="Last day (inclusive) whose events count.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.date_from and self.date_to and str(self.date_from) > str(self.date_to):
            raise ValueError("--from must not be after --to")
        return self

    def period_dict(self) -> dict:
        return {"from": self.date_from and str(self.date_from), "to": self.date_to and str(self.date_to)}

    def period(self) -> tuple:
        to_day = lambda d: d if d is None or isinstance(d, dt.date) else dt.date.fromisoformat(d)  # noqa: E731
        return to_day(self.date_from), to_day(self.date_to)


class MomentsParams(_Period):
    by: Literal["person", "account"] | None = UnitField()
    within: Positive = Field("14d", description="Behaviour window after the start, e.g. 14d.")
    horizon: Positive = Field("90d", description="Retained = not churned this long after the start.")
    min_units: int = Field(30, ge=1, le=MAX_INT, description="Doers and non-doers needed to be ranked.")
    population: Literal["customers", "started"] | None = Field(
        None, description="customers (reached the customer stage; default when defined) or started.")
    exclude: commas(str) = Field([], description="Behaviour id (event:x, touchpoint:y) or event name to leave out. "
                                                 "Repeatable.")
    include: commas(str) = Field([], description="Keep a behaviour the leakage rules leave out. Repeatable.")

    def engine_options(self) -> dict:
        """The keyword arguments of insights.moments.moments_of_truth (also what the map's panel runs with)."""
        return {"within_days": days(self.within), "horizon_days": days(self.horizon), "min_units": self.min_units,
                "population": self.population, "exclude": list(self.exclude) or None,
                "include": list(self.include) or None, "period": self.period()}


class MomentsOutput(Output):
    model_config = ConfigDict(extra="allow")  # the statistics' methods, documented in docs/metrics/moments-of-truth.md
    level: str = Field(description="The unit of analysis used.")
    within_days: float = Field(description="--within in days.")
    horizon_days: float = Field(description="--horizon in days.")
    population: str = Field(description="Who is analysed: customers or started.")
    units: dict = Field(description="Units analysed, retained, censored, left out and why.")
    moments: list[dict] = Field(description="Behaviours: reach, retention with and without, lift with CI, q-value, "
                                            "impact, persona checks, rank.")
    activation: dict | None = Field(description="The suggested activation definition, when one is significant.")
    excluded: list = Field(description="Behaviours left out as outcome-defining, and why.")
    caveat: str = Field(description="Correlation, not causation.")
    period: dict = Field(description="--from and --to: only the events inside count.")
    warnings: list[dict] = Field([], description=PERIOD_WARNINGS_HELP)


def _moments(ws, p: MomentsParams, progress=None) -> dict:
    from journeymap.insights.moments import moments_of_truth

    return {**moments_of_truth(ws.engine, ws.definition, unit_of(ws, p.by), **p.engine_options()),
            "period": p.period_dict()}


class VoiceParams(Params):
    by: Literal["person", "account"] | None = UnitField()
    themes: int | None = Field(None, ge=1, le=100, description="Number of themes (default: chosen by coherence).")
    themes_method: Literal["tfidf", "embeddings"] = Field(
        "tfidf", description="tfidf (TF-IDF + NMF) or embeddings (sentence embeddings; needs "
                             "`pip install 'journeymap[embeddings]'`).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the theme model: same texts + seed, same themes.")


class VoiceView(Params):
    group: Literal["stage", "touchpoint", "persona", "period", "kind"] = Field(
        "stage", description="Group the table by stage, touchpoint, persona, period or kind (JSON has every grouping).")


class VoiceOutput(Output):
    level: str = Field(description="The unit of analysis used.")
    n_texts: int = Field(description="Texts analysed.")
    units: int | None = Field(None, description="Units that wrote them.")
    sentiment: dict = Field(description="Mean VADER compound, share negative and positive.")
    themes: list[dict] = Field(description="Themes: label, share, n, sentiment, quotes.")
    themes_method: str = Field(description="tfidf or embeddings.")
    n_unthemed: int | None = Field(None, description="Texts no theme fits.")
    groups: dict = Field(description="Per stage, touchpoint, persona, period and kind: sentiment and top themes.")


def _voice(ws, p: VoiceParams, progress=None) -> dict:
    from journeymap.insights.voice import GROUPS, voice

    return voice(ws.engine, ws.definition, unit_of(ws, p.by), GROUPS, n_themes=p.themes, seed=p.seed,
                 method=p.themes_method)


class FrictionParams(_Period):
    by: Literal["person", "account"] | None = UnitField()


class FrictionOutput(Output):
    level: str = Field(description="The unit of analysis used.")
    as_of: str | None = Field(description="The end of the data.")
    has_revenue: bool = Field(description="Whether MRR at stake could be computed (a revenue section exists).")
    base_loss: float | None = Field(description="The churn or loss rate of all units, the baseline of each item.")
    churn_window_days: int = Field(description="Churn this soon after a touch counts as following it.")
    friction: list[dict] = Field(description="Pain points ranked by impact: title, stage, touchpoint, units, MRR at "
                                             "stake, evidence.")
    delight: list[dict] = Field(description="Delight moments ranked the same way.")
    period: dict = Field(description="--from and --to: only the events inside count.")
    warnings: list[dict] = Field([], description=PERIOD_WARNINGS_HELP)


def _friction(ws, p: FrictionParams, progress=None) -> dict:
    from journeymap.insights.friction import friction

    return {**friction(ws.engine, ws.definition, unit_of(ws, p.by), period=p.period()), "period": p.period_dict()}


SURVEYS = Analysis("surveys", "NPS, CSAT and CES with 95% confidence intervals, per stage, touchpoint, persona or "
                   "period.", SurveysParams, _surveys, SurveysOutput, "docs/metrics/surveys.md")
MOMENTS = Analysis("moments", "Moments of truth: early behaviours ranked by the retention that goes with them, and a "
                   "suggested activation definition. Correlation, not causation.", MomentsParams, _moments,
                   MomentsOutput, "docs/metrics/moments-of-truth.md", slow=True, view=RowsView)
VOICE = Analysis("voice", "Sentiment (VADER) and themes of survey comments, tickets, reviews and interviews per "
                 "stage, touchpoint, persona, period and kind, with quotes.", VoiceParams, _voice, VoiceOutput,
                 "docs/metrics/voice-of-customer.md", slow=True, view=VoiceView)
FRICTION = Analysis("friction", "Friction and delight ranked by impact: where on the map, units touched, MRR at "
                    "stake, evidence.", FrictionParams, _friction, FrictionOutput, "docs/metrics/friction.md",
                    slow=True, view=RowsView)
