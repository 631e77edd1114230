"""Reason codes: why one account's churn risk is high, for any model.

For each group of related features (recency, support effort, ...) the account's values are replaced by
the healthy reference (the median of accounts that did not churn, in the training rows) and the model
scores it again; the drop in predicted risk is that group's contribution. The top groups with a
positive drop are the account's reasons. Model-agnostic: only `predict_proba` is called.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# Feature groups moved together (a group's first feature present is its headline).
GROUPS: dict[str, tuple[str, ...]] = {
    "recency": ("recency_days",),
    "frequency": ("active_days_30d", "active_days_90d"),
    "trend": ("activity_trend",),
    "depth": ("key_features_90d", "key_feature_adoption"),
    "users": ("seat_utilisation", "active_users_30d", "seats"),
    "support_load": ("tickets_90d",),
    "support_effort": ("high_effort_tickets_60d", "high_effort_days_ago", "max_effort_90d", "mean_effort_90d", "last_ces"),
    "nps": ("last_nps",),
    "csat": ("last_csat",),
    "sentiment": ("sentiment", "negative_texts_90d"),
    "failed_payments": ("failed_payments_60d",),
    "downgrades": ("downgrades_90d",),
    "mrr": ("mrr",),
    "tenure": ("tenure_days",),
}
PREFIX_GROUPS = {"adopted_": "depth", "stage_": "stage", "early_": "first_week"}


def feature_groups(columns: list[str]) -> dict[str, list[str]]:
    """Group name -> its columns, for the columns a model uses; unknown columns are their own group."""
    out: dict[str, list[str]] = {}
    for c in columns:
        group = next((g for g, cols in GROUPS.items() if c in cols), None)
        group = group or next((g for p, g in PREFIX_GROUPS.items() if c.startswith(p)), c)
        out.setdefault(group, []).append(c)
    return out


def healthy_reference(X: pd.DataFrame, churned: pd.Series) -> pd.Series:
    """The median of each feature over rows that did not churn (NaN ignored)."""
    return X[~churned.astype(bool).to_numpy()].median(numeric_only=True)


def reason_codes(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, reference: pd.Series,
                 top: int = 3, base: np.ndarray | None = None) -> list[list[dict]]:
    """Per row of X: up to `top` reasons, largest risk drop first:
    {group, feature, value, reference, risk_drop, text}. Only groups whose drop is positive count."""
    base = np.asarray(predict(X) if base is None else base, dtype=float)
    groups = feature_groups(list(X.columns))
    names = list(groups)
    copies = []
    for g in names:  # one copy of X per group, with the group at its reference; scored in one call
        Xr = X.copy()
        for c in groups[g]:
            Xr[c] = reference.get(c, np.nan)
        copies.append(Xr)
    if names and len(X):
        moved = np.asarray(predict(pd.concat(copies, ignore_index=True)), dtype=float).reshape(len(names), len(X))
        matrix = (base[None, :] - moved).T
    else:
        matrix = np.zeros((len(X), len(names)))
    out = []
    records = X.to_dict("records")  # one conversion: a row read with iloc costs more than its reasons
    for i in range(len(X)):
        order = np.argsort(-matrix[i])[:top]
        row = []
        for j in order:
            if matrix[i, j] <= 1e-6:
                break
            g = names[j]
            feature = _headline(g, groups[g], records[i], reference)
            value, ref = _num(records[i][feature]), _num(reference.get(feature, np.nan))
            row.append({"group": g, "feature": feature, "value": value, "reference": ref,
                        "risk_drop": float(matrix[i, j]), "text": describe(feature, value, ref)})
        out.append(row)
    return out


def _headline(group: str, cols: list[str], row: dict, reference: pd.Series) -> str:
    if group == "stage":
        on = [c for c in cols if row[c] == 1]
        return on[0] if on else cols[0]
    for c in cols:  # the first column that is off its reference
        v, r = row[c], reference.get(c, np.nan)
        if not (pd.isna(v) and pd.isna(r)) and v != r:
            return c
    return cols[0]


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def _n(v: float | None, digits: int = 0) -> str:
    """A number as people write it: 41, 2, 0.4 (one decimal below 1 when no digits are asked for)."""
    if v is None:
        return "none"
    if digits == 0 and 0 < abs(v) < 0.95:
        return f"{v:.1f}"
    return f"{v:,.{digits}f}"


def _count(v: float | None, one: str, many: str) -> str:
    return f"{_n(v)} {one if v == 1 else many}"


def describe(feature: str, value: float | None, ref: float | None) -> str:
    """A sentence a customer success manager can read, e.g. 'no product activity for 41 days (typical 2)'.

    >>> describe("recency_days", 41.2, 2.1)
    'no product activity for 41 days (typical 2)'
    """
    typical = f"(typical {_n(ref)})"
    texts = {
        "recency_days": f"no product activity for {_n(value)} days {typical}",
        "active_days_30d": f"active on {_n(value)} of the last 30 days {typical}",
        "active_days_90d": f"active on {_n(value)} of the last 90 days {typical}",
        "activity_trend": f"usage at {_n(value, 1)}x the month before (typical {_n(ref, 1)}x)",
        "key_features_90d": f"{_count(value, 'key feature', 'key features')} used in 90 days {typical}",
        "key_feature_adoption": f"{_pct(value)} of key features ever used (typical {_pct(ref)})",
        "seat_utilisation": f"{_pct(value)} of seats active in 30 days (typical {_pct(ref)})",
        "active_users_30d": f"{_count(value, 'active user', 'active users')} in 30 days {typical}",
        "seats": f"{_n(value)} seats {typical}",
        "tickets_90d": f"{_count(value, 'support ticket', 'support tickets')} in 90 days {typical}",
        "high_effort_tickets_60d": f"{_count(value, 'high-effort support ticket', 'high-effort support tickets')} "
                                   f"in 60 days {typical}",
        "high_effort_days_ago": f"a high-effort support ticket {_n(value)} days ago (typical: none in 90 days)",
        "max_effort_90d": f"a support ticket with effort {_n(value)} of 7 in 90 days {typical}",
        "mean_effort_90d": f"mean ticket effort {_n(value, 1)} of 7 in 90 days (typical {_n(ref, 1)})",
        "last_nps": f"last NPS answer {_n(value)} {typical}",
        "last_csat": f"last CSAT {_n(value)} of 5 {typical}",
        "last_ces": f"last effort score (CES) {_n(value)} of 7 {typical}",
        "sentiment": f"comment sentiment {_n(value, 2)} (typical {_n(ref, 2)})",
        "negative_texts_90d": f"{_count(value, 'negative comment', 'negative comments')} in 90 days {typical}",
        "failed_payments_60d": f"{_count(value, 'failed payment', 'failed payments')} in 60 days {typical}",
        "downgrades_90d": f"{_count(value, 'downgrade', 'downgrades')} in 90 days {typical}",
        "mrr": f"MRR {_n(value)} {typical}",
        "tenure_days": f"customer for {_n(value)} days {typical}",
    }
    if feature in texts:
        return texts[feature]
    if feature.startswith("stage_"):
        return f"in stage {feature.removeprefix('stage_')}"
    if feature.startswith("early_"):
        did = "did" if value else "did not"
        return f"{did} use {feature.removeprefix('early_')} in the first week ({_pct(ref)} of healthy accounts did)" \
            if ref not in (0.0, 1.0) else f"{did} use {feature.removeprefix('early_')} in the first week " \
            f"(healthy accounts typically {'did' if ref else 'did not'})"
    if feature.startswith("adopted_"):
        return f"{'uses' if value else 'never used'} {feature.removeprefix('adopted_')}"
    return f"{feature} {_n(value, 2)} (typical {_n(ref, 2)})"


def _pct(v: float | None) -> str:
    return "none" if v is None else f"{100 * v:.0f}%"
