"""`transitions`, `paths` and `variants`: what units do step by step (docs/metrics/transitions.md, paths.md)."""

from __future__ import annotations

from typing import Literal

from journeymap.analyses.base import (MAX_INT, WARNINGS_HELP, Analysis, Field, Output, Params, RowsView, UnitField, unit_of,
                                      warnings_of)

Level = Literal["event", "stage", "touchpoint"]
LEVEL_HELP = "What a step is: event, stage or touchpoint."
COLLAPSE_HELP = "Treat A,A,B as A,B."
TOP_HELP = "Keep the N most common; the rest is one 'other' bucket."


def _definition(ws, level: str):
    """The journey definition the level needs: events need none; stages and touchpoints do."""
    return ws.definition if level != "event" or ws.definition_path.exists() else None


def labelled(ws, level: str, by: str | None):
    """The unit's steps at `level`."""
    from journeymap.engine.journey_paths import labelled_events

    definition = _definition(ws, level)  # a missing journeymap.yml is said before a missing event
    return labelled_events(ws.engine, definition, level, unit_of(ws, by))


class TransitionsParams(Params):
    level: Level = Field("event", description=LEVEL_HELP)
    by: Literal["person", "account"] | None = UnitField()
    collapse_repeats: bool = Field(False, description=COLLAPSE_HELP)


class TransitionsOutput(Output):
    edges: list[dict] = Field(description="Directly-follows edges: from, to, count, mean_seconds.")
    starts: dict = Field(description="Units whose journey starts at each step.")
    ends: dict = Field(description="Units whose journey (so far) ends at each step.")
    variants: int = Field(description="Distinct whole sequences.")


def _transitions(ws, p: TransitionsParams, progress=None) -> dict:
    from journeymap.engine.journey_paths import transitions_at

    definition = _definition(ws, p.level)  # as in labelled(): journeymap.yml is checked first
    return transitions_at(ws.engine, definition, p.level, unit_of(ws, p.by), p.collapse_repeats)


class PathsParams(Params):
    level: Level = Field("event", description=LEVEL_HELP)
    by: Literal["person", "account"] | None = UnitField()
    start: str | None = Field(None, description="Paths begin at each unit's first occurrence of this label.")
    end: str | None = Field(None, description="Paths stop at the first occurrence of this label (after --start).")
    before: str | None = Field(None, description="The steps leading up to each unit's first occurrence of this label.")
    depth: int | None = Field(5, ge=0, le=MAX_INT, description="Steps to show from the anchor (before it with --before).")
    top: int | None = Field(12, ge=0, le=MAX_INT, description="Keep the N most common paths; the rest is one 'other' bucket.")
    collapse_repeats: bool = Field(False, description=COLLAPSE_HELP)


class PathsOutput(Output):
    options: dict = Field(description="The options the paths were computed with.")
    units_total: int = Field(description="Units with any step.")
    units: int = Field(description="Units in view (that reach the anchor).")
    reached: list[dict] = Field(description="Units still on a path at each depth: depth, units.")
    paths: list[dict] = Field(description="Whole paths from the anchor: path, count, share.")
    nodes: list[dict] = Field(description="Sankey nodes: depth, label, count, share.")
    links: list[dict] = Field(description="Sankey links: depth, from, to, count.")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _paths(ws, p: PathsParams, progress=None) -> dict:
    from journeymap.engine.paths import paths_result

    t = labelled(ws, p.level, p.by)
    result = paths_result(t, start=p.start, end=p.end, before=p.before, depth=p.depth, top=p.top,
                          collapse_repeats=p.collapse_repeats)
    names = {k: [v] for k, v in (("start", p.start), ("end", p.end), ("before", p.before)) if v}
    return {**result, "warnings": _label_warnings(ws, t, p.level, names)}


def _label_warnings(ws, t, level: str, names: dict[str, list[str]]) -> list[dict]:
    """Labels given that never occur at `level` (event names, stage or touchpoint ids), with the closest that do."""
    from journeymap.engine.checks import name_findings

    if not names:
        return []
    return warnings_of(name_findings(ws.engine, names, labels=t, what=level))


class VariantsParams(Params):
    level: Level = Field("event", description=LEVEL_HELP)
    by: Literal["person", "account"] | None = UnitField()
    converted: str | None = Field(None, description="A unit converted when its sequence contains this label.")
    top: int | None = Field(None, ge=0, le=MAX_INT, description=TOP_HELP)
    collapse_repeats: bool = Field(False, description=COLLAPSE_HELP)


class VariantsOutput(Output):
    units: int = Field(description="Units with any step.")
    distinct: int = Field(description="Distinct sequences.")
    converted_label: str | None = Field(None, description="The --converted label.")
    variants: list[dict] = Field(description="Sequences: path, count, share, median_seconds (and converted, dropped).")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def _variants(ws, p: VariantsParams, progress=None) -> dict:
    from journeymap.engine.variants import variants_result

    t = labelled(ws, p.level, p.by)
    result = variants_result(t, converted=p.converted, top=p.top, collapse_repeats=p.collapse_repeats)
    return {**result, "warnings": _label_warnings(ws, t, p.level, {"converted": [p.converted]} if p.converted else {})}


TRANSITIONS = Analysis("transitions", "Consecutive steps per unit (directly-follows edges), with starts, ends and the "
                       "number of variants.", TransitionsParams, _transitions, TransitionsOutput,
                       "docs/metrics/transitions.md", needs_definition=False, view=RowsView)
PATHS = Analysis("paths", "Paths step by step from an anchor: Sankey-ready nodes and links, with 'end' and 'other' "
                 "made explicit.", PathsParams, _paths, PathsOutput, "docs/metrics/paths.md", needs_definition=False)
VARIANTS = Analysis("variants", "Whole sequences (variants) with counts, share, median duration and, with --converted, "
                    "converted vs dropped.", VariantsParams, _variants, VariantsOutput, "docs/metrics/paths.md",
                    needs_definition=False)
