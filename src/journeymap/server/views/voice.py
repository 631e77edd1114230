"""Voice of the customer: sentiment and themes of what customers wrote, by stage and by kind."""

from __future__ import annotations

from journeymap.server.views.base import COLORS, Ctx, Page


def voice_data(ctx: Ctx) -> dict:
    result = ctx.run("voice")
    names = {s.id: s.name for s in ctx.ws.definition.stages}
    order = {s.id: i for i, s in enumerate(ctx.ws.definition.stages)}
    stages = sorted(result["groups"].get("stage", []), key=lambda g: order.get(g["value"], 99))
    return {"level": result.get("level"), "n_texts": result["n_texts"], "units": result.get("units"),
            "sentiment": result["sentiment"], "themes": result["themes"], "n_unthemed": result.get("n_unthemed"),
            "by_stage": [{**g, "name": names.get(g["value"], g["value"])} for g in stages],
            "by_kind": result["groups"].get("kind", [])}


def voice_charts(data: dict) -> list[dict]:
    themes = data["themes"]
    if not themes:
        return []
    trace = {"type": "bar", "orientation": "h", "y": [t["label"] for t in themes], "x": [t["share"] for t in themes],
             "marker": {"color": [t["mean_compound"] for t in themes], "colorscale": [[0, COLORS["negative"]], [0.5, "#d9dde3"],
                                                                                      [1, COLORS["positive"]]],
                        "cmin": -0.6, "cmax": 0.6, "colorbar": {"title": "sentiment"}},
             "hovertemplate": "%{y}: %{x:.0%} of texts<extra></extra>"}
    return [{"id": "themes-chart", "data": [trace], "layout": {
        "height": max(260, 30 * len(themes) + 80), "margin": {"t": 20, "l": 180, "r": 20, "b": 40},
        "xaxis": {"tickformat": ".0%", "title": "share of texts"}, "yaxis": {"autorange": "reversed"}}}]


PAGES = (
    Page("voice", "/voice", "voice.html", voice_data, lambda d: "Voice of the customer", voice_charts),
)
