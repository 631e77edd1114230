"""Advocacy: promoters refer peers (a product event) and write reviews (a G2-like review export);
some detractors write reviews too."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People
from journeymap.demo.surveys import NpsAnswers
from journeymap.demo.writers import EventBatch, EventLog, codes_to_strings, take

GOOD_TITLES = ("Dashboards our execs actually read", "Fast to set up, easy to share", "Best BI tool we've tried",
               "Great alerts and scheduled reports", "Replaced three tools for us")
BAD_TITLES = ("Promising but slow", "Pricing is hard to follow", "Support could not fix our sync",
              "Too complex for a small team")
SITES = ("G2", "Capterra")


def advocacy(rng: np.random.Generator, acc: Accounts, ppl: People, nps: NpsAnswers, until: np.ndarray,
             log: EventLog) -> pa.Table:
    n = len(nps.ts)
    promoter, detractor = nps.score >= 9, nps.score <= 6
    refer = promoter & (rng.random(n) < b.P_REFERRAL_AFTER_PROMOTER)
    ref_ts = nps.ts + (rng.uniform(0.1, 20.0, n) * b.DAY).astype(np.int64)
    ok = refer & (ref_ts < np.minimum(until[nps.account], b.END))
    p = nps.person[ok]
    log.add(EventBatch(ts=ref_ts[ok], event="referral_sent", source="product", channel="app",
                       user_id=take(ppl.user_ids, p), anonymous_id=take(ppl.anon, p),
                       account_id=take(acc.ids, nps.account[ok]),
                       properties=codes_to_strings(rng.integers(0, 2, ok.sum()),
                                                   ('{"program":"give_a_month"}', '{"program":"partner_intro"}'))))

    review = (promoter & (rng.random(n) < b.P_REVIEW_AFTER_PROMOTER)) | (
        detractor & (rng.random(n) < b.P_REVIEW_AFTER_DETRACTOR))
    rev_ts = nps.ts + (rng.uniform(0.5, 30.0, n) * b.DAY).astype(np.int64)
    ok = review & (rev_ts <= b.END)
    idx = np.flatnonzero(ok)
    good = promoter[idx]
    stars = np.where(good, rng.choice([4, 5], size=len(idx), p=[0.3, 0.7]), rng.choice([1, 2, 3], size=len(idx)))
    titles = np.where(good, np.array(GOOD_TITLES)[rng.integers(0, len(GOOD_TITLES), len(idx))],
                      np.array(BAD_TITLES)[rng.integers(0, len(BAD_TITLES), len(idx))])
    order = np.argsort(rev_ts[idx], kind="stable")
    idx, stars, titles = idx[order], stars[order], titles[order]
    published = rev_ts[idx].astype("datetime64[s]").astype("datetime64[D]").astype(str)
    return pa.table(
        {
            "Review ID": pa.array([f"{9_000_000 + i}" for i in range(len(idx))]),
            "Reviewer Email": ppl.emails.take(pa.array(nps.person[idx])),
            "Company": pa.array(acc.names).take(pa.array(nps.account[idx])),
            "Published": pa.array(published),
            "Star Rating": stars,
            "Title": pa.array(titles),
            "Site": pa.array(np.array(SITES)[rng.integers(0, 2, len(idx))]),
        }
    )
