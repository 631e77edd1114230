"""NPS, CSAT and CES grouped by stage, touchpoint, persona or period, with intervals and a trend.

Stage means the stage the unit was in just before answering (docs/metrics/surveys.md); period is the
calendar interval of the answer (UTC). For periods, each row also carries the change against the
period before, per kind, so a trend reads directly.
"""

from __future__ import annotations

from journeymap.errors import NotEnoughData, OptionError
from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.metrics import KINDS, surveys_by
from journeymap.journey.definition import JourneyDefinition

GROUPS = {"stage": "stage_before", "touchpoint": "touchpoint", "persona": "persona", "period": "_period"}
INTERVALS = ("day", "week", "month", "quarter", "year")


def survey_report(
    engine: Engine, definition: JourneyDefinition, level: str, group: str = "stage", interval: str = "month"
) -> dict:
    if group not in GROUPS:
        raise OptionError(f"--group must be one of {', '.join(GROUPS)}")
    if interval not in INTERVALS:
        raise OptionError(f"--interval must be one of {', '.join(INTERVALS)}")
    if not definition.surveys:
        raise NotEnoughData("journeymap.yml defines no surveys", add="them under `surveys:` (see docs/journey-definition.md)")
    with engine.scope():
        ac = journey_tables(engine, definition, level)[2]
        if group == "period":
            unit = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}[interval]
            ac = ac.mutate(_period=ac.ts.truncate(unit).cast("date").cast("string"))
        scores = surveys_by(engine, ac, definition, GROUPS[group])
    order = _order(definition, group, scores)
    rows = [{"value": value, **scores[value]} for value in order]
    if group == "period":
        for prev, row in zip(rows, rows[1:], strict=False):
            row["change"] = {
                k: row[k]["score"] - prev[k]["score"] for k in KINDS if k in row and k in prev
            }
    return {"group": group, "interval": interval if group == "period" else None, "rows": rows}


def _order(definition: JourneyDefinition, group: str, scores: dict) -> list[str]:
    if group == "stage":
        known = [s.id for s in definition.stages]
    elif group == "touchpoint":
        known = [t.id for t in definition.touchpoints]
    elif group == "persona":
        known = [p.id for p in definition.personas]
    else:
        known = []
    return [k for k in known if k in scores] + sorted(k for k in scores if k not in known)
