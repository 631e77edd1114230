"""Trials and subscription billing as a Stripe-like events export: one row per billing event.

Types follow Stripe's `object.action` naming with one type per business change (as a billing
analytics export gives them), `created` is unix seconds and `customer` is the account id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People
from journeymap.demo.churn import Churn
from journeymap.demo.draws import first_of_group, group_cumsum, repeat_index
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.writers import codes_to_strings, take

STRIPE_TYPES = {
    "customer.subscription.trial_started": "trial_started",
    "customer.subscription.trial_ended": "trial_expired",
    "customer.subscription.created": "subscription_started",
    "customer.subscription.trial_converted": "trial_converted",
    "invoice.paid": "invoice_paid",
    "invoice.payment_failed": "payment_failed",
    "customer.subscription.upgraded": "plan_upgraded",
    "customer.subscription.downgraded": "plan_downgraded",
    "customer.subscription.seats_added": "seats_added",
    "customer.subscription.renewed": "subscription_renewed",
    "customer.subscription.deleted": "subscription_cancelled",
}
TYPES = tuple(STRIPE_TYPES)
T = {name: i for i, name in enumerate(TYPES)}


@dataclass
class Billing:
    table: pa.Table
    mrr_start: np.ndarray  # USD per month at the first payment (0 for non-customers)
    mrr_end: np.ndarray  # at churn or at the end of the data
    plan_end: np.ndarray
    seats_end: np.ndarray
    expansion_mrr: np.ndarray  # sum of MRR increases from seats and upgrades
    churn_feedback: np.ndarray  # index into CANCEL_FEEDBACK, -1 when none
    plan_changes: tuple[np.ndarray, np.ndarray, np.ndarray]  # (account, ts, new plan) of upgrades and downgrades


class _Rows:
    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {}

    def add(self, type_code: int | np.ndarray, account: np.ndarray, ts: np.ndarray, **extra: np.ndarray) -> None:
        n = len(account)
        row = {"type": np.broadcast_to(type_code, n), "account": account, "ts": ts}
        for key in ("plan", "seats", "mrr", "prev_mrr", "amount", "reason", "feedback", "failure", "attempt", "breason"):
            row[key] = extra.get(key, np.full(n, -1))
        for key, value in row.items():
            self.cols.setdefault(key, []).append(np.asarray(value))

    def frame(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.cols.items()}


def simulate_billing(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel, ch: Churn) -> Billing:
    n, p, day = acc.n, acc.persona, b.DAY
    payer = f.paid & (f.paid_at <= b.END)
    end_paid = np.where(ch.churn_at != NA, ch.churn_at, b.END)
    months = np.where(payer, (end_paid - np.where(payer, f.paid_at, 0)) / b.MONTH, 0.0)

    # subscription changes: seats added (many), at most one upgrade and one downgrade
    k_seats = rng.poisson(b.SEATS_ADDED_MONTHLY[p] * months)
    up = payer & (acc.plan <= 1) & (rng.random(n) < 1 - np.exp(-b.UPGRADE_MONTHLY[p] * months))
    down = payer & (acc.plan >= 1) & (acc.plan <= 2) & (rng.random(n) < 1 - np.exp(-b.DOWNGRADE_MONTHLY[p] * months))
    c_acc = np.concatenate([np.repeat(np.arange(n), k_seats), np.flatnonzero(up), np.flatnonzero(down)])
    c_kind = np.concatenate([np.full(k_seats.sum(), T["customer.subscription.seats_added"]),
                             np.full(up.sum(), T["customer.subscription.upgraded"]),
                             np.full(down.sum(), T["customer.subscription.downgraded"])])
    c_ts = f.paid_at[c_acc] + (rng.uniform(0.03, 1.0, len(c_acc)) * (end_paid - f.paid_at)[c_acc]).astype(np.int64)
    d_seats = np.where(c_kind == T["customer.subscription.seats_added"], 1 + rng.poisson(b.SEATS_ADDED_SIZE[p[c_acc]]), 0)
    d_tier = np.select([c_kind == T["customer.subscription.upgraded"], c_kind == T["customer.subscription.downgraded"]],
                       [1, -1], 0)
    order = np.lexsort((c_ts, c_acc))
    c_acc, c_kind, c_ts, d_seats, d_tier = c_acc[order], c_kind[order], c_ts[order], d_seats[order], d_tier[order]
    seats_after = acc.seats[c_acc] + group_cumsum(c_acc, d_seats)
    tier_after = acc.plan[c_acc] + group_cumsum(c_acc, d_tier)
    mrr_after = seats_after * b.PRICE_PER_SEAT[tier_after]
    mrr0 = acc.seats * b.PRICE_PER_SEAT[acc.plan]
    prev = np.where(first_of_group(c_acc), mrr0[c_acc], np.roll(mrr_after, 1))

    def state_at(account: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key_c = c_acc.astype(np.int64) * (1 << 34) + c_ts
        key = account.astype(np.int64) * (1 << 34) + ts
        i = np.searchsorted(key_c, key, side="right") - 1
        hit = (i >= 0) & (c_acc[np.maximum(i, 0)] == account)
        i = np.maximum(i, 0)
        return (np.where(hit, mrr_after[i], mrr0[account]), np.where(hit, tier_after[i], acc.plan[account]),
                np.where(hit, seats_after[i], acc.seats[account]))

    rows = _Rows()
    trial = f.trial & (f.acquired_at <= b.END)
    a = np.flatnonzero(trial)
    rows.add(T["customer.subscription.trial_started"], a, f.acquired_at[a], plan=acc.plan[a], seats=acc.seats[a])
    a = np.flatnonzero(f.trial_expired_at != NA)
    rows.add(T["customer.subscription.trial_ended"], a, f.trial_expired_at[a], plan=acc.plan[a], seats=acc.seats[a])
    a = np.flatnonzero(payer)
    start_type = np.where(f.trial[a], T["customer.subscription.trial_converted"], T["customer.subscription.created"])
    for code in np.unique(start_type):
        s = a[start_type == code]
        rows.add(int(code), s, f.paid_at[s], plan=acc.plan[s], seats=acc.seats[s], mrr=mrr0[s])
    rows.add(c_kind, c_acc, c_ts, plan=tier_after, seats=seats_after, mrr=mrr_after, prev_mrr=prev)

    # invoices on each monthly anniversary; involuntary churners' last invoices fail three times
    k_inv = np.where(payer, np.floor(months).astype(np.int64) + 1, 0)
    i_acc, i_k = repeat_index(k_inv)
    i_ts = f.paid_at[i_acc] + (i_k * b.MONTH).astype(np.int64) + 5
    involuntary = (ch.churn_at != NA) & ~ch.voluntary
    fail_from = np.where(involuntary, ch.churn_at - 14 * day, b.END + 1)
    keep = (i_ts < end_paid[i_acc]) & (i_ts < fail_from[i_acc])
    i_acc, i_k, i_ts = i_acc[keep], i_k[keep], i_ts[keep]
    recovered = (i_k > 0) & (rng.random(len(i_acc)) < b.P_FAILED_PAYMENT_RECOVERED)
    paid_ts = np.where(recovered, i_ts + (rng.uniform(1.5, 4.0, len(i_acc)) * day).astype(np.int64), i_ts)
    mrr_i, tier_i, seats_i = state_at(i_acc, i_ts)
    cents = np.round(mrr_i * 100).astype(np.int64)
    rows.add(T["invoice.paid"], i_acc, paid_ts, plan=tier_i, seats=seats_i, mrr=mrr_i, amount=cents,
             breason=(i_k > 0).astype(int))
    r = recovered
    rows.add(T["invoice.payment_failed"], i_acc[r], i_ts[r], plan=tier_i[r], seats=seats_i[r], mrr=mrr_i[r],
             amount=cents[r], failure=_failure(rng, r.sum()), attempt=np.ones(r.sum(), int), breason=np.ones(r.sum(), int))
    a = np.flatnonzero(involuntary)
    for attempt, before in ((1, 14), (2, 9), (3, 4)):
        ts = ch.churn_at[a] - before * day
        m, t_, s_ = state_at(a, ts)
        rows.add(T["invoice.payment_failed"], a, ts, plan=t_, seats=s_, mrr=m, amount=np.round(m * 100).astype(np.int64),
                 failure=_failure(rng, len(a)), attempt=np.full(len(a), attempt), breason=np.ones(len(a), int))

    # annual enterprise contracts renew on their anniversary
    k_ren = np.where(payer & (p == 2), np.floor(months * b.MONTH / (365 * day)).astype(np.int64), 0)
    r_acc, r_k = repeat_index(k_ren)
    r_k = r_k + 1
    r_ts = f.paid_at[r_acc] + r_k * 365 * day
    m, t_, s_ = state_at(r_acc, r_ts)
    rows.add(T["customer.subscription.renewed"], r_acc, r_ts, plan=t_, seats=s_, mrr=m)

    # cancellations, with Stripe's cancellation reason and the customer's feedback
    a = np.flatnonzero(ch.churn_at != NA)
    feedback = _feedback(rng, ch, f, a)
    m, t_, s_ = state_at(a, ch.churn_at[a])
    rows.add(T["customer.subscription.deleted"], a, ch.churn_at[a], plan=t_, seats=s_, mrr=m,
             reason=(~ch.voluntary[a]).astype(int), feedback=feedback)

    mrr_end, plan_end, seats_end = state_at(np.arange(n), np.minimum(end_paid, b.END))
    expansion = np.bincount(c_acc, weights=np.maximum(mrr_after - prev, 0), minlength=n)
    tiers = (d_tier != 0) & (c_ts <= b.END)
    churn_feedback = np.full(n, -1)
    churn_feedback[a] = feedback
    return Billing(_table(rows.frame(), acc, ppl), np.where(payer, mrr0, 0.0), np.where(payer, mrr_end, 0.0),
                   plan_end, seats_end, expansion, churn_feedback, (c_acc[tiers], c_ts[tiers], tier_after[tiers]))


def _failure(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(len(b.FAILURE_CODES), size=n, p=b.FAILURE_WEIGHTS)


def _feedback(rng: np.random.Generator, ch: Churn, f: Funnel, a: np.ndarray) -> np.ndarray:
    """Voluntary churners say why; a bad support experience and an idle workspace shift the answers."""
    w = np.tile(b.CANCEL_FEEDBACK_WEIGHTS, (len(a), 1))
    fb = list(b.CANCEL_FEEDBACK)
    w[ch.after_high_effort[a], fb.index("customer_service")] += 0.35
    w[ch.after_high_effort[a], fb.index("too_complex")] += 0.15
    w[~f.integration_week1[a], fb.index("unused")] += 0.10
    cum = np.cumsum(w, axis=1)
    pick = (rng.random(len(a))[:, None] * cum[:, -1:] > cum).sum(axis=1)
    return np.where(ch.voluntary[a], pick, -1)


STATUS = {"customer.subscription.trial_started": "trialing", "customer.subscription.trial_ended": "incomplete_expired",
          "invoice.payment_failed": "past_due", "customer.subscription.deleted": "canceled"}


def _table(c: dict[str, np.ndarray], acc: Accounts, ppl: People) -> pa.Table:
    order = np.argsort(c["ts"], kind="stable")
    c = {k: v[order] for k, v in c.items()}
    keep = c["ts"] <= b.END
    c = {k: v[keep] for k, v in c.items()}
    n, a = len(c["ts"]), c["account"]
    subs = pa.array([f"sub_{x}" for x in acc.company_number.tolist()])
    mrr = np.round(c["mrr"] * 100).astype(np.int64)
    prev = np.round(c["prev_mrr"] * 100).astype(np.int64)

    def opt(codes: np.ndarray, vocab) -> pa.Array:
        return take(pa.array(list(vocab)), np.where(codes < 0, -1, codes))

    return pa.table({
        "id": pc.binary_join_element_wise("evt_", pc.cast(pa.array(10_000_000 + np.arange(n)), pa.string()), ""),
        "type": codes_to_strings(c["type"], TYPES),
        "created": c["ts"],
        "customer": acc.ids.take(pa.array(a)),
        "customer_email": ppl.emails.take(pa.array(ppl.first_person[a])),
        "subscription": subs.take(pa.array(a)),
        "plan": opt(c["plan"], b.PLANS),
        "quantity": pa.array(c["seats"], mask=c["seats"] < 0),
        "mrr_cents": pa.array(mrr, mask=c["mrr"] < 0),
        "previous_mrr_cents": pa.array(prev, mask=c["prev_mrr"] < 0),
        "amount_cents": pa.array(c["amount"], mask=c["amount"] < 0),
        "currency": pa.repeat(pa.scalar("usd"), n),
        "status": codes_to_strings(c["type"], [STATUS.get(t, "active") for t in TYPES]),
        "billing_reason": opt(c["breason"], ("subscription_create", "subscription_cycle")),
        "cancellation_reason": opt(c["reason"], ("cancellation_requested", "payment_failed")),
        "cancellation_feedback": opt(c["feedback"], b.CANCEL_FEEDBACK),
        "failure_code": opt(c["failure"], b.FAILURE_CODES),
        "attempt_count": pa.array(c["attempt"], mask=c["attempt"] < 0),
    })
