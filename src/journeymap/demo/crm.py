"""CRM lifecycle changes as a HubSpot-like export: one row per contact per lifecycle change, with the
CRM's own column names and wall-clock times in the sales team's zone (America/New_York, no offset).

The CRM's Company ID is the number in the product's account id (`acct_<Company ID>`), so the mapping
in journeymap.yml adds the prefix; contacts are joined to people by email only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.names import SALES_REPS, SELF_SERVE_OWNER
from journeymap.demo.writers import local_time

CRM_TZ = "America/New_York"
STAGES = ("Lead", "Marketing Qualified Lead", "Sales Qualified Lead", "Opportunity", "Customer", "Closed Lost")
STAGE_EVENTS = {
    "Lead": "lead_created",
    "Marketing Qualified Lead": "mql_reached",
    "Sales Qualified Lead": "sql_reached",
    "Opportunity": "opportunity_created",
    "Customer": "deal_won",
    "Closed Lost": "deal_lost",
}
SYNC_DELAY = (120, 5400)  # seconds: the CRM hears of product and billing changes a little late


def crm_export(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel) -> pa.Table:
    n = acc.n
    delay = rng.integers(*SYNC_DELAY, n)
    # the champion: every stage the account passes through
    champ_times = [f.lead_at + 60, f.mql_at, f.sql_at, f.opportunity_at,
                   np.where(f.paid, f.paid_at + delay, NA), f.lost_at]
    person, stage, ts = [], [], []
    for s, t in enumerate(champ_times):
        ok = (t != NA) & (t <= b.END)
        person.append(ppl.first_person[ok])
        stage.append(np.full(ok.sum(), s))
        ts.append(t[ok])
    # the buying committee: other contacts join as leads at the opportunity and share its outcome
    extra = (ppl.rank > 0) & (ppl.rank < b.CONTACTS[acc.persona][ppl.account])
    a = ppl.account[extra]
    joined = f.opportunity_at[a] + (rng.uniform(0.1, 5.0, len(a)) * b.DAY).astype(np.int64)
    ok = (f.opportunity_at[a] != NA) & (joined <= b.END)
    for s, t in ((0, joined), (4, np.where(f.paid[a], f.paid_at[a] + delay[a], NA)), (5, f.lost_at[a])):
        keep = ok & (t != NA) & (t <= b.END) & (t >= joined)
        person.append(np.flatnonzero(extra)[keep])
        stage.append(np.full(keep.sum(), s))
        ts.append(t[keep])
    person_a, stage_a, ts_a = np.concatenate(person), np.concatenate(stage), np.concatenate(ts)
    order = np.argsort(ts_a, kind="stable")
    person_a, stage_a, ts_a = person_a[order], stage_a[order], ts_a[order]
    acct = ppl.account[person_a]
    sales = f.demo[acct]
    rep = (acc.company_number[acct] * 7919) % len(SALES_REPS)
    owners = np.where(sales, np.array(SALES_REPS)[rep], SELF_SERVE_OWNER)
    return pa.table(
        {
            "Contact ID": ppl.contact_ids[person_a],
            "Email": ppl.emails.take(pa.array(person_a)),
            "Company ID": acc.company_number[acct],
            "Company Name": pa.array(acc.names).take(pa.array(acct)),
            "Lifecycle Stage": pa.array(np.array(STAGES)[stage_a]),
            "Changed At": local_time(ts_a, CRM_TZ),
            "Owner": pa.array(owners),
        }
    )


def crm_accounts_export(acc: Accounts, f: Funnel, onboarding: np.ndarray | None = None) -> pa.Table:
    """The CRM's companies (API property names): created with their first contact; `onboarding` (per account,
    the onboarding experiment's variant code) adds the `onboarding_variant` property."""
    a = np.flatnonzero(f.lead_at <= b.END)
    a = a[np.argsort(f.lead_at[a], kind="stable")]
    rep = (acc.company_number[a] * 7919) % len(SALES_REPS)
    return pa.table(
        {
            "company_id": acc.company_number[a],
            "name": pa.array(acc.names).take(pa.array(a)),
            "domain": pa.array(acc.domains).take(pa.array(a)),
            "industry": pa.array(np.array(b.INDUSTRIES)[acc.industry[a]]),
            "employees": acc.employees[a],
            "region": pa.array(np.array(b.REGIONS)[acc.region[a]]),
            "owner": pa.array(np.where(f.demo[a], np.array(SALES_REPS)[rep], SELF_SERVE_OWNER)),
            "created_at": local_time(f.lead_at[a] + 60, CRM_TZ),
            **({"onboarding_variant": pa.array(np.array(b.ONBOARDING_VARIANTS)[onboarding[a]])}
               if onboarding is not None else {}),
        }
    )
