"""The simulated business: every parameter of the demo, with the published figure it is tuned to.

The demo company sells a B2B analytics product (dashboards, reports, a SQL editor, alerts) to three
personas. Each parameter below is either a published SaaS figure from `SAAS_BENCHMARKS.md` (cited
where it is used) or a modelling choice, said to be one. Indexing convention: persona arrays are
ordered like `PERSONAS` (SMB, mid-market, enterprise).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

DAY = 86400
MONTH = 30.44 * DAY
START = int(datetime(2025, 5, 1, tzinfo=UTC).timestamp())
END = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) - 1
"""The data window: 18 months ending 2026-10-31 23:59:59 UTC. Nothing is written after END."""

COMPANY = "Lumen Analytics"

# --- published figures the business must land inside (asserted by tests/test_demo.py) -----------
BENCHMARKS: dict[str, tuple[float, float, str]] = {
    "trial_to_paid": (0.20, 0.40, "trial -> paid, card required: 30% (Growth Unhinged with ChartMogul and "
                      "ProductLed, 200 B2B products, 2026)"),
    "visitor_to_trial": (0.02, 0.05, "visitor -> trial signup 2-5%, self-serve (unsourced blog figure)"),
    "activation": (0.30, 0.45, "activation rate mean 37.5%; 24% MarTech, 42.6% CRM (Userpilot benchmark 2024, "
                   "547 companies)"),
    "monthly_logo_churn": (0.03, 0.07, "monthly logo churn 3-7% typical, 6.8% at ARPA < $10 down to 1.9% above "
                           "$500 (ChartMogul); B2B 4.91% (Recurly Research)"),
    "involuntary_share": (0.20, 0.40, "involuntary churn about a quarter of churn: 1.38 of 4.91 points (Recurly "
                          "Research); 20-40% from failed payments (ProfitWell 2018)"),
    "nps": (30.0, 41.0, "NPS, B2B software: about 30-41 (ClientSuccess, Userpilot)"),
    "csat": (0.83, 0.91, "CSAT, software support: 87%, global 86% (Zendesk Customer Satisfaction Index 2012)"),
    "core_feature_adoption": (0.18, 0.32, "core-feature adoption mean 24.5% (Userpilot 2025)"),
    "dau_mau": (0.13, 0.22, "DAU/MAU average 15%, good 20% (Mixpanel/Sequoia via June.so)"),
    "tickets_per_customer_month": (0.5, 1.0, "tickets per customer per month 0.5-1.0 (unsourced)"),
    "expansion_share_of_new_mrr": (0.20, 0.45, "share of new ARR from expansion: 32% (ChartMogul 2023), 37% "
                                   "(KBCM 2019)"),
    "top_features_click_share": (0.75, 0.95, "12% of features get 80% of clicks; 80% of features rarely or never "
                                 "used (Pendo 2019 feature adoption report)"),
}

# --- personas -------------------------------------------------------------------------------------
PERSONAS = ("smb", "mid_market", "enterprise")
PERSONA_NAMES = ("SMB self-serve", "Mid-market, sales-assisted", "Enterprise")
PERSONA_SHARE = np.array([0.62, 0.28, 0.10])  # modelling choice: a PLG company with a sales team
EMPLOYEES = ((5, 99), (100, 999), (1000, 20000))  # persona rules in journeymap.yml split on these
INDUSTRIES = ("software", "ecommerce", "financial_services", "healthcare", "manufacturing", "media", "education")
INDUSTRY_WEIGHTS = np.array(
    [[0.30, 0.25, 0.10, 0.08, 0.07, 0.12, 0.08],
     [0.25, 0.18, 0.17, 0.12, 0.14, 0.08, 0.06],
     [0.15, 0.10, 0.28, 0.18, 0.19, 0.05, 0.05]]
)
REGIONS = ("us", "eu", "apac")
REGION_WEIGHTS = np.array([0.55, 0.33, 0.12])
REGION_WORK_HOUR_UTC = np.array([17.0, 11.0, 3.0])  # centre of the working day, UTC hours

# --- discovery and evaluation ----------------------------------------------------------------------
CHANNELS = ("paid_search", "organic", "social", "email", "referral", "events")
CHANNEL_MIX = np.array(  # first-touch channel of accounts; modelling choice
    [[0.30, 0.30, 0.15, 0.03, 0.12, 0.10],
     [0.22, 0.22, 0.10, 0.10, 0.16, 0.20],
     [0.12, 0.15, 0.05, 0.18, 0.20, 0.30]]
)
ANON_CHANNEL_MIX = np.array([0.38, 0.34, 0.18, 0.0, 0.05, 0.05])  # visitors who never become known
ANON_VISITORS_PER_ACCOUNT = 13.0
"""Visitors who never leave an email, per account. Sized so visitor -> trial lands in 2-5%."""
TOUCHES_BEFORE_EVAL = np.array([1.5, 2.5, 3.5])  # extra marketing touches (Poisson mean)
DAYS_TO_EVAL = np.array([4.0, 10.0, 18.0])  # exponential mean, first touch -> evaluation
P_VIEW_PRICING = np.array([0.90, 0.80, 0.60])
DOCS_VIEWS = np.array([1.2, 2.5, 3.0])  # Poisson mean
P_DEMO_REQUEST = np.array([0.05, 0.75, 0.95])
PRICING_VARIANTS = ("tiers", "seat_calculator")
P_SEAT_CALCULATOR = 0.35
"""Share of website visitors the pricing experiment shows the seat calculator (sticky per browser)."""

# --- acquisition ----------------------------------------------------------------------------------
P_ACQUIRE = np.array([0.80, 0.66, 0.60])
"""Evaluation -> trial or purchase, for evaluators who never saw the seat calculator (modelling choice)."""
P_TRIAL = np.array([1.0, 0.70, 0.50])  # acquired accounts that start with a trial (the rest buy outright)
TRIAL_DAYS = np.array([14, 14, 30])  # 14-day trials are the most common (62%; Growth Unhinged 2026)
P_ACTIVATE = np.array([0.36, 0.42, 0.46])  # aims at Userpilot's 37.5% mean activation
TTV_MEDIAN_DAYS = np.array([2.5, 4.0, 6.0])  # lognormal, sigma TTV_SIGMA
TTV_SIGMA = 0.9
P_CONVERT = np.array([[0.15, 0.20, 0.25], [0.55, 0.60, 0.65]])
"""Trial -> paid by [activated][persona]; overall about 30% (card-required benchmark)."""
P_INTEGRATION_WEEK1 = 0.35
"""The same for every persona and independent of activation and conversion, so the planted churn
effect is not confounded: compare churn of week-one integrators with everyone else directly."""
P_INTEGRATION_LATER = 0.30
INTEGRATIONS = ("snowflake", "bigquery", "postgres", "salesforce", "hubspot", "stripe", "slack")

# --- plans, seats and users -----------------------------------------------------------------------
PLANS = ("starter", "team", "business", "enterprise")
PRICE_PER_SEAT = np.array([19.0, 39.0, 69.0, 99.0])  # USD per seat per month
PLAN_MIX = np.array([[0.6, 0.4, 0.0, 0.0], [0.0, 0.3, 0.7, 0.0], [0.0, 0.0, 0.0, 1.0]])
SEATS_BASE = np.array([1, 5, 20])
SEATS_EXTRA = np.array([2.0, 8.0, 30.0])  # Poisson mean on top of the base
USER_SHARE = (0.55, 0.95)  # active users per seat, uniform
MAX_USERS = np.array([6, 16, 28])
CONTACTS = np.array([1, 2, 3])  # CRM contacts per account (the champion first)

# --- retention, churn and expansion --------------------------------------------------------------
MONTHLY_CHURN = np.array([0.055, 0.028, 0.012])
"""Base monthly logo-churn hazard by ARPA band: ~$80 SMB, ~$900 mid-market, ~$5k enterprise
(ChartMogul: 6.8% below $10 ARPA down to 1.9% above $500)."""
INVOLUNTARY_SHARE = 0.30
"""Of the base hazard. Bad support experiences add voluntary churn on top, so the realised involuntary
share of churn is about a quarter (Recurly: 1.38 of 4.91 points; ProfitWell: 20-40%)."""
P_FAILED_PAYMENT_RECOVERED = 0.012  # monthly chance an invoice fails once and is recovered
SEATS_ADDED_MONTHLY = np.array([0.07, 0.14, 0.20])
SEATS_ADDED_SIZE = np.array([1.0, 4.0, 12.0])  # Poisson mean (+1)
UPGRADE_MONTHLY = np.array([0.035, 0.025, 0.0])
DOWNGRADE_MONTHLY = np.array([0.008, 0.006, 0.0])
CANCEL_FEEDBACK = ("too_expensive", "missing_features", "switched_service", "unused", "customer_service",
                   "too_complex", "low_quality", "other")  # Stripe's cancellation_details.feedback values
CANCEL_FEEDBACK_WEIGHTS = np.array([0.24, 0.18, 0.14, 0.18, 0.06, 0.08, 0.04, 0.08])
FAILURE_CODES = ("card_declined", "expired_card", "insufficient_funds", "processing_error")
FAILURE_WEIGHTS = np.array([0.45, 0.25, 0.22, 0.08])

# --- product usage --------------------------------------------------------------------------------
FEATURES = ("dashboard_viewed", "filter_applied", "report_created", "query_run", "alert_created",
            "data_exported", "report_scheduled", "ai_insight_requested", "dashboard_shared", "api_key_created")
FEATURE_CLICK_WEIGHTS = np.array([0.64, 0.17, 0.05, 0.04, 0.02, 0.025, 0.015, 0.015, 0.02, 0.005])
"""Skewed like Pendo's 12%-of-features-get-80%-of-clicks: two of ten features get ~80% of events."""
FEATURE_ADOPTION = np.array([1.0, 0.80, 0.55, 0.32, 0.36, 0.32, 0.22, 0.18, 1.0, 0.05])
"""Share of users who ever use each feature (a user never uses a feature they did not adopt);
the six key features average about a quarter (Userpilot 2025 core-feature adoption 24.5%).
dashboard_shared is the value moment and only happens after activation. A click on a feature the user
has not adopted goes to the dashboard or a filter instead."""
KEY_FEATURES = ("report_created", "query_run", "alert_created", "data_exported", "report_scheduled",
                "ai_insight_requested")
ACTIVE_DAY_BETA = (1.6, 7.4)  # per-user daily activity probability, mean 0.18 (DAU/MAU 15-20%)
TRIAL_ACTIVE_DAY = 0.40  # the champion during a trial
EVENTS_PER_ACTIVE_DAY = np.array([3.0, 3.4, 3.6])  # Poisson mean, plus one

# --- support and surveys --------------------------------------------------------------------------
TICKETS_MONTHLY = np.array([0.50, 0.95, 1.5])
"""Tickets per account-month while in trial or paying (0.5-1.0 per customer per month)."""
TICKET_THEMES = ("onboarding", "pricing", "integrations", "performance", "support", "reporting")
TICKET_THEME_WEIGHTS = np.array([0.18, 0.14, 0.22, 0.16, 0.10, 0.20])
P_HIGH_EFFORT_BY_THEME = np.array([0.10, 0.08, 0.24, 0.22, 0.12, 0.09])
HIGH_EFFORT_BY_PERSONA = np.array([1.0, 0.53, 0.33])
"""Bigger accounts open more tickets but have a named support engineer: the rate of high-effort tickets
per account-month is about the same in every persona (so that effect is not confounded by persona)."""
P_TICKET_SURVEY = 0.75  # post-solve survey (CSAT + effort) answered
NPS_EVERY_DAYS = 90
P_NPS_RESPONSE = 0.22
NPS_MIX = np.array([[0.12, 0.33, 0.55], [0.40, 0.35, 0.25]])
"""[healthy, at risk] x (detractor, passive, promoter): +43 and -15; about a fifth of answers come from
accounts at risk (a high-effort ticket in the last 60 days, or churning within 90), so NPS ~ +34."""
P_CSAT_SATISFIED = np.array([0.90, 0.60])  # [normal, high-effort ticket] -> overall ~87% (Zendesk CSI)
P_REFERRAL_AFTER_PROMOTER = 0.25
P_REVIEW_AFTER_PROMOTER = 0.08
P_REVIEW_AFTER_DETRACTOR = 0.04

# --- planted causal effects (see docs/demo.md; the truth table records who was exposed) -----------
EFFECT_INTEGRATION_WEEK1_CHURN = 0.5
"""Accounts that connect an integration within 7 days of acquisition: churn hazard x0.5."""
EFFECT_SEAT_CALCULATOR_ACQUIRE = 0.4
"""Evaluators who saw the seat-calculator pricing variant: evaluation -> acquisition x0.4."""
EFFECT_HIGH_EFFORT_CHURN = 3.6
"""Voluntary churn hazard x3.6 for 60 days after a ticket solved with effort >= 5; with the
involuntary part (30% of the base) unaffected, total churn hazard x2.8 in that window."""
NUDGE_PLAYBOOK = "onboarding_nudge"
NUDGE_STARTED = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
"""The onboarding nudge (`playbooks:` in journeymap.yml) went live on 2026-01-01 (its `started:`), holding out
NUDGE_HOLDOUT of accounts by act/outbox.py's hash; it enters accounts with no integration NUDGE_ENTRY_DAYS after
signing up and measures integration_connected within NUDGE_WINDOW_DAYS of that. The nudge acts after the first two
weeks, the window moments of truth read by default, so that analysis still sees the planted week-one effect
(EFFECT_INTEGRATION_WEEK1_CHURN) undiluted by connections the nudge brought forward, which lower no churn."""
NUDGE_HOLDOUT = 0.2
NUDGE_ENTRY_DAYS = 14
NUDGE_WINDOW_DAYS = 14
EFFECT_NUDGE_CONNECT = 0.4
"""A treated (not held-out) account the nudge enters on or after NUDGE_STARTED connects its first data source
0.1-5 days after the nudge with this probability (earlier than it would have, if it would have at all)."""
ONBOARDING_VARIANTS = ("classic", "checklist")
ONBOARDING_SPLIT_INTENDED = 0.5
P_ONBOARDING_CHECKLIST = 0.45
"""The onboarding-checklist experiment (`experiments:` in journeymap.yml) was meant to be 50/50; a bug assigns
the checklist to 45% of accounts (a CRM trait, `onboarding_variant`), so its sample-ratio-mismatch test
must flag it. The checklist changes nothing: every planted effect stays as it was."""
HIGH_EFFORT_WINDOW_DAYS = 60
HIGH_EFFORT_MIN = 5
