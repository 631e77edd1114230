"""The registry: one description per analysis, read by the CLI, the JSON API, the web app and the map.

>>> [a.name for a in REGISTRY][:4]
['map', 'transitions', 'paths', 'variants']
>>> get("funnel").validate({"steps": "a,b"}).window
'14d'
>>> get("funnels")
Traceback (most recent call last):
...
journeymap.errors.OptionError: no analysis 'funnels' (did you mean funnel?)
"""

from __future__ import annotations


from journeymap.analyses.accounts import CLV, HEALTH, REVENUE, RISK
from journeymap.analyses.base import Analysis, Option, Params
from journeymap.analyses.conformance import CONFORMANCE
from journeymap.analyses.experiment import EXPERIMENT
from journeymap.analyses.cohorts import LIFECYCLE, RETENTION, STICKINESS
from journeymap.analyses.funnel import FUNNEL
from journeymap.analyses.insights import FRICTION, MOMENTS, SURVEYS, VOICE
from journeymap.analyses.map import MAP
from journeymap.analyses.paths import PATHS, TRANSITIONS, VARIANTS
from journeymap.errors import OptionError, closest

__all__ = ["REGISTRY", "Analysis", "Option", "Params", "get"]

REGISTRY: tuple[Analysis, ...] = (
    MAP, TRANSITIONS, PATHS, VARIANTS, FUNNEL, RETENTION, LIFECYCLE, STICKINESS, SURVEYS, REVENUE, MOMENTS, RISK,
    HEALTH, CLV, VOICE, FRICTION, CONFORMANCE, EXPERIMENT,
)
_BY_NAME = {a.name: a for a in REGISTRY}


def get(name: str) -> Analysis:
    """The analysis called `name`; OptionError with the closest names when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        close = closest(name, _BY_NAME, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f" (analyses: {', '.join(_BY_NAME)})"
        raise OptionError(f"no analysis {name!r}{hint}") from None
