"""Experiments on the journey map (docs/map-json.md, "Experiments on the map"): each declared experiment at the
stage where its exposure happens, with its units per variant, its primary metric (the first goal metric) per
variant and its lift against the control with 95% intervals, a plain verdict and the sample-ratio-mismatch flag.

The numbers are `experiment_result`'s, item for item (what `journeymap experiment NAME --json` prints), computed
once per experiment when the map is built; the exposure stage comes from the same assignments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from journeymap.insights.experiments.result import NO_EXPERIMENTS, experiment_result
from journeymap.insights.map.jsonsafe import finite

VERDICTS = ("winner", "loser", "no detectable difference", "too early")
EARLY_SHARE = 0.5
"""Too early: more than this share of the analysed units has not yet been observed for the primary metric's
whole window (they joined less than a window before the latest event)."""


def _pct(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x * 100:+.0f}%"


def _p(p: float | None) -> str:
    return "–" if p is None or not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.2g}")


def comparison_verdict(c: dict | None, better: str, incomplete: int, units: int) -> str:
    """One treatment against the control on the primary metric:

    - "too early": no comparison could be made (a variant without units, no p-value), or more than EARLY_SHARE
      of the units have not been observed for the whole window yet;
    - "winner" / "loser": significant (p < 0.05) in the `better` direction / the other way;
    - "no detectable difference": otherwise.

    >>> comparison_verdict({"pvalue": 0.001, "significant": True, "difference": -0.4}, "higher", 0, 100)
    'loser'
    >>> comparison_verdict({"pvalue": 0.3, "significant": False, "difference": 0.1}, "higher", 60, 100)
    'too early'
    """
    if c is None or c.get("pvalue") is None or not math.isfinite(c["pvalue"]):
        return "too early"
    if units and incomplete / units > EARLY_SHARE:
        return "too early"
    if not c["significant"]:
        return "no detectable difference"
    up = c["difference"] > 0
    return "winner" if up == (better == "higher") else "loser"


def _overall(verdicts: dict[str, str]) -> str:
    """The experiment's verdict over its treatment variants: a winner if any beats the control; else too early if
    any comparison is; a loser when every one is worse; else no detectable difference."""
    values = list(verdicts.values())
    if not values:
        return "too early"
    if "winner" in values:
        return "winner"
    if "too early" in values:
        return "too early"
    if all(v == "loser" for v in values):
        return "loser"
    return "no detectable difference"


def _verdict_text(verdict: str, primary: dict, control: str, unit: str, units: int, srm: dict) -> str:
    label = primary.get("label") or primary["id"]
    comps = {c["variant"]: c for c in primary["comparisons"]}
    pick = [v for v, x in primary["verdicts"].items() if x == verdict]
    if verdict == "winner":
        best = max(pick, key=lambda v: comps[v]["lift"] if comps[v]["lift"] is not None else -math.inf)
        c = comps[best]
        text = (f"{best} beats {control} on {label}: lift {_pct(c['lift'])} (95% CI {_pct(c['lift_ci'][0])} to "
                f"{_pct(c['lift_ci'][1])}), p {_p(c['pvalue'])}")
    elif verdict == "loser":
        c = comps[pick[0]]
        text = (f"{'every variant does' if len(pick) > 1 else pick[0] + ' does'} worse than {control} on {label}: "
                f"lift {_pct(c['lift'])} (95% CI {_pct(c['lift_ci'][0])} to {_pct(c['lift_ci'][1])}), "
                f"p {_p(c['pvalue'])}")
    elif verdict == "too early":
        text = (f"too early: {primary['incomplete']:,} of {units:,} {unit}s have not been observed for the whole "
                f"{primary['window']} of {label} yet" if units and primary["incomplete"] / units > EARLY_SHARE else
                f"too early: {label} cannot be compared yet (a variant has too few {unit}s)")
    else:
        c = next(iter(comps.values()), None)
        text = (f"no detectable difference on {label}" + (
            f": lift {_pct(c['lift'])} (95% CI {_pct(c['lift_ci'][0])} to {_pct(c['lift_ci'][1])}), p {_p(c['pvalue'])}"
            if c and len(comps) == 1 else ""))
    if srm.get("mismatch"):
        text = (f"sample ratio mismatch (p {_p(srm['pvalue'])}): the split is not the one intended, so do not trust "
                f"this result until you find what skews the exposures; {text}")
    return text


def _stage(stages: dict, order: list[str]) -> tuple[str | None, float | None]:
    """The stage most analysed units were in at their first exposure (ties: the earlier stage), with its share of
    all analysed units (those with no stage yet included)."""
    total = sum(stages.values())
    placed = [(n, s) for s, n in stages.items() if s is not None]
    if not placed or not total:
        return None, None
    rank = {s: i for i, s in enumerate(order)}
    n, stage = min(placed, key=lambda x: (-x[0], rank.get(x[1], len(rank))))
    return stage, n / total


def summary(result: dict, stage_order: list[str]) -> dict:
    """The map's entry for one experiment from its `experiment_result(..., exposure_stages=True)`."""
    e = result["experiment"]
    primary = next(m for m in result["metrics"] if m["role"] == "goal")
    units = sum(v["units"] for v in result["variants"])  # analysed units (a time to value's means count fewer)
    incomplete = primary.get("incomplete") or 0
    comps = {c["variant"]: c for c in primary["comparisons"]}
    treatments = [v["variant"] for v in result["variants"] if v["variant"] != e["control"]]
    verdicts = {v: comparison_verdict(comps.get(v), primary["better"], incomplete, units) for v in treatments}
    stage, share = _stage(result.get("exposure_stages") or {}, stage_order)
    entry_primary = {
        "id": primary["id"], "label": primary["label"], "kind": primary["kind"], "better": primary["better"],
        "window": primary["window"], "incomplete": incomplete, "variants": primary["variants"],
        "comparisons": [{k: c[k] for k in ("variant", "difference", "difference_ci", "lift", "lift_ci", "pvalue",
                                           "significant")} | {"verdict": verdicts[c["variant"]]}
                        for c in primary["comparisons"]],
        "verdicts": verdicts,
    }
    verdict = _overall(verdicts)
    srm = result["srm"]
    out = {
        "id": e["id"], "name": e["name"], "unit": e["unit"], "control": e["control"],
        "stage": stage, "stage_share": share, "placed_by": "most_units" if stage else None,
        "variants": result["variants"],
        "primary": entry_primary,
        "verdict": verdict,
        "verdict_text": _verdict_text(verdict, entry_primary, e["control"], e["unit"], units, srm),
        "srm": {"mismatch": srm["mismatch"], "pvalue": srm["pvalue"], "chi2": srm["chi2"],
                "threshold": srm["threshold"]},
        "breached": [m["id"] for m in result["metrics"] if m["role"] == "guardrail" and m.get("breached")],
        "metrics": len(result["metrics"]),
        "note": None,
    }
    del out["primary"]["verdicts"]
    return out


def map_experiments(engine, definition, say: Callable[[str], None] | None = None) -> tuple[list[dict], str | None]:
    """(entries, note): one entry per declared experiment, in the definition's order; the note says what to add
    when there are none. An experiment that cannot be computed (no exposures yet) keeps its entry, with no
    numbers and a `note` saying why: it never fails the map."""
    from journeymap.errors import JourneymapError

    if not definition.experiments:
        return [], NO_EXPERIMENTS
    order = [s.id for s in definition.stages]
    out = []
    for exp in definition.experiments:
        if say:
            say(f"measuring experiment {exp.id}")
        try:
            out.append(finite(summary(experiment_result(engine, definition, exp.id, exposure_stages=True), order)))
        except JourneymapError as e:
            out.append({"id": exp.id, "name": exp.name, "unit": exp.unit or definition.analysis.level,
                        "control": exp.control, "stage": None, "stage_share": None, "placed_by": None,
                        "variants": [], "primary": None, "verdict": None, "verdict_text": None, "srm": None,
                        "breached": [], "metrics": len(exp.all_metrics), "note": str(e)})
    return out, None
