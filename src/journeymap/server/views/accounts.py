"""Accounts: the list scored by churn risk and health (with the risk model's held-out accuracy), and an
account's page: its people, its sources and its timeline of events."""

from __future__ import annotations

import json

from fastapi import HTTPException

from journeymap.server.views.base import Ctx, Page

TIMELINE_LIMIT = 1500


def _account_names(ctx: Ctx) -> dict[str, dict]:
    def compute() -> dict[str, dict]:
        rows = ctx.ws.con.execute(
            "SELECT account_id, json_extract_string(traits, '$.name'), json_extract_string(traits, '$.plan'), persons, "
            "first_seen, last_seen FROM accounts").fetchall()
        return {r[0]: {"name": r[1], "plan": r[2], "persons": r[3], "first_seen": r[4], "last_seen": r[5]} for r in rows}

    return ctx.cached("account_names", compute=compute)


def accounts_data(ctx: Ctx) -> dict:
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
    names = _account_names(ctx)
    rows: dict[str, dict] = {}
    for a in (health or {}).get("accounts", []):
        rows[a["unit_id"]] = {"account_id": a["unit_id"], "health": a["health"], "band": a["band"], "mrr": a["mrr"],
                              "expansion": a.get("expansion") or []}
    for a in (risk or {}).get("accounts", []):
        row = rows.setdefault(a["unit_id"], {"account_id": a["unit_id"], "mrr": a["mrr"]})
        row.update(risk=a["risk"], stage=a.get("stage"), reasons=[r["text"] for r in a.get("reasons") or []])
    if not rows:
        notes.append("No paying accounts: health and risk score paying accounts only.")
    out = []
    for row in rows.values():
        meta = names.get(row["account_id"], {})
        out.append({"account_id": row["account_id"], "name": meta.get("name"), "plan": meta.get("plan"), "mrr": row.get("mrr"),
                    "health": row.get("health"), "band": row.get("band"), "risk": row.get("risk"), "stage": row.get("stage"),
                    "reasons": row.get("reasons", []), "expansion": row.get("expansion", [])})
    out.sort(key=lambda r: (-(r["risk"] if r["risk"] is not None else -1), r["account_id"]))
    return {"at": (risk or health or {}).get("at"), "horizon_days": (risk or health or {}).get("horizon_days"),
            "mean_risk": (risk or {}).get("mean_risk"), "evaluation": _evaluation(risk), "notes": notes, "accounts": out}


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
    listing = ctx.cache.peek(("web", "accounts_rows"))
    if listing:
        scores = next((a for a in listing if a["account_id"] == account_id), None)
    return {"account_id": account_id, "traits": json.loads(meta[1]) if meta[1] else {}, "persons_count": meta[2],
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
