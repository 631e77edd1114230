"""`conformance`: real journeys held to the designed journey, `future_state:` (docs/metrics/conformance.md)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from journeymap.analyses.base import (MAX_INT, WARNINGS_HELP, Analysis, Day, Field, Output, RowsView, UnitField,
                                      unit_of, warnings_of)
from journeymap.analyses.cohorts import INTERVAL_HELP, Interval, _Period


class ConformanceParams(_Period):
    by: Literal["person", "account"] | None = UnitField()
    persona: str | None = Field(None, description="Only units of this persona (a persona id).")
    date_from: Day = Field(None, alias="from", description="Only units whose designed journey started on or after this "
                                                           "day (YYYY-MM-DD).")
    date_to: Day = Field(None, alias="to", description="Only units whose designed journey started on or before this day.")
    interval: Interval = Field("month", description="Periods of over_time: " + INTERVAL_HELP)
    unit: str | None = Field(None, description="List this unit only (its unit id) in units_list.")
    limit: int = Field(50, ge=0, le=MAX_INT, description="Units listed in units_list (0: all).")
    offset: int = Field(0, ge=0, le=MAX_INT, description="Units to skip in units_list (paging).")
    top: int = Field(10, ge=0, le=MAX_INT, description="Non-conforming variants to list (0: all).")


class ConformanceOutput(Output):
    level: str = Field(description="The unit of analysis used.")
    as_of: dt.datetime = Field(description="The end of the data: steps are due against it.")
    interval: str = Field(description="--interval.")
    units: int = Field(description="Units evaluated: with at least one designed step (and in the period).")
    conforming: int = Field(description="Units with no deviation outside the allowlist.")
    rate: float | None = Field(description="conforming / units.")
    ci_low: float | None = Field(description="Wilson 95% interval of the rate, low end.")
    ci_high: float | None = Field(description="Wilson 95% interval of the rate, high end.")
    finished: int = Field(description="Units whose journey ended (a terminal stage).")
    personas: list[dict] = Field(description="Per persona: the design it is held to and units, conforming, rate, CI.")
    over_time: list[dict] = Field(description="Per period of the journey's start: units, conforming, rate, CI.")
    deviations: list[dict] = Field(description="Per deviation type: deviations, units, share, allowed, by_step.")
    impact: dict = Field(description="Per deviation type: conversion, churn, time_to_value and MRR of units with it "
                                     "against those without, with 95% intervals.")
    variants: list[dict] = Field(description="Most common non-conforming step sequences: path, units, share, "
                                             "leaves_at (step, position, deviation).")
    units_total: int = Field(description="Units that units_list pages through (with a deviation, or --unit).")
    units_list: list[dict] = Field(description="Per unit: unit_id, persona, start, finished, conforms, deviations.")
    design: dict = Field(description="Per design (default or a persona's): its items, end-to-end budget, allowlist.")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _conformance(ws, p: ConformanceParams, progress=None) -> dict:
    from journeymap.engine.checks import did_you_mean, name_findings
    from journeymap.errors import OptionError
    from journeymap.insights.conformance import conformance

    definition = ws.definition
    if p.persona is not None:
        known = [x.id for x in definition.personas]
        if p.persona not in known:
            hint = did_you_mean(p.persona, known, "personas") or "journeymap.yml defines no personas"
            raise OptionError(f"--persona: no persona {p.persona!r} ({hint})", option="persona")
    day = dt.date.fromisoformat
    result = conformance(ws.engine, definition, unit_of(ws, p.by), persona=p.persona,
                         date_from=day(p.date_from) if p.date_from else None,
                         date_to=day(p.date_to) if p.date_to else None, interval=p.interval, unit=p.unit,
                         limit=p.limit, offset=p.offset, top=p.top)
    names = [e for _, s in definition.future_state.all_steps() for e in (s.event or [])]
    found = name_findings(ws.engine, {"future_state": names}) if names else []
    return {**result, "warnings": result["warnings"] + warnings_of(found)}


CONFORMANCE = Analysis("conformance", "Real journeys against the designed one (future_state): conformance rate per "
                       "persona and period, typed deviations per unit, their impact with 95% intervals, and the "
                       "common ways journeys leave the design.", ConformanceParams, _conformance, ConformanceOutput,
                       "docs/metrics/conformance.md", view=RowsView)
