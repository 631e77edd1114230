"""Targets of the future state (`targets:` in journeymap.yml): a metric, and the value or the change the team aims for."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from journeymap.journey.base import StrictModel
from journeymap.journey.durations import parse_duration

_METRICS = (
    "ttv_p50", "ttv_p90", "nps", "csat", "ces", "conversion", "time_in_stage_p50",
    "time_in_stage_p90", "churn_rate", "adoption", "reached",
)


RATE_METRICS = frozenset({"conversion", "churn_rate", "adoption", "reached", "csat"})
"""Rates: a target is a fraction in [0, 1] or a percentage such as '25%'."""
DURATION_METRICS = frozenset({"ttv_p50", "ttv_p90", "time_in_stage_p50", "time_in_stage_p90"})
"""Durations: a target is a positive duration such as '3d' (or a number of seconds)."""


def _percent(text: str) -> float | None:
    """The number in a percentage such as '25%' or '-3.5 %'; None for any other text."""
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*%", text)
    return float(match.group(1)) if match else None


def _number(x: float) -> str:
    """A number as people write it: 1000 not 1000.0, 0.1 not 0.1000000001."""
    return f"{x:g}" if abs(x) < 1e15 else str(x)


class Target(StrictModel):
    """A future-state target, e.g. `ttv_p50 <= 3d`, `nps >= 40`, or `ces` down 15% year over year."""

    metric: Literal[_METRICS]  # type: ignore[valid-type]
    op: Literal["<=", ">=", "<", ">"] | None = None
    value: float | str | None = Field(None, description="A number, a percentage like '25%' or a duration like '3d'.")
    change: str | None = Field(None, description="A relative target such as '-15%'.")
    baseline: Literal["yoy"] | None = None
    stage: str | None = None
    touchpoint: str | None = None
    feature: str | None = None
    persona: str | None = None
    label: str | None = None
    reference: str | None = Field(None, description="Where the target's number comes from.")

    @model_validator(mode="after")
    def _absolute_or_relative(self) -> Target:
        if (self.value is None) == (self.change is None):
            raise ValueError(f"target {self.metric}: give either op+value or change+baseline")
        if self.value is not None and self.op is None:
            raise ValueError(f"target {self.metric}: an absolute target needs op")
        if self.change is not None:
            if self.baseline is None:
                raise ValueError(f"target {self.metric}: a relative target needs baseline: yoy")
            if not re.fullmatch(r"[+-]\d+(\.\d+)?%", self.change):
                raise ValueError(f"target {self.metric}: change {self.change!r} must look like '-15%'")
        if self.metric in ("conversion", "time_in_stage_p50", "time_in_stage_p90") and not self.stage:
            raise ValueError(f"target {self.metric}: needs stage")
        if self.metric == "adoption" and not self.feature:
            raise ValueError("target adoption: needs feature")
        return self

    def value_problem(self, ces_scale: tuple[float, float] = (1, 7)) -> str | None:
        """What is wrong with `value` for this metric's unit (None when it is fine): a rate is a fraction in
        [0, 1] or a percentage in [0%, 100%], NPS is points in [-100, 100], CES lies within the CES survey's
        scale (`ces_scale`), a duration is positive. Suggests the likely meant value ("did you mean 0.1?")."""
        v, m = self.value, self.metric
        if v is None:
            return None
        text = v.strip() if isinstance(v, str) else None
        percent = _percent(text) if text is not None else None
        if m in RATE_METRICS:
            if percent is not None:
                return None if 0 <= percent <= 100 else f"{m} is a rate: {v!r} is not between 0% and 100%"
            if text is not None:
                return f"{m} is a rate: write a fraction such as 0.25 or a percentage such as '25%', not {v!r}"
            if 0 <= v <= 1:
                return None
            hint = f" (did you mean {_number(v / 100)}?)" if 1 < v <= 100 else ""
            return f"{m} is a rate between 0 and 1 (or a percentage such as '25%'), not {_number(v)}{hint}"
        if m in DURATION_METRICS:
            if percent is not None:
                return f"{m} is a duration: write a number and one of s, m, h, d, w (e.g. '3d'), not {v!r}"
            try:
                seconds = parse_duration(text) if text is not None else float(v)
            except ValueError as exc:
                return str(exc)
            return None if seconds > 0 else f"{m} is a duration and must be positive, not {v!r}"
        lo, hi = (-100.0, 100.0) if m == "nps" else ces_scale
        if text is not None:
            hint = f" (did you mean {_number(percent)}?)" if percent is not None else ""
            return f"{m} is a score: write a number between {_number(lo)} and {_number(hi)}, not {v!r}{hint}"
        if lo <= v <= hi:
            return None
        what = "NPS is in points" if m == "nps" else "CES is the mean answer on the CES survey's scale"
        return f"{what}, from {_number(lo)} to {_number(hi)}: {_number(v)} is out of range"

    def numeric_value(self) -> float | None:
        """The absolute value in the metric's unit: seconds for durations, 0-100 for rates (a bare number is
        a fraction: 0.25 is 25), points for NPS, the scale's units for CES."""
        if self.value is None:
            return None
        text = self.value.strip() if isinstance(self.value, str) else None
        if text is not None and text.endswith("%"):
            return float(text[:-1])
        if text is not None:
            return parse_duration(text)
        value = float(self.value)
        return 100.0 * value if self.metric in RATE_METRICS else value

    def relative_change(self) -> float | None:
        return None if self.change is None else float(self.change[:-1]) / 100.0
