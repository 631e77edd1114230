"""Companies and the people in them: persona, firmographics, seats, CRM contacts and product users.

Everything here is drawn up front, before anyone visits the website; later modules decide which of
these accounts evaluate, buy, use the product and churn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from journeymap.demo import business as b
from journeymap.demo import names
from journeymap.demo.draws import hex_ids, rows_choice


@dataclass
class Accounts:
    n: int
    persona: np.ndarray  # int, index into business.PERSONAS
    employees: np.ndarray
    industry: np.ndarray  # index into business.INDUSTRIES
    region: np.ndarray  # index into business.REGIONS
    channel: np.ndarray  # first-touch channel, index into business.CHANNELS
    first_touch: np.ndarray  # unix seconds
    plan: np.ndarray  # starting plan, index into business.PLANS
    seats: np.ndarray  # seats bought at the start
    n_users: np.ndarray  # product users (the champion first)
    n_people: np.ndarray  # people we know of: max(users, CRM contacts)
    company_number: np.ndarray  # the CRM's company id; account_id is "acct_<number>"
    ids: pa.Array  # account_id strings
    names: list[str]
    domains: list[str]


@dataclass
class People:
    n: int
    account: np.ndarray  # index into Accounts
    rank: np.ndarray  # 0 = the champion who found us
    first_person: np.ndarray  # per account: index of its champion
    user_ids: pa.Array
    emails: pa.Array
    anon: pa.Array  # the browser's anonymous id
    anon2: pa.Array  # a second device's anonymous id, or null
    contact_ids: np.ndarray  # the CRM's contact id
    full_names: list[str]
    roles: np.ndarray  # index into names.ROLES


def arrival_times(rng: np.random.Generator, n: int, growth: float = 1.6, last_day_margin: float = 2.0) -> np.ndarray:
    """Times with a density growing exponentially so that the last month sees `growth` x the first."""
    span = (b.END - last_day_margin * b.DAY) - b.START
    g = np.log(growth)
    u = rng.random(n)
    frac = np.log1p(u * (np.exp(g) - 1.0)) / g  # inverse CDF of density proportional to exp(g * frac)
    return (b.START + frac * span).astype(np.int64)


def draw_accounts(rng: np.random.Generator, n: int) -> Accounts:
    persona = rng.choice(len(b.PERSONAS), size=n, p=b.PERSONA_SHARE)
    lo = np.array([e[0] for e in b.EMPLOYEES])[persona]
    hi = np.array([e[1] for e in b.EMPLOYEES])[persona]
    # log-uniform inside the persona's band, with the small end more common
    u = rng.random(n) ** 1.6
    employees = np.round(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))).astype(np.int64)
    industry = rows_choice(rng, b.INDUSTRY_WEIGHTS[persona])
    region = rng.choice(len(b.REGIONS), size=n, p=b.REGION_WEIGHTS)
    channel = rows_choice(rng, b.CHANNEL_MIX[persona])
    first_touch = arrival_times(rng, n)
    plan = rows_choice(rng, b.PLAN_MIX[persona])
    seats = b.SEATS_BASE[persona] + rng.poisson(b.SEATS_EXTRA[persona])
    share = rng.uniform(*b.USER_SHARE, size=n)
    n_users = np.clip(np.round(seats * share), 1, b.MAX_USERS[persona]).astype(np.int64)
    n_people = np.maximum(n_users, b.CONTACTS[persona])
    company_number = 1_000_000 + rng.choice(8_999_999, size=n, replace=False)
    ids = pa.array([f"acct_{c}" for c in company_number.tolist()])
    first = rng.integers(0, len(names.COMPANY_FIRST), n)
    second = rng.integers(0, len(names.COMPANY_SECOND), n)
    suffix = rng.integers(0, 5, n)
    company_names = [
        f"{names.COMPANY_FIRST[f]}{names.COMPANY_SECOND[s]} {names.COMPANY_SUFFIX[b.INDUSTRIES[i]][x]}"
        for f, s, i, x in zip(first.tolist(), second.tolist(), industry.tolist(), suffix.tolist(), strict=True)
    ]
    return Accounts(n, persona, employees, industry, region, channel, first_touch, plan, seats, n_users,
                    n_people, company_number, ids, company_names, _domains(company_names))


def draw_people(rng: np.random.Generator, acc: Accounts) -> People:
    account = np.repeat(np.arange(acc.n), acc.n_people)
    n = len(account)
    first_person = np.concatenate([[0], np.cumsum(acc.n_people)[:-1]])
    rank = np.arange(n) - first_person[account]
    user_ids = pa.array([f"u_{i}" for i in (rng.permutation(n) + 100_000).tolist()])
    first = rng.integers(0, len(names.FIRST_NAMES), n).tolist()
    last = rng.integers(0, len(names.LAST_NAMES), n).tolist()
    domains = acc.domains
    emails, full = [], []
    seen: set[str] = set()
    for i in range(n):
        fn, ln = names.FIRST_NAMES[first[i]], names.LAST_NAMES[last[i]]
        local = f"{fn}.{ln}".lower()
        email = f"{local}@{domains[account[i]]}"
        k = 2
        while email in seen:
            email = f"{local}{k}@{domains[account[i]]}"
            k += 1
        seen.add(email)
        emails.append(email)
        full.append(f"{fn} {ln}")
    anon = pa.array(hex_ids(rng, n, "a-"))
    has_second = (rank == 0) & (rng.random(n) < 0.25)
    anon2 = pa.array(hex_ids(rng, n, "m-"), mask=~has_second)
    contact_ids = 100_000_000 + rng.choice(899_999_999, size=n, replace=False)
    roles = rng.integers(0, len(names.ROLES), n)
    return People(n, account, rank, first_person, user_ids, pa.array(emails), anon, anon2, contact_ids, full, roles)


def _domains(company_names: list[str]) -> list[str]:
    tlds = (".com", ".io", ".co", ".net", ".com", ".de", ".co.uk")
    out, seen = [], set()
    for i, name in enumerate(company_names):
        slug = "".join(ch for ch in name.lower() if ch.isalnum())
        domain = slug + tlds[i % len(tlds)]
        k = 2
        while domain in seen:
            domain = f"{slug}{k}{tlds[i % len(tlds)]}"
            k += 1
        seen.add(domain)
        out.append(domain)
    return out
