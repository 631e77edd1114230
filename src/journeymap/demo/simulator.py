"""The demo pipeline: draw the business, simulate its journeys, write its exports and the truth.

Each step draws from its own random stream (seed, step), so a change to one step leaves the others'
draws as they were, and the same seed always writes the same files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from journeymap.demo import business as b
from journeymap.demo.accounts import draw_accounts, draw_people
from journeymap.demo.advocacy import advocacy
from journeymap.demo.billing import simulate_billing
from journeymap.demo.churn import simulate_churn
from journeymap.demo.crm import crm_accounts_export, crm_export
from journeymap.demo.definition import write_definition
from journeymap.demo.funnel import NA, life_end, simulate_funnel
from journeymap.demo.marketing import account_web_events, anonymous_visitors
from journeymap.demo.nudge import plant_nudge
from journeymap.demo.product import product_events, product_users
from journeymap.demo.support import cut_at, draw_tickets, zendesk_export
from journeymap.demo.surveys import nps_answers, survey_export
from journeymap.demo.truth import ticket_truth, truth_table, write_experiment_truth
from journeymap.demo.writers import EventLog, canonical_csv, write_csv, write_parquet

Progress = Callable[[str, float], None]


@dataclass
class DemoOutput:
    """What `simulate` wrote. `files` pairs each data file with the source mapping that reads it
    (a name under `sources:` in journeymap.yml), or None for files already in the canonical shape."""

    workspace: Path
    definition: Path
    files: list[tuple[Path, str | None]]
    truth: Path


def simulate(out_dir: str | Path, accounts: int = 5000, seed: int = 42, progress: Progress | None = None) -> DemoOutput:
    """Simulate a B2B SaaS business and write its tool exports, a journeymap.yml and the ground truth.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = simulate(folder, accounts=50, seed=1)
    ...     sorted(name for _, name in out.files if name)
    ['crm', 'crm_accounts', 'reviews', 'stripe', 'surveys', 'zendesk']
    """
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    out = Path(out_dir)
    data, truth_dir = out / "data", out / "truth"
    say = progress or (lambda _msg, _frac: None)

    def rng(step: int) -> np.random.Generator:
        return np.random.default_rng([seed, step])

    say("drawing accounts and people", 0.0)
    acc = draw_accounts(rng(1), accounts)
    ppl = draw_people(rng(2), acc)
    say("simulating evaluation, trials and deals", 0.1)
    f = simulate_funnel(rng(3), acc)
    tickets = draw_tickets(rng(4), acc, ppl, f)
    say("simulating churn", 0.2)
    ch = simulate_churn(rng(5), acc.persona, f, tickets)
    ends = life_end(f, ch.churn_at)
    tickets = cut_at(tickets, np.where(ends == NA, b.END + 1, ends))
    bill = simulate_billing(rng(6), acc, ppl, f, ch)

    # the onboarding nudge's planted effect, its own stream: it moves treated accounts' first integration only
    nudge = plant_nudge(rng(18), acc, f, ends)

    say("simulating product usage", 0.35)
    product = EventLog("prd_")
    users = product_users(rng(7), acc, ppl, f, ends)
    voluntary_at = np.where(ch.voluntary, ch.churn_at, NA)
    product_events(rng(8), acc, ppl, dataclasses.replace(f, integration_at=nudge.integration_at), users, product,
                   bill.plan_changes, voluntary_at)
    nps = nps_answers(rng(9), f, ch, tickets, users)
    reviews = advocacy(rng(10), acc, ppl, nps, ends, product)

    say("simulating website visitors", 0.55)
    web = EventLog("web_")
    anonymous_visitors(rng(11), accounts, web)
    account_web_events(rng(12), acc, ppl, f, web)

    # the onboarding experiment (a CRM trait), its own stream so no other draw moves: 55/45, not the 50/50 meant
    onboarding = (rng(17).random(accounts) < b.P_ONBOARDING_CHECKLIST).astype(int)

    say("writing exports", 0.65)
    files: list[tuple[Path, str | None]] = [
        (write_parquet(product.to_table(b.END, rng(13)), data / "product_events.parquet"), None),
        (write_csv(canonical_csv(web.to_table(b.END)), data / "web_events.csv"), None),
        (write_csv(crm_accounts_export(acc, f, onboarding), data / "crm_accounts.csv"), "crm_accounts"),
        (write_csv(crm_export(rng(14), acc, ppl, f), data / "crm_lifecycle.csv"), "crm"),
        (write_csv(bill.table, data / "stripe_events.csv"), "stripe"),
        (write_csv(zendesk_export(rng(15), tickets, acc, ppl), data / "zendesk_tickets.csv"), "zendesk"),
        (write_csv(survey_export(rng(16), nps, tickets, f, ppl), data / "survey_responses.csv"), "surveys"),
        (write_csv(reviews, data / "g2_reviews.csv"), "reviews"),
    ]
    say("writing the truth and journeymap.yml", 0.9)
    truth = write_parquet(truth_table(acc, f, ch, bill, tickets, ends, np.bincount(users.account, minlength=acc.n)),
                          truth_dir / "accounts.parquet")
    write_parquet(ticket_truth(tickets, acc), truth_dir / "tickets.parquet")
    write_experiment_truth(truth_dir / "experiments.json", f, onboarding)
    (truth_dir / "playbooks.json").write_text(json.dumps(nudge.truth, indent=2) + "\n", encoding="utf-8")
    definition = write_definition(out / "journeymap.yml")
    say("done", 1.0)
    return DemoOutput(out, definition, files, truth)
