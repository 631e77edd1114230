"""Experiments: the list (each at the stage where exposure happens, with its primary metric, lift, verdict and
SRM flag: the map's entries) and one experiment (every goal metric and guardrail per variant with its CI, the
lift, the sample-ratio-mismatch test and CUPED: the `experiment` analysis). Semantics:
docs/metrics/experiments.md; the list's entries: docs/map-json.md, "Experiments on the map"."""

from __future__ import annotations

from fastapi import HTTPException

from journeymap.errors import JourneymapError
from journeymap.server.views.base import Ctx, Page


def _entries(ctx: Ctx) -> dict:
    """Every declared experiment as the map places it: one computation per experiment, kept in the server's cache
    until new data or a new definition."""
    def compute() -> dict:
        from journeymap.insights.experiments import map_experiments

        entries, note = map_experiments(ctx.ws.engine, ctx.ws.definition)
        return {"experiments": entries, "note": note}

    return ctx.cached("experiments", compute=compute)


def list_data(ctx: Ctx) -> dict:
    return _entries(ctx)


def detail_data(ctx: Ctx, experiment_id: str) -> dict:
    from journeymap.insights.experiments import find_experiment

    try:
        find_experiment(ctx.ws.definition, experiment_id)
    except JourneymapError as exc:  # no such experiment (with a did-you-mean), or none declared
        raise HTTPException(404, str(exc)) from exc
    # the registry's analysis through the API's cache: the page and /api/v1/experiment?name= give one answer
    result = ctx.run("experiment", name=experiment_id)
    entry = next((e for e in _entries(ctx)["experiments"] if e["id"] == experiment_id), None)
    return {"experiment": entry, "result": result,
            "experiments": [{"id": e.id, "name": e.name} for e in ctx.ws.definition.experiments]}


def _title(d: dict) -> str:
    e = d["result"]["experiment"]
    return f"Experiment: {e.get('name') or e['id']}"


PAGES = (
    Page("experiments", "/experiments", "experiments.html", list_data, lambda d: "Experiments"),
    Page("experiment", "/experiments/{experiment_id}", "experiment.html", detail_data, _title),
)
