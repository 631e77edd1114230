"""`experiment`: an A/B test declared under `experiments:` in journeymap.yml (docs/metrics/experiments.md).

Per variant the units and each metric with its 95% confidence interval; per treatment variant the
difference and relative lift against the control with their intervals and p-values; a sample-ratio-mismatch
test. The computation is insights.experiments' `experiment_result`, which the map shares.
"""

from __future__ import annotations

from typing import Any

from journeymap.analyses.base import WARNINGS_HELP, Analysis, Field, Output, Params


class ExperimentParams(Params):
    name: str = Field(description="The experiment's id under `experiments:` in journeymap.yml.",
                      json_schema_extra={"positional": True})


class ExperimentOutput(Output):
    experiment: dict = Field(description="id, name, unit, control, variant source, exposure, split, srm_threshold.")
    variants: list[dict] = Field(description="Per variant: variant, units, share, expected_share.")
    excluded: dict = Field(description="Units left out: multiple_variants (exposed to more than one), undeclared "
                                       "(per variant value not in the split).")
    srm: dict = Field(description="Sample ratio mismatch: chi2, df, pvalue, threshold, mismatch (pvalue < "
                                  "threshold), observed and expected units per variant.")
    metrics: list[dict] = Field(description="Per goal metric and guardrail: id, role, kind, better, window, cuped "
                                            "{applied, reason, theta, variance_reduction}, variants [{variant, units, "
                                            "mean, ci}], comparisons [{variant, difference, difference_ci, lift, "
                                            "lift_ci, pvalue, significant}], breached (guardrails).")
    observed_until: Any = Field(description="The latest event: units exposed less than a window before it are "
                                            "observed for part of it (counted per metric as `incomplete`).")
    warnings: list[dict] = Field([], description=WARNINGS_HELP)


def run(ws, p: ExperimentParams, progress=None) -> dict:
    from journeymap.insights.experiments import experiment_result, find_experiment

    find_experiment(ws.definition, p.name)  # a name that is not there says so before the store is read
    return experiment_result(ws.engine, ws.definition, p.name, progress=progress)


EXPERIMENT = Analysis("experiment", "A/B test: per variant the units and each metric with its CI, the lift against "
                      "control, a sample-ratio-mismatch test and CUPED.", ExperimentParams, run, ExperimentOutput,
                      "docs/metrics/experiments.md", unit="experiment", example={"name": "pricing_page"})
