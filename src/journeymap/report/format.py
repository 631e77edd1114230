"""How numbers read on the journey map: `null` is an en dash, never a zero.

Every function takes `None` and returns the dash, so templates never have to test for missing data.
"""

from __future__ import annotations

from datetime import datetime

from journeymap.journey.durations import format_duration

DASH = "–"

__all__ = [
    "DASH",
    "count",
    "date_label",
    "datetime_label",
    "duration",
    "humanize",
    "percent",
    "score",
    "signed",
    "unit_noun",
]


def count(value: float | None) -> str:
    """A whole number with thousands separators.

    >>> count(1234567)
    '1,234,567'
    >>> count(0)
    '0'
    >>> count(None)
    '–'
    """
    if value is None:
        return DASH
    return f"{round(value):,}"


def percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction in 0..1 as a percentage with one decimal.

    >>> percent(0.62)
    '62.0%'
    >>> percent(0.0)
    '0.0%'
    >>> percent(None)
    '–'
    """
    if fraction is None:
        return DASH
    return f"{fraction * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """Seconds as a short label, the same labels the journey definition accepts.

    >>> duration(3.2 * 86400)
    '3.2d'
    >>> duration(5 * 3600)
    '5.0h'
    >>> duration(None)
    '–'
    """
    return format_duration(seconds)


def signed(value: float | None, digits: int = 2) -> str:
    """A score that can go either way, with its sign and a true minus.

    >>> signed(0.35)
    '+0.35'
    >>> signed(-0.2)
    '−0.20'
    >>> signed(0)
    '0.00'
    >>> signed(None)
    '–'
    """
    if value is None:
        return DASH
    text = f"{abs(value):.{digits}f}"
    if round(value, digits) > 0:
        return "+" + text
    if round(value, digits) < 0:
        return "−" + text
    return text


def score(value: float | None, kind: str) -> str:
    """A survey score in its own scale: NPS -100..100, CSAT a share of satisfied answers, CES 1..7.

    >>> score(31.5, "nps")
    '+31.5'
    >>> score(0.86, "csat")
    '86.0%'
    >>> score(3.1, "ces")
    '3.1'
    >>> score(None, "nps")
    '–'
    """
    if value is None:
        return DASH
    if kind == "nps":
        return signed(value, 1)
    if kind == "csat":
        return percent(value)
    return f"{value:.1f}"


def humanize(identifier: str | None) -> str:
    """An id as a label: `paid_search` reads `Paid search`.

    >>> humanize("paid_search")
    'Paid search'
    >>> humanize("docs-viewed")
    'Docs viewed'
    >>> humanize(None)
    '–'
    """
    if not identifier:
        return DASH
    words = identifier.replace("_", " ").replace("-", " ").split()
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def date_label(text: str | None) -> str:
    """An ISO timestamp as a date a reader says out loud.

    >>> date_label("2025-01-01T00:00:00")
    '1 Jan 2025'
    >>> date_label(None)
    '–'
    """
    if not text:
        return DASH
    moment = _parse(text)
    if moment is None:
        return text
    return f"{moment.day} {moment:%b %Y}"


def datetime_label(text: str | None) -> str:
    """An ISO timestamp with its time; UTC says so.

    >>> datetime_label("2026-11-23T12:00:00Z")
    '23 Nov 2026, 12:00 UTC'
    >>> datetime_label("2026-11-23T12:00:00")
    '23 Nov 2026, 12:00'
    """
    if not text:
        return DASH
    moment = _parse(text)
    if moment is None:
        return text
    label = f"{moment.day} {moment:%b %Y, %H:%M}"
    offset = moment.utcoffset()
    if offset is not None:
        label += " UTC" if not offset else f" {moment:%z}"
    return label


def unit_noun(level: str | None, plural: bool = True) -> str:
    """What a unit is called at this analysis level.

    >>> unit_noun("account")
    'accounts'
    >>> unit_noun("person", plural=False)
    'person'
    """
    if level == "account":
        return "accounts" if plural else "account"
    if level == "person":
        return "people" if plural else "person"
    return "units" if plural else "unit"
