"""The paths page: the paths analysis from the page's form, drawn as a Sankey by depth."""

from __future__ import annotations

from journeymap.server.views.base import COLORS, Ctx, Page, analysis_page


def paths_data(ctx: Ctx) -> dict:
    return analysis_page(ctx, "paths")


def paths_charts(data: dict) -> list[dict]:
    """A Sankey with each node placed by its depth (x) and in its column by count, "other" and "end" last, so a
    path that ends early ends in its own column instead of being pushed to the right edge."""
    r = data["result"]
    depths = sorted({n["depth"] for n in r["nodes"]})
    last = max(depths, default=0) or 1
    order = sorted(range(len(r["nodes"])), key=lambda i: (r["nodes"][i]["depth"], r["nodes"][i]["label"] in ("other", "end"),
                                                         r["nodes"][i]["label"] == "end", -r["nodes"][i]["count"]))
    index = {(r["nodes"][i]["depth"], r["nodes"][i]["label"]): k for k, i in enumerate(order)}
    totals: dict[int, float] = {}
    for n in r["nodes"]:
        totals[n["depth"]] = totals.get(n["depth"], 0) + n["count"]
    labels, colors, xs, ys, seen = [], [], [], [], {}
    for i in order:
        n = r["nodes"][i]
        before = seen.get(n["depth"], 0)
        seen[n["depth"]] = before + n["count"]
        labels.append(f"{n['label']} ({n['count']:,})")
        colors.append(COLORS["muted"] if n["label"] == "other" else "#d0d6df" if n["label"] == "end" else COLORS["accent2"])
        xs.append(round(0.001 + 0.998 * n["depth"] / last, 4))
        ys.append(round(0.02 + 0.96 * (before + n["count"] / 2) / (totals[n["depth"]] or 1), 4))
    src, dst, val, link_colors = [], [], [], []
    for link in r["links"]:
        a, b = index.get((link["depth"], link["from"])), index.get((link["depth"] + 1, link["to"]))
        if a is None or b is None:
            continue
        src.append(a)
        dst.append(b)
        val.append(link["count"])
        link_colors.append("rgba(154,164,178,0.35)" if "other" in (link["from"], link["to"]) else "rgba(62,104,173,0.25)")
    trace = {"type": "sankey", "arrangement": "snap",
             "node": {"label": labels, "color": colors, "x": xs, "y": ys, "pad": 14, "thickness": 16, "line": {"width": 0}},
             "link": {"source": src, "target": dst, "value": val, "color": link_colors}}
    return [{"id": "sankey", "data": [trace], "layout": {"height": 600, "margin": {"t": 20, "l": 10, "r": 10, "b": 20},
                                                          "font": {"size": 12}}}]


PAGES = (
    Page("paths", "/paths", "paths.html", paths_data, lambda d: "Paths", paths_charts),
)
