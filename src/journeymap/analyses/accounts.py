"""`revenue`, `clv`, `risk` and `health`: analyses of paying accounts (docs/metrics/revenue.md, clv.md,
health-and-risk.md). Their unit is the account: MRR, churn and health belong to accounts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, field_validator

from journeymap.analyses.base import MAX_INT, Analysis, RowsView, Day, Duration, Field, Output, Params, commas, days

AT_HELP = "Scoring date (YYYY-MM-DD); default: the day after the last event."
HORIZON_HELP = "Churn within this long after the scoring date, e.g. 90d."


class RevenueParams(Params):
    pass


class RevenueOutput(Output):
    months: list[dict] = Field(description="MRR bridge per month: start, new, reactivation, expansion, contraction, "
                                           "churned, end, logo churn, GRR, NRR.")
    churn: dict = Field(description="Churn by kind, reason, plan, persona and stage.")


def _revenue(ws, p: RevenueParams, progress=None) -> dict:
    from journeymap.engine.revenue import churn_breakdown, mrr_bridge

    return {**mrr_bridge(ws.engine, ws.definition), "churn": churn_breakdown(ws.engine, ws.definition)}


class ClvParams(Params):
    margin: float = Field(0.8, gt=0, le=1, description="Gross margin on MRR, between 0 and 1.")
    discount: float = Field(0.10, ge=0, le=10, description="Annual discount rate, e.g. 0.1 for 10%.")
    spend: str | None = Field(None, description="CSV of acquisition spend: channel, spend[, month YYYY-MM]; adds CAC and "
                                                "LTV:CAC. A file on the machine that runs journeymap (CLI and Python only).",
                              json_schema_extra={"surfaces": ["cli", "python"]})
    touch_sources: commas(str) = Field(["marketing", "crm"], description="Sources whose first event with a channel "
                                                                          "names the acquisition channel.")

    @field_validator("spend")
    @classmethod
    def _file(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        return path


class ClvOutput(Output):
    model_config = ConfigDict(extra="allow")  # the fitted model's parameters, documented in docs/metrics/clv.md
    accounts: int = Field(description="Paying accounts.")
    clv: float | None = Field(description="CLV of a new account.")
    segments: dict = Field(description="CLV by persona and by channel.")
    notes: list[str] = Field(description="What the estimate could not use, and why.")


def _clv(ws, p: ClvParams, progress=None) -> dict:
    from journeymap.insights.value import lifetime_value

    return lifetime_value(ws.engine, ws.definition, margin=p.margin, annual_discount=p.discount, spend=p.spend,
                          touch_sources=tuple(p.touch_sources))


def _day_or_more(text: str) -> str:
    if days(text) < 1:
        raise ValueError("must be at least 1d")
    return text


Horizon = Annotated[Duration, AfterValidator(_day_or_more)]


def _at(day: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(day) if day else None


class RiskParams(Params):
    """Without --at, --horizon and --model the scores the last refresh wrote are read (no model is fitted);
    any other value fits a model now. The defaults are insights.risk.stored.DEFAULTS, the options of the
    model fitted at refresh (kept as literals here: importing the model would load scikit-learn for every
    command; tests/test_risk_state.py checks they agree)."""

    at: Day = Field(None, description=AT_HELP + " Another day than the stored scores' fits a model now.")
    top: int = Field(20, ge=0, le=MAX_INT, description="Accounts to list, riskiest first (0: all).")
    horizon: Horizon = Field("90d", description=HORIZON_HELP + " Another than the default fits a model now.")
    model: Literal["gbm", "logistic"] = Field("gbm", description="gbm or logistic (another than the default fits a "
                                                               "model now).")


class RiskOutput(Output):
    at: str = Field(description="The scoring date.")
    horizon_days: int = Field(description="Churn within this many days counts.")
    model: str = Field(description="The estimator.")
    paying_accounts: int = Field(description="Accounts paying at the scoring date.")
    mean_risk: float | None = Field(description="Mean churn risk of the paying accounts.")
    accounts: list[dict] = Field(description="Riskiest first: unit_id, risk, mrr, stage, reasons.")
    evaluation: dict = Field(description="Held-out ROC-AUC, PR-AUC, Brier and calibration, beside two baselines.")
    scores: Literal["stored", "computed"] = Field(
        description="stored: written by the last refresh with the stored model; computed: a model fitted now "
                    "(options other than the defaults, or no current stored scores: `notes` says why).")
    model_version: int | None = Field(description="The stored model's version (state_models); null when fitted now.")
    fitted_at: str = Field(description="When the model was fitted (UTC).")
    trained_through: str = Field(description="The day after the latest event of the data the model was fitted on.")
    notes: list[str] = Field(description="Where the scores come from, and why a model was fitted now.")


def _risk(ws, p: RiskParams, progress=None) -> dict:
    from journeymap.insights.risk import risk_report

    return risk_report(ws.engine, ws.definition, _at(p.at), round(days(p.horizon)), p.model, p.top or None,
                       progress=progress)


class HealthParams(Params):
    at: Day = Field(None, description=AT_HELP)
    horizon: Horizon = Field("90d", description=HORIZON_HELP)
    weights: Literal["auto", "config", "learned"] = Field(
        "auto", description="auto (config when health.components are given), config or learned.")


class HealthOutput(Output):
    at: str = Field(description="The scoring date.")
    horizon_days: int = Field(description="The churn horizon of the backtest.")
    weights: dict = Field(description="Where the weights come from and the components.")
    bands: list[dict] = Field(description="Accounts per band now, with the band's backtest churn rate.")
    backtest: dict = Field(description="The score against churn on held-out dates: ROC-AUC and churn per band.")
    accounts: list[dict] = Field(description="Every paying account, least healthy first.")
    expansion: dict = Field(description="Expansion signals: seat utilisation and usage growth.")
    scores: Literal["stored", "computed"] = Field(
        description="stored: written by the last refresh under the weights fitted with the stored churn model; "
                    "computed: now (options other than the defaults, or no current stored scores: `notes` says why).")
    model_version: int | None = Field(description="The stored churn model whose snapshots fitted the weights and "
                                                  "the backtest (state_models); null when computed now.")
    notes: list[str] = Field(description="Where the scores come from, and why they were computed now.")


def _health(ws, p: HealthParams, progress=None) -> dict:
    from journeymap.insights.risk import health_report

    return health_report(ws.engine, ws.definition, _at(p.at), round(days(p.horizon)), p.weights, progress=progress)


REVENUE = Analysis("revenue", "MRR bridge per month, gross and net revenue retention, logo churn, and churn by kind, "
                   "reason, plan, persona and stage.", RevenueParams, _revenue, RevenueOutput, "docs/metrics/revenue.md",
                   unit="account")
CLV = Analysis("clv", "Lifetime value of subscription accounts by persona and channel (shifted-beta-geometric), and "
               "LTV:CAC with a spend file.", ClvParams, _clv, ClvOutput, "docs/metrics/clv.md", unit="account")
RISK = Analysis("risk", "Churn risk per paying account, riskiest first, with reasons, and the model's held-out "
                "evaluation against two baselines.", RiskParams, _risk, RiskOutput, "docs/metrics/health-and-risk.md",
                unit="account", slow=True)
HEALTH = Analysis("health", "Health score 0-100 per paying account with its band, the backtest against churn, and "
                  "expansion signals.", HealthParams, _health, HealthOutput, "docs/metrics/health-and-risk.md",
                  unit="account", slow=True, view=RowsView)
