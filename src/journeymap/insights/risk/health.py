"""The health score: 0 (about to leave) to 100 (healthy), from weighted components.

Each component reads one point-in-time feature (`insights.risk.features`). Its score s_i is the
account's percentile rank among the accounts scored at the same date (ties share the mean rank),
turned so that 1 is the healthy end (`direction`); an account with no value (no survey answer, no
tickets) scores 0.5 on that component. The weighted mean

    weighted = sum_i(w_i * s_i) / sum_i(w_i)

is itself ranked among the same accounts: health = 100 * percentile rank of `weighted`, so a health
of 25 means three in four accounts scored at that date look healthier. (A plain mean of many ranks
bunches around 50; the rank spreads it over 0-100 so bands mean something.)

Weights come from the journey definition's `health.components`, or are learned: a logistic
regression of churn within the horizon on the standardised component features (training dates
only); each component's coefficient toward risk, clipped at 0 when it points the unhealthy way,
normalised, capped at 35% and renormalised (shares under 2% are dropped), is its weight. The score is backtested on the churn
model's held-out dates: the ROC-AUC of (100 - health) for churn within the horizon, and the churn
rate per band. Definitions and figures: docs/metrics/health-and-risk.md.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from journeymap.errors import NotEnoughData
from journeymap.insights.risk.churn_model import logistic_pipeline, one_thread, time_split
from journeymap.journey.definition import HEALTH_COMPONENTS, Health, JourneyDefinition

MAX_SHARE, MIN_SHARE = 0.35, 0.02


def configured_components(health: Health) -> list[dict]:
    """[{name, feature, direction, weight}] from the definition, weights normalised to sum to 1."""
    rows = [{"name": n, "feature": f, "direction": d, "weight": w} for n, f, d, w in health.component_list()]
    total = sum(r["weight"] for r in rows)
    return [{**r, "weight": r["weight"] / total} for r in rows]


def learned_components(train: pd.DataFrame, seed: int = 0) -> list[dict]:
    """Weights from a logistic regression of `churned` on the named components' features (standardised
    after median imputation and log compression). Each component keeps its usual direction; a
    coefficient pointing the other way (a collinear or noisy feature) is clipped to weight 0."""
    named = [(n, f, d) for n, (f, d) in HEALTH_COMPONENTS.items() if f in train and train[f].notna().any()]
    features = [f for _, f, _ in named]
    y = train["churned"].to_numpy()
    if y.sum() in (0, len(y)):  # scikit-learn would say "needs samples of at least 2 classes"
        raise NotEnoughData("the training dates have no churn (or only churn): health weights cannot be learned from them",
                            add="`health.components` weights to journeymap.yml, or more history with churned accounts")
    with one_thread():
        model = logistic_pipeline(seed).fit(train[features], y)
    coef = model[-1].coef_[0][: len(features)]  # missing-value indicators come after the features
    # risk rises as the feature moves away from healthy: +coef when lower is better, -coef when higher is
    toward_risk = np.array([c if d == "lower_is_better" else -c for (_, _, d), c in zip(named, coef, strict=True)])
    clipped = np.clip(toward_risk, 0, None)
    if not clipped.any():
        raise ValueError("no health component predicts churn in the training dates: give health.components weights")
    share = _cap(clipped / clipped.sum())
    return [{"name": n, "feature": f, "direction": d, "weight": float(w), "coefficient": float(c)}
            for (n, f, d), c, w in zip(named, coef, share, strict=True) if w > 0]


def _cap(w: np.ndarray) -> np.ndarray:
    """Drop shares under MIN_SHARE, cap each at MAX_SHARE, renormalise (repeat until stable).

    >>> [round(float(x), 3) for x in _cap(np.array([0.7, 0.2, 0.09, 0.01]))]
    [0.35, 0.35, 0.3, 0.0]
    """
    w = np.where(w < MIN_SHARE, 0.0, np.asarray(w, dtype=float))
    w = w / w.sum()
    if (w > 0).sum() * MAX_SHARE < 1:  # too few components to cap: keep them as they are
        return w
    capped = np.zeros(len(w), dtype=bool)
    for _ in range(len(w)):
        free = ~capped & (w > 0)
        w[free] = w[free] / w[free].sum() * (1.0 - MAX_SHARE * capped.sum())
        over = free & (w > MAX_SHARE + 1e-12)
        if not over.any():
            break
        capped |= over
        w[over] = MAX_SHARE
    return w


def score(features: pd.DataFrame, components: list[dict], by: str | None = None) -> pd.DataFrame:
    """health (0-100) and one `score_<name>` column (0-1, 1 healthy) per component. Ranks are taken
    within each group of `by` (the scoring date) when given."""
    out = pd.DataFrame(index=features.index)
    total = np.zeros(len(features))
    for c in components:
        x = features[c["feature"]] if c["feature"] in features else pd.Series(np.nan, index=features.index)
        x = x if c["direction"] == "higher_is_better" else -x  # rank so that 1 is the healthy end
        ranks = x.groupby(features[by]).rank(pct=True) if by else x.rank(pct=True)
        s = ranks.fillna(0.5)
        out[f"score_{c['name']}"] = s.clip(0, 1)
        total += c["weight"] * out[f"score_{c['name']}"].to_numpy()
    weights = sum(c["weight"] for c in components) or 1.0
    out["weighted"] = total / weights
    ranks = out["weighted"].groupby(features[by]).rank(pct=True) if by else out["weighted"].rank(pct=True)
    out["health"] = 100.0 * ranks
    return out


def band(health: pd.Series, bands: dict[str, float]) -> pd.Series:
    """The band whose upper bound is the first above the score (the last band includes 100)."""
    names, bounds = list(bands), list(bands.values())
    idx = np.searchsorted(np.asarray(bounds[:-1]), health.to_numpy(), side="right")
    return pd.Series([names[i] for i in idx], index=health.index)


def backtest(snapshots: pd.DataFrame, components: list[dict], bands: dict[str, float], dates) -> dict:
    """ROC-AUC of (100 - health) for churn within the horizon, and churn per band, on `dates`."""
    rows = snapshots[snapshots["at"].isin(dates)]
    s = score(rows, components, by="at")
    y = rows["churned"].to_numpy()
    b = band(s["health"], bands)
    per_band = []
    lo = 0.0
    for name, hi in bands.items():
        m = (b == name).to_numpy()
        per_band.append({"band": name, "from": lo, "to": hi, "rows": int(m.sum()), "churned": int(y[m].sum()),
                         "churn_rate": float(y[m].mean()) if m.any() else None,
                         "mean_health": float(s["health"][m].mean()) if m.any() else None})
        lo = hi
    auc = float(roc_auc_score(y, 100.0 - s["health"])) if 0 < y.sum() < len(y) else None
    return {"dates": [pd.Timestamp(d).date().isoformat() for d in sorted(dates)], "rows": int(len(y)),
            "churned": int(y.sum()), "base_rate": float(y.mean()) if len(y) else None, "roc_auc": auc, "bands": per_band}


def expansion_signals(features: pd.DataFrame, health: Health) -> pd.Series:
    """Per account, the list of expansion signals: `high_utilisation` (seat utilisation at or above
    `health.expansion_utilisation`) and `growing_usage` (activity trend at or above
    `health.expansion_trend`, with at least `health.expansion_min_active_days` active days in 30)."""
    util = features["seat_utilisation"].to_numpy(dtype=float) if "seat_utilisation" in features else np.full(len(features), np.nan)
    trend = features["activity_trend"].to_numpy(dtype=float)
    active = features["active_days_30d"].to_numpy(dtype=float)
    out = []
    for u, t, a in zip(util, trend, active, strict=True):
        flags = []
        if not np.isnan(u) and u >= health.expansion_utilisation:
            flags.append("high_utilisation")
        if not np.isnan(t) and t >= health.expansion_trend and a >= health.expansion_min_active_days:
            flags.append("growing_usage")
        out.append(flags)
    return pd.Series(out, index=features.index)


def weights_source(health: Health, weights: str) -> str:
    """config or learned, for the `weights` option: "config" (the definition's health.components), "learned",
    or "auto" (config when given)."""
    if weights not in ("auto", "config", "learned"):
        raise ValueError(f"weights must be auto, config or learned, not {weights!r}")
    if weights == "config" and not health.components:
        raise NotEnoughData("journeymap.yml has no health.components", add="them (docs/journey-definition.md), or use --weights learned")
    return "config" if weights == "config" or (weights == "auto" and health.components) else "learned"


def fit_health(snaps: pd.DataFrame, definition: JourneyDefinition, horizon_days: int = 90, weights: str = "auto",
               seed: int = 0) -> dict:
    """{"source", "components", "backtest"}: the weights (configured, or learned on the snapshots' training
    dates) and the score's backtest on their held-out dates. `snaps`: features.snapshots at `horizon_days`."""
    health = definition.health or Health()
    source = weights_source(health, weights)
    split = time_split(snaps["at"].unique(), horizon_days)
    fit_dates = split.train + split.calibration  # every label window closes before the held-out dates
    components = configured_components(health) if source == "config" else \
        learned_components(snaps[snaps["at"].isin(fit_dates)], seed)
    return {"source": source, "components": components,
            "backtest": backtest(snaps, components, health.bands, split.test)}


def scored(now: pd.DataFrame, definition: JourneyDefinition, fitted: dict) -> tuple[list[dict], list[dict], dict]:
    """(accounts least healthy first, accounts per band, expansion counts) of the paying accounts' features
    `now` under the weights and backtest `fitted` (fit_health's)."""
    health = definition.health or Health()
    components = fitted["components"]
    now = now.reset_index(drop=True)
    s = score(now, components)
    bands = band(s["health"], health.bands)
    flags = expansion_signals(now, health)
    rates = {b["band"]: b["churn_rate"] for b in fitted["backtest"]["bands"]}
    # columns as Python lists, not rows: iterrows over thousands of accounts costs more than the scoring
    names = [c["name"] for c in components]
    parts = [s[f"score_{n}"].astype(float).tolist() for n in names]
    mrr = [float(m) if pd.notna(m) else None for m in now["mrr"].tolist()]
    accounts = [{"unit_id": u, "health": h, "band": b, "band_churn_rate": rates.get(b), "mrr": m,
                 "components": dict(zip(names, values, strict=True)), "expansion": f}
                for u, h, b, m, f, *values in zip(now["unit_id"].tolist(), s["health"].astype(float).tolist(),
                                                  bands.tolist(), mrr, flags.tolist(), *parts, strict=True)]
    accounts.sort(key=lambda a: (a["health"], a["unit_id"]))
    summary = [{"band": name, "accounts": int((bands == name).sum()), "backtest_churn_rate": rates.get(name)}
               for name in health.bands]
    expansion = {"high_utilisation": int(sum("high_utilisation" in f for f in flags)),
                 "growing_usage": int(sum("growing_usage" in f for f in flags)),
                 "utilisation_threshold": health.expansion_utilisation, "trend_threshold": health.expansion_trend}
    return accounts, summary, expansion


def health_report(engine, definition: JourneyDefinition, at: dt.datetime | None = None, horizon_days: int = 90,
                  weights: str = "auto", seed: int = 0, progress=None, stored: bool = True) -> dict:
    """Score every account paying at `at` (default: the day after the last event) and backtest the score.

    weights: "config" (the definition's health.components), "learned", or "auto" (config when given).

    With `stored` (default) and the default options, the scores the last refresh wrote are read
    (insights.risk.stored: no snapshot is computed, no weight learned); otherwise, or when they are not
    current, they are computed now and the notes say why."""
    from journeymap.insights.risk.features import FeatureBuilder, snapshots
    from journeymap.insights.risk.scores import stored_health

    if definition.revenue is None:
        raise NotEnoughData("journeymap.yml defines no churn, so there is nothing to backtest health against",
                            add="a `revenue:` section with its `churn:` rule (docs/metrics/revenue.md)")
    say = progress or (lambda _m, _f: None)
    weights_source(definition.health or Health(), weights)
    why = None
    if stored:
        found, why = stored_health(engine, definition, at=at, horizon_days=horizon_days, weights=weights, seed=seed)
        if found is not None:
            say("done", 1.0)
            return found
    snaps = snapshots(engine, definition, horizon_days, progress=lambda m, f: say(m, 0.8 * f))
    say("backtesting the health score", 0.85)
    fitted = fit_health(snaps, definition, horizon_days, weights, seed)
    with engine.scope():
        fb = FeatureBuilder(engine, definition, materialize=False)
        if at is None:
            last = fb.span()[1]
            at = dt.datetime(last.year, last.month, last.day) + dt.timedelta(days=1)
        now = fb.at(at)
    accounts, summary, expansion = scored(now[now["paying"]], definition, fitted)
    say("done", 1.0)
    return {
        "at": at.isoformat(), "horizon_days": horizon_days,
        "weights": {"source": fitted["source"], "components": fitted["components"]},
        "bands": summary, "backtest": fitted["backtest"], "expansion": expansion, "accounts": accounts,
        "scores": "computed", "model_version": None, "notes": [f"computed now: {why}"] if why else [],
    }
