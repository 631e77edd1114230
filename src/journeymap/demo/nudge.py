"""The onboarding nudge's planted effect: treated accounts connect a data source sooner.

The demo's journeymap.yml runs the `onboarding_nudge` playbook since NUDGE_STARTED with a 20% holdout. Here the
simulator enters accounts exactly as the evaluator will (an absence entry: a signup with no integration_connected
in the 14 days after it, entering at signup + 14 days), splits them by the same stable hash act/outbox.py uses (the
demo imports nothing but journeymap.errors, so the hash is written again here; tests/test_playbook_effect.py checks
the two agree), and, for a treated entry on or after go-live, with probability EFFECT_NUDGE_CONNECT moves the
account's first integration 0.1-5 days after the entry (or adds one). Nothing else the simulation drew changes:
churn, billing and the week-one integration flag are drawn before and from the unmoved times.

The truth (truth/playbooks.json) is what the playbook's measured effect should recover: among the entries whose
14-day window closed by the data's end, the goal rate had every entry been treated less the goal rate had none
been (the nudge's own coin decides for each, held out or not), and the counts the evaluator should see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts
from journeymap.demo.funnel import NA, Funnel


def in_holdout(playbook: str, unit_id: str, fraction: float) -> bool:
    """The same side as journeymap.act.outbox.in_holdout: a sha256 of playbook and unit, its first 8 bytes as
    a fraction of 2**64."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{playbook}\x00{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class Nudge:
    integration_at: np.ndarray  # the first integration after the nudge: what the product events write
    truth: dict


def plant_nudge(rng: np.random.Generator, acc: Accounts, f: Funnel, life_end: np.ndarray) -> Nudge:
    n, day = acc.n, b.DAY
    coin = rng.random(n) < b.EFFECT_NUDGE_CONNECT
    delay = (rng.uniform(0.1, 5.0, n) * day).astype(np.int64)  # from the entry to the connection
    # an integration is written while the account is alive (product._onboarding): before its life end and END
    until = np.minimum(np.where(life_end == NA, b.END, life_end), b.END)
    natural = (f.integration_at != NA) & (f.integration_at < until)
    signed_up = f.acquired & (f.acquired_at <= b.END)  # signed_up / trial_started / subscription_started
    entry_at = f.acquired_at + b.NUDGE_ENTRY_DAYS * day
    entered = signed_up & ~(natural & (f.integration_at <= entry_at)) & (entry_at <= b.END)
    live = entered & (entry_at >= b.NUDGE_STARTED)
    holdout = np.array([in_holdout(b.NUDGE_PLAYBOOK, u, b.NUDGE_HOLDOUT) for u in acc.ids.to_pylist()], bool)
    nudged_at = entry_at + delay
    takes = coin & (nudged_at < until)  # nudged in time to connect: what the nudge changes when treated
    moved = live & ~holdout & takes & (~natural | (nudged_at < f.integration_at))
    integration_at = np.where(moved, nudged_at, f.integration_at)

    window_end = entry_at + b.NUDGE_WINDOW_DAYS * day
    measured = live & (window_end <= b.END)
    goal_untreated = natural & (f.integration_at > entry_at) & (f.integration_at <= window_end)
    goal_treated = goal_untreated | takes
    goal = np.where(holdout, goal_untreated, goal_treated)
    t, h = measured & ~holdout, measured & holdout
    effect = float((goal_treated[measured].astype(int) - goal_untreated[measured]).mean()) if measured.any() else None
    truth = {
        b.NUDGE_PLAYBOOK: {
            "started": datetime.fromtimestamp(b.NUDGE_STARTED, UTC).date().isoformat(),
            "holdout": b.NUDGE_HOLDOUT,
            "entry_days": b.NUDGE_ENTRY_DAYS,
            "window_days": b.NUDGE_WINDOW_DAYS,
            "p_connect_after_nudge": b.EFFECT_NUDGE_CONNECT,
            "true_effect": effect,
            "definition": "goal rate (integration_connected within the window) of the measured entries had all been "
                          "treated, less had none been; measured: entered on or after `started`, window closed by "
                          "the data's end",
            "measured": {"treated": int(t.sum()), "holdout": int(h.sum())},
            "goal_reached": {"treated": int(goal[t].sum()), "holdout": int(goal[h].sum())},
            "goal_rate_untreated": float(goal_untreated[measured].mean()) if measured.any() else None,
            "integrations_moved": int(moved.sum()),
        }
    }
    return Nudge(integration_at, truth)
