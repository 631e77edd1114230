"""Funnel options: validated once at the edge, then compiled by `journeymap.engine.funnels`.

>>> o = funnel_options(["signup", "invite", "pay"], window="1h", exclude=["churn:0:2"])
>>> o.window_seconds, o.exclusions
(3600.0, (Exclusion(event='churn', from_step=0, to_step=2),))
>>> funnel_options(["a", "b"], exclude=["x:1:1"])
Traceback (most recent call last):
...
journeymap.engine.funnel_options.FunnelOptionError: exclusion 'x:1:1': FROM (1) must be lower than TO (1)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from journeymap.errors import OptionError
from journeymap.journey.durations import parse_duration

__all__ = ["Exclusion", "FunnelOptionError", "FunnelOptions", "funnel_options"]

WINDOW_FROM = ("entry", "previous")
ORDERS = ("ordered", "strict", "unordered")
COUNTS = ("uniques", "totals")
MAX_DAYS = 36_500


class FunnelOptionError(OptionError):
    """An option the funnel cannot run with; the message says which and why."""


@dataclass(frozen=True)
class Exclusion:
    event: str
    from_step: int
    to_step: int


@dataclass(frozen=True)
class FunnelOptions:
    steps: tuple[str, ...]
    window_seconds: float = 14 * 86400.0
    window_from: str = "entry"
    order: str = "ordered"
    count: str = "uniques"
    exclusions: tuple[Exclusion, ...] = ()
    tolerance_seconds: float = 0.0
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    breakdown: str | None = None
    attribution: str = "first"  # first | last | step:N
    optional: frozenset[int] = frozenset()  # steps a unit may skip (never step 0)

    @property
    def required(self) -> tuple[int, ...]:
        return tuple(k for k in range(len(self.steps)) if k not in self.optional)

    def previous_required(self, k: int) -> int:
        """The required step before step k: conversion and time are measured from it."""
        return max(j for j in self.required if j < k)

    def next_required(self, k: int) -> int | None:
        return next((j for j in self.required if j > k), None)

    @property
    def attribution_step(self) -> int | None:
        """The step whose event carries the breakdown value; None for `last`."""
        if self.attribution == "first":
            return 0
        if self.attribution == "last":
            return None
        return int(self.attribution.split(":", 1)[1])


def _duration(text: str | float, name: str) -> float:
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise FunnelOptionError(f"{name}: {exc}") from None
    if seconds < 0:
        raise FunnelOptionError(f"{name} must not be negative")
    if seconds > MAX_DAYS * 86400:  # microsecond arithmetic in SQL overflows far beyond any real window
        raise FunnelOptionError(f"{name} must be at most {MAX_DAYS}d")
    return seconds


def _date(text: str | dt.date | None, name: str) -> dt.date | None:
    if text is None or isinstance(text, dt.date):
        return text
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise FunnelOptionError(f"{name}: {text!r} is not a date (write YYYY-MM-DD)") from None
    if not 1900 <= day.year <= 2200:
        raise FunnelOptionError(f"{name}: {text!r} is out of range: years 1900 to 2200")
    return day


def _exclusion(text: str | Exclusion, n_steps: int) -> Exclusion:
    if isinstance(text, Exclusion):
        ex, shown = text, f"{text.event}:{text.from_step}:{text.to_step}"
    else:
        shown = text
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise FunnelOptionError(f"exclusion {text!r}: write EVENT:FROM:TO with steps numbered from 0")
        try:
            ex = Exclusion(parts[0], int(parts[1]), int(parts[2]))
        except ValueError:
            raise FunnelOptionError(f"exclusion {text!r}: FROM and TO must be step numbers (from 0)") from None
    if ex.from_step < 0:
        raise FunnelOptionError(f"exclusion {shown!r}: FROM must be 0 or more")
    if ex.from_step >= ex.to_step:
        raise FunnelOptionError(f"exclusion {shown!r}: FROM ({ex.from_step}) must be lower than TO ({ex.to_step})")
    if ex.to_step > n_steps - 1:
        raise FunnelOptionError(f"exclusion {shown!r}: TO ({ex.to_step}) is beyond the last step ({n_steps - 1})")
    return ex


def funnel_options(
    steps: list[str] | tuple[str, ...] | str,
    *,
    window: str | float = "14d",
    window_from: str = "entry",
    order: str = "ordered",
    count: str = "uniques",
    exclude: list[str] | tuple = (),
    tolerance: str | float = "0s",
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    breakdown: str | None = None,
    attribution: str = "first",
    optional: list[int] | tuple[int, ...] = (),
) -> FunnelOptions:
    """Validate raw options (CLI strings or Python values) into `FunnelOptions`."""
    if isinstance(steps, str):
        steps = [s.strip() for s in steps.split(",")]
    steps = tuple(steps)
    if len(steps) < 2 or any(not s for s in steps):
        raise FunnelOptionError("--steps needs at least two non-empty event names, e.g. 'signup,invite,pay'")
    for name, value, allowed in (("--window-from", window_from, WINDOW_FROM), ("--order", order, ORDERS),
                                 ("--count", count, COUNTS)):
        if value not in allowed:
            raise FunnelOptionError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    window_seconds = _duration(window, "--window")
    if window_seconds <= 0:
        raise FunnelOptionError("--window must be positive")
    d_from, d_to = _date(date_from, "--from"), _date(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise FunnelOptionError(f"--from ({d_from}) is after --to ({d_to})")
    if attribution not in ("first", "last"):
        ok = attribution.startswith("step:") and attribution[5:].isdigit() and int(attribution[5:]) < len(steps)
        if not ok:
            raise FunnelOptionError(f"--attribution must be first, last or step:N with N from 0 to {len(steps) - 1},"
                                    f" not {attribution!r}")
    if breakdown is not None and not breakdown:
        raise FunnelOptionError("--breakdown needs a property name")
    opt = _optional(optional, len(steps))
    if order == "unordered":
        if opt:
            raise FunnelOptionError("--optional has no meaning with --order unordered: step k already counts any k steps")
        if window_from != "entry":
            raise FunnelOptionError("--order unordered measures the window from the first step done: use --window-from entry")
    return FunnelOptions(
        steps=steps, window_seconds=window_seconds, window_from=window_from, order=order, count=count,
        exclusions=tuple(_exclusion(e, len(steps)) for e in exclude),
        tolerance_seconds=_duration(tolerance, "--tolerance"), date_from=d_from, date_to=d_to,
        breakdown=breakdown, attribution=attribution, optional=opt,
    )


def _optional(steps: list[int] | tuple[int, ...], n_steps: int) -> frozenset[int]:
    out = set()
    for k in steps:
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise FunnelOptionError(f"--optional {k!r}: give a step number (from 0)") from None
        if k == 0:
            raise FunnelOptionError("--optional 0: the first step starts the attempt and cannot be optional")
        if not 0 < k < n_steps:
            raise FunnelOptionError(f"--optional {k}: there is no step {k} (steps are 0 to {n_steps - 1})")
        out.add(k)
    return frozenset(out)
