"""The funnel builder: the funnel analysis from the page's form, its steps prefilled with the stages'
entry events, drawn as bars annotated with each step's conversion from the first."""

from __future__ import annotations

from journeymap.server.views.base import COLORS, Ctx, Page, _entry_events, analysis_page


def funnel_data(ctx: Ctx) -> dict:
    entry = _entry_events(ctx)
    return analysis_page(ctx, "funnel", {"steps": ",".join(entry) if len(entry) > 1 else None})


def funnel_charts(data: dict) -> list[dict]:
    result = data.get("result")
    if not result:
        return []
    names = [s["name"] for s in result["steps"]]
    series = [(None, result["steps"])] if not result.get("groups") else [(str(g["value"]), g["steps"]) for g in result["groups"][:8]]
    traces = [{"type": "bar", "name": label or "all", "x": names, "y": [s["count"] for s in steps],
               "hovertemplate": "%{x}: %{y:,}<extra>" + (label or "all") + "</extra>"} for label, steps in series]
    top = max((s["count"] for _, steps in series for s in steps), default=0) or 1
    layout = {"barmode": "group", "yaxis": {"title": "units" if data["options"]["count"] == "uniques" else "attempts",
                                            "range": [0, top * 1.18]},
              "margin": {"t": 30, "l": 60, "r": 20, "b": 60}, "showlegend": len(traces) > 1, "height": 420}
    if len(traces) == 1:
        traces[0]["marker"] = {"color": COLORS["accent2"]}
        layout["annotations"] = [{"x": s["name"], "y": s["count"], "yanchor": "bottom", "showarrow": False, "yshift": 4,
                                  "text": f"<b>{s['count']:,}</b> · {_pct(s['conversion_from_first'])}", "font": {"size": 13}}
                                 for s in result["steps"]]
    return [{"id": "funnel-chart", "data": traces, "layout": layout}]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


PAGES = (
    Page("funnel", "/funnel", "funnel.html", funnel_data, lambda d: "Funnel builder", funnel_charts),
)
