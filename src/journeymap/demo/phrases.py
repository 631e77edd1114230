"""Phrase banks for survey comments and ticket subjects: theme x sentiment, assembled from parts so
the wording varies a lot (an opener, a core statement with a slot, a detail, a closer; each optional
except the core), the way real verbatims do."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

THEMES = ("onboarding", "pricing", "integrations", "performance", "support", "reporting")
SENTIMENTS = ("negative", "neutral", "positive")

SLOTS = {
    "onboarding": ("the setup checklist", "the first dashboard wizard", "inviting my team", "the sample workspace",
                   "connecting our first data source", "the getting started guide"),
    "pricing": ("the per-seat price", "the seat calculator", "the jump from Team to Business", "annual billing",
                "the invoice", "what we pay per viewer"),
    "integrations": ("the Snowflake connector", "the Salesforce sync", "the HubSpot integration", "BigQuery",
                     "the Slack alerts", "the Postgres connector"),
    "performance": ("dashboard load times", "large queries", "the SQL editor", "exports", "filters on big tables",
                    "the mobile app"),
    "support": ("your support team", "the help center", "the chat agent", "ticket follow-up", "the escalation",
                "the support docs"),
    "reporting": ("scheduled reports", "the report builder", "drill-downs", "sharing dashboards", "the alerts",
                  "the AI insights"),
}

CORE = {
    "negative": (
        "{x} is a real struggle", "{x} keeps letting us down", "I wasted hours on {x}", "{x} is confusing",
        "we almost gave up because of {x}", "honestly {x} is the weakest part", "{x} needs serious work",
        "nobody on my team understands {x}", "{x} broke twice this month", "{x} feels unfinished",
    ),
    "neutral": (
        "{x} is okay", "{x} does the job", "{x} could be clearer", "{x} works but takes effort",
        "{x} is fine for now", "mixed feelings about {x}", "{x} is average compared to others",
        "we get by with {x}", "{x} is acceptable", "{x} has room to improve",
    ),
    "positive": (
        "{x} is excellent", "love {x}", "{x} just works", "{x} saved us days", "{x} is the best part",
        "really impressed by {x}", "{x} made the switch easy", "{x} is fast and clear", "big fan of {x}",
        "{x} exceeded what we expected",
    ),
}

OPENERS = {
    "negative": ("Frustrated.", "Not great so far.", "To be honest,", "Disappointed:", "Ugh,", "Sadly,", ""),
    "neutral": ("Overall okay.", "So-so.", "It's fine.", "Hmm,", "Mostly fine,", ""),
    "positive": ("Great product!", "Very happy.", "Solid tool.", "Thanks!", "Love it.", "Honestly,", ""),
}

DETAILS = {
    "onboarding": ("it took us a week to get going", "the first login felt overwhelming", "our analysts were set up in a day",
                   "the checklist skipped the data step", "we needed a call to finish setup"),
    "pricing": ("hard to predict next quarter's bill", "we had to ask sales to explain the tiers",
                "good value for what we use", "adding viewers gets expensive fast", "the calculator gave three answers"),
    "integrations": ("the sync failed overnight", "credentials expired without warning", "took minutes to connect",
                     "field mapping was painful", "data arrives within the hour"),
    "performance": ("pages take 10+ seconds", "it times out on month-end", "snappy even on big tables",
                    "we see spinners every morning", "much faster since the last release"),
    "support": ("I had to explain the issue three times", "answered within the hour", "the ticket bounced between teams",
                "they fixed it the same day", "still waiting on a reply"),
    "reporting": ("our execs read it every Monday", "the builder hides basic options", "alerts catch issues early",
                  "exports lose the formatting", "the weekly email is our source of truth"),
}

CLOSERS = {
    "negative": ("Please fix this.", "Considering alternatives.", "We expected more.", "Not renewing like this.", ""),
    "neutral": ("Keep improving.", "We'll see.", "Could go either way.", ""),
    "positive": ("Keep it up!", "Would recommend.", "Already told two friends.", "10/10.", ""),
}

SUBJECTS = {
    "onboarding": ("Can't finish workspace setup", "How do I invite my team?", "Sample data won't go away",
                   "Stuck on the getting started checklist"),
    "pricing": ("Question about our invoice", "Seat count looks wrong", "How do tiers work?", "Charged for removed users"),
    "integrations": ("Snowflake connector failing", "Salesforce sync stopped", "OAuth error connecting HubSpot",
                     "BigQuery permissions issue"),
    "performance": ("Dashboards loading slowly", "Query timeout on large table", "Export takes forever", "App freezing"),
    "support": ("Follow-up on previous ticket", "Need to talk to someone", "Escalation request", "No reply yet"),
    "reporting": ("Scheduled report not sent", "Chart shows wrong totals", "Can't share dashboard externally",
                  "Alert fired twice"),
}
URGENT = ("URGENT: ", "Still broken: ", "Re: ", "Again - ")


def comments(rng: np.random.Generator, theme: np.ndarray, sentiment: np.ndarray) -> list[str]:
    """One comment per (theme, sentiment) pair; theme indexes THEMES, sentiment SENTIMENTS."""
    n = len(theme)
    r = rng.random((n, 8))
    idx = rng.integers(0, 1 << 30, (n, 5))
    out = []
    for i in range(n):
        t, s = THEMES[theme[i]], SENTIMENTS[sentiment[i]]
        slot = SLOTS[t][idx[i, 0] % len(SLOTS[t])]
        core = CORE[s][idx[i, 1] % len(CORE[s])].format(x=slot)
        parts = []
        if r[i, 0] < 0.6:
            parts.append(OPENERS[s][idx[i, 2] % len(OPENERS[s])])
        parts.append(core[0].upper() + core[1:] if r[i, 1] < 0.8 else core)
        if r[i, 2] < 0.5:
            detail = DETAILS[t][idx[i, 3] % len(DETAILS[t])]
            parts[-1] += (" - " if r[i, 3] < 0.4 else ", ") + detail
        parts[-1] += "." if r[i, 4] < 0.7 else ("!" if s == "positive" else "")
        if r[i, 5] < 0.4:
            parts.append(CLOSERS[s][idx[i, 4] % len(CLOSERS[s])])
        text = " ".join(p for p in parts if p)
        out.append(text.lower() if r[i, 6] < 0.1 else text)
    return out


def ticket_subjects(rng: np.random.Generator, theme: np.ndarray, high_effort: np.ndarray) -> pa.Array:
    """A subject per ticket; tickets that cost the customer effort are more often chased again."""
    n = len(theme)
    pick = rng.integers(0, 4, n)
    vocab = [s for t in THEMES for s in SUBJECTS[t]]
    base = np.asarray(theme) * 4 + pick
    prefix = np.where(high_effort & (rng.random(n) < 0.35), rng.integers(0, len(URGENT), n), -1)
    full = [URGENT[k] + vocab[j] if k >= 0 else vocab[j] for j, k in zip(base.tolist(), prefix.tolist(), strict=True)]
    return pa.array(full)
