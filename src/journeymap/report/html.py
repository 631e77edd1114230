"""The journey map as one self-contained HTML file: styles, script and charts inline, no network."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from journeymap.report import format as fmt
from journeymap.report.context import build_context, money
from journeymap.report.svg import bar, emotion_tone, stacked_bar

__all__ = ["render_map_html", "template_environment", "write_map_html"]


@cache
def template_environment() -> Environment:
    """The Jinja environment of the map's templates, with the filters and globals they use.

    One shared, cached instance: the web app builds on it with `.overlay(loader=...)`, never by changing it."""
    env = Environment(
        loader=PackageLoader("journeymap.report", "templates"),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=fmt.count,
        percent=fmt.percent,
        duration=fmt.duration,
        signed=fmt.signed,
        score=fmt.score,
        humanize=fmt.humanize,
        date_label=fmt.date_label,
        datetime_label=fmt.datetime_label,
        tone=emotion_tone,
        money=money,
    )
    env.globals.update(bar=bar, stacked_bar=stacked_bar, unit_noun=fmt.unit_noun, DASH=fmt.DASH)
    return env


def render_map_html(model: dict[str, Any]) -> str:
    """The map model (docs/map-json.md) as a complete HTML document.

    Every persona's view is rendered on the server and all but the first hidden; a few lines of
    inline script switch between them. The model itself rides along as JSON in
    `<script type="application/json" id="journeymap-model">` for anyone who wants to script the page.

    >>> html = render_map_html({"title": "Demo", "stages": [{"id": "trial", "name": "Trial"}],
    ...                         "personas": [], "views": {"all": {"units": 10, "stages": {}}}})
    >>> html.startswith("<!doctype html>"), "Trial" in html, "http" in html
    (True, True, False)
    """
    return template_environment().get_template("map.html.j2").render(map=build_context(model))


def write_map_html(model: dict[str, Any], path: str | Path) -> Path:
    """Render the map and write it to `path` (UTF-8); returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_map_html(model), encoding="utf-8")
    return target
