"""Accounts: the list scored by churn risk and health (with the risk model's held-out accuracy), and an
account's page: its people, its sources and its timeline of events."""

from __future__ import annotations

import json

from fastapi import HTTPException

from journeymap.errors import OptionError
from journeymap.engine.checks import did_you_mean
from journeymap.server.views.base import Ctx, Page

TIMELINE_LIMIT = 1500


OWNER_TRAITS = ("owner", "account_owner", "owner_name", "hubspot_owner", "sales_owner")
"""Account traits (any case) that name the account's owner in the CRM, first found wins."""
OWNER_PROPERTIES = ("owner", "Owner", "account_owner", "hubspot_owner")
"""Else the latest event of the account that carries one of these properties (a CRM export's owner column)."""
PER_PAGE, MAX_PER_PAGE = 50, 500
SORTS = {"risk": lambda r: r["risk"], "health": lambda r: r["health"], "mrr": lambda r: r["mrr"],
         "account": lambda r: (r["name"] or r["account_id"]).lower(), "stage": lambda r: r["stage_index"],
         "persona": lambda r: r["persona_name"], "owner": lambda r: r["owner"], "last_seen": lambda r: r["last_seen"]}
"""The accounts list's `sort` (a leading `-`: descending); an account without the value goes last either way."""


def _trait_owner(traits: dict) -> str | None:
    lower = {str(k).lower(): v for k, v in traits.items()}
    return next((str(lower[k]) for k in OWNER_TRAITS if lower.get(k) not in (None, "")), None)


def account_facts(ctx: Ctx) -> dict[str, dict]:
    """Every account in the store: name, plan, people, first and last seen, and where it is in the journey at the
    account level (its current stage, the persona it matches) and who owns it: the CRM's owner (an `owner` trait,
    else the latest `owner` property of its events), else the definition's owner of its current stage."""
    def compute() -> dict[str, dict]:
        from journeymap.engine.annotate import annotated_events
        from journeymap.engine.personas import UNASSIGNED, units
        from journeymap.engine.stages import visits

        definition, engine = ctx.ws.definition, ctx.ws.engine
        rows = ctx.ws.con.execute("SELECT account_id, traits, persons, first_seen, last_seen FROM accounts").fetchall()
        props = " ".join(f"WHEN json_extract_string(properties, '$.\"{k}\"') IS NOT NULL "
                         f"THEN json_extract_string(properties, '$.\"{k}\"')" for k in OWNER_PROPERTIES)
        owned = dict(ctx.ws.con.execute(
            f"SELECT account_id, arg_max(CASE {props} END, ts) FROM journey_events WHERE account_id IS NOT NULL "
            f"AND (CASE {props} END) IS NOT NULL GROUP BY account_id").fetchall())
        with engine.scope():
            v = visits(annotated_events(engine, definition, "account"))
            now = {r["unit_id"]: r["stage"] for r in engine.execute(
                v.filter(v.left_at.isnull()).select("unit_id", "stage")).to_pylist()}
            persona = {r["unit_id"]: r["persona"] for r in engine.execute(units(engine, definition, "account")).to_pylist()}
        stages = {s.id: (i, s) for i, s in enumerate(definition.stages)}
        personas = {p.id: p.name for p in definition.personas}
        out = {}
        for account_id, traits, persons, first, last in rows:
            t = json.loads(traits) if traits else {}
            stage = now.get(account_id)
            index, meta = stages.get(stage, (None, None))
            crm = _trait_owner(t) or owned.get(account_id)
            pid = persona.get(account_id) or UNASSIGNED
            out[account_id] = {
                "name": t.get("name"), "plan": t.get("plan"), "persons": persons,
                "first_seen": first.isoformat() if first else None, "last_seen": last.isoformat() if last else None,
                "stage": stage, "stage_name": meta.name if meta else None, "stage_index": index,
                "persona": pid, "persona_name": personas.get(pid, "No persona"),
                "owner": crm or (meta.owner if meta else None),
                "owner_from": "crm" if crm else "stage" if meta and meta.owner else None,
                "stage_owner": meta.owner if meta else None,
            }
        return out

    return ctx.cached("account_facts", compute=compute)


def _scored(ctx: Ctx) -> dict:
    """Every account with its churn risk and health where it pays (the risk and health analyses score paying
    accounts only), riskiest first; kept in the cache for the account pages."""
    def compute() -> dict:
        notes: list[str] = []
        risk = health = None
        try:
            risk = ctx.run("risk", top=0)
        except Exception as exc:  # noqa: BLE001 - the page degrades to what can be computed, and says why
            notes.append(f"Churn risk is not available: the model could not be fitted on this data ({type(exc).__name__}: {exc}).")
        try:
            health = ctx.run("health")
        except Exception as exc:  # noqa: BLE001
            notes.append(f"Health scores are not available ({type(exc).__name__}: {exc}).")
        scores: dict[str, dict] = {}
        for a in (health or {}).get("accounts", []):
            scores[a["unit_id"]] = {"health": a["health"], "band": a["band"], "mrr": a["mrr"], "expansion": a.get("expansion") or []}
        for a in (risk or {}).get("accounts", []):
            scores.setdefault(a["unit_id"], {"mrr": a["mrr"]}).update(risk=a["risk"], reasons=[r["text"] for r in a.get("reasons") or []])
        out = []
        for account_id, f in account_facts(ctx).items():
            s = scores.get(account_id, {})
            out.append({"account_id": account_id, "name": f["name"], "plan": f["plan"], "mrr": s.get("mrr"),
                        "health": s.get("health"), "band": s.get("band"), "risk": s.get("risk"),
                        "stage": f["stage"], "stage_name": f["stage_name"], "stage_index": f["stage_index"],
                        "persona": f["persona"], "persona_name": f["persona_name"], "owner": f["owner"],
                        "owner_from": f["owner_from"], "last_seen": f["last_seen"],
                        "reasons": s.get("reasons", []), "expansion": s.get("expansion", [])})
        out.sort(key=lambda r: (r["risk"] is None, -(r["risk"] or 0), r["account_id"]))
        if not scores:
            notes.append("No paying accounts: health and risk score paying accounts only.")
        return {"at": (risk or health or {}).get("at"), "horizon_days": (risk or health or {}).get("horizon_days"),
                "mean_risk": (risk or {}).get("mean_risk"), "evaluation": _evaluation(risk), "notes": notes,
                "accounts": out, "paying": len(scores)}

    return ctx.cached("accounts_rows", compute=compute)


def _positive(ctx: Ctx, name: str, default: int, most: int | None = None) -> int:
    text = ctx.arg(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1 or (most is not None and int(text) > most):
        bound = f"from 1 to {most}" if most else "1 or more"
        raise OptionError(f"--{name.replace('_', '-')} must be a whole number {bound}, not {text!r}", option=name)
    return int(text)


def accounts_data(ctx: Ctx) -> dict:
    """Every account (paying or not), searched by `q` (a part of its id or name, any case), sorted by `sort`,
    `per_page` to a `page`: the table's rows, with the totals to page through them."""
    q = ctx.arg("q") or ""
    sort = ctx.arg("sort") or "-risk"
    if sort.lstrip("-") not in SORTS:
        hint = did_you_mean(sort.lstrip("-"), SORTS, "sorts")
        raise OptionError(f"--sort must be one of {', '.join(SORTS)} (a leading - for descending), not {sort!r}: {hint}",
                          option="sort")
    per_page = _positive(ctx, "per_page", PER_PAGE, MAX_PER_PAGE)
    page = _positive(ctx, "page", 1)
    scored = _scored(ctx)
    rows = scored["accounts"]
    if q:
        needle = q.casefold()
        rows = [r for r in rows if needle in r["account_id"].casefold() or needle in (r["name"] or "").casefold()]
    if sort != "-risk":
        key, descending = SORTS[sort.lstrip("-")], sort.startswith("-")
        known = sorted((r for r in rows if key(r) is not None), key=key, reverse=descending)
        rows = known + [r for r in rows if key(r) is None]
    pages = max(1, -(-len(rows) // per_page))
    if page > pages:
        raise OptionError(f"--page {page} is past the last page ({pages} of {per_page} accounts each)", option="page")
    shown = rows[(page - 1) * per_page: page * per_page]
    return {**{k: scored[k] for k in ("at", "horizon_days", "mean_risk", "evaluation", "notes", "paying")},
            "total": len(scored["accounts"]), "matched": len(rows), "q": q, "sort": sort, "page": page,
            "per_page": per_page, "pages": pages, "accounts": shown}


def _evaluation(risk: dict | None) -> list[dict]:
    """The risk model's held-out scores beside its two baselines."""
    ev = (risk or {}).get("evaluation") or {}
    return [{"model": name if name != "model" else (risk or {}).get("model", "model"), "roc_auc": ev[name].get("roc_auc"),
             "pr_auc": ev[name].get("pr_auc"), "brier": ev[name].get("brier"), "rows": ev[name].get("rows")}
            for name in ("model", "logistic", "recency_only") if isinstance(ev.get(name), dict)]


def account_data(ctx: Ctx, account_id: str) -> dict:
    meta = ctx.ws.con.execute("SELECT account_id, traits, persons, first_seen, last_seen, events FROM accounts WHERE account_id = ?",
                              [account_id]).fetchone()
    if meta is None:
        raise HTTPException(404, f"no account {account_id!r}")
    people = ctx.ws.con.execute("SELECT person_id, emails, user_ids, first_seen, last_seen, events FROM persons "
                                "WHERE account_id = ? ORDER BY first_seen", [account_id]).fetchall()
    sources = ctx.args("source")
    where, params = "account_id = ? AND type NOT IN ('identify', 'group', 'alias')", [account_id]
    if sources:
        where += f" AND source IN ({', '.join('?' for _ in sources)})"
        params += sources
    counts = ctx.ws.con.execute("SELECT source, count(*) FROM journey_events WHERE account_id = ? "
                                "AND type NOT IN ('identify', 'group', 'alias') GROUP BY source ORDER BY 2 DESC",
                                [account_id]).fetchall()
    rows = ctx.ws.con.execute(
        f"SELECT ts, source, event, channel, email, person_id, properties FROM journey_events WHERE {where} "
        f"ORDER BY ts DESC, seq DESC LIMIT {TIMELINE_LIMIT}", params).fetchall()
    emails = {p[0]: (p[1] or [None])[0] for p in people}
    timeline = [{"ts": r[0].isoformat(), "source": r[1], "event": r[2], "channel": r[3], "person": r[4] or emails.get(r[5]),
                 "details": _details(r[6])} for r in rows]
    scores = None
    listing = ctx.cache.peek(("web", "accounts_rows"))  # the accounts list's scores, when it has been computed
    if listing:
        scores = next((a for a in listing["accounts"] if a["account_id"] == account_id and a["risk"] is not None), None)
    facts = account_facts(ctx).get(account_id, {})
    return {"account_id": account_id, **{k: facts.get(k) for k in (
                "stage", "stage_name", "persona", "persona_name", "owner", "owner_from", "stage_owner")}, "traits": json.loads(meta[1]) if meta[1] else {}, "persons_count": meta[2],
            "first_seen": meta[3].isoformat() if meta[3] else None, "last_seen": meta[4].isoformat() if meta[4] else None,
            "events": meta[5], "sources": [{"source": s, "events": n} for s, n in counts], "filter": sources,
            "people": [{"person_id": p[0], "emails": p[1] or [], "first_seen": p[3].isoformat() if p[3] else None,
                        "events": p[5]} for p in people],
            "scores": scores, "timeline": timeline, "truncated": len(rows) == TIMELINE_LIMIT}


def _details(properties: str | None) -> list[list[str]]:
    """A short list of (key, value) from an event's properties, long texts kept whole (what sales promised)."""
    if not properties:
        return []
    try:
        props = json.loads(properties)
    except ValueError:
        return [["properties", properties[:300]]]
    if not isinstance(props, dict):
        return [["properties", str(props)[:300]]]
    out = []
    for k, v in props.items():
        if v is None or v == "" or isinstance(v, dict | list):
            continue
        out.append([str(k), str(v)[:600]])
    return out[:8]


PAGES = (
    Page("accounts", "/accounts", "accounts.html", accounts_data, lambda d: "Accounts"),
    Page("account", "/accounts/{account_id}", "account.html", account_data,
         lambda d: f"Account {d['traits'].get('name') or d['account_id']}"),
)
