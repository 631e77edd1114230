"""One experiment's result (docs/metrics/experiments.md): per variant the units and each metric with its 95%
confidence interval; per treatment variant the difference and relative lift against the control with their
intervals and p-values (tea-tasting: Welch's t on per-unit values, the delta method for ratios and for the
relative lift, CUPED with the same metric before exposure where it applies); a sample-ratio-mismatch test
(chi-square against the intended split).

`experiment_result` is what `journeymap experiment NAME --json` prints (the analysis returns it as it is) and
what the map summarises (insights.experiments.on_map); the per-unit tables are engine.experiments'.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Callable

from journeymap.errors import NotEnoughData, OptionError

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
NO_EXPERIMENTS = ("journeymap.yml declares no experiments: add an `experiments:` section (an exposure event, where "
                  "the variant is read, the control, the split and a goal metric; docs/metrics/experiments.md)")


def find_experiment(definition, name: str):
    """The experiment `name` of the definition; OptionError with a did-you-mean when there is none by that name,
    NotEnoughData when the definition declares no experiments at all."""
    experiments = definition.experiments
    if not experiments:
        raise NotEnoughData(f"journeymap.yml declares no experiments: add an `experiments:` section naming {name!r} "
                            "(docs/metrics/experiments.md)")
    ids = [e.id for e in experiments]
    if name not in ids:
        close = difflib.get_close_matches(name, ids, n=2)
        hint = f"did you mean {' or '.join(close)}?" if close else f"experiments: {', '.join(ids)}"
        raise OptionError(f"no experiment {name!r} in journeymap.yml ({hint})", option="name")
    return experiments[ids.index(name)]


def srm_test(observed: dict[str, int], expected_share: dict[str, float]) -> dict:
    """Chi-square goodness of fit of the units per variant against the intended shares.

    >>> r = srm_test({"classic": 1650, "checklist": 1350}, {"classic": 0.5, "checklist": 0.5})
    >>> round(r["chi2"], 1), r["df"], r["pvalue"] < 0.001
    (30.0, 1, True)
    """
    from scipy import stats

    names = list(expected_share)
    total = sum(observed.get(v, 0) for v in names)
    weights = sum(expected_share.values())
    obs = [observed.get(v, 0) for v in names]
    exp = [total * expected_share[v] / weights for v in names]
    if total == 0:
        return {"chi2": None, "df": len(names) - 1, "pvalue": None}
    chi2, p = stats.chisquare(obs, exp)
    return {"chi2": float(chi2), "df": len(names) - 1, "pvalue": float(p)}


def _mean_ci(mean: float, var: float, n: int) -> list[float | None]:
    from scipy import stats

    if n < 2 or var is None or not math.isfinite(var):
        return [None, None]
    half = stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * math.sqrt(var / n)
    return [mean - half, mean + half]


def _column(data, name: str):
    import numpy as np

    return np.asarray(data.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _per_variant(data, m, variants: list[str]) -> list[dict]:
    """Each variant's units and the metric's mean with its t interval (for a ratio: over the units that count)."""
    import numpy as np

    variant = np.asarray(data.column("variant").to_pylist(), dtype=object)
    y, n_col = _column(data, m.id), _column(data, f"{m.id}__n")
    out = []
    for v in variants:
        keep = (variant == v) & ((n_col > 0) if m.kind == "time_to_value" else True)
        x = y[keep]
        mean = float(x.mean()) if len(x) else None
        var = float(x.var(ddof=1)) if len(x) > 1 else None
        out.append({"variant": v, "units": int(len(x)), "mean": mean,
                    "ci": _mean_ci(mean, var, len(x)) if mean is not None else [None, None]})
    return out


def _cuped_applies(data, m, wanted: bool) -> tuple[bool, str]:
    from journeymap.engine.experiments import PRE_KINDS

    if not wanted:
        return False, "cuped: false in the experiment's definition"
    if m.kind not in PRE_KINDS:
        return False, (f"a {m.kind.replace('_', ' ')} starts at the exposure: it has no value before it to "
                       "adjust with")
    pre = _column(data, f"{m.id}__pre")
    if not len(pre):
        return False, "no units"
    if pre.min() == pre.max():
        return False, f"every unit had the same value before exposure ({pre.min():g}): nothing to adjust with"
    return True, f"adjusted with the same metric over the {m.window} before exposure"


def _metric_result(data, exp, role: str, m, variants: list[str]) -> dict:
    import tea_tasting as tt

    applies, reason = _cuped_applies(data, m, exp.cuped)
    ratio = m.kind == "time_to_value"

    def metric(covariate: bool):
        if ratio:
            return tt.RatioOfMeans(m.id, f"{m.id}__n", confidence_level=CONFIDENCE)
        return tt.Mean(m.id, f"{m.id}__pre" if covariate else None, confidence_level=CONFIDENCE)

    per_variant = _per_variant(data, m, variants)
    treatments = [v for v in variants if v != exp.control]
    comparisons = []
    raw = tt.Experiment({"m": metric(False)}).analyze(data, control=exp.control, all_variants=True)
    adjusted = (tt.Experiment({"m": metric(True)}).analyze(data, control=exp.control, all_variants=True)
                if applies else raw)
    theta = _theta(data, m) if applies else None
    reductions = []
    for v in treatments:
        key = (exp.control, v)
        if key not in adjusted:
            continue
        r, r0 = adjusted[key]["m"], raw[key]["m"]
        width, width0 = r.effect_size_ci_upper - r.effect_size_ci_lower, r0.effect_size_ci_upper - r0.effect_size_ci_lower
        if applies and width0 and math.isfinite(width0):
            reductions.append(1 - (width / width0) ** 2)
        significant = bool(r.pvalue < SIGNIFICANCE) if math.isfinite(r.pvalue) else False
        comparisons.append({
            "variant": v, "control_mean": r.control, "mean": r.treatment,
            "difference": r.effect_size, "difference_ci": [r.effect_size_ci_lower, r.effect_size_ci_upper],
            "lift": r.rel_effect_size, "lift_ci": [r.rel_effect_size_ci_lower, r.rel_effect_size_ci_upper],
            "pvalue": r.pvalue, "significant": significant,
            "unadjusted": {"difference": r0.effect_size, "difference_ci": [r0.effect_size_ci_lower,
                                                                          r0.effect_size_ci_upper],
                           "pvalue": r0.pvalue},
        })
    out = {"id": m.id, "role": role, "kind": m.kind, "label": m.label, "better": m.better, "window": m.window,
           "cuped": {"applied": applies, "reason": reason, "theta": theta,
                     "variance_reduction": (sum(reductions) / len(reductions)) if reductions else None},
           "variants": per_variant, "comparisons": comparisons}
    if role == "guardrail":
        worse = (lambda c: c["difference"] < 0) if m.better == "higher" else (lambda c: c["difference"] > 0)
        out["breached"] = [c["variant"] for c in comparisons if c["significant"] and worse(c)]
    return out


def _theta(data, m) -> float | None:
    """CUPED's coefficient over all units (as tea-tasting computes it): cov(y, x) / var(x)."""
    import numpy as np

    y, x = _column(data, m.id), _column(data, f"{m.id}__pre")
    var = x.var(ddof=1)
    return float(np.cov(y, x, ddof=1)[0, 1] / var) if var else None


def _exposure_stages(engine, definition, level: str, assigned) -> dict[str | None, int]:
    """Analysed units per stage they were in at their first exposure (the latest stage visit entered at or before
    it; None: no stage yet), read from the stage visits and the assignments already computed: no second scan of
    the events."""
    from journeymap.engine.annotate import journey_visits

    v = journey_visits(engine, definition, level)
    v = v.select(_u=v.unit_id, _stage=v.stage, _at=v.entered_at, _no=v.visit_no)
    j = assigned.inner_join(v, [assigned.unit_id == v._u, v._at <= assigned.exposed_at])
    at = j.group_by(_k=j.unit_id).aggregate(stage=j._stage.argmax(j._no))
    rows = engine.execute(at.group_by("stage").aggregate(n=at.count())).to_pylist()
    out: dict[str | None, int] = {r["stage"]: int(r["n"]) for r in rows}
    total = engine.execute(assigned.count().name("n").as_table()).to_pylist()[0]["n"]
    if total - sum(out.values()):
        out[None] = int(total - sum(out.values()))
    return out


def experiment_result(engine, definition, experiment_id: str, level: str | None = None,
                      progress: Callable[[str, float | None], None] | None = None,
                      exposure_stages: bool = False) -> dict:
    """The experiment's result as `journeymap experiment NAME --json` prints it (docs/metrics/experiments.md).

    The unit is the experiment's `unit:`, else `level`, else the definition's `analysis.level`. With
    `exposure_stages`, the result also holds `exposure_stages`: analysed units per stage they were in when first
    exposed (the map places the experiment with it), from the same assignments."""
    from journeymap.engine.checks import Finding, did_you_mean
    from journeymap.engine.experiments import assignments, unit_metrics

    exp = find_experiment(definition, experiment_id)
    level = exp.unit or level or definition.analysis.level
    warnings: list[Finding] = []
    with engine.scope():
        a = engine.materialize(assignments(engine, definition, exp, level))
        counts = engine.execute(a.group_by(["variant", "variants"]).aggregate(n=a.count())).to_pylist()
        multiple = sum(int(r["n"]) for r in counts if r["variants"] > 1)
        single: dict[str, int] = {}
        for r in counts:
            if r["variants"] == 1:
                single[r["variant"]] = single.get(r["variant"], 0) + int(r["n"])
        split = exp.split or {v: 1.0 for v in sorted(single)}
        declared = list(split)
        undeclared = {v: n for v, n in single.items() if v not in split}
        for v, n in undeclared.items():
            warnings.append(Finding("variant", f"{n:,} {level}s have variant {v!r}, which the split does not declare: "
                                               "they are left out", did_you_mean(v, declared, "variants declared")))
        if exp.control not in single:
            raise NotEnoughData(f"experiment {exp.id!r}: no {level} was exposed to the control {exp.control!r}"
                                + (f" (variants seen: {', '.join(sorted(single))})" if single else
                                   " (no exposures: check the experiment's exposure and variant with "
                                   "`journeymap validate`)"))
        observed = {v: single.get(v, 0) for v in declared}
        total = sum(observed.values())
        weights = sum(split.values())
        srm = srm_test(observed, split)
        srm.update({"threshold": exp.srm_threshold, "observed": observed,
                    "expected": {v: total * split[v] / weights for v in declared},
                    "mismatch": srm["pvalue"] is not None and srm["pvalue"] < exp.srm_threshold})
        if srm["mismatch"]:
            warnings.append(Finding("srm", f"sample ratio mismatch: p = {srm['pvalue']:.2g} < {exp.srm_threshold:g}; "
                                           "the split is not the one intended, so the comparisons may be biased",
                                    "look for what drops or duplicates exposures in one variant before reading "
                                    "the results"))
        variants = [v for v in declared if observed[v] > 0]
        assigned = a.filter(a.variants == 1, a.variant.isin(variants))
        # one row per unit, in unit order: tea-tasting and the intervals read it as Arrow, so a result is the
        # same on every run and surface (a parallel sum of doubles in the database is not, in its last bits)
        table = unit_metrics(engine, definition, exp, level, assigned)
        data = engine.execute(table.order_by("unit_id"))
        last = engine.execute(engine.table("journey_events").ts.max().as_table()).to_pylist()[0]
        observed_until = next(iter(last.values()))
        results = []
        for role, m in exp.all_metrics:
            if progress:
                progress(f"metric {m.id}", None)
            r = _metric_result(data, exp, role, m, variants)
            if observed_until is not None:
                span = m.window_seconds + (m.after_seconds if m.kind == "retention" else 0.0)
                cutoff = observed_until - dt.timedelta(seconds=span)
                r["incomplete"] = sum(1 for t in data.column("exposed_at").to_pylist() if t is not None and t > cutoff)
            results.append(r)
        stages = _exposure_stages(engine, definition, level, assigned) if exposure_stages else None
    out = {
        "experiment": {"id": exp.id, "name": exp.name, "unit": level, "control": exp.control,
                       "variant": exp.variant.model_dump(exclude_none=True),
                       "exposure": exp.exposure.model_dump(mode="json", exclude_none=True, by_alias=True)
                       if exp.exposure is not None else None,
                       "split": {v: split[v] / weights for v in declared}, "srm_threshold": exp.srm_threshold},
        "variants": [{"variant": v, "units": observed[v], "share": observed[v] / total if total else None,
                      "expected_share": split[v] / weights} for v in declared],
        "excluded": {"multiple_variants": multiple, "undeclared": undeclared},
        "srm": srm,
        "metrics": results,
        "observed_until": observed_until,
        "warnings": [f.as_dict() for f in warnings],
    }
    if stages is not None:
        out["exposure_stages"] = stages
    return out
