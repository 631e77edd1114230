"""95% confidence intervals for survey scores, from the per-group counts and sums the engine returns.

- NPS: each answer scores +1 (promoter), 0 or -1 (detractor); NPS/100 is their mean, so its
  standard error is sqrt((p + d - (p - d)^2) / n) with p, d the promoter and detractor shares.
  A normal interval, clamped to -100..100 (n < 2 gives none).
- CSAT: the Wilson score interval for a share (honest at small n and at 0 % or 100 %).
- CES: the mean plus or minus Student's t(n-1) times the sample standard deviation over sqrt(n).
"""

from __future__ import annotations

import math

from scipy import stats

Z95 = 1.959963984540054


def nps_interval(n: int, promoters: int, detractors: int) -> tuple[float | None, float | None]:
    """50 promoters and 20 detractors of 100: NPS 30, standard error sqrt(0.61/100) = 0.0781.

    >>> [round(x, 1) for x in nps_interval(100, 50, 20)]
    [14.7, 45.3]
    """
    if n < 2:
        return None, None
    p, d = promoters / n, detractors / n
    se = math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
    score = p - d
    return max(-1.0, score - Z95 * se) * 100.0, min(1.0, score + Z95 * se) * 100.0


def wilson_interval(k: int, n: int) -> tuple[float | None, float | None]:
    """87 satisfied of 100:

    >>> [round(x, 4) for x in wilson_interval(87, 100)]
    [0.7902, 0.9224]
    """
    if n < 1:
        return None, None
    p = k / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(n: int, total: float, total_sq: float) -> tuple[float | None, float | None]:
    """Scores 1, 2, 3, 4: mean 2.5, sd 1.291, t(3) = 3.182.

    >>> [round(x, 3) for x in mean_interval(4, 10.0, 30.0)]
    [0.446, 4.554]
    """
    if n < 2:
        return None, None
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1)
    half = float(stats.t.ppf(0.975, n - 1)) * math.sqrt(var / n)
    return mean - half, mean + half


def interval_from_parts(kind: str, row: dict) -> tuple[float | None, float | None]:
    n = int(row["n"])
    if kind == "nps":
        return nps_interval(n, int(row["promoters"]), int(row["detractors"]))
    if kind == "csat":
        return wilson_interval(int(row["satisfied"]), n)
    return mean_interval(n, float(row["total"]), float(row["total_sq"]))
