"""The engine against a brute-force reference, on random small event logs loaded through a real workspace.

The reference below is written from the metric definitions alone (docs/metrics/, the engine's module
docstrings) with plain dicts and lists: each unit's events sorted by (ts, seq), walked one by one.
Hypothesis draws the logs: a few persons and accounts, events from a small vocabulary that hits stage
rules (including an event two stages match), touchpoints, survey answers in and out of scale, identify
and group calls whose traits decide personas, and many ties in ts. Each log is written as a canonical
CSV and ingested into a real DuckDB file, so identity stitching is part of what is checked.
"""

from __future__ import annotations

import math
import statistics

from scipy import stats as scipy_stats

import csv
import datetime as dt
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import ibis
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from journeymap.engine import metrics as M
from journeymap.engine.annotate import annotated_events
from journeymap.engine.personas import units
from journeymap.engine.stages import funnel, stage_durations, visits, with_current_stage
from journeymap.insights.friction import _before_customer, dropped_units
from journeymap.journey.rules import Condition, Rule
from journeymap.workspace import Workspace

T0 = dt.datetime(2024, 1, 1)
DEFINITION = {
    "name": "Reference journey",
    "stages": [
        {"id": "discovery", "name": "Discovery", "entry": {"source": "marketing"}},
        {"id": "evaluation", "name": "Evaluation", "entry": {"event": ["pricing_viewed", "demo_requested"]}},
        {"id": "onboarding", "name": "Onboarding", "entry": "signup_completed"},
        {"id": "adoption", "name": "Adoption", "entry": {"event": "report_created", "where": {"shared": True}}},
        {"id": "won", "name": "Won", "entry": "contract_signed", "terminal": True, "kind": "won"},
        {"id": "churned", "name": "Churned", "entry": "subscription_cancelled", "terminal": True, "kind": "churn"},
        {"id": "lost", "name": "Lost", "entry": "deal_lost", "terminal": True, "kind": "lost"},
    ],
    "touchpoints": [
        {"id": "pricing_page", "name": "Pricing page", "match": {"event": "page_viewed", "where": {"path": "/pricing"}},
         "channel": "web", "stage": "evaluation"},
        {"id": "support_chat", "name": "Support chat", "match": {"event": ["chat_started", "csat_answered"]},
         "channel": "chat"},
        {"id": "survey_email", "name": "Survey email", "match": {"source": "survey", "channel": "email"}},
    ],
    "personas": [
        {"id": "pro_team", "name": "Pro team", "traits": {"plan": "pro", "employees": {"gte": 10}}},
        {"id": "smb", "name": "Small business", "traits": {"employees": {"lt": 50}}},
        {"id": "enterprise", "name": "Enterprise", "traits": {"employees": {"gte": 50}}},
    ],
    "milestones": {
        "start": "signup_completed",
        "value_moment": "report_created",
        "customer_stage": "onboarding",
        "key_features": [
            {"id": "reports", "name": "Reports", "match": "report_created"},
            {"id": "invites", "name": "Invites", "match": {"event": "user_invited", "where": {"seats": {"gt": 1}}}},
        ],
    },
    "surveys": [
        {"id": "nps", "kind": "nps", "match": "nps_answered"},
        {"id": "nps_in_app", "kind": "nps", "match": {"event": "feedback_given", "where": {"kind": "nps"}},
         "score": "answer.value"},
        {"id": "csat", "kind": "csat", "match": "csat_answered", "score": "rating"},
        {"id": "ces", "kind": "ces", "match": "ces_answered"},
    ],
}

# (event, source, channel, property variants): what the random logs are made of.
TRACK = [
    ("ad_clicked", "marketing", "paid_search", [{}]),
    ("pricing_viewed", "marketing", "email", [{}]),  # matches discovery and evaluation: discovery wins
    ("pricing_viewed", "product", "web", [{}]),
    ("demo_requested", "crm", None, [{}]),
    ("signup_completed", "product", "web", [{}, {"plan": "pro"}]),
    ("report_created", "product", "app", [{"shared": True}, {"shared": False}, {}, {"shared": "true"}]),
    ("contract_signed", "crm", None, [{}]),
    ("subscription_cancelled", "billing", None, [{}]),
    ("deal_lost", "crm", None, [{}]),
    ("page_viewed", "product", "web", [{"path": "/pricing"}, {"path": "/docs"}]),
    ("user_invited", "product", "app", [{"seats": 1}, {"seats": 3}, {"seats": "many"}, {}]),
    ("chat_started", "support", "chat", [{}]),
    ("nps_answered", "survey", "email",
     [{"score": s} for s in (0, 6, 7, 8, 9, 10, 11, -1, "9", "n/a", None)] + [{}]),
    ("feedback_given", "survey", "app",
     [{"kind": "nps", "answer": {"value": v}} for v in (3, 10, 12)] + [{"kind": "bug", "answer": {"value": 10}}]),
    ("csat_answered", "support", "chat", [{"rating": r} for r in (0, 1, 3, 4, 5, 6)]),
    ("ces_answered", "survey", "email", [{"score": c} for c in (0, 1, 2, 5, 7, 8)]),
]
TRAITS = st.fixed_dictionaries(
    {}, optional={"employees": st.sampled_from([5, 10, 49, 50, 500, "many", None]), "plan": st.sampled_from(["pro", "free"])}
)
PERSONS = ["p1", "p2", "p3", "p4", "p5"]
ACCOUNTS = ["a1", "a2", "a3"]
HOURS = st.integers(0, 30)  # few distinct times: ties are common


@dataclass
class Row:
    """One line of the canonical CSV; `idx` is its position, which is input order (seq)."""

    idx: int
    customer: str | None
    account: str | None
    event: str
    type: str
    source: str
    channel: str | None
    props: dict
    traits: dict | None
    hour: int

    @property
    def ts(self) -> dt.datetime:
        return T0 + dt.timedelta(hours=self.hour)


@st.composite
def event_logs(draw) -> list[Row]:
    home = {p: draw(st.sampled_from([None, *ACCOUNTS])) for p in PERSONS}  # each person's one account
    raw = []
    for _ in range(draw(st.integers(1, 35))):
        kind = draw(st.sampled_from(["track"] * 8 + ["identify", "group", "account_only"]))
        person = draw(st.sampled_from(PERSONS))
        names = draw(st.booleans()) if home[person] else False  # does this row name the account?
        hour = draw(HOURS)
        if kind == "identify":
            raw.append((person, home[person] if names else None, "identify", "identify", "product", None, {},
                        draw(TRAITS), hour))
        elif kind == "group":
            raw.append((None, draw(st.sampled_from(ACCOUNTS)), "group", "group", "crm", None, {}, draw(TRAITS), hour))
        else:
            event, source, channel, variants = draw(st.sampled_from(TRACK))
            props = draw(st.sampled_from(variants))
            if kind == "account_only":
                raw.append((None, draw(st.sampled_from(ACCOUNTS)), event, "track", source, channel, props, None, hour))
            else:
                raw.append((person, home[person] if names else None, event, "track", source, channel, props, None, hour))
    return [Row(i, *r) for i, r in enumerate(raw)]


def write_csv(rows: list[Row], path: Path) -> Path:
    cols = ["customer_id", "event", "ts", "account_id", "source", "channel", "message_id", "properties", "type", "traits"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([
                r.customer or "", r.event, r.ts.isoformat() + "Z", r.account or "", r.source, r.channel or "",
                f"m{r.idx}", json.dumps(r.props) if r.props else "", r.type,
                json.dumps(r.traits) if r.traits is not None else "",
            ])
    return path


# --- the reference --------------------------------------------------------------------------------


def json_text(value) -> str | None:
    """A JSON value as text, the way a property is compared: true/false, numbers as written, NULL for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def lookup(doc: dict, path: str) -> str | None:
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return json_text(doc)


def number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def holds(text: str | None, cond: Condition) -> bool:
    op, arg = cond.operator
    literal = json_text(int(arg) if isinstance(arg, float) and arg.is_integer() else arg)
    if op == "exists":
        return (text is not None) == arg
    if op in ("gt", "gte", "lt", "lte"):
        x = number(text)
        return x is not None and {"gt": x > arg, "gte": x >= arg, "lt": x < arg, "lte": x <= arg}[op]
    if op == "contains":
        return text is not None and str(arg) in text
    if op == "eq":
        return text is not None and text == literal
    if op == "ne":
        return text is None or text != literal
    values = {json_text(v) for v in arg}
    return (text in values) if op == "in" else not (text is not None and text in values)


def matches(row: Row, rule: Rule) -> bool:
    if rule.event and row.event not in rule.event:
        return False
    if rule.source and row.source not in rule.source:
        return False
    if rule.channel and row.channel not in rule.channel:
        return False
    if not all(holds(lookup(row.props, path), cond) for path, cond in rule.where.items()):
        return False
    return not rule.any or any(matches(row, sub) for sub in rule.any)


def first_id(row: Row, items) -> str | None:
    return next((i.id for i in items if matches(row, i.entry if hasattr(i, "entry") else i.match)), None)


def quantile_cont(xs: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, DuckDB's quantile_cont)."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latest_traits(calls: list[Row]) -> dict:
    """The latest non-null value of each key over identify/group calls, in (ts, seq) order."""
    out: dict = {}
    for r in sorted(calls, key=lambda r: (r.ts, r.idx)):
        out.update({k: v for k, v in (r.traits or {}).items() if v is not None})
    return out


def reference(rows: list[Row], definition, level: str) -> dict:
    # Identity: a person is their customer id; their account is the one their rows name (one at most here).
    person_account = {r.customer: r.account for r in rows if r.customer and r.account}

    def unit(r: Row) -> str | None:
        if level == "person":
            return f"u:{r.customer}" if r.customer else None
        return r.account or person_account.get(r.customer)

    account_traits = {a: latest_traits([r for r in rows if r.type == "group" and r.account == a])
                      for a in {r.account or person_account.get(r.customer) for r in rows} - {None}}
    if level == "person":
        traits = {}
        for p in {r.customer for r in rows if r.customer}:
            own = latest_traits([r for r in rows if r.customer == p and r.type == "identify"])
            traits[f"u:{p}"] = {**account_traits.get(person_account.get(p), {}), **own}
    else:
        traits = account_traits

    def persona(u: str) -> str:
        t = traits.get(u, {})
        for p in definition.personas:
            if all(holds(json_text(t.get(k)), c) for k, c in p.traits.items()):
                return p.id
        return "unassigned"

    events = defaultdict(list)
    for r in rows:
        if r.type not in ("identify", "group", "alias") and unit(r) is not None:
            events[unit(r)].append(r)
    for evs in events.values():
        evs.sort(key=lambda r: (r.ts, r.idx))
    hi = max((r.ts for evs in events.values() for r in evs), default=None)
    stages = definition.stages
    terminal = {s.id for s in stages if s.terminal}

    out = {"persona": {u: persona(u) for u in events}, "visits": [], "current": {}, "before": {},
           "durations": [], "units": {}}
    for u, evs in events.items():
        # Visits: a hit of a stage other than the previous hit's starts a visit; the next visit ends it.
        vs, current = [], None
        for r in evs:
            out["before"][r.idx] = current  # the stage in effect just before this event
            hit = first_id(r, stages)
            if hit is not None and (not vs or vs[-1][0] != hit):
                vs.append((hit, r.ts, r.idx))
            current = vs[-1][0] if vs else None
            out["current"][r.idx] = current
        for i, (stage, at, idx) in enumerate(vs):
            left = vs[i + 1][1] if i + 1 < len(vs) else None
            out["visits"].append((u, stage, at, idx, i + 1, left))
            if stage not in terminal:
                end = left if left is not None else hi
                out["durations"].append((stage, out["persona"][u], (end - at).total_seconds(), left is not None))
        out["units"][u] = {"events": evs, "visits": vs}
    return out


def view(ref: dict, definition, persona: str) -> dict:
    """Every metric of one persona view ('all' for everyone) from the reference's unit timelines."""
    us = {u: x for u, x in ref["units"].items() if persona == "all" or ref["persona"][u] == persona}
    stages = definition.stages
    order = {s.id: i for i, s in enumerate(stages)}
    advances = {s.id for s in stages if not s.terminal or s.kind == "won"}
    fun = {}
    for s in stages:
        reached = converted = in_stage = 0
        for x in us.values():
            seq = [v[0] for v in x["visits"]]
            if s.id not in seq:
                continue
            reached += 1
            first = seq.index(s.id)
            if not s.terminal and any(order[t] > order[s.id] and t in advances for t in seq[first + 1:]):
                converted += 1
            in_stage += seq[-1] == s.id
        fun[s.id] = {"reached": reached, "converted": converted, "dropped": reached - converted, "in_stage": in_stage}
    # friction's drop-offs: per stage before the customer stage, the units that reached it and never moved on, with
    # when they first entered it and the stage's count of units
    dropped = set()
    for sid in _before_customer(definition):
        for u, x in us.items():
            seq = [v[0] for v in x["visits"]]
            if sid in seq and not any(order[t] > order[sid] and t in advances for t in seq[seq.index(sid) + 1:]):
                dropped.add((u, sid, x["visits"][seq.index(sid)][1], fun[sid]["reached"]))

    m = definition.milestones

    def ttv(start: Rule | None) -> dict:
        secs, n = [], 0
        for x in us.values():
            starts = [r.ts for r in x["events"] if start is None or matches(r, start)]
            if not starts:
                continue
            n += 1
            values = [r.ts for r in x["events"] if matches(r, m.value_moment) and r.ts >= min(starts)]
            if values:
                secs.append((min(values) - min(starts)).total_seconds())
        if not secs:
            return {"p50_seconds": None, "p90_seconds": None, "reached": 0, "n": n, "share": 0.0 if n else None}
        return {"p50_seconds": quantile_cont(secs, 0.5), "p90_seconds": quantile_cont(secs, 0.9),
                "reached": len(secs), "n": n, "share": len(secs) / n}

    churn_stages = {s.id for s in stages if s.kind == "churn"}
    # A unit that churned was a customer, even one that cancelled before it reached the customer stage.
    customers = [x for x in us.values() if ({m.customer_stage} | churn_stages) & {v[0] for v in x["visits"]}]
    adoption = []
    for f in m.key_features:
        k = sum(any(matches(r, f.match) for r in x["events"]) for x in customers)
        adoption.append({"feature": f.id, "name": f.name, "adopters": k, "customers": len(customers),
                         "rate": k / len(customers) if customers else None})
    churned = sum(bool(churn_stages & {v[0] for v in x["visits"]}) for x in customers)

    answers = []  # (kind, score, stage just before the answer, touchpoint)
    lo_hi = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
    for x in us.values():
        for r in x["events"]:
            for s in definition.surveys:
                score = number(lookup(r.props, s.score))
                lo, hi = lo_hi[s.kind]
                if matches(r, s.match) and score is not None and lo <= score <= hi:
                    answers.append((s.kind, score, ref["before"][r.idx], first_id(r, definition.touchpoints)))

    def scores(group) -> dict:
        out: dict = {}
        for kind, score, stage, tp in answers:
            key = group(stage, tp)
            if key is not None:
                out.setdefault(key, {}).setdefault(kind, []).append(score)
        return {key: {kind: summarise(kind, xs) for kind, xs in kinds.items()} for key, kinds in out.items()}

    return {
        "funnel": fun,
        "dropped": dropped,
        "ttv": ttv(m.start),
        "ttv_from_first_event": ttv(None),
        "adoption": adoption,
        "churn": {"churned": churned, "customers": len(customers),
                  "rate": churned / len(customers) if customers else None},
        "surveys": scores(lambda stage, tp: "all").get("all", {}),
        "stage_surveys": scores(lambda stage, tp: stage),
        "touchpoint_surveys": scores(lambda stage, tp: tp),
        "durations": sorted(d for d in ref["durations"] if persona == "all" or d[1] == persona),
    }


def summarise(kind: str, xs: list[float]) -> dict:
    """Score and 95% interval straight from the answers (the engine works from per-group sums)."""
    n, z = len(xs), 1.959963984540054
    low = high = None
    if kind == "nps":
        points = [1 if x >= 9 else -1 if x <= 6 else 0 for x in xs]
        score = 100.0 * statistics.fmean(points)
        if n > 1:
            se = statistics.pstdev(points) / math.sqrt(n)
            low, high = max(-100.0, score - 100 * z * se), min(100.0, score + 100 * z * se)
    elif kind == "csat":
        score = sum(x >= 4 for x in xs) / n
        denominator = 1 + z * z / n
        centre = (score + z * z / (2 * n)) / denominator
        half = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / denominator
        low, high = max(0.0, centre - half), min(1.0, centre + half)
    else:
        score = statistics.fmean(xs)
        if n > 1:
            half = scipy_stats.t.ppf(0.975, n - 1) * statistics.stdev(xs) / math.sqrt(n)
            low, high = score - half, score + half
    return {"score": score, "n": n, "ci_low": low, "ci_high": high}


# --- the engine, the same numbers -------------------------------------------------------------------


def engine_view(engine, definition, a, v, ac, hi, persona: str) -> dict:
    if persona != "all":
        a, v, ac = (t.filter(t.persona == persona) for t in (a, v, ac))
    cust = M.customers(engine, a, v, definition)
    no_start = definition.model_copy(update={"milestones": definition.milestones.model_copy(update={"start": None})})
    durations = stage_durations(engine, v, definition, hi) if hi else None
    return {
        "funnel": funnel(engine, v, definition),
        "dropped": {(r["unit_id"], r["stage"], r["ts"], r["reached"])
                    for r in dropped_units(engine, v, definition, _before_customer(definition)).to_pylist()},
        "ttv": M.time_to_value(engine, a, definition),
        "ttv_from_first_event": M.time_to_value(engine, a, no_start),
        "adoption": M.adoption(engine, a, cust, definition),
        "churn": M.churn(engine, v, cust, definition),
        "surveys": M.surveys_by(engine, ac.mutate(_all=ibis.literal("all")), definition, "_all").get("all", {}),
        "stage_surveys": M.surveys_by(engine, ac, definition, "stage_before"),
        "touchpoint_surveys": M.surveys_by(engine, ac, definition, "touchpoint"),
        "durations": sorted(
            (r["stage"], r["persona"], r["seconds"], r["observed"]) for r in durations.to_pylist()
            if persona == "all" or r["persona"] == persona
        ) if durations is not None else [],
    }


def approx(x):
    """Counts exact, floats to 1e-12 relative, through nested dicts and lists."""
    if isinstance(x, dict):
        return {k: approx(v) for k, v in x.items()}
    if isinstance(x, list):
        return [approx(v) for v in x]
    if isinstance(x, tuple):
        return tuple(approx(v) for v in x)
    if isinstance(x, float):
        return pytest.approx(x, rel=1e-12, abs=1e-9)
    return x


def check_level(ws: Workspace, rows: list[Row], level: str, persona: str) -> None:
    engine, definition = ws.engine, ws.definition
    ref = reference(rows, definition, level)
    seq_to_idx = {seq: int(mid[1:]) for mid, seq in ws.con.execute("SELECT message_id, seq FROM events").fetchall()}

    a = annotated_events(engine, definition, level)
    v = engine.materialize(visits(a))
    ac = engine.materialize(with_current_stage(a, v))
    # Personas: every unit with events, from its traits (own first, then its account's).
    got_personas = {r["unit_id"]: r["persona"] for r in engine.execute(units(engine, definition, level)).to_pylist()}
    assert {u: got_personas.get(u, "unassigned") for u in ref["persona"]} == ref["persona"]
    assert {r["unit_id"]: r["persona"] for r in engine.execute(a.select("unit_id", "persona").distinct()).to_pylist()} \
        == ref["persona"]
    # Visits and the stage each event happened in.
    got_visits = sorted(
        (r["unit_id"], r["stage"], r["entered_at"], seq_to_idx[r["entry_seq"]], r["visit_no"], r["left_at"])
        for r in engine.execute(v).to_pylist()
    )
    assert got_visits == sorted(ref["visits"])
    got_current = {seq_to_idx[r["seq"]]: r["current_stage"] for r in engine.execute(ac.select("seq", "current_stage")).to_pylist()}
    assert got_current == ref["current"]
    hi = engine.execute(a.aggregate(hi=a.ts.max())).to_pylist()[0]["hi"]
    for p in ("all", persona):
        got = engine_view(engine, definition, a, v, ac, hi, p)
        want = view(ref, definition, p)
        for key in want:
            assert got[key] == approx(want[key]), (level, p, key)


# Each example builds a workspace (~1 s). Shrinking a failure can take minutes on this machine, so it
# is off unless JOURNEYMAP_SHRINK=1; the failing log is printed either way.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])


@settings(max_examples=40, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=event_logs(), persona=st.sampled_from(["pro_team", "smb", "enterprise", "unassigned"]))
def test_engine_agrees_with_the_reference(tmp_path_factory, rows, persona):
    base = tmp_path_factory.mktemp("ref")
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))  # JSON is YAML
        (report,) = ws.ingest([str(write_csv(rows, base / "events.csv"))])
        assert report.accepted == len(rows), report.samples
        for level in ("person", "account"):
            check_level(ws, rows, level, persona)


@settings(max_examples=12, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=event_logs(), persona=st.sampled_from(["pro_team", "smb", "enterprise", "unassigned"]))
def test_the_maps_persona_views_from_split_queries_equal_each_persona_alone(tmp_path_factory, rows, persona):
    """The map computes its persona views with each metric split by persona in one query (engine.metrics `per`):
    every number of a view equals the metric on that persona's rows alone, and a persona without rows gets what
    the metrics give on no rows. The year-over-year survey change is included (a target with `change`)."""
    from journeymap.insights.map.journey_map import ALL, _view_parts

    base = tmp_path_factory.mktemp("split")
    definition = {**DEFINITION, "targets": [{"metric": "nps", "change": "+5%", "baseline": "yoy"},
                                            {"metric": "csat", "change": "+5%", "baseline": "yoy"}]}
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(definition))
        (report,) = ws.ingest([str(write_csv(rows, base / "events.csv"))])
        assert report.accepted == len(rows), report.samples
        engine = ws.engine
        for level in ("person", "account"):
            with engine.scope():
                a = annotated_events(engine, ws.definition, level)
                v = engine.materialize(visits(a))
                ac = engine.materialize(with_current_stage(a, v))
                hi = engine.execute(a.aggregate(hi=a.ts.max())).to_pylist()[0]["hi"]
                ids = [persona, "nobody"]  # a persona of the view list with no rows at all
                split = _view_parts(engine, ws.definition, a, v, ac, hi, ids)
                # one channel and one action per stage: the cut that ranks within each persona
                tops = M.stage_contents(engine, ac, ws.definition, top=1, per=("persona", ids))
                for p in ids:
                    alone = _view_parts(engine, ws.definition, *(t.filter(t.persona == p) for t in (a, v, ac)), hi, [])
                    assert split[p] == alone[ALL], (level, p)
                    assert tops[p] == M.stage_contents(engine, ac.filter(ac.persona == p), ws.definition, top=1), (level, p)
