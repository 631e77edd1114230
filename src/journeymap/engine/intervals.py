"""Calendar intervals as whole numbers, the same on every engine.

An interval index counts intervals since a fixed origin: days and weeks from Monday 1970-01-05 (so
weeks start on Monday, UTC), months as ``year * 12 + month - 1`` and quarters as
``year * 4 + (month - 1) // 3``. Differences of indexes are periods; labels are computed in Python.

>>> label(index_to_start(0, "week"))
'1970-01-05'
>>> index_to_start(24290, "month")
datetime.date(2024, 3, 1)
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
from journeymap.errors import OptionError

INTERVALS = ("day", "week", "month", "quarter")
ROLLING_DAYS = {"day": 1, "week": 7, "month": 30, "quarter": 90}
ORIGIN = dt.datetime(1970, 1, 5)  # a Monday
DAY_US = 86_400 * 10**6


def check(interval: str) -> str:
    if interval not in INTERVALS:
        raise OptionError(f"--interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    return interval


def interval_index(ts: ir.TimestampValue, interval: str) -> ir.IntegerValue:
    """The calendar interval that `ts` falls in, as an integer (see the module docstring)."""
    check(interval)
    if interval in ("day", "week"):
        # floor(floor(us / day) / 7) = floor(us / week): one division per row instead of two
        return (ts.delta(ibis.timestamp(ORIGIN), unit="microsecond") // (DAY_US * (1 if interval == "day" else 7))).cast("int64")
    months = ts.year().cast("int64") * 12 + ts.month().cast("int64") - 1
    return months if interval == "month" else (months // 3).cast("int64")


def python_index(ts: dt.datetime | dt.date, interval: str) -> int:
    """The same index for one Python date or datetime (used for --from/--to and in tests)."""
    check(interval)
    d = ts.date() if isinstance(ts, dt.datetime) else ts
    if interval in ("day", "week"):
        days = (d - ORIGIN.date()).days
        return days if interval == "day" else days // 7
    months = d.year * 12 + d.month - 1
    return months if interval == "month" else months // 3


def index_to_start(index: int, interval: str) -> dt.date:
    """The first day of an interval."""
    check(interval)
    if interval == "day":
        return ORIGIN.date() + dt.timedelta(days=index)
    if interval == "week":
        return ORIGIN.date() + dt.timedelta(days=7 * index)
    months = index if interval == "month" else index * 3
    return dt.date(months // 12, months % 12 + 1, 1)


def label(day: dt.date) -> str:
    return day.isoformat()


def parse_day(text: str | dt.date | None, option: str) -> dt.date | None:
    """A --from/--to value: an ISO date (YYYY-MM-DD)."""
    if text is None or isinstance(text, dt.date):
        return text
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise OptionError(f"{option} must be a date like 2024-03-01, not {text!r}") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:  # interval arithmetic past these overflows dates
        raise OptionError(f"{option} {text!r} is out of range: years {MIN_YEAR} to {MAX_YEAR}")
    return day


MIN_YEAR, MAX_YEAR = 1900, 2200

Period = tuple[dt.date | None, dt.date | None]
"""A map's period: first and last day (inclusive, UTC) whose events count; None: open on that side."""


def in_period(t: ir.Table, period: Period = (None, None)) -> ir.Table:
    """The rows of `t` (with a `ts` column) inside the period; all of them for (None, None)."""
    bounds = _bounds(t.ts, period)
    return t.filter(*bounds) if bounds else t


def inside(ts: ir.TimestampValue, period: Period) -> ir.BooleanValue:
    """Whether `ts` falls inside the period (True for (None, None))."""
    bounds = _bounds(ts, period)
    return ibis.and_(*bounds) if bounds else ibis.literal(True)


def _bounds(ts: ir.TimestampValue, period: Period) -> list[ir.BooleanValue]:
    lo, hi = period
    bounds = []
    if lo is not None:
        bounds.append(ts >= ibis.timestamp(dt.datetime.combine(lo, dt.time())))
    if hi is not None:
        bounds.append(ts < ibis.timestamp(dt.datetime.combine(hi + dt.timedelta(days=1), dt.time())))
    return bounds
