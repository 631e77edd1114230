"""The journey definition the benchmarks use on the synthetic log of `events.py` (30 names, six sources).

`write_definition(workspace)` writes it as the workspace's journeymap.yml. Stages are mapped from event
names, rarest first (event_29 is the rarest, event_00 the most common), so a customer walks from
discovery to retention the way popularity falls off:

    discovery    <- event_20..event_28        evaluation <- event_15..event_19
    acquisition  <- event_10..event_14        onboarding <- event_05..event_09
    adoption     <- event_02..event_04        retention  <- event_00, event_01
    churned      <- event_29 with properties.n >= 50   (terminal, kind churn; ~0.1 % of events)

Analysis level account (B2B, like the demo): accounts are "a<customer // 4>". Milestones: start event_10,
value moment event_05, key features event_02, event_03, event_04, customer stage retention.
Health signals for the churn-model features: usage = source product, tickets = source support,
failed payments = event_08 from billing; early touchpoints = the onboarding touchpoints. No surveys, no
revenue section: the synthetic log has no scores or MRR, so those features are empty.
"""

from __future__ import annotations

from pathlib import Path

DEFINITION_YML = """\
# Written by benchmarks/bench_definition.py for the synthetic benchmark log.
name: Synthetic benchmark journey
analysis:
  level: account
stages:
  - {id: discovery, name: Discovery, entry: {event: [event_20, event_21, event_22, event_23, event_24, event_25, event_26, event_27, event_28]}}
  - {id: evaluation, name: Evaluation, entry: {event: [event_15, event_16, event_17, event_18, event_19]}}
  - {id: acquisition, name: Acquisition, entry: {event: [event_10, event_11, event_12, event_13, event_14]}}
  - {id: onboarding, name: Onboarding, entry: {event: [event_05, event_06, event_07, event_08, event_09]}}
  - {id: adoption, name: Adoption, entry: {event: [event_02, event_03, event_04]}}
  - {id: retention, name: Retention, entry: {event: [event_00, event_01]}}
  - id: churned
    name: Churned
    entry: {event: event_29, where: {n: {gte: 50}}}
    terminal: true
    kind: churn
touchpoints:
  - {id: ad, name: Ad, match: {event: event_20, source: marketing}, channel: web, stage: discovery}
  - {id: demo, name: Demo, match: {event: event_15, source: crm}, stage: evaluation}
  - {id: signup, name: Signup, match: event_10, stage: acquisition}
  - {id: setup, name: Setup, match: {event: [event_06, event_07]}, channel: app, stage: onboarding}
  - {id: invite, name: Invite, match: event_09, stage: onboarding}
  - {id: ticket, name: Ticket, match: {source: support}, channel: email}
  - {id: payment_failed, name: Failed payment, match: {event: event_08, source: billing}, stage: retention}
milestones:
  start: {event: event_10}
  value_moment: event_05
  customer_stage: retention
  key_features:
    - {id: f02, name: Feature 2, match: event_02}
    - {id: f03, name: Feature 3, match: event_03}
    - {id: f04, name: Feature 4, match: event_04}
health:
  signals:
    usage: {source: product}
    ticket: {source: support}
    failed_payment: {event: event_08, source: billing}
    early_touchpoints: [setup, invite]
"""

KEY_FEATURES = {"f02": "event_02", "f03": "event_03", "f04": "event_04"}
STAGES = [  # (id, event names, extra SQL condition), in definition order: first match wins
    ("discovery", [f"event_{i}" for i in range(20, 29)], None),
    ("evaluation", [f"event_{i}" for i in range(15, 20)], None),
    ("acquisition", [f"event_{i}" for i in range(10, 15)], None),
    ("onboarding", [f"event_{i:02d}" for i in range(5, 10)], None),
    ("adoption", ["event_02", "event_03", "event_04"], None),
    ("retention", ["event_00", "event_01"], None),
    ("churned", ["event_29"], "n >= 50"),
]


def write_definition(workspace: str | Path) -> Path:
    path = Path(workspace) / "journeymap.yml"
    path.write_text(DEFINITION_YML)
    return path
