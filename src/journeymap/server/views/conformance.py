"""Conformance: real journeys held to the designed one (docs/metrics/conformance.md). The rate with its 95%
interval overall, per persona and per period; the deviation types with their frequency and impact; the most
common non-conforming variants and where they leave the design; a per-unit lookup. The options are the
registry's (analyses/conformance.py); without a `future_state:` the page says what to add."""

from __future__ import annotations

from journeymap.server.views.base import COLORS, Ctx, Page, _event_names, analysis_page, form_fields

EXAMPLE = """future_state:
  steps:
    - {id: signup, event: trial_started}
    - {id: connect, touchpoint: integration_setup}
    - {id: first_dashboard, event: dashboard_shared, within: 3d}
  within: 30d"""
"""The short design the empty page shows: the keys are docs/metrics/conformance.md's."""

IMPACT = (("conversion", "rate"), ("churn", "rate"), ("time_to_value", "median"), ("mrr", "mean"))


def _needs_design(ctx: Ctx) -> bool:
    fs = ctx.ws.definition.future_state
    return fs is None or not (fs.steps or any(d.steps for d in fs.personas.values()))


def _impact_rows(result: dict) -> list[dict]:
    """Per deviation type: its frequency (deviations, units, share, allowed) and, per outcome, with against
    without it (value and 95% interval) and the difference, flattened for the table."""
    rows = []
    for d in result["deviations"]:
        imp = result["impact"].get(d["type"]) or {}
        row = {**d, "top_steps": d["by_step"][:3], "impact": {}}
        for key, kind in IMPACT:
            got = imp.get(key)
            if not got:
                continue
            value = {"rate": "rate", "median": "median_seconds", "mean": "mean"}[kind]
            row["impact"][key] = {
                "kind": kind,
                "with": got["with"].get(value), "with_ci": [got["with"].get("ci_low"), got["with"].get("ci_high")],
                "without": got["without"].get(value),
                "without_ci": [got["without"].get("ci_low"), got["without"].get("ci_high")],
                "difference": got.get("difference"), "difference_ci": got.get("difference_ci"),
            }
        rows.append(row)
    return rows


def conformance_data(ctx: Ctx) -> dict:
    if _needs_design(ctx):
        params = ctx.options("conformance")
        return {"options": params.model_dump(by_alias=True, mode="json"), "form": form_fields(ctx, "conformance", params),
                "events": _event_names(ctx), "result": None,
                "needs_design": {"message": "journeymap.yml has no `future_state:` design to hold journeys to",
                                 "add": "a `future_state:` section with the designed steps (docs/metrics/conformance.md)",
                                 "example": EXAMPLE}}
    data = analysis_page(ctx, "conformance")
    r = data["result"]
    o = data["options"]
    limit, offset = o.get("limit") or 0, o.get("offset") or 0
    pages = {"shown_from": offset + 1 if r["units_list"] else 0, "shown_to": offset + len(r["units_list"]),
             "total": r["units_total"],
             "previous": max(0, offset - limit) if limit and offset else None,
             "next": offset + limit if limit and offset + limit < r["units_total"] else None}
    return {**data, "needs_design": None, "deviation_rows": _impact_rows(r), "pages": pages}


def _rate_bars(name: str, labels: list[str], rows: list[dict], color: str) -> dict:
    return {"type": "bar", "name": name, "x": labels, "y": [r["rate"] for r in rows], "marker": {"color": color},
            "error_y": {"type": "data", "symmetric": False,
                        "array": [(r["ci_high"] - r["rate"]) if r["rate"] is not None and r["ci_high"] is not None
                                  else None for r in rows],
                        "arrayminus": [(r["rate"] - r["ci_low"]) if r["rate"] is not None and r["ci_low"] is not None
                                       else None for r in rows]},
            "customdata": [r["units"] for r in rows],
            "hovertemplate": "%{x}: %{y:.1%} of %{customdata:,} units<extra></extra>"}


def conformance_charts(data: dict) -> list[dict]:
    r = data.get("result")
    if not r:
        return []
    layout = {"height": 300, "margin": {"t": 30, "l": 60, "r": 20, "b": 60}, "showlegend": False,
              "yaxis": {"title": "conformance (95% CI)", "tickformat": ".0%", "rangemode": "tozero"}}
    overall = {"units": r["units"], "rate": r["rate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
    personas = [overall, *r["personas"]]
    charts = [{"id": "conformance-personas",
               "data": [_rate_bars("persona", ["all", *[p["persona"] for p in r["personas"]]], personas,
                                   COLORS["accent"])],
               "layout": {**layout, "title": {"text": "By persona", "font": {"size": 13}}}}]
    if r["over_time"]:
        charts.append({"id": "conformance-periods",
                       "data": [_rate_bars("period", [p["period"] for p in r["over_time"]], r["over_time"],
                                           COLORS["accent2"])],
                       "layout": {**layout, "title": {"text": f"By {r['interval']} of the journey's start",
                                                      "font": {"size": 13}}, "xaxis": {"type": "category"}}})
    return charts


PAGES = (Page("conformance", "/conformance", "conformance.html", conformance_data, lambda d: "Conformance",
              conformance_charts),)
