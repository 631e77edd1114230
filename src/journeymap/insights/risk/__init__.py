"""Risk and health of accounts: point-in-time features, the churn model with its reason codes, health scores.

- ``features``: point-in-time account features (every feature at ``at`` reads only events before ``at``).
- ``churn_model``: churn risk per account with held-out accuracy (``journeymap risk``).
- ``reasons``: model-agnostic reason codes for one account's risk.
- ``health``: health score 0-100, backtested against churn, and expansion signals (``journeymap health``).

Docs: docs/metrics/health-and-risk.md. Helpers with generic names (``health.score``, ``health.band``,
``churn_model.evaluate``, ``reasons.describe``) stay importable from their modules only.
"""

from __future__ import annotations

from journeymap.insights.risk.churn_model import ChurnModel, TimeSplit, risk_report, time_split
from journeymap.insights.risk.features import FeatureBuilder, as_datetime, feature_columns, features_at, snapshots
from journeymap.insights.risk.health import expansion_signals, health_report
from journeymap.insights.risk.reasons import healthy_reference, reason_codes

__all__ = [
    "ChurnModel",
    "FeatureBuilder",
    "TimeSplit",
    "as_datetime",
    "expansion_signals",
    "feature_columns",
    "features_at",
    "health_report",
    "healthy_reference",
    "reason_codes",
    "risk_report",
    "snapshots",
    "time_split",
]
