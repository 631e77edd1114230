"""Churn risk: the probability that a paying account churns within a horizon, with reasons.

Training rows are `features.snapshots`: every account paying at each monthly scoring date, labelled
1 when its churn event falls in [date, date + horizon). The split is by time, with no label leakage:

  held-out      the last `test_dates` scoring dates, starting at T
  calibration   the latest `calibration_dates` dates whose label window closes by T
  train         the dates before the calibration slice

so no training or calibration label is observed after the held-out period starts. The classifier
(gradient boosting or logistic regression) is fitted on train and calibrated (isotonic or Platt
sigmoid) on the time-later calibration slice; the held-out dates give ROC-AUC, PR-AUC, Brier score
and a decile calibration table, next to two baselines fitted the same way: logistic regression on
recency alone and on every feature. With `refit` (default) the model that scores accounts today is
the same recipe moved forward one slice: fitted on train + calibration, calibrated on the held-out
dates. Definitions and figures: docs/metrics/health-and-risk.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import ThreadpoolController

from journeymap.errors import NotEnoughData
from journeymap.insights.risk.features import feature_columns
from journeymap.insights.risk.reasons import healthy_reference, reason_codes
from journeymap.insights.risk.scores import DEFAULT_HORIZON_DAYS, DEFAULT_MODEL, DEFAULT_SEED, stored_report

MODELS = ("gbm", "logistic")
ISOTONIC_MIN_CHURNERS = 1000
# Rows (account x scoring date) a model is fitted or calibrated on at most: beyond this a uniform, seeded
# sample. Boosting time grows with rows while held-out AUC stops moving long before; 10M synthetic events
# give 2.4M rows (docs/metrics/health-and-risk.md). The held-out evaluation always uses every row.
MAX_FIT_ROWS = 50_000


@dataclass
class TimeSplit:
    train: list[pd.Timestamp]
    calibration: list[pd.Timestamp]
    test: list[pd.Timestamp]

    def as_dict(self) -> dict:
        return {k: [d.date().isoformat() for d in getattr(self, k)] for k in ("train", "calibration", "test")}


_POOLS: ThreadpoolController | None = None


def one_thread():
    """A context in which the OpenMP and BLAS pools the models use run one thread. A pool of every core
    spin-waits for the cores something else holds: on 2 cores a gradient boosting fit beside a DuckDB query
    (the server's requests, a loader's statement) took 4.7 s against 0.9 s in one thread, and simulating,
    loading and refreshing 300 accounts (which fits the model) beside two busy processes 52 s against 6 s.
    Alone, one thread costs little at the sizes fitted here (the rows are capped): 0.57 s against 0.91 s on
    5,000 rows, 1.51 s against 1.35 s on 100,000."""
    global _POOLS
    if _POOLS is None:  # after scikit-learn and NumPy loaded their pools (the controller lists them once)
        _POOLS = ThreadpoolController()
    return _POOLS.limit(limits=1)


def time_split(dates, horizon_days: int, test_dates: int = 3, calibration_dates: int = 3) -> TimeSplit:
    """Split scoring dates by time; every label window of train and calibration closes by the first
    held-out date.

    >>> s = time_split(pd.date_range("2025-01-01", periods=12, freq="MS"), 90)
    >>> [len(s.train), len(s.calibration), len(s.test)], s.test[0].date().isoformat()
    ([4, 3, 3], '2025-10-01')
    """
    dates = sorted(pd.Timestamp(d) for d in set(dates))
    if len(dates) <= test_dates:
        raise ValueError(f"{len(dates)} scoring dates: too few to hold out {test_dates}")
    test = dates[-test_dates:]
    closed = [d for d in dates if d + pd.Timedelta(days=horizon_days) <= test[0]]
    calibration = closed[-calibration_dates:] if len(closed) > calibration_dates else []
    train = closed[: len(closed) - len(calibration)]
    if not train:
        raise ValueError(f"no scoring date's {horizon_days}-day label window closes before the held-out "
                         f"period ({test[0]:%Y-%m-%d}): the data is too short for this horizon")
    return TimeSplit(train, calibration, test)


def _signed_log(x):
    return np.sign(x) * np.log1p(np.abs(x))


def logistic_pipeline(seed: int = 0, C: float = 0.5):
    """Median-impute (with missing indicators), log-compress, standardise, L2 logistic regression."""
    return make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                         FunctionTransformer(_signed_log), StandardScaler(),
                         LogisticRegression(C=C, max_iter=5000, random_state=seed))


# Directions the gradient boosting model must respect (1: risk never falls as the feature grows).
# A prior from the field that keeps a small training set from learning noise; features not named are free.
MONOTONE = {
    "recency_days": 1, "active_days_30d": -1, "active_days_90d": -1, "key_features_90d": -1,
    "key_feature_adoption": -1, "active_users_30d": -1, "seat_utilisation": -1,
    "high_effort_tickets_60d": 1, "high_effort_days_ago": -1, "max_effort_90d": 1, "mean_effort_90d": 1, "last_ces": 1,
    "last_nps": -1, "last_csat": -1, "failed_payments_60d": 1, "downgrades_90d": 1,
}
MONOTONE_PREFIXES = {"early_": -1}


def monotone_constraints(columns: list[str]) -> dict[str, int]:
    out = {c: MONOTONE[c] for c in columns if c in MONOTONE}
    out.update({c: d for c in columns for p, d in MONOTONE_PREFIXES.items() if c.startswith(p)})
    return out


def gbm(seed: int = 0, columns: list[str] = ()):
    """Boosted stumps (depth 1: an additive model of one-feature step functions, as in explainable
    boosting machines) with monotone constraints. On the demo, depth 2 gave the same held-out AUC within
    noise and spread each account's risk over more features, which blurs its reasons."""
    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_depth=1, min_samples_leaf=20,
                                          monotonic_cst=monotone_constraints(list(columns)) or None, random_state=seed)


def _estimator(kind: str, seed: int, columns: list[str]):
    if kind == "gbm":
        return gbm(seed, columns)
    if kind == "logistic":
        return logistic_pipeline(seed)
    raise ValueError(f"model must be one of {', '.join(MODELS)}, not {kind!r}")


class _Fitted:
    """A classifier fitted on one slice and calibrated on a later one."""

    def __init__(self, base, columns: list[str], method: str, X_fit, y_fit, X_cal, y_cal):
        self.columns = columns
        base.fit(X_fit[columns], y_fit)
        if X_cal is not None and len(X_cal) and 0 < y_cal.sum() < len(y_cal):
            self.model = CalibratedClassifierCV(FrozenEstimator(base), method=method).fit(X_cal[columns], y_cal)
            self.calibration = method
        else:
            # No calibration slice with both outcomes: the classifier's own probabilities, said as such.
            self.model = base
            self.calibration = "none"
        self.base = base

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X[self.columns])[:, 1]


def evaluate(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """ROC-AUC, PR-AUC (average precision), Brier score, base rate and a calibration table by decile
    of predicted risk: mean predicted vs observed churn and count."""
    y = np.asarray(y, dtype=int)
    both = 0 < y.sum() < len(y)
    table = []
    if len(y):
        q = pd.qcut(pd.Series(p).rank(method="first"), min(bins, len(y)), labels=False)
        for b, g in pd.DataFrame({"p": p, "y": y, "b": q}).groupby("b"):
            table.append({"decile": int(b) + 1, "predicted": float(g.p.mean()), "observed": float(g.y.mean()),
                          "count": int(len(g))})
    return {
        "rows": int(len(y)), "churned": int(y.sum()), "base_rate": float(y.mean()) if len(y) else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)) if len(y) else None,
        "calibration": table,
    }


class ChurnModel:
    """Churn within `horizon_days` of a scoring date, scikit-learn style.

    On a workspace the rows come from `features.snapshots(ws.engine, ws.definition, horizon_days)`;
    here, nine monthly dates of 100 accounts whose churn grows with `recency_days`:

    >>> rng = np.random.default_rng(0)
    >>> at = np.repeat(pd.date_range("2025-01-01", periods=9, freq="MS"), 100)
    >>> recency = rng.exponential(10, len(at))
    >>> rows = pd.DataFrame({"unit_id": np.tile([f"acct{i}" for i in range(100)], 9), "at": at, "recency_days": recency,
    ...                      "churned": (rng.random(len(at)) < 1 / (1 + np.exp(3 - recency / 8))).astype(int)})
    >>> model = ChurnModel(horizon_days=60, model="gbm").fit(rows)
    >>> model.split_.as_dict()["test"]          # held out: the last 3 dates; train and calibrate on labels closed before
    ['2025-07-01', '2025-08-01', '2025-09-01']
    >>> {name: round(e["roc_auc"], 2) for name, e in model.evaluation_.items()}
    {'model': 0.78, 'logistic': 0.77, 'recency_only': 0.77}
    >>> model.predict_proba(pd.DataFrame({"recency_days": [1.0, 40.0]})).round(2)
    array([0.06, 0.83])
    >>> model.reasons(pd.DataFrame({"recency_days": [40.0]}))[0][0]["text"]
    'no product activity for 40 days (typical 7)'

    Fitted attributes: `features_`, `split_`, `evaluation_` (model, logistic, recency_only on the
    held-out dates), `heldout_` (held-out rows with `risk`), `reference_` (healthy reference values),
    `estimator_` (what `predict_proba` uses), `evaluated_` (the estimator that was evaluated).
    """

    def __init__(self, horizon_days: int = 90, model: str = "gbm", seed: int = 0, calibration: str = "auto",
                 test_dates: int = 3, calibration_dates: int = 3, refit: bool = True):
        self.horizon_days, self.model, self.seed = horizon_days, model, seed
        self.calibration, self.test_dates, self.calibration_dates, self.refit = calibration, test_dates, calibration_dates, refit

    def _method(self, y_cal) -> str:
        if self.calibration != "auto":
            return self.calibration
        # Isotonic regression needs many churners in the calibration slice: with a few hundred its steps
        # put whole groups of accounts at 0% or 100%. Platt scaling (2 parameters) is steadier below that.
        return "isotonic" if y_cal is not None and y_cal.sum() >= ISOTONIC_MIN_CHURNERS else "sigmoid"

    def fit(self, snapshots: pd.DataFrame) -> ChurnModel:
        with one_thread():
            return self._fit(snapshots)

    def _fit(self, snapshots: pd.DataFrame) -> ChurnModel:
        global FITS
        FITS += 1
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        cols = [c for c in feature_columns(snapshots) if snapshots[c].notna().any()]
        self.features_ = cols
        self.split_ = time_split(snapshots["at"].unique(), self.horizon_days, self.test_dates, self.calibration_dates)
        at = snapshots["at"]
        train = _cap(snapshots[at.isin(self.split_.train)], self.seed)
        cal = _cap(snapshots[at.isin(self.split_.calibration)], self.seed)
        test = snapshots[at.isin(self.split_.test)]
        y_tr, y_cal, y_te = train["churned"].to_numpy(), cal["churned"].to_numpy(), test["churned"].to_numpy()
        if y_tr.sum() == 0 or y_tr.sum() == len(y_tr):
            raise NotEnoughData("the training dates have no churn (or only churn): nothing to learn from",
                                add="more history: accounts that churned (and stayed) before the held-out dates")
        method = self._method(y_cal)
        fitted = {
            "model": _Fitted(_estimator(self.model, self.seed, cols), cols, method, train, y_tr, cal, y_cal),
            "logistic": _Fitted(logistic_pipeline(self.seed), cols, method, train, y_tr, cal, y_cal),
            "recency_only": _Fitted(logistic_pipeline(self.seed), ["recency_days"], method, train, y_tr, cal, y_cal),
        }
        self.evaluation_ = {name: evaluate(y_te, f.predict(test)) for name, f in fitted.items()}
        self.evaluated_ = fitted["model"]
        self.calibration_method_ = self.evaluated_.calibration  # what was applied, not what was chosen
        self.logistic_ = fitted["logistic"]
        self.heldout_ = test[["unit_id", "at", *cols, "churned"]].assign(risk=fitted["model"].predict(test))
        labelled = _cap(pd.concat([train, cal]), self.seed)
        self.reference_ = healthy_reference(labelled[cols], labelled["churned"])
        if self.refit:
            self.estimator_ = _Fitted(_estimator(self.model, self.seed, cols), cols, self._method(y_te), labelled,
                                      labelled["churned"].to_numpy(), test, y_te)
        else:
            self.estimator_ = fitted["model"]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn within the horizon, one per row."""
        with one_thread():
            return self.estimator_.predict(X)

    def reasons(self, X: pd.DataFrame, top: int = 3, estimator: _Fitted | None = None) -> list[list[dict]]:
        """The top features pushing each row's risk up (`reasons.reason_codes`)."""
        est = estimator or self.estimator_
        with one_thread():
            return reason_codes(est.predict, X[self.features_], self.reference_, top=top)

    def evaluation(self) -> dict:
        """{"horizon_days", "estimator" (gbm or logistic), "calibration", "scoring_calibration", "split",
        "model", "logistic", "recency_only"}: the last three are `evaluate` on the held-out dates.

        "calibration" is what the evaluated model actually applied: sigmoid, isotonic, or none when its
        calibration dates held no churn (or only churn); "scoring_calibration" the same for the model that
        scores accounts (refitted one slice later, calibrated on the held-out dates)."""
        return {"horizon_days": self.horizon_days, "estimator": self.model, "calibration": self.calibration_method_,
                "scoring_calibration": self.estimator_.calibration,
                "split": self.split_.as_dict(), **self.evaluation_}


def _cap(rows: pd.DataFrame, seed: int, limit: int | None = None) -> pd.DataFrame:
    """At most `limit` (MAX_FIT_ROWS) rows: a uniform sample drawn with `seed`, kept in input order."""
    limit = MAX_FIT_ROWS if limit is None else limit
    return rows if len(rows) <= limit else rows.sample(n=limit, random_state=seed).sort_index()


FITS = 0
"""ChurnModel.fit calls in this process: tests check that building a map fits no model."""


def _needs_revenue(definition) -> None:
    if definition.revenue is None:
        raise NotEnoughData("journeymap.yml defines no churn, so there is nothing to learn risk from",
                            add="a `revenue:` section with its `churn:` rule (docs/metrics/revenue.md)")


def extra_features(engine, definition) -> list:
    """The features beyond features.FeatureBuilder's own that the model reads: sentiment of customer texts."""
    from journeymap.insights.risk.features import text_sentiment

    return [f for f in [text_sentiment(engine, definition)] if f is not None]


def fit_model(engine, definition, extra: list, horizon_days: int = DEFAULT_HORIZON_DAYS, model: str = DEFAULT_MODEL,
              seed: int = DEFAULT_SEED, progress=None, snaps: pd.DataFrame | None = None) -> ChurnModel:
    """The churn model fitted on the workspace's monthly snapshots (`features.snapshots`; `snaps` when computed
    already, with `extra`)."""
    from journeymap.insights.risk.features import snapshots

    say = progress or (lambda _m, _f: None)
    if snaps is None:
        snaps = snapshots(engine, definition, horizon_days, extra=extra, progress=lambda m, f: say(m, 0.8 * f))
    say("fitting the churn model", 0.8)
    return ChurnModel(horizon_days=horizon_days, model=model, seed=seed).fit(snaps)


def scoring_frame(engine, definition, extra: list, at: dt.datetime | None = None
                  ) -> tuple[pd.DataFrame, dt.datetime, dt.datetime]:
    """(features of the accounts paying at `at`, `at`, the day after the last event); `at` defaults to the
    day after the last event."""
    from journeymap.insights.risk.features import FeatureBuilder

    with engine.scope():
        fb = FeatureBuilder(engine, definition, extra, materialize=False)
        last = fb.span()[1]
        if last is None:
            raise ValueError("the store has no account events: churn risk needs accounts (analysis level account)")
        end = _day_after(last)
        at = at or end
        now = fb.at(at)
    return now[now["paying"]].reset_index(drop=True), at, end


def ranked_accounts(fitted: ChurnModel, now: pd.DataFrame, top: int | None = None, explain_top: int | None = None,
                    explain_by: dict | None = None) -> tuple[list[dict], np.ndarray]:
    """([{unit_id, risk, mrr, stage, reasons}] riskiest first, the risk of every row of `now`)."""
    risk = fitted.predict_proba(now) if len(now) else np.zeros(0)
    order = np.argsort(-risk, kind="stable")[: top or len(now)]
    chosen = now.iloc[order].reset_index(drop=True)
    explain = _explained(chosen["unit_id"].tolist(), explain_top, explain_by)
    reasons = fitted.reasons(chosen.iloc[explain]) if explain else []
    why = dict(zip(explain, reasons, strict=True))
    accounts = [{"unit_id": r.unit_id, "risk": float(risk[i]), "mrr": _num(r.mrr), "stage": r.stage,
                 "reasons": why.get(k, [])} for k, (i, r) in enumerate(zip(order, chosen.itertuples(), strict=True))]
    return accounts, risk


def risk_report(engine, definition, at: dt.datetime | None = None, horizon_days: int = DEFAULT_HORIZON_DAYS,
                model: str = DEFAULT_MODEL, top: int | None = None, seed: int = DEFAULT_SEED, progress=None,
                explain_top: int | None = None, explain_by: dict | None = None, stored: bool = True) -> dict:
    """Score every account paying at `at` (default: the day after the last event): {"at", "horizon_days",
    "accounts": [{unit_id, risk, mrr, stage, reasons}], "evaluation", "model_version", "fitted_at", "scores",
    "notes", ...}.

    With `stored` (default) and the default options, the scores the last refresh wrote are read
    (insights.risk.stored: no model is fitted); otherwise, or when they are not current, a model is fitted on
    monthly snapshots now and the notes say why.

    Reasons cost one prediction per feature group per account. `explain_top` limits them to the riskiest
    `explain_top` accounts, overall and within each group of `explain_by` (unit_id -> e.g. persona); the
    others get `reasons: []`. Default: every account listed. Stored scores carry reasons for every account."""
    _needs_revenue(definition)
    say = progress or (lambda _m, _f: None)
    why = None
    if stored:
        found, why = stored_report(engine, definition, at=at, horizon_days=horizon_days, model=model, seed=seed, top=top)
        if found is not None:
            say("done", 1.0)
            return found
    say("scoring what customers wrote", 0.0)
    with engine.scope():  # the scored texts' table (Engine.in_memory) goes with it
        extra = extra_features(engine, definition)
        fitted = fit_model(engine, definition, extra, horizon_days, model, seed, progress=say)
        fitted_at = _utc_now()
        say("scoring accounts", 0.9)
        now, at, end = scoring_frame(engine, definition, extra, at)
    accounts, risk = ranked_accounts(fitted, now, top, explain_top, explain_by)
    say("done", 1.0)
    return {"at": at.isoformat(), "horizon_days": horizon_days, "model": model, "paying_accounts": int(len(now)),
            "mean_risk": float(risk.mean()) if len(risk) else None, "accounts": accounts,
            "evaluation": fitted.evaluation(), "model_version": None, "fitted_at": fitted_at,
            "trained_through": end.isoformat(), "scores": "computed",
            "notes": [f"a model was fitted now for this request: {why}" if why else "a model was fitted now for this request"]}


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _explained(ranked: list, top: int | None, by: dict | None) -> list[int]:
    """Positions in `ranked` (riskiest first) that get reasons: all, or the first `top` overall and per group."""
    if top is None:
        return list(range(len(ranked)))
    keep, seen = set(range(min(top, len(ranked)))), {}
    for k, unit in enumerate(ranked):
        group = (by or {}).get(unit)
        if group is not None and seen.get(group, 0) < top:
            seen[group] = seen.get(group, 0) + 1
            keep.add(k)
    return sorted(keep)


def _day_after(ts: dt.datetime) -> dt.datetime:
    return dt.datetime(ts.year, ts.month, ts.day) + dt.timedelta(days=1)


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)
