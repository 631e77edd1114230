"""Product events (canonical, source `product`): signups, identify and group calls, onboarding,
activation and day-by-day feature usage of every user of every account that got the product.

Usage is drawn on a flat (user, day) grid: a user is active on a day with their own probability (Beta
distributed, so DAU/MAU lands near 15-20%), does 1 + Poisson events on an active day, and each event
is a feature drawn from a skewed click mix (Pendo); a feature the user never adopted falls back to the
dashboard, and sharing a dashboard only happens once the account has reached its value moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People
from journeymap.demo.draws import repeat_index
from journeymap.demo.funnel import NA, Funnel
from journeymap.demo.names import ROLES
from journeymap.demo.writers import EventBatch, EventLog, codes_to_strings, json_objects, take

SURFACES = ("web", "web", "web", "desktop_app", "mobile")
ONBOARDING_STEPS = ("workspace_created", "profile_completed", "first_dashboard_created")


@dataclass
class Users:
    person: np.ndarray  # index into People
    account: np.ndarray
    joined_at: np.ndarray
    until: np.ndarray  # the account's life end


def product_users(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel, life_end: np.ndarray) -> Users:
    a = ppl.account
    is_user = f.acquired[a] & (ppl.rank < acc.n_users[a])
    delay = np.where(ppl.rank == 0, 0.0, 0.3 + rng.exponential(np.where(f.trial[a], 6.0, 12.0)))
    joined = f.acquired_at[a] + (delay * b.DAY).astype(np.int64)
    ok = is_user & (joined < life_end[a]) & (joined <= b.END)
    person = np.flatnonzero(ok)
    return Users(person, a[person], joined[person], life_end[a[person]])


def product_events(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel, u: Users, log: EventLog,
                   plan_changes: tuple[np.ndarray, np.ndarray, np.ndarray], voluntary_churn_at: np.ndarray) -> None:
    _identity(rng, acc, ppl, f, u, log, plan_changes)
    _onboarding(rng, acc, ppl, f, u, log)
    _usage(rng, acc, ppl, f, u, log, voluntary_churn_at)


def _batch(ppl: People, acc: Accounts, person: np.ndarray, ts: np.ndarray, event, **kw) -> EventBatch:
    return EventBatch(ts=ts, event=event, source="product", channel="app", user_id=take(ppl.user_ids, person),
                      anonymous_id=kw.pop("anonymous_id", take(ppl.anon, person)),
                      account_id=take(acc.ids, ppl.account[person]), **kw)


def group_traits(acc: Accounts, account: np.ndarray, plan: np.ndarray) -> pa.Array:
    return json_objects(
        ["name", "employees", "industry", "region", "plan"],
        [pa.array(acc.names).take(pa.array(account)), acc.employees[account],
         codes_to_strings(acc.industry[account], b.INDUSTRIES), codes_to_strings(acc.region[account], b.REGIONS),
         codes_to_strings(plan, b.PLANS)],
    )


def _identity(rng, acc, ppl, f, u: Users, log: EventLog, plan_changes) -> None:
    champ = ppl.rank[u.person] == 0
    p, ts = u.person, u.joined_at
    log.add(_batch(ppl, acc, p[champ], ts[champ], "signed_up",
                   properties=json_objects(["method"], [codes_to_strings(rng.integers(0, 3, champ.sum()),
                                                                         ("email", "google", "microsoft"))])))
    inv = ~champ
    inviter = ppl.first_person[u.account[inv]]
    invited_at = np.maximum(ts[inv] - (rng.uniform(0.05, 1.0, inv.sum()) * b.DAY).astype(np.int64),
                            f.acquired_at[u.account[inv]] + 120)
    log.add(_batch(ppl, acc, inviter, invited_at, "teammate_invited"))
    log.add(_batch(ppl, acc, p[inv], ts[inv], "invite_accepted"))
    traits = json_objects(["email", "name", "role"], [ppl.emails.take(pa.array(p)),
                                                      pa.array(ppl.full_names).take(pa.array(p)),
                                                      codes_to_strings(ppl.roles[p], ROLES)])
    log.add(_batch(ppl, acc, p, ts + 1, "identify", type="identify", email=ppl.emails.take(pa.array(p)), traits=traits))
    log.add(_batch(ppl, acc, p, ts + 2, "group", type="group", traits=group_traits(acc, u.account, acc.plan[u.account])))
    # a champion's second device: a login there links its anonymous id to the same user
    second = champ & np.asarray(ppl.anon2.is_valid().take(pa.array(p)))
    login = ts + ((1.0 + rng.exponential(12.0, len(p))) * b.DAY).astype(np.int64)
    second &= login < u.until
    log.add(_batch(ppl, acc, p[second], login[second], "identify", type="identify",
                   anonymous_id=ppl.anon2.take(pa.array(p[second])), email=ppl.emails.take(pa.array(p[second]))))
    # plan changes re-send the account's traits
    c_acc, c_ts, c_tier = plan_changes
    champs = ppl.first_person[c_acc]
    log.add(_batch(ppl, acc, champs, c_ts + 30, "group", type="group", traits=group_traits(acc, c_acc, c_tier)))


def _onboarding(rng, acc, ppl, f: Funnel, u: Users, log: EventLog) -> None:
    champ = u.person[ppl.rank[u.person] == 0]
    a = ppl.account[champ]
    until = np.minimum(u.until[ppl.rank[u.person] == 0], b.END)
    n = len(champ)
    offsets = np.stack([np.full(n, 60.0), rng.uniform(0.01, 0.3, n) * b.DAY, rng.exponential(1.5, n) * b.DAY + 900])
    happens = np.stack([np.ones(n, bool), rng.random(n) < 0.8, rng.random(n) < 0.7])
    for step, (off, ok) in enumerate(zip(offsets, happens, strict=True)):
        ts = f.acquired_at[a] + off.astype(np.int64)
        keep = ok & (ts < until)
        log.add(_batch(ppl, acc, champ[keep], ts[keep], "onboarding_step_completed",
                       properties=f'{{"step":"{ONBOARDING_STEPS[step]}"}}'))
    ts = f.integration_at[a]
    keep = (ts != NA) & (ts < until)
    which = rng.integers(0, len(b.INTEGRATIONS), n)[keep]
    log.add(_batch(ppl, acc, champ[keep], ts[keep], "integration_connected",
                   properties=json_objects(["integration"], [codes_to_strings(which, b.INTEGRATIONS)])))
    ts = f.activated_at[a]
    keep = f.activated[a] & (ts < until)
    log.add(_batch(ppl, acc, champ[keep], ts[keep], "dashboard_shared",
                   properties=json_objects(["surface", "first"], ["web", pa.repeat(pa.scalar(True), int(keep.sum()))])))


def _usage(rng, acc: Accounts, ppl: People, f: Funnel, u: Users, log: EventLog, voluntary_churn_at) -> None:
    n_users = len(u.person)
    first_day = u.joined_at // b.DAY + 1
    last_day = np.minimum(u.until, b.END) // b.DAY
    days = np.maximum(last_day - first_day, 0)
    cell_user, step = repeat_index(days)
    day = first_day[cell_user] + step
    a = u.account[cell_user]
    p_user = rng.beta(*b.ACTIVE_DAY_BETA, n_users)
    p_cell = p_user[cell_user]
    champ = ppl.rank[u.person][cell_user] == 0
    in_trial = f.trial[a] & (day * b.DAY < f.trial_end[a])
    p_cell = np.where(champ & in_trial, np.maximum(p_cell, b.TRIAL_ACTIVE_DAY), p_cell)
    fading = (voluntary_churn_at[a] != NA) & (day * b.DAY > voluntary_churn_at[a] - 45 * b.DAY)
    p_cell = np.where(fading, p_cell * 0.35, p_cell)
    active = rng.random(len(p_cell)) < p_cell
    cell_user, day, a = cell_user[active], day[active], a[active]

    k = 1 + rng.poisson(b.EVENTS_PER_ACTIVE_DAY[acc.persona[a]])
    e_user = np.repeat(cell_user, k)
    e_acc = np.repeat(a, k)
    hour = rng.normal(b.REGION_WORK_HOUR_UTC[acc.region[e_acc]], 2.2) % 24.0
    ts = np.repeat(day, k) * b.DAY + (hour * 3600).astype(np.int64)
    feature = rng.choice(len(b.FEATURES), size=len(e_user), p=b.FEATURE_CLICK_WEIGHTS)
    adopted = rng.random((n_users, len(b.FEATURES))) < b.FEATURE_ADOPTION
    shared_ok = f.activated[e_acc] & (ts > f.activated_at[e_acc])
    ok = adopted[e_user, feature] & ((feature != b.FEATURES.index("dashboard_shared")) | shared_ok)
    feature = np.where(ok, feature, (rng.random(len(feature)) < 0.3).astype(feature.dtype))
    keep = (ts > u.joined_at[e_user]) & (ts < np.minimum(u.until[e_user], b.END))
    e_user, ts, feature = e_user[keep], ts[keep], feature[keep]
    surface = rng.integers(0, len(SURFACES), len(ts))
    props = [f'{{"surface":"{s}"}}' for s in SURFACES]
    person = u.person[e_user]
    anon = take(ppl.anon, person)
    odd = rng.random(len(ts)) < 0.004  # tracking bugs send placeholder anonymous ids next to a real user id
    placeholder = codes_to_strings(rng.integers(0, 3, len(ts)), ("undefined", "guest", "null"))
    anon = pc.if_else(pa.array(odd), placeholder, anon)
    log.add(_batch(ppl, acc, person, ts, codes_to_strings(feature, b.FEATURES), anonymous_id=anon,
                   properties=codes_to_strings(surface, props)))
