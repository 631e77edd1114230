"""`funnel`: an exact event funnel (docs/metrics/funnels.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from journeymap.analyses.base import (WARNINGS_HELP, Analysis, Day, Duration, Field, Output, Params, UnitField, commas,
                                      unit_of, warnings_of)
from journeymap.engine.funnel_options import FunnelOptions, funnel_options


class FunnelParams(Params):
    steps: str = Field(description="Comma-separated event names, e.g. 'signup,invite,pay'.",
                       json_schema_extra={"pattern": r"^\s*[^,\s][^,]*(,\s*[^,\s][^,]*)+$"})  # documented, checked below
    by: Literal["person", "account"] | None = UnitField()
    window: Duration = Field("14d", description="Conversion window: a number and s, m, h, d or w.")
    window_from: Literal["entry", "previous"] = Field(
        "entry", description="entry: from the step-1 event; previous: between consecutive steps.")
    order: Literal["ordered", "strict", "unordered"] = Field(
        "ordered", description="ordered: other events may come between steps; strict: none may; unordered: step k "
                               "counts units that did any k steps.")
    optional: commas(int) = Field([], description="Step number (from 0, never 0) a unit may skip. Repeatable.")
    exclude: commas(str) = Field(
        [], description="EVENT:FROM:TO (steps from 0): drop attempts with EVENT between those steps. Repeatable.")
    count: Literal["uniques", "totals"] = Field("uniques", description="uniques: units, by their furthest attempt; "
                                                                       "totals: attempts.")
    breakdown: str | None = Field(None, description="A property to split the funnel by.")
    attribution: str = Field("first", description="Which step's event gives the breakdown value: first, last or step:N.")
    date_from: Day = Field(None, alias="from", description="First day (YYYY-MM-DD) an attempt may start.")
    date_to: Day = Field(None, alias="to", description="Last day (inclusive) an attempt may start; it may convert later.")
    tolerance: Duration = Field("0s", description="How far a step may precede the previous one and still count as in order.")

    @model_validator(mode="after")
    def _check(self) -> FunnelParams:
        if self.breakdown is not None and any(not k or '"' in k for k in self.breakdown.split(".")):
            # DuckDB cannot read these as a JSON path
            raise ValueError(f"--breakdown {self.breakdown!r}: write a property name or a dotted path of them, "
                             "with no empty key and no double quote")
        self.compiled()  # FunnelOptionError (an OptionError) says what is wrong
        return self

    def compiled(self) -> FunnelOptions:
        return funnel_options(self.steps, window=self.window, window_from=self.window_from, order=self.order,
                              count=self.count, exclude=list(self.exclude), tolerance=self.tolerance,
                              date_from=self.date_from, date_to=self.date_to, breakdown=self.breakdown,
                              attribution=self.attribution, optional=list(self.optional))


class FunnelOutput(Output):
    steps: list[dict] = Field(description="Per step: name, count, conversion from previous and first, mean and median time.")
    breakdown: str | None = Field(None, description="The property the funnel is split by.")
    groups: list[dict] | None = Field(None, description="With a breakdown: the steps per value.")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def run(ws, p: FunnelParams, progress=None) -> dict:
    from journeymap.engine.checks import name_findings
    from journeymap.engine.funnels import funnel

    options = p.compiled()
    engine = ws.engine
    result = funnel(engine, options, unit_of(ws, p.by))
    result.pop("histograms", None)  # the Python engine API's; the contract is steps (and groups)
    names = {"steps": list(options.steps), "exclude": [e.event for e in options.exclusions]}
    result["warnings"] = warnings_of(name_findings(engine, names))
    return result


FUNNEL = Analysis("funnel", "Exact funnel: units (or attempts) completing the steps in order within the window.",
                  FunnelParams, run, FunnelOutput, "docs/metrics/funnels.md", needs_definition=False,
                  example={"steps": "signed_up,report_created"})
