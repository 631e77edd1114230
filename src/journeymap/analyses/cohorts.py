"""`retention`, `lifecycle` and `stickiness`: cohort analyses of raw events (docs/metrics/retention.md, lifecycle.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from journeymap.analyses.base import (MAX_DAYS, WARNINGS_HELP, Analysis, Day, Field, Output, Params, UnitField, unit_of,
                                      warnings_of)

Interval = Literal["day", "week", "month", "quarter"]
INTERVAL_HELP = "day, week (Monday, UTC), month or quarter."
EVENT_HELP = "Only this event makes a unit active (default: any)."
FROM_HELP = "First interval to report (a date, YYYY-MM-DD)."
TO_HELP = "Last interval to report (a date, YYYY-MM-DD)."


class _Period(Params):
    @model_validator(mode="after")
    def _ordered(self):
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("--from must not be after --to")
        return self


class RetentionParams(_Period):
    start: str = Field(description="The event that puts a unit in a cohort.")
    return_event: str = Field(alias="return", description="The event that counts as coming back (may equal --start).")
    interval: Interval = Field("week", description=INTERVAL_HELP)
    mode: Literal["first_time", "recurring"] = Field(
        "first_time", description="first_time: cohort of the first start event; recurring: every interval with one.")
    period: Literal["on", "on_or_after"] = Field(
        "on", description="on: returned in exactly period k; on_or_after: in k or later.")
    rolling: bool = Field(False, description="Periods of 1/7/30/90 days from each unit's own start event.")
    brackets: str | None = Field(None, description="Day ranges after the start event, e.g. 1-3,4-7,8-14.")
    date_from: Day = Field(None, alias="from", description=FROM_HELP)
    date_to: Day = Field(None, alias="to", description=TO_HELP)
    by: Literal["person", "account"] | None = UnitField()

    @field_validator("brackets")
    @classmethod
    def _brackets(cls, text: str | None) -> str | None:
        from journeymap.engine.retention import parse_brackets

        if text is not None:
            ranges = parse_brackets(text)  # OptionError with the engine's wording
            if any(hi > MAX_DAYS for _, hi in ranges or []):
                raise ValueError(f"--brackets: days must be at most {MAX_DAYS}")
        return text


class RetentionOutput(Output):
    start_event: str = Field(description="--start.")
    return_event: str = Field(description="--return.")
    interval: str = Field(description="--interval.")
    mode: str = Field(description="--mode.")
    period: str = Field(description="--period.")
    rolling: bool = Field(description="--rolling.")
    brackets: list = Field(description="The day brackets, when given.")
    by: str = Field(description="The unit of analysis used.")
    cohorts: list[dict] = Field(description="Per cohort: start, size, values[k] retained in period k, rates[k].")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _retention(ws, p: RetentionParams, progress=None) -> dict:
    from journeymap.engine.checks import name_findings
    from journeymap.engine.retention import retention

    engine = ws.engine
    result = retention(engine, start=p.start, return_event=p.return_event, interval=p.interval, mode=p.mode,
                       period=p.period, rolling=p.rolling, brackets=p.brackets, level=unit_of(ws, p.by),
                       date_from=p.date_from, date_to=p.date_to)
    return {**result, "warnings": warnings_of(name_findings(engine, {"start": [p.start], "return": [p.return_event]}))}


class LifecycleParams(_Period):
    interval: Interval = Field("week", description=INTERVAL_HELP)
    event: str | None = Field(None, description=EVENT_HELP)
    new_by: Literal["first_event", "created_at"] = Field(
        "first_event", description="first_event, or created_at (the profile's createdAt trait, else its first event of "
                                   "any kind).")
    date_from: Day = Field(None, alias="from", description=FROM_HELP)
    date_to: Day = Field(None, alias="to", description=TO_HELP)
    by: Literal["person", "account"] | None = UnitField()


class LifecycleOutput(Output):
    interval: str = Field(description="--interval.")
    event: str | None = Field(description="--event.")
    new_by: str = Field(description="--new-by.")
    by: str = Field(description="The unit of analysis used.")
    intervals: list[dict] = Field(description="Per interval: start, new, returning, resurrecting, dormant, active, "
                                              "quick_ratio.")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _lifecycle(ws, p: LifecycleParams, progress=None) -> dict:
    from journeymap.engine.checks import name_findings
    from journeymap.engine.lifecycle import lifecycle

    engine = ws.engine
    result = lifecycle(engine, interval=p.interval, event=p.event, new_by=p.new_by, level=unit_of(ws, p.by),
                       date_from=p.date_from, date_to=p.date_to)
    return {**result, "warnings": warnings_of(name_findings(engine, {"event": [p.event] if p.event else []}))}


class StickinessParams(_Period):
    interval: Literal["week", "month", "quarter"] = Field("week", description="week, month or quarter: count active "
                                                                              "days in each.")
    event: str | None = Field(None, description=EVENT_HELP)
    date_from: Day = Field(None, alias="from", description=FROM_HELP)
    date_to: Day = Field(None, alias="to", description=TO_HELP)
    by: Literal["person", "account"] | None = UnitField()


class StickinessOutput(Output):
    interval: str = Field(description="--interval.")
    event: str | None = Field(description="--event.")
    by: str = Field(description="The unit of analysis used.")
    intervals: list[dict] = Field(description="Per interval: start, units, distribution[k-1] units active on k days.")
    dau_mau: list[dict] = Field(description="Per month: days, avg_dau, mau, dau_mau.")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _stickiness(ws, p: StickinessParams, progress=None) -> dict:
    from journeymap.engine.checks import name_findings
    from journeymap.engine.lifecycle import stickiness

    engine = ws.engine
    result = stickiness(engine, interval=p.interval, event=p.event, level=unit_of(ws, p.by), date_from=p.date_from,
                        date_to=p.date_to)
    return {**result, "warnings": warnings_of(name_findings(engine, {"event": [p.event] if p.event else []}))}


RETENTION = Analysis("retention", "Cohort retention: of the units that did --start, how many did --return in each "
                     "later period.", RetentionParams, _retention, RetentionOutput, "docs/metrics/retention.md",
                     needs_definition=False, example={"start": "signed_up", "return": "report_created"})
LIFECYCLE = Analysis("lifecycle", "New, returning, resurrecting and dormant units per interval, with the quick ratio.",
                     LifecycleParams, _lifecycle, LifecycleOutput, "docs/metrics/lifecycle.md", needs_definition=False)
STICKINESS = Analysis("stickiness", "How many days units are active per interval, and DAU/MAU per month.",
                      StickinessParams, _stickiness, StickinessOutput, "docs/metrics/lifecycle.md",
                      needs_definition=False)
