"""Future-state targets against the current state.

Units: rate metrics (conversion, churn_rate, adoption, reached, csat) are compared in percent, so
`csat >= 87%` and `csat >= 0.87` mean the same (a value out of range is a DefinitionError, checked when
the definition loads: `Target.value_problem`); durations are seconds or strings like `3d`; NPS is in
points; CES is the 1-7 mean. A relative target (`change: -15%`, `baseline: yoy`) compares the last
365 days of data with the 365 before.
"""

from __future__ import annotations

import operator

from journeymap.journey.targets import DURATION_METRICS, RATE_METRICS, Target
from journeymap.journey.durations import format_duration

PERCENT_METRICS = RATE_METRICS
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def actual_value(target: Target, view: dict) -> float | None:
    """The current value of a target's metric in a map view, in the target's units."""
    m = target.metric
    stage = view["stages"].get(target.stage) if target.stage else None
    if m in ("ttv_p50", "ttv_p90"):
        return view["ttv"][f"p{m[-2:]}_seconds"]
    if m in ("time_in_stage_p50", "time_in_stage_p90"):
        return stage["time_in_stage"][f"p{m[-2:]}_seconds"] if stage else None
    if m == "conversion":
        return _pct(stage["conversion_rate"]) if stage else None
    if m == "reached":
        return _pct(stage["share_of_units"]) if stage else None
    if m == "churn_rate":
        return _pct(view["churn"]["rate"])
    if m == "adoption":
        rows = [f for f in view["adoption"] if f["feature"] == target.feature]
        return _pct(rows[0]["rate"]) if rows else None
    if m in ("nps", "csat", "ces"):
        if target.stage:
            scores = stage["surveys"] if stage else {}
        elif target.touchpoint:
            scores = view.get("touchpoint_surveys", {}).get(target.touchpoint, {})
        else:
            scores = view.get("surveys", {})
        s = scores.get(m)
        if s is None or s["score"] is None:
            return None
        return _pct(s["score"]) if m == "csat" else s["score"]
    raise ValueError(f"unknown metric {m}")


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def display(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if metric in DURATION_METRICS:
        return format_duration(value)
    if metric in PERCENT_METRICS:
        return f"{value:.1f}%"
    if metric == "ces":
        return f"{value:.2f}"
    return f"{value:.1f}"


def label(target: Target) -> str:
    if target.label:
        return target.label
    name = target.metric.replace("_", " ")
    where = target.stage or target.feature or target.touchpoint
    name = f"{name} ({where})" if where else name
    if target.change:
        return f"{name} {target.change} {target.baseline}"
    return f"{name} {target.op} {target.value}"


def evaluate(targets: list[Target], view: dict, yoy: dict[str, float | None], persona: str) -> list[dict]:
    """Each target that applies to this persona view, with actual value and met (None when unknown)."""
    out = []
    for t in targets:
        if t.persona and t.persona != persona:
            continue
        if t.change:
            actual = yoy.get(t.metric)
            goal = t.relative_change()
            met = None if actual is None else (actual <= goal if goal < 0 else actual >= goal)
            shown_actual = "–" if actual is None else f"{actual * 100:+.1f}%"
            shown_target = t.change
            target_value = goal
        else:
            actual = actual_value(t, view)
            target_value = t.numeric_value()
            met = None if actual is None else _OPS[t.op](actual, target_value)
            shown_actual, shown_target = display(t.metric, actual), f"{t.op} {display(t.metric, target_value)}"
        out.append({
            "label": label(t), "metric": t.metric, "stage": t.stage, "feature": t.feature,
            "touchpoint": t.touchpoint, "persona": t.persona, "target": target_value, "actual": actual,
            "met": met, "display_target": shown_target, "display_actual": shown_actual, "reference": t.reference,
        })
    return out
