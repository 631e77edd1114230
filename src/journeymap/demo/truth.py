"""The ground truth: per account, what really happened and which planted effects it was exposed to.

Analyses of the exports should recover these facts; tests/test_demo.py checks that they hold.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts
from journeymap.demo.billing import Billing
from journeymap.demo.churn import Churn
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.support import Tickets


def _ts(x: np.ndarray, ok: np.ndarray | None = None) -> pa.Array:
    ok = (x != NA) & (x <= b.END) if ok is None else ok & (x != NA) & (x <= b.END)
    return pa.array(np.where(ok, x, 0) * 1_000_000, type=pa.timestamp("us"), mask=~ok)


def truth_table(acc: Accounts, f: Funnel, ch: Churn, bill: Billing, t: Tickets, life_end: np.ndarray,
                n_users: np.ndarray) -> pa.Table:
    acquired = f.acquired & (f.acquired_at <= b.END)
    customer = f.paid & (f.paid_at <= b.END)
    churned = ch.churn_at != NA
    alive = np.minimum(np.where(life_end == NA, b.END, life_end), b.END)
    integ = f.integration_week1 & (f.integration_at < alive) & acquired
    activated = f.activated & (f.activated_at < alive) & acquired
    hi = t.high_effort
    high_count = np.bincount(t.account[hi], minlength=acc.n)
    reason = np.where(ch.voluntary, np.array(b.CANCEL_FEEDBACK)[np.maximum(bill.churn_feedback, 0)], "payment_failed")
    return pa.table(
        {
            "account_id": acc.ids,
            "company": pa.array(acc.names),
            "persona": pa.array(np.array(b.PERSONAS)[acc.persona]),
            "employees": acc.employees,
            "industry": pa.array(np.array(b.INDUSTRIES)[acc.industry]),
            "region": pa.array(np.array(b.REGIONS)[acc.region]),
            "first_touch_channel": pa.array(np.array(b.CHANNELS)[acc.channel]),
            "first_seen_at": _ts(acc.first_touch),
            "lead_at": _ts(f.lead_at),
            "requested_demo": f.demo & (f.lead_at <= b.END),
            "saw_confusing_pricing": f.saw_calculator & (f.eval_at <= b.END),
            "acquired": acquired,
            "signup_at": _ts(f.acquired_at, acquired),
            "started_trial": f.trial & acquired,
            "trial_expired": (f.trial_expired_at != NA) & (f.trial_expired_at <= b.END),
            "deal_lost": (f.lost_at != NA) & (f.lost_at <= b.END),
            "integration_week1": integ,
            "activated": activated,
            "activated_at": _ts(f.activated_at, activated),
            "became_customer": customer,
            "customer_since": _ts(f.paid_at, customer),
            "churned": churned,
            "churn_time": _ts(ch.churn_at),
            "churn_type": pa.array(np.where(ch.voluntary, "voluntary", "involuntary"), mask=~churned),
            "churn_reason": pa.array(reason, mask=~churned),
            "churned_within_60d_of_high_effort": ch.after_high_effort,
            "had_high_effort_ticket": high_count > 0,
            "high_effort_tickets": high_count,
            "tickets": np.bincount(t.account, minlength=acc.n),
            "users": n_users,
            "plan": pa.array(np.array(b.PLANS)[bill.plan_end], mask=~customer),
            "seats": pa.array(bill.seats_end, mask=~customer),
            "mrr_start": np.round(bill.mrr_start, 2),
            "mrr": np.round(np.where(customer, bill.mrr_end, 0.0), 2),
            "expansion_mrr": np.round(bill.expansion_mrr, 2),
        }
    )


def ticket_truth(t: Tickets, acc: Accounts) -> pa.Table:
    """Every ticket with the effort the customer really had (the export only shows answered surveys)."""
    return pa.table(
        {
            "ticket_id": 1000 + np.arange(len(t.account)),
            "account_id": acc.ids.take(pa.array(t.account)),
            "created_at": _ts(t.created_at),
            "solved_at": _ts(t.solved_at),
            "effort": t.effort,
            "effort_reported": t.surveyed,
            "high_effort": t.high_effort,
        }
    )


def experiment_truth(f: Funnel, onboarding: np.ndarray) -> dict:
    """The two experiments of the demo's journeymap.yml, as planted: the pricing page's seat calculator
    multiplies evaluation -> acquisition by EFFECT_SEAT_CALCULATOR_ACQUIRE for every evaluator who sees it (so
    acquisition, and paying, which follows acquisition whatever the arm, fall by 60% relative to the tiers
    page), with the split it was meant to have; the onboarding checklist has no effect and a broken split."""
    exposed = f.viewed_pricing & (f.eval_at <= b.END)
    return {
        "pricing_page": {
            "control": b.PRICING_VARIANTS[0], "treatment": b.PRICING_VARIANTS[1],
            "split_intended": {b.PRICING_VARIANTS[0]: 1 - b.P_SEAT_CALCULATOR, b.PRICING_VARIANTS[1]: b.P_SEAT_CALCULATOR},
            "split_delivered": {b.PRICING_VARIANTS[0]: 1 - b.P_SEAT_CALCULATOR,
                                b.PRICING_VARIANTS[1]: b.P_SEAT_CALCULATOR},
            "true_relative_lift": {"acquired": b.EFFECT_SEAT_CALCULATOR_ACQUIRE - 1,
                                   "paid": b.EFFECT_SEAT_CALCULATOR_ACQUIRE - 1},
            "exposed_accounts": int(exposed.sum()),
            "exposed_in_treatment": int((exposed & f.calculator).sum()),
        },
        "onboarding_checklist": {
            "control": b.ONBOARDING_VARIANTS[0], "treatment": b.ONBOARDING_VARIANTS[1],
            "split_intended": {v: b.ONBOARDING_SPLIT_INTENDED for v in b.ONBOARDING_VARIANTS},
            "split_delivered": {b.ONBOARDING_VARIANTS[0]: 1 - b.P_ONBOARDING_CHECKLIST,
                                b.ONBOARDING_VARIANTS[1]: b.P_ONBOARDING_CHECKLIST},
            "true_relative_lift": {m: 0.0 for m in ("time_to_value", "retained", "first_week_funnel", "tickets", "mrr")},
            "accounts_in_treatment": int(onboarding.sum()),
        },
    }


def write_experiment_truth(path, f: Funnel, onboarding: np.ndarray):
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(experiment_truth(f, onboarding), indent=2) + "\n", encoding="utf-8")
    return path
