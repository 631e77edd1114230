"""An independent SaaS business for tests, written here and not by the demo: Pawly, appointment scheduling for
vet clinics. Its names, sources, traits and effects are its own, so a default that only works on the demo
fails on it. Planted (the truth it returns):

  - the cause: `calendar_synced` in the first week (40% of clinics) cuts the monthly churn hazard to 40%;
  - a persona: small clinics churn 1.3x as often, and invite staff less (so `staff_invited` goes with
    retention through the persona only: it has no effect of its own);
  - noise: `reminder_template_edited` (half the clinics) has no effect at all.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

DEFINITION = """\
name: Pawly clinic journey
analysis: {level: account}
stages:
  - {id: setup, name: Setup, entry: clinic_created}
  - {id: onboarding, name: Onboarding, entry: {event: [calendar_synced, staff_invited, reminder_template_edited]}}
  - {id: active, name: Active, entry: appointment_booked}
  - {id: paying, name: Paying, entry: plan_paid}
  - {id: churned, name: Churned, entry: subscription_ended, terminal: true, kind: churn}
personas:
  - {id: large, name: Large clinic, traits: {clinic_size: large}}
  - {id: small, name: Small clinic, traits: {clinic_size: small}}
milestones:
  start: clinic_created
  customer_stage: paying
"""

START, END = dt.datetime(2024, 1, 1), dt.datetime(2025, 12, 31)


def write(folder: Path, clinics: int = 2500, seed: int = 1) -> dict:
    """Write `folder/journeymap.yml` and `folder/events.jsonl`; returns the planted truth per clinic."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    span = (dt.datetime(2025, 6, 30) - START).total_seconds()

    def event(name, acct, t, **extra):
        rows.append({"event": name, "user_id": f"vet-{acct}", "account_id": f"clinic-{acct}", "source": "product",
                     "channel": "app", "ts": t.isoformat(), **extra})

    for i in range(clinics):
        t0 = START + dt.timedelta(seconds=float(rng.uniform(0, span)))
        small = bool(rng.random() < 0.5)
        rows.append({"type": "group", "event": "group", "user_id": f"vet-{i}", "account_id": f"clinic-{i}",
                     "source": "crm", "ts": t0.isoformat(), "traits": {"clinic_size": "small" if small else "large"}})
        event("clinic_created", i, t0)
        synced = bool(rng.random() < 0.4)
        if synced:
            event("calendar_synced", i, t0 + dt.timedelta(days=float(rng.uniform(0.1, 6))))
        if rng.random() < 0.5:
            event("reminder_template_edited", i, t0 + dt.timedelta(days=float(rng.uniform(0.1, 10))))
        if rng.random() < (0.25 if small else 0.45):
            event("staff_invited", i, t0 + dt.timedelta(days=float(rng.uniform(0.1, 12))))
        paid = bool(rng.random() < 0.8)
        hazard = 0.06 * (0.4 if synced else 1.0) * (1.3 if small else 1.0)  # per 30 days, once paying
        paid_at = t0 + dt.timedelta(days=14)
        churn_at = paid_at + dt.timedelta(days=float(rng.exponential(30 / hazard))) if paid else None
        last = min(END, churn_at) if paid else t0 + dt.timedelta(days=20)
        t = t0 + dt.timedelta(days=1)
        while t < last:  # appointments booked while the clinic uses Pawly
            event("appointment_booked", i, t)
            t += dt.timedelta(days=float(rng.exponential(4)))
        if paid:
            month = paid_at
            while month < last:
                event("plan_paid", i, month)
                month += dt.timedelta(days=30)
            if churn_at < END:
                event("subscription_ended", i, churn_at)
        truth.append({"clinic": f"clinic-{i}", "start": t0.isoformat(), "synced_week1": synced, "small": small, "paid": paid,
                      "churn_at": churn_at.isoformat() if churn_at and churn_at < END else None})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "journeymap.yml").write_text(DEFINITION)
    with (folder / "events.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return {"clinics": truth}
