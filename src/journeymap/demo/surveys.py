"""NPS, CSAT and CES answers as a survey tool's export: one row per response, with comments.

NPS is asked in-app every 90 days of a paying account's life; CSAT (1-5) and CES (effort, 1 = very
easy ... 7 = very hard, so lower is better) after a solved ticket, answered together. Scores follow
the account's situation: a ticket that cost effort, or a churn on its way, pulls answers down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo.accounts import People
from journeymap.demo.churn import Churn
from journeymap.demo.draws import repeat_index
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.phrases import THEMES, comments
from journeymap.demo.product import Users
from journeymap.demo.support import Tickets
from journeymap.demo.writers import iso

SURVEYS = ("nps", "csat", "ces")
TH = {t: i for i, t in enumerate(THEMES)}


@dataclass
class NpsAnswers:
    person: np.ndarray
    account: np.ndarray
    ts: np.ndarray
    score: np.ndarray


def nps_answers(rng: np.random.Generator, f: Funnel, ch: Churn, t: Tickets, u: Users) -> NpsAnswers:
    start = np.maximum(u.joined_at, f.paid_at[u.account]) + 30 * b.DAY
    until = np.minimum(u.until, b.END)
    paying = f.paid[u.account] & (f.paid_at[u.account] != NA)
    k = np.where(paying & (start < until), (until - start) // (b.NPS_EVERY_DAYS * b.DAY) + 1, 0)
    user, step = repeat_index(k)
    ts = start[user] + step * b.NPS_EVERY_DAYS * b.DAY + (rng.uniform(0, 5, len(user)) * b.DAY).astype(np.int64)
    answered = (rng.random(len(user)) < b.P_NPS_RESPONSE) & (ts < until[user])
    user, ts = user[answered], ts[answered]
    acct = u.account[user]
    churn_soon = ch.voluntary[acct] & (ch.churn_at[acct] - ts < 90 * b.DAY) & (ch.churn_at[acct] > ts)
    at_risk = churn_soon | _recent_high_effort(t, acct, ts)
    mix = b.NPS_MIX[at_risk.astype(int)]
    cum = np.cumsum(mix, axis=1)
    group = (rng.random(len(ts))[:, None] > cum).sum(axis=1)  # 0 detractor, 1 passive, 2 promoter
    score = np.select([group == 0, group == 1], [rng.integers(0, 7, len(ts)), rng.integers(7, 9, len(ts))],
                      rng.choice([9, 10], size=len(ts), p=[0.55, 0.45]))
    return NpsAnswers(u.person[user], acct, ts, score)


def _recent_high_effort(t: Tickets, account: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Whether the account had a ticket solved with effort >= 5 in the 60 days before `ts`."""
    hi = t.high_effort & (t.solved_at != NA)
    key_t = np.sort(t.account[hi].astype(np.int64) * (1 << 34) + t.solved_at[hi])
    key = account.astype(np.int64) * (1 << 34) + ts
    i = np.searchsorted(key_t, key, side="right") - 1
    ok = i >= 0
    last = key_t[np.maximum(i, 0)]
    return ok & (last // (1 << 34) == account) & (key - last < b.HIGH_EFFORT_WINDOW_DAYS * b.DAY)


def survey_export(rng: np.random.Generator, nps: NpsAnswers, t: Tickets, f: Funnel, ppl: People) -> pa.Table:
    # NPS comments: detractors talk about what hurt, promoters about what they like
    n = len(nps.ts)
    sentiment = np.select([nps.score <= 6, nps.score <= 8], [0, 1], 2)
    theme = rng.choice(len(THEMES), size=n, p=[0.12, 0.16, 0.18, 0.16, 0.10, 0.28])
    hurt = (sentiment == 0) & _recent_high_effort(t, nps.account, nps.ts)
    theme = np.where(hurt & (rng.random(n) < 0.6), TH["support"], theme)
    calc = (sentiment == 0) & f.saw_calculator[nps.account] & (rng.random(n) < 0.3)
    theme = np.where(calc, TH["pricing"], theme)
    nps_comment = rng.random(n) < 0.6

    s = np.flatnonzero(t.surveyed)
    ts_t = t.solved_at[s] + (rng.uniform(0.05, 1.0, len(s)) * b.DAY).astype(np.int64)
    ok = ts_t <= b.END
    s, ts_t = s[ok], ts_t[ok]
    csat, effort = t.csat[s], t.effort[s]
    m = len(s)
    csat_sent = np.select([csat <= 2, csat == 3], [0, 1], 2)
    ces_sent = np.select([effort >= 5, effort >= 3], [0, 1], 2)

    survey = np.concatenate([np.zeros(n, int), np.ones(m, int), np.full(m, 2)])
    person = np.concatenate([nps.person, t.requester[s], t.requester[s]])
    ts = np.concatenate([nps.ts, ts_t, ts_t + 20])
    score = np.concatenate([nps.score, csat, effort])
    themes = np.concatenate([theme, t.theme[s], t.theme[s]])
    sentiments = np.concatenate([sentiment, csat_sent, ces_sent])
    has_comment = np.concatenate([nps_comment, rng.random(m) < 0.35, rng.random(m) < 0.25])
    text = np.full(len(ts), None, dtype=object)
    text[has_comment] = comments(rng, themes[has_comment], sentiments[has_comment])
    ticket = np.concatenate([np.full(n, -1), 1000 + s, 1000 + s])
    order = np.argsort(ts, kind="stable")
    keep = order[ts[order] <= b.END]
    return pa.table(
        {
            "response_id": pa.array([f"r_{i:07d}" for i in range(len(keep))]),
            "survey": pa.array(np.array(SURVEYS)[survey[keep]]),
            "email": ppl.emails.take(pa.array(person[keep])),
            "submitted_at": iso(ts[keep]),
            "score": score[keep],
            "comment": pa.array(text[keep].tolist(), type=pa.string()),
            "ticket_id": pa.array(ticket[keep], mask=ticket[keep] < 0),
            "channel": pa.array(np.where(survey[keep] == 0, "in_app", "email")),
        }
    )
