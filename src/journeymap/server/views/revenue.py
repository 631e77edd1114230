"""Churn and revenue: the MRR bridge by month, GRR and NRR, and MRR lost by churn reason."""

from __future__ import annotations

from journeymap.server.views.base import COLORS, Ctx, Page


def revenue_data(ctx: Ctx) -> dict:
    result = ctx.run("revenue")
    last = next((m for m in reversed(result["months"]) if m.get("grr") is not None), None)
    return {**result, "latest": last}


def revenue_charts(data: dict) -> list[dict]:
    months = data["months"]
    if not months:
        return []
    x = [m["month"][:7] for m in months]
    parts = (("new", 1, COLORS["accent2"]), ("reactivation", 1, COLORS["teal"]), ("expansion", 1, COLORS["positive"]),
             ("contraction", -1, COLORS["warning"]), ("churned", -1, COLORS["negative"]))
    bridge = [{"type": "bar", "name": k, "x": x, "y": [sign * (m[k] or 0) for m in months], "marker": {"color": c}}
              for k, sign, c in parts]
    bridge.append({"type": "scatter", "mode": "lines+markers", "name": "MRR at month end", "x": x, "yaxis": "y2",
                   "y": [m["end"] for m in months], "line": {"color": COLORS["accent"], "width": 2}})
    ratios = [{"type": "scatter", "mode": "lines+markers", "name": k.upper(), "x": x, "y": [m[k] for m in months],
               "line": {"color": c}} for k, c in (("grr", COLORS["warning"]), ("nrr", COLORS["positive"]))]
    reasons = [r for r in data["churn"].get("by_reason", [])]
    return [
        {"id": "mrr-bridge", "data": bridge, "layout": {
            "barmode": "relative", "height": 440, "margin": {"t": 30, "l": 70, "r": 70, "b": 50},
            "legend": {"orientation": "h", "y": 1.12}, "yaxis": {"title": "MRR movement"},
            "yaxis2": {"title": "MRR", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False}}},
        {"id": "retention-ratios", "data": ratios, "layout": {
            "height": 300, "margin": {"t": 20, "l": 60, "r": 20, "b": 40}, "yaxis": {"tickformat": ".0%"},
            "legend": {"orientation": "h", "y": 1.15}}},
        {"id": "churn-reasons", "data": [{"type": "bar", "orientation": "h", "y": [str(r["value"] or "(none given)") for r in reasons],
                                          "x": [r["mrr_lost"] for r in reasons], "marker": {"color": COLORS["negative"]},
                                          "hovertemplate": "%{y}: %{x:,.0f} MRR lost<extra></extra>"}],
         "layout": {"height": max(220, 34 * len(reasons) + 80), "margin": {"t": 20, "l": 140, "r": 20, "b": 40},
                    "xaxis": {"title": "MRR lost"}, "yaxis": {"autorange": "reversed"}}},
    ]


PAGES = (
    Page("revenue", "/revenue", "revenue.html", revenue_data, lambda d: "Churn and revenue", revenue_charts),
)
