"""The registry as a table: what `journeymap analyses` prints, /api/v1/analyses answers and the README shows.

>>> print(markdown().splitlines()[2])
| `map` | The journey map: stages, touchpoints, metrics against targets, and the insights placed on it. | `--by` | `--by`, `--from`, `--to`, `--insights`, `--min-answers` | [docs/map-json.md](docs/map-json.md) |
"""

from __future__ import annotations

from journeymap.analyses import REGISTRY
from journeymap.analyses.base import options

__all__ = ["catalog", "markdown"]


def catalog(surface: str = "api") -> list[dict]:
    """Every analysis with its options (name, flag, kind, default, bounds, help) as `surface` offers them."""
    return [{"name": a.name, "summary": a.summary, "doc": a.doc, "unit": a.unit, "slow": a.slow,
             "options": [o.as_dict() for o in options(a.params, surface)],
             "view_options": [o.as_dict() for o in options(a.view)] if a.view and surface == "cli" else [],
             "example": a.example} for a in REGISTRY]


def markdown() -> str:
    """The README's table of analyses: name, what it answers, its unit of analysis, its options, its definition."""
    lines = ["| analysis | what it answers | unit | options | definition |", "|---|---|---|---|---|"]
    for a in REGISTRY:
        unit = ("`--by`" if a.unit == "by" else "the experiment's `unit:`" if a.unit == "experiment"
                else f"{a.unit} (fixed)")
        opts = ", ".join(f"`{o.name.upper() if o.positional else o.flag}`" for o in a.options) or "none"
        lines.append(f"| `{a.name}` | {a.summary} | {unit} | {opts} | [{a.doc}]({a.doc}) |")
    return "\n".join(lines)
