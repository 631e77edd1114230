"""Retention (a heatmap of cohorts by period) and lifecycle (new, returning, resurrecting and dormant
units per interval, with the quick ratio)."""

from __future__ import annotations

from journeymap.errors import NotEnoughData
from journeymap.server.views.base import COLORS, Ctx, Page, _entry_events, _event_names, analysis_page


def retention_data(ctx: Ctx) -> dict:
    names = _event_names(ctx)
    if not names:
        raise NotEnoughData("no events yet: retention needs a start and a return event", add="events")
    entry = _entry_events(ctx)
    data = analysis_page(ctx, "retention", {"start": entry[min(2, len(entry) - 1)] if entry else names[0],
                                            "return": names[0]})
    result, rolling = data["result"], data["options"]["rolling"]
    width = max((len(c["values"]) for c in result["cohorts"]), default=0)
    heads = [f"{a}-{b}d" if isinstance(a, int) else f"{a}d" for a, b in ((x if isinstance(x, list | tuple) and len(x) == 2
                                                                          else (x, None)) for x in result["brackets"])]
    return {**data, "periods": heads or [f"{'R' if rolling else 'P'}{k}" for k in range(width)]}


def retention_charts(data: dict) -> list[dict]:
    cohorts = data["result"]["cohorts"]
    if not cohorts:
        return []
    heads = data["periods"]
    z = [[r for r in c["rates"]] + [None] * (len(heads) - len(c["rates"])) for c in cohorts]
    text = [[f"{100 * r:.0f}%<br>{v:,}" for v, r in zip(c["values"], c["rates"], strict=True)] + [""] * (len(heads) - len(c["rates"]))
            for c in cohorts]
    y = [f"{c['start']} (n={c['size']:,})" for c in cohorts]
    trace = {"type": "heatmap", "x": heads, "y": y, "z": z, "text": text, "texttemplate": "%{text}", "zmin": 0, "zmax": 1,
             "colorscale": [[0, "#f4f6f9"], [0.25, "#c7d5ec"], [1, "#1f3a68"]], "hoverongaps": False,
             "colorbar": {"title": "retained", "tickformat": ".0%"},
             "hovertemplate": "%{y}, %{x}: %{z:.1%}<extra></extra>", "textfont": {"size": 10}}
    height = max(320, 34 * len(cohorts) + 120)
    layout = {"height": height, "margin": {"t": 30, "l": 170, "r": 20, "b": 40}, "xaxis": {"side": "top"},
              "yaxis": {"autorange": "reversed", "type": "category"}}
    return [{"id": "retention-heatmap", "data": [trace], "layout": layout}]


def lifecycle_data(ctx: Ctx) -> dict:
    return analysis_page(ctx, "lifecycle")


def lifecycle_charts(data: dict) -> list[dict]:
    rows = data["result"]["intervals"]
    x = [r["start"] for r in rows]
    kinds = (("new", COLORS["accent2"]), ("returning", COLORS["positive"]), ("resurrecting", COLORS["teal"]),
             ("dormant", COLORS["negative"]))
    traces = [{"type": "bar", "name": k, "x": x, "y": [r[k] for r in rows], "marker": {"color": c}} for k, c in kinds]
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "quick ratio", "x": x, "yaxis": "y2",
                   "y": [r["quick_ratio"] for r in rows], "line": {"color": COLORS["warning"], "width": 2}})
    layout = {"barmode": "relative", "height": 460, "margin": {"t": 30, "l": 60, "r": 60, "b": 50},
              "yaxis": {"title": "units"}, "legend": {"orientation": "h", "y": 1.1},
              "yaxis2": {"title": "quick ratio", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
                         "tickformat": ".1f"}}
    return [{"id": "lifecycle-chart", "data": traces, "layout": layout}]


PAGES = (
    Page("retention", "/retention", "retention.html", retention_data, lambda d: "Retention", retention_charts),
    Page("lifecycle", "/lifecycle", "lifecycle.html", lifecycle_data, lambda d: "Lifecycle", lifecycle_charts),
)
