"""From first touch to paying customer: evaluation, the pricing experiment, trials, activation, deals.

All times are unix seconds; a time is `NA` (-1) where the step never happens. Steps after
`business.END` are censored later, where events are written: the data ends, the business does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts

NA = -1

# how the champion first leaves an email
FORM_NONE, FORM_EBOOK, FORM_WEBINAR, FORM_DEMO, FORM_SIGNUP = range(5)
FORM_EVENTS = (None, "ebook_downloaded", "webinar_registered", "demo_requested", None)


@dataclass
class Funnel:
    eval_at: np.ndarray
    viewed_pricing: np.ndarray
    calculator: np.ndarray  # the champion's browser is in the seat-calculator arm
    saw_calculator: np.ndarray  # viewed pricing during evaluation, in the calculator arm (planted effect)
    demo: np.ndarray
    form: np.ndarray  # FORM_*
    lead_at: np.ndarray  # first known (email left)
    mql_at: np.ndarray
    sql_at: np.ndarray
    opportunity_at: np.ndarray
    acquired: np.ndarray  # trial or purchase happens (possibly after END)
    acquired_at: np.ndarray
    trial: np.ndarray
    trial_end: np.ndarray
    integration_week1: np.ndarray
    integration_at: np.ndarray  # first integration connected (week one or later), or NA
    activated: np.ndarray
    activated_at: np.ndarray
    paid: np.ndarray
    paid_at: np.ndarray
    trial_expired_at: np.ndarray
    lost_at: np.ndarray  # deal lost in the CRM


def simulate_funnel(rng: np.random.Generator, acc: Accounts) -> Funnel:
    n, p = acc.n, acc.persona
    day = float(b.DAY)
    eval_at = acc.first_touch + (rng.exponential(b.DAYS_TO_EVAL[p]) * day).astype(np.int64) + 600
    viewed_pricing = rng.random(n) < b.P_VIEW_PRICING[p]
    calculator = rng.random(n) < b.P_SEAT_CALCULATOR
    saw_calculator = viewed_pricing & calculator
    demo = rng.random(n) < b.P_DEMO_REQUEST[p]

    p_acq = b.P_ACQUIRE[p] * np.where(saw_calculator, b.EFFECT_SEAT_CALCULATOR_ACQUIRE, 1.0)
    acquired = rng.random(n) < p_acq

    # how the champion becomes known: the demo form, a webinar, an ebook, or the signup itself
    form = np.where(demo, FORM_DEMO, np.where(acc.channel == b.CHANNELS.index("events"), FORM_WEBINAR, FORM_EBOOK))
    signup_first = ~demo & acquired & (form == FORM_EBOOK) & (rng.random(n) < 0.7)
    form = np.where(signup_first, FORM_SIGNUP, form)
    lead_at = np.where(
        form == FORM_WEBINAR,
        acc.first_touch + 60,
        eval_at + (rng.uniform(0.05, 2.0, n) * day).astype(np.int64),
    )

    # the sales pipeline (demo requesters): MQL -> SQL -> opportunity -> won / lost
    mql = demo | (rng.random(n) < 0.35)
    mql_at = np.where(mql, lead_at + (rng.uniform(0.2, 3.0, n) * day).astype(np.int64), NA)
    sql_at = np.where(demo, mql_at + (rng.uniform(0.5, 4.0, n) * day).astype(np.int64), NA)
    opportunity = demo & (acquired | (rng.random(n) < 0.75))
    opportunity_at = np.where(opportunity, sql_at + (rng.uniform(2.0, 10.0, n) * day).astype(np.int64), NA)

    acquired_at = np.where(
        demo,
        np.maximum(opportunity_at, sql_at) + (rng.uniform(4.0, 25.0, n) * day).astype(np.int64),
        eval_at + (rng.exponential(2.5, n) * day).astype(np.int64) + 1800,
    )
    acquired_at = np.where(signup_first, lead_at, acquired_at)
    acquired_at = np.where(acquired, np.maximum(acquired_at, lead_at + 300), NA)
    trial = acquired & (rng.random(n) < b.P_TRIAL[p])
    trial_len = b.TRIAL_DAYS[p] * b.DAY
    trial_end = np.where(trial, acquired_at + trial_len, NA)

    integration_week1 = acquired & (rng.random(n) < b.P_INTEGRATION_WEEK1)
    later = acquired & ~integration_week1 & (rng.random(n) < b.P_INTEGRATION_LATER)
    integration_at = np.where(
        integration_week1,
        acquired_at + (rng.uniform(0.02, 6.9, n) * day).astype(np.int64),
        np.where(later, acquired_at + ((7.0 + rng.exponential(25.0, n)) * day).astype(np.int64), NA),
    )

    activated = acquired & (rng.random(n) < b.P_ACTIVATE[p])
    ttv = rng.lognormal(np.log(b.TTV_MEDIAN_DAYS[p]), b.TTV_SIGMA) * day
    ttv = np.where(trial, np.minimum(ttv, rng.uniform(0.4, 0.95, n) * trial_len), ttv)
    activated_at = np.where(activated, acquired_at + ttv.astype(np.int64), NA)

    convert = rng.random(n) < b.P_CONVERT[activated.astype(int), p]
    paid = acquired & (~trial | convert)
    early = activated & (rng.random(n) < 0.25)
    converted_at = np.where(early, np.minimum(trial_end, activated_at + (rng.uniform(0.1, 3.0, n) * day).astype(np.int64)),
                            trial_end)
    paid_at = np.where(paid, np.where(trial, converted_at, acquired_at), NA)
    trial_expired_at = np.where(trial & ~paid, trial_end, NA)
    lost = demo & opportunity & ~paid
    lost_at = np.where(
        lost,
        np.where(trial, trial_end + (rng.uniform(0.0, 4.0, n) * day).astype(np.int64),
                 opportunity_at + (rng.uniform(10.0, 45.0, n) * day).astype(np.int64)),
        NA,
    )
    return Funnel(eval_at, viewed_pricing, calculator, saw_calculator, demo, form, lead_at, mql_at, sql_at,
                  opportunity_at, acquired, acquired_at, trial, trial_end, integration_week1, integration_at,
                  activated, activated_at, paid, paid_at, trial_expired_at, lost_at)


def life_end(f: Funnel, churn_at: np.ndarray) -> np.ndarray:
    """When an acquired account stops using the product: churn, trial expiry, or the end of the data."""
    end = np.full(len(f.acquired), b.END, dtype=np.int64)
    end = np.where(f.trial_expired_at != NA, np.minimum(f.trial_expired_at, b.END), end)
    end = np.where(churn_at != NA, np.minimum(churn_at, b.END), end)
    return np.where(f.acquired, end, NA)
