r"""Time in stage, right-censored: a Kaplan-Meier estimate over stage visits.

A unit still in a stage when observation ends has not yet left it; dropping it biases time in stage
low, and counting its time so far as a stay biases it low too. Kaplan-Meier keeps it in the risk set
until it is censored. Definition and worked example: `docs/metrics/time-in-stage.md`.

.. math:: \hat S(t) = \prod_{t_i \le t} \left(1 - \frac{d_i}{n_i}\right)

where :math:`d_i` visits end at :math:`t_i` and :math:`n_i` visits last at least :math:`t_i`
(Kaplan & Meier 1958, "Nonparametric estimation from incomplete observations", JASA 53:457-481).

`stage_visits` is the Ibis half (one row per stage visit, any backend); `kaplan_meier` is the numpy
half, run on those rows, which are few next to the events.

>>> km = kaplan_meier([1, 1, 2, 3, 4, 6, 7, 9], [True, True, True, False, False, True, False, True])
>>> km.median_, km.quantile(0.9), km.n, km.censored
(6.0, 9.0, 8, 3)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from journeymap.engine.transitions import steps

__all__ = ["KaplanMeier", "kaplan_meier", "stage_visits", "time_in_stage", "time_in_stage_summary"]

_TOLERANCE = 1e-10
"""S(t) within this of the threshold counts as reaching it: 0.75 * (2/3) is 0.49999999999999994 in floats."""


@dataclass(frozen=True)
class KaplanMeier:
    """A fitted Kaplan-Meier curve: `survival_[i]` is S(t) from `times_[i]` until the next time.

    `times_` holds the distinct times at which at least one visit ended (S steps only there); before
    `times_[0]`, S is 1.
    """

    times_: np.ndarray
    survival_: np.ndarray
    n: int
    censored: int

    def quantile(self, q: float) -> float | None:
        """Smallest t with S(t) <= 1 - q; None when censoring leaves the curve above 1 - q."""
        if not 0 < q < 1:
            raise ValueError(f"q must be strictly between 0 and 1, got {q}")
        hit = np.flatnonzero(self.survival_ <= 1 - q + _TOLERANCE)
        return float(self.times_[hit[0]]) if hit.size else None

    @property
    def median_(self) -> float | None:
        """Median time in stage: `quantile(0.5)`."""
        return self.quantile(0.5)

    def survival_at(self, t: float | Sequence[float]) -> np.ndarray:
        """S(t) at the given times (a right-continuous step function)."""
        idx = np.searchsorted(self.times_, np.asarray(t, dtype=float), side="right")
        return np.concatenate([[1.0], self.survival_])[idx]


def kaplan_meier(durations: Sequence[float], observed: Sequence[bool]) -> KaplanMeier:
    """Fit Kaplan-Meier to durations (seconds) and whether each visit was seen to end."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    if d.shape != e.shape or d.ndim != 1:
        raise ValueError("durations and observed must be 1-d and of equal length")
    if d.size and (np.isnan(d).any() or (d < 0).any()):
        raise ValueError("durations must be non-negative numbers")
    times, inverse = np.unique(d, return_inverse=True)
    ended = np.bincount(inverse, weights=e, minlength=times.size)
    leaving = np.bincount(inverse, minlength=times.size)
    # At risk at t: visits lasting >= t; a visit censored at t is still at risk at t (the usual tie rule).
    at_risk = d.size - (np.cumsum(leaving) - leaving)
    step = ended > 0
    survival = np.cumprod(1 - ended[step] / at_risk[step])
    return KaplanMeier(times[step], survival, int(d.size), int(d.size - e.sum()))


def time_in_stage_summary(durations: Sequence[float], observed: Sequence[bool]) -> dict[str, Any]:
    """The map's `time_in_stage` block; p50/p90 are None where censoring hides them.

    `observed_p50_seconds` is the naive median of finished visits only (the same quantile rule, so it
    equals `p50_seconds` when nothing is censored); the gap between the two shows the censoring bias.
    """
    km = kaplan_meier(durations, observed)
    finished = np.asarray(durations, dtype=float)[np.asarray(observed, dtype=bool)]
    naive = kaplan_meier(finished, np.ones(finished.size, dtype=bool))
    return {
        "p50_seconds": km.quantile(0.5),
        "p90_seconds": km.quantile(0.9),
        "n": km.n,
        "censored": km.censored,
        "observed_p50_seconds": naive.quantile(0.5),
    }


def stage_visits(
    events: ir.Table,
    unit: str = "unit_id",
    stage: str = "stage",
    ts: str = "ts",
    seq: str = "seq",
    *,
    observed_until: dt.datetime | None = None,
) -> ir.Table:
    """One row per stage visit: unit, stage, entered_at, duration_seconds, observed.

    A visit starts at the first event of a run of equal `stage` values of a unit (ordered by ts, seq,
    stage; rows with NULL stage are ignored) and ends when the unit's next stage starts. A unit's
    last visit is censored at `observed_until` (default: the latest `ts` in `events`).
    """
    if observed_until is not None:  # events after the end of observation are unseen
        events = events.filter(events[ts] <= ibis.literal(observed_until, type=events[ts].type()))
    runs = steps(events, unit, stage, ts, seq, collapse_repeats=True)
    if observed_until is None:
        runs = runs.cross_join(events.aggregate(_end=events[ts].max()))
    else:
        runs = runs.mutate(_end=ibis.literal(observed_until, type=events[ts].type()))
    left = runs._next_t.coalesce(runs._end)
    return runs.select(
        **{unit: runs._u, stage: runs._l},
        entered_at=runs._t,
        duration_seconds=left.delta(runs._t, unit="microsecond").cast("float64") / 1e6,
        observed=runs._next_t.notnull(),
    )


def time_in_stage(visits: ir.Table, stage: str = "stage", con: Any = None) -> dict[str, dict[str, Any]]:
    """`time_in_stage_summary` per stage, from `stage_visits` rows (fetched: one row per visit)."""
    expr = visits.select(stage, "duration_seconds", "observed")
    rows = (con.to_pyarrow(expr) if con is not None else expr.to_pyarrow()).to_pydict()
    by_stage: dict[str, tuple[list[float], list[bool]]] = {}
    for name, d, e in zip(rows[stage], rows["duration_seconds"], rows["observed"], strict=True):
        durations, observed = by_stage.setdefault(name, ([], []))
        durations.append(d)
        observed.append(e)
    return {name: time_in_stage_summary(*by_stage[name]) for name in sorted(by_stage)}
