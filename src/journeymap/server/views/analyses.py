"""Every analysis of the registry in the web app: `/app/analyses` lists them, `/app/analyses/NAME` runs one
from a form generated from its options (the CLI's flags, the API's query parameters) and shows its result
as the JSON the CLI prints, with the twin `/app/analyses/NAME.json`. The dedicated pages (map, funnel,
paths, ...) draw charts; these pages make sure no analysis is missing from the app."""

from __future__ import annotations

from fastapi import HTTPException

from journeymap.analyses import REGISTRY, get
from journeymap.analyses.base import to_json
from journeymap.analyses.catalog import catalog
from journeymap.errors import OptionError
from journeymap.server.views.base import Ctx, Page, analysis_page

SHOWN_CHARACTERS = 60_000  # of the pretty-printed result on the page; the JSON twin has all of it


def catalog_data(ctx: Ctx) -> dict:
    return {"analyses": catalog("web")}


def analysis_data(ctx: Ctx, name: str) -> dict:
    try:
        analysis = get(name)
    except OptionError as exc:
        raise HTTPException(404, str(exc)) from None
    data = analysis_page(ctx, name, analysis.example)
    text = to_json(data["result"], indent=2)
    return {**data, "name": name, "summary": analysis.summary, "doc": analysis.doc, "unit": analysis.unit,
            "pretty": text[:SHOWN_CHARACTERS], "truncated": len(text) > SHOWN_CHARACTERS,
            "names": [a.name for a in REGISTRY]}


PAGES = (
    Page("analyses", "/analyses", "analyses.html", catalog_data, lambda d: "All analyses", needs_events=False),
    Page("analysis", "/analyses/{name}", "analysis.html", analysis_data, lambda d: f"Analysis: {d['name']}"),
)
