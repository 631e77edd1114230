r"""Time in stage, right-censored: a Kaplan-Meier estimate over stage visits.

A unit still in a stage when observation ends has not yet left it; dropping it biases time in stage
low, and counting its time so far as a stay biases it low too. Kaplan-Meier keeps it in the risk set
until it is censored. Definition and worked example: `docs/metrics/time-in-stage.md`.

.. math:: \hat S(t) = \prod_{t_i \le t} \left(1 - \frac{d_i}{n_i}\right)

where :math:`d_i` visits end at :math:`t_i` and :math:`n_i` visits last at least :math:`t_i`
(Kaplan & Meier 1958, "Nonparametric estimation from incomplete observations", JASA 53:457-481).

This module is only the estimate. The visits and their durations come from the engine, where a visit
has one definition (`journeymap.engine.stages.visits`, `visit_durations`); their rows, few next to the
events, are fitted here in numpy.

>>> km = kaplan_meier([1, 1, 2, 3, 4, 6, 7, 9], [True, True, True, False, False, True, False, True])
>>> km.median_, km.quantile(0.9), km.n, km.censored
(6.0, 9.0, 8, 3)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["KaplanMeier", "kaplan_meier", "time_in_stage", "time_in_stage_summary"]

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


def kaplan_meier(durations: Sequence[float], observed: Sequence[bool], weights: Sequence[float] | None = None,
                 ascending: bool = False) -> KaplanMeier:
    """Fit Kaplan-Meier to durations (seconds) and whether each visit was seen to end.

    `weights` (whole numbers) say how many identical visits a row stands for, so the engine can send
    (duration, observed, count) groups instead of every visit; the estimate is the same. `ascending`: the
    durations are already in ascending order (checked), so their distinct values are found without sorting
    them again: the map fits millions of durations in a few dozen groups, sorted once for all of them."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    w = np.ones(d.shape, dtype=float) if weights is None else np.asarray(weights, dtype=float)
    if d.shape != e.shape or d.shape != w.shape or d.ndim != 1:
        raise ValueError("durations, observed and weights must be 1-d and of equal length")
    if d.size and (np.isnan(d).any() or (d < 0).any()):
        raise ValueError("durations must be non-negative numbers")
    if ascending:
        if (d[1:] < d[:-1]).any():
            raise ValueError("durations passed as ascending are not in ascending order")
        first = np.empty(d.shape, dtype=bool)
        first[:1] = True
        np.not_equal(d[1:], d[:-1], out=first[1:])
        times, inverse = d[first], np.cumsum(first) - 1
    else:
        times, inverse = np.unique(d, return_inverse=True)
    ended = np.bincount(inverse, weights=w * e, minlength=times.size)
    leaving = np.bincount(inverse, weights=w, minlength=times.size)
    total = w.sum()
    # At risk at t: visits lasting >= t; a visit censored at t is still at risk at t (the usual tie rule).
    at_risk = total - (np.cumsum(leaving) - leaving)
    step = ended > 0
    survival = np.cumprod(1 - ended[step] / at_risk[step])
    return KaplanMeier(times[step], survival, int(total), int(total - (w * e).sum()))


def time_in_stage_summary(durations: Iterable[float], observed: Iterable[bool],
                          weights: Sequence[float] | None = None, ascending: bool = False) -> dict[str, Any]:
    """The map's `time_in_stage` block; p50/p90 are None where censoring hides them.

    `observed_p50_seconds` is the naive median of finished visits only (the same quantile rule, so it
    equals `p50_seconds` when nothing is censored); the gap between the two shows the censoring bias.
    With no visits every key is still there (`n` 0, the rest None or 0): the block has one shape.
    Accepts lists, numpy or pyarrow arrays; `weights` and `ascending` as in `kaplan_meier`.

    >>> time_in_stage_summary([], [])
    {'p50_seconds': None, 'p90_seconds': None, 'n': 0, 'censored': 0, 'observed_p50_seconds': None}
    """
    d = np.asarray(list(durations) if not hasattr(durations, "__array__") else durations, dtype=float)
    e = np.asarray(list(observed) if not hasattr(observed, "__array__") else observed, dtype=bool)
    w = None if weights is None else np.asarray(weights, dtype=float)
    km = kaplan_meier(d, e, w, ascending=ascending)
    finished = d[e]  # in the durations' order
    naive = kaplan_meier(finished, np.ones(finished.size, dtype=bool), None if w is None else w[e],
                         ascending=ascending)
    return {
        "p50_seconds": km.quantile(0.5),
        "p90_seconds": km.quantile(0.9),
        "n": km.n,
        "censored": km.censored,
        "observed_p50_seconds": naive.quantile(0.5),
    }


def time_in_stage(
    keys: Iterable[Hashable], durations: Iterable[float], observed: Iterable[bool]
) -> dict[Hashable, dict[str, Any]]:
    """`time_in_stage_summary` per key (a stage, or a (stage, persona) pair), keys sorted.

    >>> time_in_stage(["trial", "paid", "trial"], [10.0, 5.0, 30.0], [True, False, True])["trial"]["p50_seconds"]
    10.0
    """
    groups: dict[Hashable, tuple[list[float], list[bool]]] = {}
    for key, d, e in zip(keys, durations, observed, strict=True):
        ds, es = groups.setdefault(key, ([], []))
        ds.append(d)
        es.append(e)
    return {key: time_in_stage_summary(*groups[key]) for key in sorted(groups)}
