"""Support tickets: drawn over each account's potential life (churn is decided after, partly by them),
then cut at churn and written as a Zendesk-like ticket export, one row per ticket."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.phrases import ticket_subjects
from journeymap.demo.writers import iso


@dataclass
class Tickets:
    account: np.ndarray
    requester: np.ndarray  # index into People
    created_at: np.ndarray
    solved_at: np.ndarray  # NA while still open at the end of the data
    theme: np.ndarray  # index into business.TICKET_THEMES
    effort: np.ndarray  # 1-7, the effort the customer had (latent; reported only when surveyed)
    surveyed: np.ndarray  # the post-solve survey (CSAT + effort) was answered
    csat: np.ndarray  # 1-5 where surveyed
    via: np.ndarray

    def take(self, keep: np.ndarray) -> Tickets:
        return Tickets(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    @property
    def high_effort(self) -> np.ndarray:
        return self.effort >= b.HIGH_EFFORT_MIN


VIA = ("email", "web", "chat")


def draw_tickets(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel) -> Tickets:
    """Tickets while in trial or paying, as if nobody churned (churn.py decides that next)."""
    start = f.acquired_at
    potential_end = np.where(f.paid, b.END, np.where(f.trial, np.minimum(f.trial_end, b.END), NA))
    live = f.acquired & (start < b.END) & (potential_end > start)
    months = np.where(live, (potential_end - start) / b.MONTH, 0.0)
    count = rng.poisson(b.TICKETS_MONTHLY[acc.persona] * months)
    account = np.repeat(np.arange(acc.n), count)
    n = len(account)
    span = (potential_end - start)[account]
    created = start[account] + (rng.random(n) * span).astype(np.int64)
    theme = rng.choice(len(b.TICKET_THEMES), size=n, p=b.TICKET_THEME_WEIGHTS)
    # support gets a little better over the window (CES improves year over year, not by the 15% target)
    trend = 1.1 - 0.2 * (created - b.START) / (b.END - b.START)
    high = rng.random(n) < b.P_HIGH_EFFORT_BY_THEME[theme] * b.HIGH_EFFORT_BY_PERSONA[acc.persona[account]] * trend
    effort = np.where(
        high,
        rng.choice([5, 6, 7], size=n, p=[0.5, 0.3, 0.2]),
        rng.choice([1, 2, 3, 4], size=n, p=[0.30, 0.35, 0.22, 0.13]),
    )
    hours = np.where(high, rng.lognormal(np.log(60.0), 0.7, n), rng.lognormal(np.log(7.0), 1.0, n))
    solved = created + (hours * 3600).astype(np.int64)
    solved = np.where(solved <= b.END, solved, NA)
    surveyed = (solved != NA) & (rng.random(n) < b.P_TICKET_SURVEY)
    satisfied = rng.random(n) < b.P_CSAT_SATISFIED[high.astype(int)]
    csat = np.where(satisfied, rng.choice([4, 5], size=n, p=[0.35, 0.65]), rng.choice([1, 2, 3], size=n, p=[0.3, 0.3, 0.4]))
    champion = rng.random(n) < 0.5
    pick = (rng.random(n) * acc.n_users[account]).astype(np.int64)
    requester = ppl.first_person[account] + np.where(champion, 0, pick)
    via = rng.choice(len(VIA), size=n, p=[0.5, 0.35, 0.15])
    order = np.lexsort((created, account))
    return Tickets(account, requester, created, solved, theme, effort, surveyed, csat, via).take(order)


def cut_at(t: Tickets, end_by_account: np.ndarray) -> Tickets:
    """Drop tickets opened after the account left (churned)."""
    return t.take(t.created_at < end_by_account[t.account])


def zendesk_export(rng: np.random.Generator, t: Tickets, acc: Accounts, ppl: People) -> pa.Table:
    n = len(t.account)
    ticket_ids = 1000 + np.arange(n)
    satisfaction = np.where(t.surveyed, np.where(t.csat >= 4, "good", "bad"), "")
    effort = np.where(t.surveyed, t.effort.astype(str), "")
    org = pa.array(acc.names).take(pa.array(t.account))
    solved = iso(np.where(t.solved_at == NA, 0, t.solved_at), mask=t.solved_at == NA)
    return pa.table(
        {
            "Ticket ID": ticket_ids,
            "Requester email": ppl.emails.take(pa.array(t.requester)),
            "Organization": org,
            "Created at": iso(t.created_at),
            "Solved at": solved,
            "Subject": ticket_subjects(rng, t.theme, t.high_effort),
            "Via": pa.array(np.array(VIA)[t.via]),
            "Satisfaction": pa.array(satisfaction),
            "Effort score": pa.array(effort),
        }
    )
