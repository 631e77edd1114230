"""Inline SVG drawn on the server: the emotion curve and the small bars.

The SVG carries classes, not colours; the page's stylesheet paints it, so the map prints the same way
it shows. No `xmlns` is written: inline SVG in HTML does not need one, and the page holds no URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from journeymap.report.format import signed

__all__ = ["EmotionPoint", "bar", "emotion_curve", "emotion_tone", "stacked_bar"]

CURVE_HEIGHT = 148
_PAD = 30  # room above and below the extremes for the value labels


@dataclass(frozen=True)
class EmotionPoint:
    """One stage column of the emotion curve: a score in -1..1, or None without survey answers."""

    label: str
    value: float | None
    terminal: bool = False


def emotion_tone(value: float | None) -> str:
    """The word the stylesheet colours a score by.

    >>> emotion_tone(0.4), emotion_tone(-0.3), emotion_tone(0.05), emotion_tone(None)
    ('positive', 'negative', 'neutral', 'none')
    """
    if value is None:
        return "none"
    if value >= 0.2:
        return "positive"
    if value <= -0.2:
        return "negative"
    return "neutral"


def _x(index: int, columns: int) -> str:
    return f"{(index + 0.5) * 100 / columns:.4g}%"


def _y(value: float) -> float:
    clamped = max(-1.0, min(1.0, value))
    middle = CURVE_HEIGHT / 2
    return round(middle - clamped * (middle - _PAD), 2)


def emotion_curve(points: Sequence[EmotionPoint]) -> Markup:
    """The emotion curve over the stage columns, one point at the centre of each column.

    x is a percentage of the width so the points sit over the grid's columns at any page width. Stages
    in the journey are joined by a solid line; a stage without answers leaves a hollow marker on the
    neutral line and a dotted bridge between its neighbours, so a gap is never drawn as a real score.
    Terminal outcomes are alternatives, not steps, so their points stand alone.

    >>> svg = emotion_curve([EmotionPoint("A", 0.5), EmotionPoint("B", None), EmotionPoint("C", -0.5)])
    >>> svg.count('class="curve-gap"'), svg.count('class="curve-line"'), svg.count("point--none")
    (1, 0, 1)
    """
    columns = len(points)
    height = CURVE_HEIGHT
    middle = height / 2
    spoken = ", ".join(f"{p.label} {signed(p.value) if p.value is not None else 'no data'}" for p in points)
    parts: list[str] = [
        f'<svg class="emotion-curve" width="100%" height="{height}" role="img" '
        f'aria-label="Emotion by stage: {escape(spoken)}">',
        f'<rect class="band-positive" x="0" y="0" width="100%" height="{middle}"/>',
        f'<rect class="band-negative" x="0" y="{middle}" width="100%" height="{middle}"/>',
    ]
    for index, point in enumerate(points):
        if point.terminal:
            parts.append(
                f'<rect class="band-terminal" x="{index * 100 / columns:.4g}%" y="0" '
                f'width="{100 / columns:.4g}%" height="{height}"/>'
            )
    for index in range(1, columns):
        edge = "col-edge col-edge--outcome" if points[index].terminal and not points[index - 1].terminal else "col-edge"
        parts.append(f'<line class="{edge}" x1="{index * 100 / columns:.4g}%" y1="0" '
                     f'x2="{index * 100 / columns:.4g}%" y2="{height}"/>')
    parts.append(f'<line class="baseline" x1="0" y1="{middle}" x2="100%" y2="{middle}"/>')
    parts.append(f'<text class="axis" x="6" y="{_PAD - 4}">+1</text>')
    parts.append(f'<text class="axis" x="6" y="{middle - 4}">0</text>')
    parts.append(f'<text class="axis" x="6" y="{height - _PAD + 12}">−1</text>')

    known = [(i, p.value) for i, p in enumerate(points) if not p.terminal and p.value is not None]
    for (a, va), (b, vb) in zip(known, known[1:], strict=False):
        kind = "curve-line" if b == a + 1 else "curve-gap"
        parts.append(f'<line class="{kind}" x1="{_x(a, columns)}" y1="{_y(va)}" '
                     f'x2="{_x(b, columns)}" y2="{_y(vb)}"/>')

    for index, point in enumerate(points):
        x = _x(index, columns)
        if point.value is None:
            parts.append(f'<circle class="point point--none" cx="{x}" cy="{middle}" r="4"/>')
            parts.append(f'<text class="point-label point-label--none" x="{x}" y="{middle + 18}" '
                         f'text-anchor="middle">no data</text>')
            continue
        y = _y(point.value)
        tone = emotion_tone(point.value)
        label_y = y - 11 if point.value >= 0 else y + 20
        parts.append(f'<circle class="point point--{tone}" cx="{x}" cy="{y}" r="5.5"/>')
        parts.append(f'<text class="point-label point-label--{tone}" x="{x}" y="{label_y}" '
                     f'text-anchor="middle">{signed(point.value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar(fraction: float | None, tone: str = "accent", label: str | None = None) -> Markup:
    """A thin horizontal bar for a share in 0..1; None leaves the track empty.

    >>> '<rect class="bar-fill" width="50" height="6"/>' in bar(0.5), "bar-fill" in bar(None)
    (True, False)
    """
    aria = f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true"'
    fill = ""
    if fraction is not None:
        width = max(0.0, min(1.0, fraction)) * 100
        fill = f'<rect class="bar-fill" width="{width:.4g}" height="6"/>'
    return Markup(
        f'<svg class="bar bar--{escape(tone)}" viewBox="0 0 100 6" preserveAspectRatio="none" {aria}>'
        f'<rect class="bar-track" width="100" height="6"/>{fill}</svg>'
    )


def stacked_bar(shares: Sequence[float]) -> Markup:
    """Shares laid end to end, painted `seg-0`, `seg-1`, ... in order; what is left stays track.

    >>> stacked_bar([0.5, 0.25]).count("bar-seg")
    2
    """
    parts = ['<svg class="bar bar--stacked" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
             '<rect class="bar-track" width="100" height="6"/>']
    start = 0.0
    for index, share in enumerate(shares):
        width = max(0.0, min(100.0 - start, share * 100))
        if width <= 0:
            continue
        parts.append(f'<rect class="bar-seg seg-{index % 5}" x="{start:.4g}" width="{width:.4g}" height="6"/>')
        start += width
    parts.append("</svg>")
    return Markup("".join(parts))
