"""Durations as people write them: `90s`, `15m`, `12h`, `3d`, `2w`."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration string.

    >>> parse_duration("14d")
    1209600.0
    >>> parse_duration("90s")
    90.0
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and one of s, m, h, d, w (e.g. '14d')")
    return float(match.group(1)) * UNITS[match.group(2)]


def format_duration(seconds: float | None) -> str:
    """A short human label: `3.2d`, `5.0h`, `12m`.

    >>> format_duration(3 * 86400)
    '3.0d'
    """
    if seconds is None:
        return "–"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
