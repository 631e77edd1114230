"""Inline SVG drawn on the server: the emotion curve and the small bars.

The SVG carries classes, not colours; the page's stylesheet paints it, so the map prints the same way
it shows. No `xmlns` is written: inline SVG in HTML does not need one, and the page holds no URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from journeymap.report.format import signed

__all__ = ["EmotionPoint", "bar", "emotion_curve", "emotion_tone", "stacked_bar", "target_curves"]

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


TARGET_CURVES_HEIGHT = 190
_TOP, _BOTTOM = 34, 30  # room for the legend above, the stage names below


def target_curves(name: str, labels: Sequence[str], actual: Sequence[float | None], target: Sequence[float | None],
                  low: float, high: float, shown: Callable[[float], str]) -> Markup:
    """Two curves over the same stages: `actual` solid (`curve-actual`), `target` dashed (`curve-target`), each
    point labelled with `shown(value)`, a legend naming both, the stage names under the columns. Values are
    placed between `low` and `high` (clamped); a stage without a value has no point, and the points on either
    side of it are bridged by a dotted line (`curve-gap`), so a gap is never drawn as a value.

    >>> svg = target_curves("Emotion", ["A", "B"], [0.1, 0.3], [0.5, None], -1, 1, str)
    >>> svg.count('class="curve-actual"'), svg.count('class="curve-target"'), "Target: A 0.5, B none" in svg
    (1, 0, True)
    """
    columns = max(len(labels), 1)
    height = TARGET_CURVES_HEIGHT
    span = (high - low) or 1.0

    def y(value: float) -> float:
        clamped = max(low, min(high, value))
        return round(_TOP + (high - clamped) / span * (height - _TOP - _BOTTOM), 2)

    def said(values: Sequence[float | None]) -> str:
        return ", ".join(f"{lab} {shown(v) if v is not None else 'none'}" for lab, v in zip(labels, values, strict=True))

    parts = [f'<svg class="target-curves" width="100%" height="{height}" role="img" '
             f'aria-label="{escape(name)}. Actual: {escape(said(actual))}. Target: {escape(said(target))}.">',
             '<line class="legend-actual" x1="8" y1="12" x2="34" y2="12"/>'
             '<text class="legend" x="40" y="16">actual</text>',
             '<line class="legend-target" x1="96" y1="12" x2="122" y2="12" stroke-dasharray="6 4"/>'
             '<text class="legend" x="128" y="16">target</text>']
    if low < 0 < high:
        parts.append(f'<line class="baseline" x1="0" y1="{y(0)}" x2="100%" y2="{y(0)}"/>')
    else:
        parts.append(f'<line class="baseline" x1="0" y1="{y(low)}" x2="100%" y2="{y(low)}"/>')
    for index in range(1, columns):
        parts.append(f'<line class="col-edge" x1="{index * 100 / columns:.4g}%" y1="{_TOP - 8}" '
                     f'x2="{index * 100 / columns:.4g}%" y2="{height - _BOTTOM}"/>')
    for series, values, dash in (("actual", actual, ""), ("target", target, ' stroke-dasharray="6 4"')):
        known = [(i, v) for i, v in enumerate(values) if v is not None]
        for (a, va), (b, vb) in zip(known, known[1:], strict=False):
            kind = f"curve-{series}" if b == a + 1 else "curve-gap"
            parts.append(f'<line class="{kind}" x1="{_x(a, columns)}" y1="{y(va)}" x2="{_x(b, columns)}" '
                         f'y2="{y(vb)}"{dash if b == a + 1 else ""}/>')
        for i, v in known:
            parts.append(f'<circle class="point point--{series}" cx="{_x(i, columns)}" cy="{y(v)}" r="4"/>')
            other = (target if series == "actual" else actual)[i]
            above = other is None or v > other or (v == other and series == "target")  # the higher label goes on top
            label_y = y(v) - 8 if above else y(v) + 16
            parts.append(f'<text class="point-label point-label--{series}" x="{_x(i, columns)}" y="{label_y}" '
                         f'text-anchor="middle">{escape(shown(v))}</text>')
    for i, lab in enumerate(labels):
        parts.append(f'<text class="axis stage-name" x="{_x(i, columns)}" y="{height - 8}" '
                     f'text-anchor="middle">{escape(lab)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
