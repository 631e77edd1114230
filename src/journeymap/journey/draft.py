"""A draft journeymap.yml proposed from the events a store holds (`journeymap init --from-data`).

What it reads, after an identity stitch: `journey_events` (every event with its person and account),
`persons` and `accounts` (their traits). What it proposes, and from what:

  analysis.level  account when most units' events carry an account, else person
  stages          each event name is put in a lifecycle phase by its name (signup, invoice_paid,
                  seats_added ...) or, failing that, by its source (marketing: discovery, crm:
                  evaluation, billing: retention, product: adoption); phases are listed in lifecycle
                  order, each entered by its events that at least 1% of units reach. Cancellations are
                  a terminal churn stage, lost deals and expired trials a terminal lost stage.
                  Surveys, support tickets, identify/group calls and failures are not stages.
  touchpoints     one per (source, channel) with at least 0.5% of the events
  personas        the most telling trait: of the traits most units have with 2 to 6 values (or a
                  number, split at its terciles), the one whose values differ most in how many units
                  become customers (chi-square p-value)
  milestones      customer_stage (the retention phase) and key features (the adoption events)
  surveys         events named nps/csat/ces that carry a numeric score
  revenue         billing events with an mrr property, ending at the churn stage's events

Every choice is written next to its evidence (reach, median day of first occurrence) as a comment,
and the file starts with DRAFT: it is a starting point for the team to edit, never a finished map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import yaml

PHASES: tuple[tuple[str, str, str], ...] = (
    # (stage id, name, event-name pattern); order is the lifecycle's
    ("discovery", "Discovery", r"ad_click|page_view|visit|landing|ebook|whitepaper|webinar|email_click|email_open|"
                               r"campaign|blog|content_|download"),
    ("evaluation", "Evaluation", r"pricing|demo|docs|lead|mql|sql_|opportunit|contact_sales|quote|trial_request"),
    ("acquisition", "Acquisition", r"sign_?up|signed_up|register|account_created|trial_start|subscription_start|"
                                   r"subscription_created|checkout|purchase"),
    ("onboarding", "Onboarding", r"onboard|integration|connect|invite|setup|install|import|tutorial|checklist"),
    ("adoption", "Adoption", r"report|dashboard|query|alert|export|share|feature|insight|project|upload|create|"
                             r"schedule|publish|run"),
    ("retention", "Retention", r"invoice_paid|payment_succe|charge_succe|renew|trial_convert|deal_won|"
                               r"subscription_activ|order_paid"),
    ("expansion", "Expansion", r"upgrad|seats?_added|add_on|addon|expan"),
    ("advocacy", "Advocacy", r"referr|review|testimonial|case_study|promot"),
)
CHURN = r"cancel|churn|subscription_deleted|account_closed|account_deleted|unsubscrib"
LOST = r"deal_lost|closed_lost|_lost$|trial_expired|trial_ended"
NOT_STAGES = r"fail|downgrad|ticket|refund|error|bounce|complain|dispute"
PASSIVE = r"view|open|seen|login|session|visit|page"
BY_SOURCE = {"marketing": "discovery", "crm": "evaluation", "billing": "retention", "product": "adoption"}
CALLS = {"identify", "group", "alias"}
SOURCE_NAMES = {"crm": "CRM", "product": "Product", "marketing": "Marketing", "billing": "Billing",
                "support": "Support", "survey": "Survey", "other": "Other"}
OUTCOME_TRAITS = r"plan|mrr|arr|status|subscription|tier|churn|seat|billing|price|revenue|ltv|paid|customer"
"""Traits set by becoming a customer (a plan, an MRR): they tell customers apart because they describe the
outcome, so they would make every persona a restatement of conversion."""
MIN_REACH = 0.01
MIN_TOUCHPOINT_SHARE = 0.005
MAX_ENTRY_EVENTS = 8


@dataclass
class EventStats:
    event: str
    source: str | None
    reach: float
    """Share of units with the event."""
    per_unit: float
    """Events per unit that has it."""
    median_day: float
    """Median days from a unit's first event to its first of this one."""
    units: int


@dataclass
class Draft:
    text: str
    level: str
    units: int
    events: int
    stages: list[dict] = field(default_factory=list)
    touchpoints: list[dict] = field(default_factory=list)
    personas: dict | None = None
    surveys: list[str] = field(default_factory=list)
    revenue: dict | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "text"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def choose_level(con) -> str:
    """account when at least half of the events name an account (B2B), else person. Counted on events, not
    persons: anonymous visitors who never sign up are most persons of a B2B product and name no account."""
    total, with_account = con.execute("SELECT count(*), count(account_id) FROM journey_events").fetchone()
    return "account" if total and with_account / total >= 0.5 else "person"


def event_stats(con, level: str) -> tuple[int, list[EventStats]]:
    unit = "account_id" if level == "account" else "person_id"
    units = con.execute(f"SELECT count(DISTINCT {unit}) FROM journey_events WHERE {unit} IS NOT NULL").fetchone()[0]
    rows = con.execute(f"""
        WITH u AS (SELECT {unit} AS unit, ts, event, source FROM journey_events WHERE {unit} IS NOT NULL),
        t0 AS (SELECT unit, min(ts) AS t0 FROM u GROUP BY 1),
        per AS (SELECT unit, event, mode(source) AS source, count(*) AS k, min(ts) AS first_t FROM u GROUP BY 1, 2)
        SELECT event, mode(source), count(*), avg(k), median(epoch(first_t - t0) / 86400)
        FROM per JOIN t0 USING (unit) GROUP BY 1 ORDER BY 5, 1""").fetchall()
    return units, [EventStats(e, s, n / units, k, d, n) for e, s, n, k, d in rows] if units else []


def phase_of(stat: EventStats) -> str | None:
    """The stage id an event enters, or None when it is no stage's entry (see the module's doc)."""
    name = _norm(stat.event)
    if stat.event in CALLS or stat.source in ("survey", "support"):
        return None
    if re.search(CHURN, name):
        return "churned"
    if re.search(LOST, name):
        return "lost"
    if re.search(NOT_STAGES, name):
        return None
    for stage_id, _, pattern in PHASES:
        if re.search(pattern, name):
            if stage_id == "adoption" and re.search(PASSIVE, name):
                break  # looking is not adopting: a viewed dashboard is no used feature
            return stage_id
    fallback = BY_SOURCE.get(stat.source or "")
    if fallback == "adoption" and re.search(PASSIVE, name):
        return None
    return fallback


def _rule(events: list[str]) -> dict | str:
    return events[0] if len(events) == 1 else {"event": events}


def _title(text: str) -> str:
    return text.replace("_", " ").strip().capitalize()


def propose_stages(stats: list[EventStats]) -> tuple[list[dict], list[str]]:
    by_stage: dict[str, list[EventStats]] = {}
    for s in stats:
        stage = phase_of(s)
        if stage is not None and s.reach >= MIN_REACH:
            by_stage.setdefault(stage, []).append(s)
    names = {sid: name for sid, name, _ in PHASES} | {"churned": "Churned", "lost": "Lost"}
    stages, notes = [], []
    previous_day = None
    for sid in [p[0] for p in PHASES] + ["churned", "lost"]:
        members = sorted(by_stage.get(sid, []), key=lambda s: (-s.reach, s.event))[:MAX_ENTRY_EVENTS]
        if not members:
            continue
        day = min(s.median_day for s in members)
        stage = {"id": sid, "name": names[sid], "entry": _rule(sorted(s.event for s in members)),
                 "evidence": {s.event: {"reach": round(s.reach, 3), "median_day": round(s.median_day, 1)}
                              for s in members}}
        if sid in ("churned", "lost"):
            stage.update(terminal=True, kind="churn" if sid == "churned" else "lost")
        elif previous_day is not None and day + 7 < previous_day:
            notes.append(f"stage {sid}: its events first occur at day {day:.0f}, before the stage listed above it "
                         f"(day {previous_day:.0f}); check the order")
        if sid not in ("churned", "lost"):
            previous_day = day
        stages.append(stage)
    if not any(not s.get("terminal") for s in stages):
        notes.append("no event looked like a journey milestone: write the stages by hand")
    return stages, notes


def propose_touchpoints(con, stats_by_event: dict[str, EventStats]) -> list[dict]:
    total = con.execute("SELECT count(*) FROM journey_events").fetchone()[0]
    rows = con.execute("""
        SELECT source, channel, count(*) AS n FROM journey_events
        WHERE channel IS NOT NULL AND source IS NOT NULL AND event NOT IN ('identify', 'group', 'alias')
        GROUP BY ALL ORDER BY n DESC, source, channel""").fetchall()
    out = []
    for source, channel, n in rows:
        if n / total < MIN_TOUCHPOINT_SHARE:
            continue
        tid = _norm(f"{source}_{channel}")
        out.append({"id": tid, "name": f"{SOURCE_NAMES.get(source, _title(source))}: {channel.replace('_', ' ')}",
                    "match": {"source": source, "channel": channel}, "channel": channel,
                    "evidence": {"events": n, "share": round(n / total, 3)}})
    return out


def _numeric_split(values: list[float]) -> list[float] | None:
    """Two cut points at the terciles, rounded to two significant digits; None when they coincide."""
    values = sorted(values)
    cuts = []
    for q in (1 / 3, 2 / 3):
        v = values[int(q * (len(values) - 1))]
        cut = float(f"{v:.2g}") if v else 0.0
        cuts.append(int(cut) if cut.is_integer() else cut)
    return cuts if cuts[0] < cuts[1] else None


def propose_personas(con, level: str, customer_events: list[str]) -> tuple[list[dict], dict | None]:
    """Personas from the trait whose values differ most in reaching a customer event (chi-square)."""
    from scipy.stats import chi2_contingency

    table, unit = ("accounts", "account_id") if level == "account" else ("persons", "person_id")
    if not customer_events:
        return [], None
    units = con.execute(f"""
        SELECT t.{unit}, t.traits, c.{unit} IS NOT NULL
        FROM {table} t LEFT JOIN (SELECT DISTINCT {unit} FROM journey_events WHERE event IN ?) c USING ({unit})
        WHERE t.traits IS NOT NULL AND t.traits <> '{{}}'""", [customer_events]).fetchall()
    n_units = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if not units or not n_units:
        return [], None
    import json

    by_key: dict[str, list[tuple[object, bool]]] = {}
    for _, traits, customer in units:
        for key, value in json.loads(traits).items():
            if (isinstance(value, (str, int, float)) and not isinstance(value, bool) and key not in ("name", "email")
                    and not re.search(OUTCOME_TRAITS, _norm(key))):
                by_key.setdefault(key, []).append((value, customer))
    best = None
    for key, pairs in by_key.items():
        if len(pairs) < 0.5 * n_units:
            continue
        numbers = [_number(v) for v, _ in pairs]
        if all(x is not None for x in numbers) and len(set(numbers)) > 6:
            cuts = _numeric_split(numbers)
            if cuts is None:
                continue
            groups = [_band(x, cuts) for x in numbers]
        else:
            groups = [str(v) for v, _ in pairs]
            cuts = None
            if not 2 <= len(set(groups)) <= 6:
                continue
        labels = sorted(set(groups))
        counts = [[sum(1 for g, (_, c) in zip(groups, pairs) if g == label and c == flag) for flag in (True, False)]
                  for label in labels]
        if any(sum(row) < 10 for row in counts) or all(row[0] == 0 for row in counts):
            continue
        p = chi2_contingency(counts)[1]
        if best is None or p < best[1]:
            best = (key, p, cuts, labels, counts)
    if best is None:
        return [], None
    key, p, cuts, labels, counts = best
    rates = {label: round(row[0] / sum(row), 3) for label, row in zip(labels, counts)}
    evidence = {"trait": key, "p_value": float(f"{p:.3g}"), "customer_rate": rates,
                "units": {label: sum(row) for label, row in zip(labels, counts)}}
    if cuts is not None:
        lo, hi = (_plain(c) for c in cuts)
        personas = [{"id": _norm(f"{key}_{hi}_plus"), "name": f"{_title(key)} {hi}+", "traits": {key: {"gte": cuts[1]}}},
                    {"id": _norm(f"{key}_{lo}_to_{hi}"), "name": f"{_title(key)} {lo}-{hi}", "traits": {key: {"gte": cuts[0]}}},
                    {"id": _norm(f"{key}_under_{lo}"), "name": f"{_title(key)} under {lo}", "traits": {key: {"lt": cuts[0]}}}]
    else:
        order = sorted(labels, key=lambda label: -sum(counts[labels.index(label)]))
        personas = [{"id": _norm(f"{key}_{label}") or f"{key}_value", "name": f"{_title(key)}: {label}",
                     "traits": {key: label}} for label in order]
    return personas, evidence


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _band(x: float, cuts: list[float]) -> str:
    lo, hi = (_plain(c) for c in cuts)
    return f"{hi}+" if x >= cuts[1] else f"{lo}-{hi}" if x >= cuts[0] else f"under {lo}"


def _plain(x: float) -> str:
    return f"{x:g}"


def propose_surveys(con, stats: list[EventStats]) -> list[dict]:
    out = []
    for s in stats:
        kind = next((k for k in ("nps", "csat", "ces") if re.search(rf"(^|_){k}(_|$)", _norm(s.event))), None)
        if kind is None:
            continue
        scored = con.execute("""SELECT count(*) FILTER (WHERE try_cast(json_extract_string(properties, '$.score') AS DOUBLE)
                                IS NOT NULL), count(*) FROM journey_events WHERE event = ?""", [s.event]).fetchone()
        if scored[1] and scored[0] / scored[1] >= 0.5 and not any(o["kind"] == kind for o in out):
            comment = con.execute("SELECT count(*) FROM journey_events WHERE event = ? AND "
                                  "json_extract_string(properties, '$.comment') IS NOT NULL", [s.event]).fetchone()[0]
            out.append({"id": kind, "kind": kind, "match": s.event, "score": "score",
                        "comment": "comment" if comment else None})
    return out


def propose_revenue(con, churn_events: list[str]) -> dict | None:
    if not churn_events:
        return None
    keys = con.execute("""
        SELECT key, count(*) AS n FROM (
            SELECT unnest(json_keys(properties)) AS key FROM journey_events
            WHERE source = 'billing' AND json_valid(properties))
        WHERE regexp_matches(lower(key), '(^|_)mrr(_|$)') AND NOT regexp_matches(lower(key), 'previous|prior|old')
        GROUP BY 1 ORDER BY n DESC, key LIMIT 1""").fetchall()
    if not keys:
        return None
    key = keys[0][0]
    revenue = {"match": {"source": "billing", "where": {key: {"exists": True}}}, "mrr": key,
               "churn": _rule(churn_events)}
    if "cent" in key.lower():
        revenue["scale"] = 0.01
    return revenue


def propose(con, source_files: list[str] | None = None, today: date | None = None) -> Draft:
    """The draft definition for the stitched store behind `con`."""
    level = choose_level(con)
    units, stats = event_stats(con, level)
    events = con.execute("SELECT count(*) FROM journey_events").fetchone()[0]
    by_event = {s.event: s for s in stats}
    stages, notes = propose_stages(stats)
    touchpoints = propose_touchpoints(con, by_event)
    customer = next((s for s in stages if s["id"] == "retention"), None)
    customer_events = list(customer["evidence"]) if customer else []
    personas, persona_evidence = propose_personas(con, level, customer_events)
    surveys = propose_surveys(con, stats)
    churn = next((s for s in stages if s["id"] == "churned"), None)
    revenue = propose_revenue(con, list(churn["evidence"]) if churn else [])
    adoption = next((s for s in stages if s["id"] == "adoption"), None)
    if not personas:
        notes.append("no trait told customers apart (2-6 values, or a number, on at least half of the units): "
                     "personas are left for you to write")
    if customer is None:
        notes.append("no paid-invoice or renewal event was seen: set milestones.customer_stage by hand")
    draft = Draft("", level, units, events, stages, touchpoints, persona_evidence, [s["id"] for s in surveys],
                  revenue, notes)
    draft.text = _render(draft, stats, personas, surveys, customer, adoption, source_files or [], today or date.today())
    return draft


def _dump(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)


def _render(d: Draft, stats, personas, surveys, customer, adoption, files, today) -> str:
    lines = [
        "# DRAFT proposed by `journeymap init --from-data` on " f"{today.isoformat()} from {d.events:,} events of",
        f"# {d.units:,} {d.level}s ({', '.join(files) or 'the loaded data'}). It is a starting point: check every",
        "# stage's entry events, name the owners, then `journeymap validate` and `journeymap map`.",
        "# The comments give each choice's evidence: reach = share of units with the event; day = median days",
        "# from a unit's first event to its first of this one.",
        f"name: Customer journey (draft from data, {today.isoformat()})",
        "",
        "analysis:",
        f"  level: {d.level}",
        "",
        "stages:",
    ]
    for s in d.stages:
        body = {k: v for k, v in s.items() if k != "evidence"}
        evidence = ", ".join(f"{e} reach {v['reach']:.0%} day {v['median_day']:g}" for e, v in s["evidence"].items())
        lines.append(f"  # {evidence}")
        lines.append(_indent(_dump([body]), 2))
    if d.touchpoints:
        lines += ["", "touchpoints:                 # one per source and channel with at least 0.5% of the events"]
        for t in d.touchpoints:
            lines.append(_indent(_dump([{k: v for k, v in t.items() if k != "evidence"}]), 2).rstrip()
                         + f"   # {t['evidence']['events']:,} events")
    if personas:
        ev = d.personas
        rates = ", ".join(f"{k}: {v:.0%} of {ev['units'][k]:,}" for k, v in ev["customer_rate"].items())
        lines += ["", f"# personas from the trait `{ev['trait']}`: customers {rates} (chi-square p = {ev['p_value']:g}).",
                  "# First match wins.", "personas:", _indent(_dump(personas), 2)]
    milestones = {}
    if customer is not None:
        milestones["customer_stage"] = "retention"
    if adoption is not None:
        milestones["key_features"] = [{"id": _norm(e), "name": _title(e), "match": e} for e in adoption["evidence"]]
    if milestones:
        lines += ["", "milestones:", _indent(_dump(milestones), 2)]
    if surveys:
        lines += ["", "surveys:", _indent(_dump(surveys), 2)]
    if d.revenue:
        lines += ["", "revenue:                     # the billing events that state MRR; check the scale",
                  _indent(_dump(d.revenue), 2)]
    if d.notes:
        lines += ["", "# To check:"] + [f"# - {n}" for n in d.notes]
    return "\n".join(line.rstrip() for line in "\n".join(lines).splitlines()) + "\n"


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line if line else line for line in text.rstrip("\n").splitlines())
