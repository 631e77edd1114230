"""`experiments:` in journeymap.yml: A/B tests read from the events (docs/metrics/experiments.md).

An experiment says where a unit's variant lives (an event property on the exposure events, or a trait),
which variant is the control, the split it was meant to get (for the sample-ratio-mismatch test), and the
goal metrics and guardrails, each measured from the unit's first exposure:

    experiments:
      - id: pricing_page
        name: Seat calculator on the pricing page
        exposure: {event: pricing_page_viewed}
        variant: {property: variant}          # or {trait: onboarding_variant}
        control: tiers
        split: {tiers: 0.65, seat_calculator: 0.35}
        metrics:
          - {id: acquired, kind: conversion, stage: acquisition, window: 60d}
        guardrails:
          - {id: tickets, kind: count, event: ticket_created, window: 30d, better: lower}
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from journeymap.journey.durations import parse_duration
from journeymap.journey.rules import Rule

_ID = re.compile(r"^[a-z][a-z0-9_]*$")

METRIC_KINDS = ("conversion", "funnel", "retention", "time_to_value", "mrr", "count")
"""conversion: reached a stage or an event within the window (0/1); funnel: did the steps in order within
the window (0/1); retention: active (any event, or `event`) between `after` and `after` + window; time_to_value:
days to the stage, event or the definition's value moment (a ratio over the units that reach it); mrr: the
account's MRR at the end of the window; count: events matching `event` within the window."""


def _known_keys(model: type[BaseModel], data: Any, what: str) -> Any:
    """An unknown key is named with the closest known one (pydantic's extra_forbid says only 'extra')."""
    if isinstance(data, dict):
        known = [info.alias or name for name, info in model.model_fields.items()]
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                raise ValueError(f"{key!r} is not a key of {what} (known: {', '.join(known)})"
                                 + (f"; did you mean {near[0]!r}?" if near else ""))
    return data


def _duration(value: str) -> str:
    if parse_duration(value) <= 0:  # its ValueError says how to write one
        raise ValueError(f"{value!r} must be longer than 0 (e.g. '30d')")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExperimentMetric(_Strict):
    """A goal metric or guardrail, measured per unit from its first exposure."""

    id: str = Field(description="Names the metric in the output.")
    kind: Literal[METRIC_KINDS] = Field(  # type: ignore[valid-type]
        description="conversion, funnel, retention, time_to_value, mrr or count (docs/metrics/experiments.md).")
    stage: str | None = Field(None, description="conversion, time_to_value: the stage to reach (a stage id).")
    event: Rule | None = Field(None, description="conversion, time_to_value: the event to reach; count: the events "
                                                 "to count; retention: the events that count as active (default any).")
    steps: list[Rule] | None = Field(None, description="funnel: the events to do in order, each after the one before.")
    window: str = Field("30d", description="How long after the first exposure the metric is measured.")
    after: str | None = Field(None, description="retention: when the window starts, after the exposure (default "
                                                "28d); the unit is retained if active in [after, after + window).")
    better: Literal["higher", "lower"] = Field("higher", description="Which way is good: a guardrail is breached "
                                                                     "when it moves the other way significantly.")
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data, "an experiment metric")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
        return value

    @field_validator("window", "after")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)

    @model_validator(mode="after")
    def _needs(self) -> ExperimentMetric:
        k = self.kind
        if k == "conversion" and (self.stage is None) == (self.event is None):
            raise ValueError(f"metric {self.id!r} (conversion): give either stage or event")
        if k == "time_to_value" and self.stage is not None and self.event is not None:
            raise ValueError(f"metric {self.id!r} (time_to_value): give stage or event, not both "
                             "(neither: the definition's milestones.value_moment)")
        if k == "funnel" and (not self.steps or len(self.steps) < 2):
            raise ValueError(f"metric {self.id!r} (funnel): give steps, at least two events")
        if k == "count" and self.event is None:
            raise ValueError(f"metric {self.id!r} (count): give event, the events to count")
        if k != "funnel" and self.steps:
            raise ValueError(f"metric {self.id!r}: steps are for kind funnel, not {k}")
        if k not in ("conversion", "time_to_value") and self.stage is not None:
            raise ValueError(f"metric {self.id!r}: stage is for kinds conversion and time_to_value, not {k}")
        if k != "retention" and self.after is not None:
            raise ValueError(f"metric {self.id!r}: after is for kind retention, not {k}")
        return self

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def after_seconds(self) -> float:
        return parse_duration(self.after or "28d")


class VariantSource(_Strict):
    """Where a unit's variant is read: a property of its exposure events, or one of its traits."""

    property: str | None = Field(None, description="Property path on the exposure events, e.g. 'experiment:pricing_v2'.")
    trait: str | None = Field(None, description="A person or account trait (a person's falls back to its account's).")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"property": data}
        return _known_keys(cls, data, "variant")

    @model_validator(mode="after")
    def _one(self) -> VariantSource:
        if (self.property is None) == (self.trait is None):
            raise ValueError("variant: give either property (on the exposure events) or trait")
        path = self.property or self.trait or ""
        if any(not k or '"' in k for k in path.split(".")):
            raise ValueError(f"variant: {path!r} is not a property path (no empty key, no double quote)")
        return self


class Experiment(_Strict):
    """One experiment: its variants, their intended split, and what it should move."""

    id: str
    name: str | None = None
    description: str | None = None
    variant: VariantSource = Field(description="Where the variant lives: {property: PATH} or {trait: KEY}.")
    exposure: Rule | None = Field(
        None, description="The events that expose a unit; the first one starts its metrics. With a property variant, "
                          "only exposure events carrying the property count. Default: any event (with a property "
                          "variant: any event carrying it).")
    control: str = Field(description="The control variant's value.")
    split: dict[str, float] | None = Field(
        None, description="Intended share of units per variant (any positive weights; normalised), for the "
                          "sample-ratio-mismatch test. Default: equal shares of the variants seen.")
    unit: Literal["person", "account"] | None = Field(
        None, description="The unit that was randomised; default the definition's analysis.level.")
    start: str | None = Field(None, description="Only exposures on or after this day (YYYY-MM-DD) count.")
    end: str | None = Field(None, description="Only exposures on or before this day (YYYY-MM-DD) count.")
    cuped: bool = Field(True, description="Reduce variance with the same metric in the window before exposure "
                                          "(CUPED) where it applies.")
    srm_threshold: float = Field(0.001, gt=0, lt=1, description="Flag a sample ratio mismatch below this p-value.")
    metrics: list[ExperimentMetric] = Field(min_length=1, description="Goal metrics.")
    guardrails: list[ExperimentMetric] = Field(default_factory=list, description="Metrics that must not get worse.")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _known_keys(cls, data, "an experiment")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
        return value

    @field_validator("start", "end")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        import datetime as dt

        if value is None:
            return None
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError(f"{value!r} is not a date (write YYYY-MM-DD)") from None

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.split is not None:
            if len(self.split) < 2:
                raise ValueError(f"experiment {self.id!r}: split needs at least two variants")
            bad = [k for k, v in self.split.items() if not v > 0]
            if bad:
                raise ValueError(f"experiment {self.id!r}: split shares must be positive, not {self.split[bad[0]]!r} "
                                 f"for {bad[0]!r}")
            if self.control not in self.split:
                near = difflib.get_close_matches(self.control, list(self.split), n=1)
                raise ValueError(f"experiment {self.id!r}: control {self.control!r} is not a variant of split "
                                 f"({', '.join(self.split)})" + (f"; did you mean {near[0]!r}?" if near else ""))
        ids = [m.id for m in [*self.metrics, *self.guardrails]]
        dup = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
        if dup:
            raise ValueError(f"experiment {self.id!r}: metric id {dup!r} is used twice (metrics and guardrails share ids)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"experiment {self.id!r}: start must not be after end")
        return self

    @property
    def all_metrics(self) -> list[tuple[str, ExperimentMetric]]:
        """(role, metric): the goal metrics, then the guardrails."""
        return [("goal", m) for m in self.metrics] + [("guardrail", m) for m in self.guardrails]


def experiment_references(experiments: list[Experiment], stage_ids: list[str], has_value_moment: bool,
                          has_revenue: bool) -> list[tuple[str, str]]:
    """What the experiments name that the rest of the definition does not define: (key path, message), with
    a did-you-mean."""
    out = []
    ids = [e.id for e in experiments]
    for i, e in enumerate(experiments):
        if e.id in ids[:i]:
            out.append((f"experiments[{i}].id", f"id {e.id!r} is used twice"))
        for section, metrics in (("metrics", e.metrics), ("guardrails", e.guardrails)):
            for j, m in enumerate(metrics):
                key = f"experiments[{i}].{section}[{j}]"
                if m.stage is not None and m.stage not in stage_ids:
                    near = difflib.get_close_matches(m.stage, stage_ids, n=1)
                    out.append((f"{key}.stage", f"unknown stage {m.stage!r}"
                                + (f"; did you mean {near[0]!r}?" if near else f" (stages: {', '.join(stage_ids)})")))
                if m.kind == "time_to_value" and m.stage is None and m.event is None and not has_value_moment:
                    out.append((key, "time_to_value needs stage, event or milestones.value_moment"))
                if m.kind == "mrr" and not has_revenue:
                    out.append((key, "kind mrr needs the definition's `revenue:` section"))
    return out
