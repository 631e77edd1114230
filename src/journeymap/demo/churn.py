"""Who churns, when and why: a daily churn hazard per paying account.

The hazard is the persona's base monthly churn (business.MONTHLY_CHURN), split into a voluntary and
an involuntary (failed payment) part, with two planted effects:

    h(day) = base * m_int * ((1 - s) * m_effort(day) + s)

where s = business.INVOLUNTARY_SHARE, m_int = 0.5 for accounts that connected an integration in their
first week (both parts: engaged accounts also fix their cards), and m_effort = 3.6 on the 60 days
after any of the account's tickets was solved with effort >= 5 (voluntary part only). The churn day
is the first day whose cumulative hazard passes an Exp(1) draw; all accounts are drawn at once over
one flat (account, day) grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeymap.demo import business as b
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.support import Tickets


@dataclass
class Churn:
    churn_at: np.ndarray  # NA unless churned by the end of the data
    voluntary: np.ndarray  # meaningful where churned
    after_high_effort: np.ndarray  # churned inside a high-effort window


def monthly_to_daily(monthly: np.ndarray | float) -> np.ndarray:
    """A monthly probability as a daily hazard: -ln(1 - p) / 30.44."""
    return -np.log1p(-np.asarray(monthly, dtype=float)) / (b.MONTH / b.DAY)


def simulate_churn(rng: np.random.Generator, persona: np.ndarray, f: Funnel, tickets: Tickets) -> Churn:
    n = len(persona)
    payer = f.paid & (f.paid_at < b.END)
    start = np.where(payer, f.paid_at, b.END)
    days = np.where(payer, np.ceil((b.END - start) / b.DAY).astype(np.int64), 0)
    offset = np.concatenate([[0], np.cumsum(days)[:-1]])
    total = int(days.sum())
    if total == 0:
        none = np.zeros(n, dtype=bool)
        return Churn(np.full(n, NA, dtype=np.int64), none, none)

    # windows of raised voluntary hazard after high-effort tickets, marked on the flat grid
    hi = tickets.high_effort & (tickets.solved_at != NA) & payer[tickets.account]
    acc_t = tickets.account[hi]
    first_day = np.floor((tickets.solved_at[hi] - start[acc_t]) / b.DAY).astype(np.int64) + 1
    lo_day = np.clip(first_day, 0, days[acc_t])
    hi_day = np.clip(first_day + b.HIGH_EFFORT_WINDOW_DAYS, 0, days[acc_t])
    ok = hi_day > lo_day
    diff = np.zeros(total + 1, dtype=np.int64)
    np.add.at(diff, offset[acc_t[ok]] + lo_day[ok], 1)
    np.add.at(diff, offset[acc_t[ok]] + hi_day[ok], -1)
    elevated = np.cumsum(diff)[:total] > 0

    cell_acc = np.repeat(np.arange(n), days)
    base = monthly_to_daily(b.MONTHLY_CHURN)[persona] * np.where(f.integration_week1, b.EFFECT_INTEGRATION_WEEK1_CHURN, 1.0)
    vol = base[cell_acc] * (1.0 - b.INVOLUNTARY_SHARE) * np.where(elevated, b.EFFECT_HIGH_EFFORT_CHURN, 1.0)
    inv = base[cell_acc] * b.INVOLUNTARY_SHARE
    hazard = vol + inv

    cum = np.cumsum(hazard)
    before = np.where(offset > 0, cum[np.maximum(offset - 1, 0)], 0.0)
    threshold = before + rng.exponential(1.0, n)
    cell = np.searchsorted(cum, threshold, side="left")
    churned = payer & (cell < offset + days)
    cell = np.where(churned, cell, 0)
    day_in = cell - offset
    churn_at = start + day_in * b.DAY + (rng.random(n) * b.DAY).astype(np.int64)
    churned &= churn_at <= b.END
    voluntary = rng.random(n) < vol[cell] / hazard[cell]
    after = churned & elevated[cell]
    return Churn(np.where(churned, churn_at, NA), churned & voluntary, after)
